//! The XDP fast path: find IP protocol-112 packets, check them with the
//! rules in `vrrp-common` against the instances the agent configured in
//! `VRRP_INSTANCES` / `VRRP_ADDRS`, drop the invalid ones (packets for a
//! VRID no instance serves are somebody else's and pass), record valid
//! adverts in `VRRP_PEERS` (an event in `VRRP_EVENTS` only on change), and
//! count every verdict per interface in `VRRP_COUNTERS`. Other IP packets
//! pass, except those to a VIP of a non-accept master (`VRRP_NOACCEPT`,
//! counted in `VRRP_NOACCEPT_COUNTERS`; skipped while `VRRP_NOACCEPT_ROWS` is 0). Valid adverts are
//! consumed here (the agent reads the maps), so the kernel never answers a
//! unicast advert with ICMP protocol-unreachable; `INST_PASS_UP` passes
//! them on for tcpdump.
//!
//! Adverts under an IP Authentication Header (IPv4 protocol 51, next
//! header 112: keepalived's `auth_type AH`) get every check but the ICV
//! and the sequence number, which need HMAC-MD5 and the instance's replay
//! counter: those for an AH instance are passed up to the agent
//! (`Verdict::AhToAgent`), which checks them on its raw socket. They are
//! not recorded in the peer map and never arm the master-down watch: an
//! unauthenticated packet must not hold a backup down (for AH instances
//! the agent's own Master_Down_Timer, fed only by authenticated adverts,
//! decides).
//!
//! Fails open: any frame this program cannot make sense of is passed.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::bindings::{bpf_timer, xdp_md};
use aya_ebpf::btf_maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf};
use aya_ebpf::helpers::generated::{
    bpf_csum_diff, bpf_ktime_get_ns, bpf_timer_init, bpf_timer_set_callback, bpf_timer_start,
    bpf_xdp_load_bytes,
};
use aya_ebpf::macros::{btf_map, xdp};
use aya_ebpf::programs::XdpContext;
use vrrp_common::accept::{
    self, NOACCEPT_COUNTERS_MAX_ENTRIES, NOACCEPT_MAX_ENTRIES, NoAcceptCounterKey, VipKey, VipOwner,
};
use vrrp_common::classify::{self, Facts, HEADER_LEN, IpMeta};
use vrrp_common::maps::{
    ADDR_OWN, ADDR_PEER, ADDRS_MAX_ENTRIES, AddrInfo, COUNTERS_MAX_ENTRIES, CounterKey, EVENTS_BYTES,
    FAMILY_IPV4, FAMILY_IPV6, INST_PASS_UP, INST_UNICAST, INSTANCES_MAX_ENTRIES, InstanceConfig, InstanceKey,
    PEERS_MAX_ENTRIES, PeerEvent, PeerKey, PeerState,
};
use vrrp_common::wire::Family;
use vrrp_common::wire::ah::{AH_LEN, IPPROTO_AH, PAYLOAD_LEN};
use vrrp_common::wire::vrrp::{Version, checksum_form};
use vrrp_common::{IPPROTO_VRRP, Verdict};

#[btf_map]
static VRRP_PEERS: HashMap<PeerKey, PeerState, { PEERS_MAX_ENTRIES as usize }> = HashMap::new();

#[btf_map]
static VRRP_COUNTERS: PerCpuHashMap<CounterKey, u64, { COUNTERS_MAX_ENTRIES as usize }> =
    PerCpuHashMap::new();

#[btf_map]
static VRRP_INSTANCES: HashMap<InstanceKey, InstanceConfig, { INSTANCES_MAX_ENTRIES as usize }> =
    HashMap::new();

#[btf_map]
static VRRP_ADDRS: HashMap<PeerKey, AddrInfo, { ADDRS_MAX_ENTRIES as usize }> = HashMap::new();

#[btf_map]
static VRRP_EVENTS: RingBuf<PeerEvent, { EVENTS_BYTES as usize }> = RingBuf::new();

