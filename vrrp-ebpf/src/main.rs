//! The XDP fast path: find IP protocol-112 packets, check them with the
//! rules in `vrrp-common`, drop the invalid ones, record valid adverts in
//! `VRRP_PEERS` and count every verdict per interface in `VRRP_COUNTERS`.
//!
//! Fails open: any frame this program cannot make sense of is passed.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::btf_maps::{HashMap, PerCpuHashMap};
use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use aya_ebpf::macros::{btf_map, xdp};
use aya_ebpf::programs::XdpContext;
use vrrp_common::classify::{self, HEADER_LEN, IpMeta};
use vrrp_common::maps::{
    COUNTERS_MAX_ENTRIES, CounterKey, FAMILY_IPV4, FAMILY_IPV6, PEERS_MAX_ENTRIES, PeerKey, PeerState,
};
use vrrp_common::{IPPROTO_VRRP, Verdict};

#[btf_map]
static VRRP_PEERS: HashMap<PeerKey, PeerState, { PEERS_MAX_ENTRIES as usize }> = HashMap::new();

#[btf_map]
static VRRP_COUNTERS: PerCpuHashMap<CounterKey, u64, { COUNTERS_MAX_ENTRIES as usize }> =
    PerCpuHashMap::new();

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

fn try_vrrp_xdp(ctx: &XdpContext) -> Option<u32> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(ctx, 12)?;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(ctx, 16)?;
        l3 += 4;
    }
    let (l4, meta) = match ethertype {
        ETH_P_IPV4 => {
            let vihl: u8 = read(ctx, l3)?;
            if read::<u8>(ctx, l3 + 9)? != IPPROTO_VRRP {
                return Some(XDP_PASS);
            }
            let ihl = ((vihl & 0x0f) as usize) * 4;
            if ihl < 20 {
                return Some(XDP_PASS);
            }
            let total = be16(ctx, l3 + 2)?;
            let frag = be16(ctx, l3 + 6)?;
            let mut src = [0u8; 16];
            let s: [u8; 4] = read(ctx, l3 + 12)?;
            src[0] = s[0];
            src[1] = s[1];
            src[2] = s[2];
            src[3] = s[3];
            let meta = IpMeta {
                family: FAMILY_IPV4,
                ttl: read(ctx, l3 + 8)?,
                vrrp_len: total.saturating_sub(ihl as u16),
                // MF flag or a non-zero fragment offset.
                fragment: frag & 0x3fff != 0,
                src,
                dst_multicast: read::<u8>(ctx, l3 + 16)? & 0xf0 == 0xe0,
            };
            (l3 + ihl, meta)
        }
        ETH_P_IPV6 => {
            if read::<u8>(ctx, l3 + 6)? != IPPROTO_VRRP {
                return Some(XDP_PASS);
            }
            let meta = IpMeta {
                family: FAMILY_IPV6,
                ttl: read(ctx, l3 + 7)?,
                vrrp_len: be16(ctx, l3 + 4)?,
                fragment: false,
                src: read(ctx, l3 + 8)?,
                dst_multicast: read::<u8>(ctx, l3 + 24)? == 0xff,
            };
            (l3 + IPV6_HLEN, meta)
        }
        _ => return Some(XDP_PASS),
    };
    let ifindex = ctx.ingress_ifindex() as u32;
    let verdict = match read::<[u8; HEADER_LEN]>(ctx, l4) {
        None => Verdict::TooShort,
        Some(hdr) => match classify::check_header(&hdr, &meta) {
            Ok(advert) => {
                let key = if meta.family == FAMILY_IPV4 {
                    PeerKey::v4(ifindex, advert.vrid, [meta.src[0], meta.src[1], meta.src[2], meta.src[3]])
                } else {
                    PeerKey::v6(ifindex, advert.vrid, meta.src)
                };
                record_peer(&key, &advert);
                Verdict::Accepted
            }
            Err(v) => v,
        },
    };
    count(ifindex, verdict);
    Some(if verdict.passes() { XDP_PASS } else { XDP_DROP })
}

/// Note the advert in the peer map: in place for a known peer (the cheap
/// path every steady-state advert takes), an insert only for a new one.
#[inline(always)]
fn record_peer(key: &PeerKey, advert: &classify::Advert) {
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(p) = VRRP_PEERS.get_ptr_mut(key) {
        // SAFETY: the map returned a valid, aligned pointer to the value;
        // concurrent writers on other CPUs only race on equal-or-newer data.
        unsafe {
            (*p).last_seen_ns = now;
            (*p).priority = advert.priority;
            (*p).interval_cs = advert.interval_cs;
            (*p).version = advert.version;
            // Not atomic (the BPF target has no fetch_add in core): one
            // peer's adverts arrive on one RX queue, so races are rare and
            // lose at most a count.
            (*p).adverts += 1;
        }
    } else {
        let v = PeerState {
            last_seen_ns: now,
            adverts: 1,
            interval_cs: advert.interval_cs,
            priority: advert.priority,
            version: advert.version,
            flags: 0,
        };
        // A full map only loses this record; the next advert tries again.
        let _ = VRRP_PEERS.insert(key, &v, 0);
    }
}

#[inline(always)]
fn count(ifindex: u32, verdict: Verdict) {
    let key = CounterKey { ifindex, verdict: verdict as u32 };
    match VRRP_COUNTERS.get_ptr_mut(&key) {
        // SAFETY: per-CPU slot of this CPU, valid while the program runs.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = VRRP_COUNTERS.insert(&key, &1, 0);
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