/// An instance's master-down watch: a kernel timer in a map value (the
/// verifier finds it by its BTF type name, `bpf_timer`).
#[repr(C)]
struct Watch {
    timer: bpf_timer,
    /// bpf_ktime_get_ns of the last advert that holds the backup down.
    last_hold_ns: u64,
    /// Master_Down_Interval for that advert, ns.
    mdi_ns: u64,
    /// 1 once the timer is initialised and has its callback.
    ready: u32,
    /// 1 while the timer is pending (set here, cleared by `on_silence`
    /// when it reports).
    running: u32,
}

/// Per instance: its `Watch` (vrrp-common `WATCH_MAP`).
#[btf_map]
static VRRP_WATCH: HashMap<InstanceKey, Watch, { INSTANCES_MAX_ENTRIES as usize }> = HashMap::new();

/// Addresses of non-accept masters (vrrp-common `accept::NOACCEPT_MAP`).
#[btf_map]
static VRRP_NOACCEPT: HashMap<VipKey, VipOwner, { NOACCEPT_MAX_ENTRIES as usize }> = HashMap::new();

/// How many rows VRRP_NOACCEPT holds (vrrp-common `accept::NOACCEPT_ROWS_MAP`).
#[btf_map]
static VRRP_NOACCEPT_ROWS: Array<u32, 1> = Array::new();

/// Packets to those addresses per interface and `NoAcceptVerdict`.
#[btf_map]
static VRRP_NOACCEPT_COUNTERS: PerCpuHashMap<
    NoAcceptCounterKey,
    u64,
    { NOACCEPT_COUNTERS_MAX_ENTRIES as usize },
> = PerCpuHashMap::new();

/// Until when the agent is alive (vrrp-common `ALIVE_MAP`).
#[btf_map]
static VRRP_ALIVE: Array<u64, 1> = Array::new();

/// bpf_timer_init flag: CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
const CLOCK_MONOTONIC: u64 = 1;

/// Index `ChecksumForm as u32`: which checksum form verified.
#[btf_map]
static VRRP_CSUM_FORMS: PerCpuArray<u64, 3> = PerCpuArray::new();

/// The longest message whose checksum the program sums: a v3 advert with
/// 255 IPv6 addresses is 4088 bytes.
const MAX_MSG: usize = 4096;
/// Bytes summed per `bpf_csum_diff` call (its limit is 512).
const SCRATCH: usize = 512;

/// Per-CPU scratch: what the header parse found, for `vrrp_advert` (a
/// global function takes the context and scalars only), and the map key
/// and event being built, kept off the 512-byte BPF stack.
#[repr(C)]
struct Scratch {
    ev: PeerEvent,
    meta: IpMeta,
    /// Destination address; IPv4 fills the first 4 bytes.
    dst: [u8; 16],
}

#[btf_map]
static VRRP_TMP: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Per-CPU scratch space for `message_sum`.
#[btf_map]
static VRRP_SCRATCH: PerCpuArray<[u8; SCRATCH], 1> = PerCpuArray::new();

/// bpf_ringbuf_output flag: notify the consumer whatever its position.
const BPF_RB_FORCE_WAKEUP: u64 = 2;

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV6_HLEN: usize = 40;

#[xdp]
pub fn vrrp_xdp(ctx: XdpContext) -> u32 {
    try_vrrp_xdp(&ctx).unwrap_or(XDP_PASS)
}

/// Frame bytes at `off`, bounds-checked against the end of the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *const T)
}

#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, off: usize) -> Option<T> {
    // SAFETY: ptr_at checked that `size_of::<T>()` bytes at `off` lie
    // inside the packet; the read is unaligned because frames are.
    ptr_at::<T>(ctx, off).map(|p| unsafe { p.read_unaligned() })
}

#[inline(always)]
fn be16(ctx: &XdpContext, off: usize) -> Option<u16> {
    read::<[u8; 2]>(ctx, off).map(u16::from_be_bytes)
}

/// The header parse: Ethernet (one VLAN tag), IPv4 (options, keepalived's
/// AH) or IPv6; a protocol-112 packet goes on to `vrrp_advert` with what
/// the parse found in the scratch record, anything else to `no_accept`.
fn try_vrrp_xdp(ctx: &XdpContext) -> Option<u32> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(ctx, 12)?;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(ctx, 16)?;
        l3 += 4;
    }
    let tmp = VRRP_TMP.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch value, valid for the program run; only
    // this program run uses it (XDP runs with preemption disabled).
    let (meta, dst) = unsafe { (&mut (*tmp).meta, &mut (*tmp).dst) };
    *dst = [0; 16];
    let l4 = match ethertype {
        ETH_P_IPV4 => {
            let vihl: u8 = read(ctx, l3)?;
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return Some(XDP_PASS);
            }
            let proto: u8 = read(ctx, l3 + 9)?;
            let d: [u8; 4] = read(ctx, l3 + 16)?;
            dst[..4].copy_from_slice(&d);
            // AH: only keepalived's shape (next header VRRP, 96-bit ICV)
            // is ours; any other AH packet is somebody's IPsec, subject to
            // Accept Mode as any other packet to a VIP.
            let ours_ah = if proto == IPPROTO_AH {
                let h: [u8; 2] = read(ctx, l3 + ihl)?;
                h[0] == IPPROTO_VRRP && h[1] == PAYLOAD_LEN
            } else {
                false
            };
            if proto != IPPROTO_VRRP && !ours_ah {
                return Some(no_accept(ctx, FAMILY_IPV4, proto, l3 + ihl));
            }
            let ah = if ours_ah { AH_LEN } else { 0 };
            let total = be16(ctx, l3 + 2)?;
            let frag = be16(ctx, l3 + 6)?;
            let s: [u8; 4] = read(ctx, l3 + 12)?;
            meta.src = [0; 16];
            meta.src[..4].copy_from_slice(&s);
            meta.family = FAMILY_IPV4;
            meta.ttl = read(ctx, l3 + 8)?;
            meta.vrrp_len = total.saturating_sub((ihl + ah) as u16);
            // MF flag or a non-zero fragment offset.
            meta.fragment = frag & 0x3fff != 0;
            meta.dst_multicast = d[0] & 0xf0 == 0xe0;
            meta.in_ah = ours_ah;
            l3 + ihl + ah
        }
        ETH_P_IPV6 => {
            let next: u8 = read(ctx, l3 + 6)?;
            *dst = read(ctx, l3 + 24)?;
            if next != IPPROTO_VRRP {
                return Some(no_accept(ctx, FAMILY_IPV6, next, l3 + IPV6_HLEN));
            }
            meta.family = FAMILY_IPV6;
            meta.ttl = read(ctx, l3 + 7)?;
            meta.vrrp_len = be16(ctx, l3 + 4)?;
            meta.fragment = false;
            meta.src = read(ctx, l3 + 8)?;
            meta.dst_multicast = dst[0] == 0xff;
            meta.in_ah = false;
            l3 + IPV6_HLEN
        }
        _ => return Some(XDP_PASS),
    };
    // The verifier's return-value check wants a known XDP action here.
    if vrrp_advert(ctx.ctx, l4) == XDP_DROP { Some(XDP_DROP) } else { Some(XDP_PASS) }
}

/// The deepest start of a VRRP message the parse produces: Ethernet, a
/// VLAN tag, IPv4 with 40 bytes of options and an AH header (102).
const MAX_L4: usize = 128;

/// One protocol-112 packet whose IP header the parse read into the
/// scratch record (`meta`, `dst`), the VRRP message at `l4`: checks it
/// (`check`), counts the verdict, and returns the XDP action.
///
/// A global BPF function (exported in the eBPF build, so its BTF linkage
/// is global): the kernel's verifier checks it once, on its own, with
/// `l4` and the scratch record unknown, instead of once more for every
/// path into it through the header parse (VLAN tag or none, IPv4 with or
/// without options or AH, IPv6), as it did when inlined: 28k instructions
/// processed at each start, 37-61 ms, before (bench-results/startup.md).
/// Hence its arguments: the context and a scalar only; `l4` is 64 bits
/// wide so that the bound checked is the register used (a 32-bit
/// argument is widened into another register, which the check misses).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vrrp_advert(ctx: *mut xdp_md, l4: usize) -> u32 {
    advert(&XdpContext::new(ctx), l4).unwrap_or(XDP_PASS)
}

#[inline(always)]
fn advert(ctx: &XdpContext, l4: usize) -> Option<u32> {
    let tmp = VRRP_TMP.get_ptr_mut(0)?;
    // Packet offsets must be bounded for the verifier; the parse's are.
    if l4 > MAX_L4 {
        return None;
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    // One clock read per packet, for the peer's last-seen time, the
    // master-down watch and the alive check.
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    // The outcome as one number, decoded by `vrrp_verdict`.
    let outcome = match check(ctx, tmp, ifindex, l4, now) {
        Ok(pass_up) => (Verdict::Accepted as u64) | if pass_up { PASS_UP } else { 0 },
        Err(v) => v as u64,
    };
    Some(vrrp_verdict(ifindex as u64, outcome, now))
}

/// `vrrp_verdict`'s outcome bit for an accepted advert passed up.
const PASS_UP: u64 = 1 << 32;

/// Count the verdict of `outcome` (a `Verdict`, and `PASS_UP` for an
/// accepted advert to pass up) on `ifindex` and return the XDP action:
/// XDP_PASS for what passes and whenever the agent is gone: fail open
/// (vrrp-common `ALIVE_MAP`): the checks still ran and recorded peers,
/// for an agent that comes back; the packet goes to whatever listens in
/// the stack.
///
/// A global BPF function: every verdict `check` returns is a constant the
/// verifier would otherwise carry through this tail, once per verdict.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vrrp_verdict(ifindex: u64, outcome: u64, now: u64) -> u32 {
    let verdict = outcome as u32;
    let passes = match Verdict::from_u32(verdict) {
        Some(Verdict::Accepted) => outcome & PASS_UP != 0,
        Some(v) => v.passes(),
        None => true,
    };
    let key = CounterKey { ifindex: ifindex as u32, verdict };
    match VRRP_COUNTERS.get_ptr_mut(&key) {
        // SAFETY: per-CPU slot of this CPU, valid while the program runs.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = VRRP_COUNTERS.insert(&key, &1, 0);
        }
    }
    if VRRP_ALIVE.get(0).is_none_or(|until| now > *until) || passes { XDP_PASS } else { XDP_DROP }
}

/// Accept Mode (vrrp-common `accept`): a packet to a VIP of a non-accept
/// master is dropped, bar IPv6 neighbour discovery, and counted per
/// interface and reason. Everything else, and everything once the agent
/// is gone (fail open, as for adverts), passes. The destination is in
/// the scratch record.
#[inline(always)]
fn no_accept(ctx: &XdpContext, family: u8, proto: u8, l4: usize) -> u32 {
    // The common case, no non-accept master here, costs an array read.
    if VRRP_NOACCEPT_ROWS.get(0).is_none_or(|n| *n == 0) {
        return XDP_PASS;
    }
    if vrrp_no_accept(ctx.ctx, family as u64, proto as u64, l4) == XDP_DROP { XDP_DROP } else { XDP_PASS }
}

/// The rest of `no_accept`: a global BPF function (see `vrrp_advert`),
/// verified once rather than once per path of the header parse.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vrrp_no_accept(ctx: *mut xdp_md, family: u64, proto: u64, l4: usize) -> u32 {
    let ctx = XdpContext::new(ctx);
    let Some(tmp) = VRRP_TMP.get_ptr(0) else {
        return XDP_PASS;
    };
    if l4 > MAX_L4 {
        return XDP_PASS;
    }
    let (family, proto) = (family as u8, proto as u8);
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: this CPU's scratch value, where the parse put the address.
    let key = accept::vip_key(ifindex, family, unsafe { &(*tmp).dst });
    if VRRP_NOACCEPT.get_ptr(&key).is_none() {
        return XDP_PASS;
    }
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    if VRRP_ALIVE.get(0).is_none_or(|until| now > *until) {
        return XDP_PASS;
    }
    // The helper rather than a direct read: the compiler turns the bounds
    // check of a 1-byte read at a variable offset into `p >= end`, from
    // which the verifier learns no range.
    let mut b = 0u8;
    // SAFETY: one byte into `b`.
    let first = unsafe { bpf_xdp_load_bytes(ctx.ctx, l4 as u32, (&raw mut b).cast(), 1) } == 0;
    let v = accept::verdict(family, proto, first.then_some(b));
    let ckey = NoAcceptCounterKey { ifindex, reason: v as u32 };
    match VRRP_NOACCEPT_COUNTERS.get_ptr_mut(&ckey) {
        // SAFETY: per-CPU slot of this CPU, valid while the program runs.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = VRRP_NOACCEPT_COUNTERS.insert(&ckey, &1, 0);
        }
    }
    if v.drops() { XDP_DROP } else { XDP_PASS }
}

/// All checks on one protocol-112 packet, in the shared order; records an
/// accepted advert. Ok(true) asks to pass it up the stack.
#[inline(always)]
fn check(
    ctx: &XdpContext,
    scratch: *mut Scratch,
    ifindex: u32,
    l4: usize,
    now: u64,
) -> Result<bool, Verdict> {
    // SAFETY: this CPU's scratch value, valid for the program run; the
    // parse wrote `meta` and `dst`, the event is a separate field.
    let (tmp, meta, dst) = unsafe { (&raw mut (*scratch).ev, &(*scratch).meta, &(*scratch).dst) };
    // A frame cut short still names its VRID if it has 2 bytes: the rest
    // reads as zeros, as rx::admit pads a short message, and the checks
    // for our VRIDs find it too short by its IP length or its reads.
    let hdr: [u8; HEADER_LEN] = match read(ctx, l4) {
        Some(h) => h,
        None => {
            let b: [u8; 2] = read(ctx, l4).ok_or(Verdict::TooShort)?;
            [b[0], b[1], 0, 0, 0, 0, 0, 0]
        }
    };
    // Whose packet is it first: one for a VRID no instance serves here
    // belongs to another VRRP speaker on the interface and is passed up
    // untouched, however malformed (classify::attribute). The lookup is
    // the price of knowing; every other check is for our instances only.
    let vrid = classify::attribute(&hdr, meta)?;
    let ikey = InstanceKey { ifindex, family: meta.family, vrid, _pad: [0; 2] };
    // SAFETY: map value pointers stay valid while the program runs; read
    // in place rather than copied (the stack is full).
    let cfg: &InstanceConfig =
        VRRP_INSTANCES.get_ptr(&ikey).map(|p| unsafe { &*p }).ok_or(Verdict::UnknownVrid)?;
    let adv = classify::check_header(&hdr, meta)?;
    let facts = Facts {
        src_is_own: has_addr(tmp, ifindex, meta.family, 0, &meta.src, ADDR_OWN),
        dst_is_own: !meta.dst_multicast && has_addr(tmp, ifindex, meta.family, 0, dst, ADDR_OWN),
        dst_multicast: meta.dst_multicast,
        // Only unicast instances have peers to look up.
        peer_allowed: cfg.flags & INST_UNICAST != 0
            && has_addr(tmp, ifindex, meta.family, adv.vrid, &meta.src, ADDR_PEER),
        in_ah: meta.in_ah,
    };
    let auth: [u8; 8] = if adv.version == 2 {
        // v2 is IPv4 only: 4-byte addresses, the auth data after them.
        read(ctx, l4 + HEADER_LEN + (adv.count as usize) * 4).ok_or(Verdict::TooShort)?
    } else {
        [0; 8]
    };
    classify::check_instance(&adv, cfg, &facts, &auth)?;

    let len = meta.vrrp_len as usize;
    let sum = vrrp_message_sum(ctx.ctx, l4, len);
    let sum = u32::try_from(sum).map_err(|_| Verdict::TooShort)?;
    let version = if adv.version == 2 { Version::V2 } else { Version::V3 };
    let family = if meta.family == FAMILY_IPV4 { Family::V4 } else { Family::V6 };
    let form = checksum_form(version, family, &meta.src, dst, len, sum).ok_or(Verdict::BadChecksum)?;
    if let Some(c) = VRRP_CSUM_FORMS.get_ptr_mut(form as u32) {
        // SAFETY: this CPU's slot.
        unsafe { *c += 1 };
    }
    // check_instance lets an AH packet through only for an AH instance:
    // the agent authenticates it; nothing is recorded before that.
    if meta.in_ah {
        return Err(Verdict::AhToAgent);
    }

    set_key(tmp, ifindex, meta.family, adv.vrid, &meta.src);
    record_peer(tmp, &adv, now);
    if let Some(ns) = classify::watch_ns(&adv, cfg) {
        arm_watch(&ikey, ns, now);
    }
    Ok(cfg.flags & INST_PASS_UP != 0)
}

/// Write the lookup key into the scratch record.
#[inline(always)]
fn set_key(tmp: *mut PeerEvent, ifindex: u32, family: u8, vrid: u8, addr: &[u8; 16]) {
    // SAFETY: `tmp` is this CPU's scratch value, valid for the program run.
    unsafe {
        (*tmp).key.ifindex = ifindex;
        (*tmp).key.family = family;
        (*tmp).key.vrid = vrid;
        (*tmp).key._pad = [0; 2];
        (*tmp).key.addr = *addr;
    }
}

#[inline(always)]
fn has_addr(tmp: *mut PeerEvent, ifindex: u32, family: u8, vrid: u8, addr: &[u8; 16], flag: u32) -> bool {
    set_key(tmp, ifindex, family, vrid, addr);
    // SAFETY: the key lives in the scratch value; a plain read of the result.
    unsafe { VRRP_ADDRS.get_ptr(&(*tmp).key).is_some_and(|p| (*p).flags & flag != 0) }
}

/// One's-complement sum of the `len`-byte message at `l4`, folded to 16
/// bits in network byte order; None if the frame is shorter than the IP
/// header says. The message is copied in 512-byte chunks into a per-CPU
/// scratch buffer and summed by `bpf_csum_diff`: no per-word loop for the
/// verifier to walk. A valid message's length is a multiple of 4, which
/// `bpf_csum_diff` requires (`check_fixed` has checked the length).
///
/// A global BPF function, as `vrrp_advert` is and for the same reason:
/// its loop (up to 8 chunks) is verified once, not once for every state
/// `check` reaches it in. Returns the sum, or -1.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vrrp_message_sum(ctx: *mut xdp_md, l4: usize, len: usize) -> i64 {
    message_sum(&XdpContext::new(ctx), l4, len).map_or(-1, i64::from)
}

#[inline(always)]
fn message_sum(ctx: &XdpContext, l4: usize, len: usize) -> Option<u32> {
    if len > MAX_MSG || len % 4 != 0 {
        return None;
    }
    // Bounded for the verifier (the caller's check is in another function).
    if l4 > MAX_L4 {
        return None;
    }
    if len <= DIRECT_MSG {
        let sum = vrrp_direct_sum(ctx.ctx, l4, len);
        if sum >= 0 {
            return Some(sum as u32);
        }
    }
    let buf = VRRP_SCRATCH.get_ptr_mut(0)?;
    let mut csum: u32 = 0;
    let mut off: usize = 0;
    let mut chunk = 0;
    while chunk < MAX_MSG / SCRATCH {
        if off >= len {
            break;
        }
        let n = if len - off > SCRATCH { SCRATCH } else { len - off };
        // Spelled so the verifier sees 1..=SCRATCH (the helpers refuse a
        // size that might be zero); n is already in that range.
        let n = ((n - 1) & (SCRATCH - 1)) + 1;
        // SAFETY: `buf` is this CPU's SCRATCH-byte map value; n <= SCRATCH.
        let r = unsafe { bpf_xdp_load_bytes(ctx.ctx, (l4 + off) as u32, buf.cast(), n as u32) };
        if r != 0 {
            return None;
        }
        // SAFETY: as above; a null `from` with size 0 sums `to` only.
        let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.cast(), n as u32, csum) };
        if r < 0 {
            return None;
        }
        csum = r as u32;
        off += n;
        chunk += 1;
    }
    Some(fold_le(csum))
}

/// Fold a one's-complement sum of little-endian 32-bit words to 16 bits
/// in network byte order.
#[inline(always)]
fn fold_le(csum: u32) -> u32 {
    let mut s = (csum & 0xffff) + (csum >> 16);
    s = (s & 0xffff) + (s >> 16);
    // bpf_csum_diff sums little-endian words on this (bpfel) target; the
    // one's-complement sum of byte-swapped words is the byte-swapped sum.
    ((s & 0xffff) as u16).swap_bytes() as u32
}

/// Messages up to this long (a v3 advert with 14 IPv4 or 3 IPv6
/// addresses, a v2 one with 12 and its auth data) are summed straight
/// from the frame by `direct_sum`.
const DIRECT_MSG: usize = 64;

/// `message_sum` of a short message read in place, 4 bytes at a time:
/// every advert of a usual configuration. Without the copy into the
/// per-CPU scratch buffer (`bpf_xdp_load_bytes`) and the `bpf_csum_diff`
/// call, two helper calls and a map less per advert: a median 70 ns of a
/// warm accepted advert's 500-650, nothing measurable at 1,000 instances,
/// where misses on the instance's map entries dominate
/// (bench-results/xdp-cost.md). The same sum:
/// 32-bit little-endian words added with their carries kept in a u64,
/// folded as `bpf_csum_diff`'s are. None when the message is not all in
/// the frame's linear part (a multi-buffer frame): the caller copies it.
///
/// A global BPF function, verified once on its own: inlined, each of its
/// 16 exits into the copying loop had the verifier walk that loop anew
/// (12,488 instructions processed at load instead of 5,962).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn vrrp_direct_sum(ctx: *mut xdp_md, l4: usize, len: usize) -> i64 {
    direct_sum(&XdpContext::new(ctx), l4, len).map_or(-1, i64::from)
}

#[inline(always)]
fn direct_sum(ctx: &XdpContext, l4: usize, len: usize) -> Option<u32> {
    if l4 > MAX_L4 {
        return None;
    }
    let mut sum: u64 = 0;
    let mut off = 0;
    while off < DIRECT_MSG {
        if off >= len {
            break;
        }
        let w: [u8; 4] = read(ctx, l4 + off)?;
        sum += u32::from_le_bytes(w) as u64;
        off += 4;
    }
    // At most 16 words: the sum fits in 36 bits; one fold to 33, a second
    // to 32.
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    Some(fold_le(s as u32))
}

/// Note the advert in the peer map: in place for a known peer (the cheap
/// path every steady-state advert takes), an insert only for a new one.
/// Emits an event only when something the state machine reacts to changed.
#[inline(always)]
fn record_peer(tmp: *mut PeerEvent, adv: &classify::Advert, now: u64) {
    // SAFETY: `tmp` is this CPU's scratch value holding the peer's key;
    // map value pointers are valid and aligned while the program runs.
    // Concurrent writers on other CPUs race only on equal-or-newer data and
    // at worst lose a count: one peer's adverts arrive on one RX queue.
    unsafe {
        let key = &(*tmp).key;
        let kind = if let Some(p) = VRRP_PEERS.get_ptr_mut(key) {
            (*tmp).old_priority = (*p).priority;
            // Through a copy on the stack: a copy from one map value to
            // the other is a memmove (they might overlap, as far as the
            // compiler knows), a byte loop the verifier walks byte by byte.
            let mut st = *p;
            let kind = st.observe(adv, now);
            *p = st;
            // The event's copy only for an event (most adverts raise none).
            if kind != 0 {
                (*tmp).state = st;
            }
            kind
        } else {
            (*tmp).old_priority = 0;
            (*tmp).state = PeerState::first(adv, now);
            // A full map only loses this record; the next advert tries again.
            let _ = VRRP_PEERS.insert(key, &(*tmp).state, 0);
            PeerState::first_kind(adv)
        };
        if kind != 0 {
            (*tmp).kind = kind;
            (*tmp)._pad = [0; 3];
            // A full ring loses the event; the agent also reads the peer map.
            // Events are rare and the agent waits on them: always wake it
            // (the default adaptive wake-up can leave a record unannounced).
            let _ = VRRP_EVENTS.output(&*tmp, BPF_RB_FORCE_WAKEUP);
        }
    }
}

/// Note a holding advert in the instance's watch and start its timer if
/// it is idle (`ns` = Master_Down_Interval); creates and initialises the
/// watch on first use. A pending timer is not touched: `on_silence`
/// re-arms it from `last_hold_ns`. Failures leave the agent's own timer,
/// which it keeps as a backstop, to do the job.
#[inline(always)]
fn arm_watch(ikey: &InstanceKey, ns: u64, now: u64) {
    let w = match VRRP_WATCH.get_ptr_mut(ikey) {
        Some(w) => w,
        None => {
            // SAFETY: all-zero is the initial state the kernel expects of
            // a bpf_timer, and idle for the rest.
            let zero: Watch = unsafe { core::mem::zeroed() };
            // BPF_NOEXIST: another CPU may have created it meanwhile.
            let _ = VRRP_WATCH.insert(ikey, &zero, 1);
            match VRRP_WATCH.get_ptr_mut(ikey) {
                Some(w) => w,
                None => return,
            }
        }
    };
    let map = core::ptr::from_ref(&VRRP_WATCH).cast_mut().cast();
    // SAFETY: `w` points into VRRP_WATCH's value, valid while the program
    // runs; the helpers take the timer inside that value and the map.
    unsafe {
        (*w).last_hold_ns = now;
        (*w).mdi_ns = ns;
        if (*w).running != 0 {
            return;
        }
        let timer = &raw mut (*w).timer;
        if (*w).ready == 0 {
            // -EBUSY if another CPU initialised it first: fine either way.
            let _ = bpf_timer_init(timer, map, CLOCK_MONOTONIC);
            if bpf_timer_set_callback(timer, on_silence as *mut core::ffi::c_void) != 0 {
                return;
            }
            (*w).ready = 1;
        }
        // The warning comes a little before Master_Down_Interval ends
        // (`classify::watch_lead_ns`): the agent waits for the end itself.
        if bpf_timer_start(timer, classify::watch_wait_ns(ns), 0) == 0 {
            (*w).running = 1;
        }
    }
}

/// The watch's timer fired: wait on if a holding advert came meanwhile,
/// else warn the agent (`EVENT_SILENT`), its lead before
/// Master_Down_Interval ends (`classify::watch_lead_ns`); its own checks
/// (the peer table, its state machine) decide what the silence means, at
/// the interval's end.
extern "C" fn on_silence(_map: *mut core::ffi::c_void, key: *mut InstanceKey, w: *mut Watch) -> i32 {
    // SAFETY: the kernel passes the element whose timer fired.
    unsafe {
        let now = bpf_ktime_get_ns();
        if let Some(rest) = classify::watch_remaining(now, (*w).last_hold_ns, (*w).mdi_ns)
            && bpf_timer_start(&raw mut (*w).timer, rest, 0) == 0
        {
            return 0;
        }
        (*w).running = 0;
        // The watch's times go along: the agent reports how long the
        // kernel's part of a takeover took (timer slack, its own wake-up).
        let ev = PeerEvent::silent(&*key, (*w).last_hold_ns, now);
        let _ = VRRP_EVENTS.output(&ev, BPF_RB_FORCE_WAKEUP);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
