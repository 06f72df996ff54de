//! The checks a receiver applies to an IP protocol-112 packet before it
//! looks at any instance state: what the XDP program runs per packet and
//! what the agent's userspace receive path runs too.
//!
//! Works on the 8-byte fixed header (copied out of the frame by the caller)
//! plus facts from the IP header, so the kernel needs no variable-length
//! access here and the host unit tests see exactly the kernel's logic.

use crate::Verdict;
use crate::maps::{FAMILY_IPV4, FAMILY_IPV6, INST_UNICAST, InstanceConfig};
use crate::units::Centis;
use crate::wire::vrrp::check_fixed;
use crate::wire::{Family, Packet, Version};

pub use crate::wire::vrrp::HEADER_LEN;

/// What the IP layer says about the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpMeta {
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Length of the VRRP message according to the IP header (IPv4 total
    /// length minus header; IPv6 payload length).
    pub vrrp_len: u16,
    /// Whether the IPv4 packet is a fragment (MF set or offset non-zero).
    pub fragment: bool,
    /// Source address; for IPv4 the first four bytes.
    pub src: [u8; 16],
    /// Whether the destination is a multicast address (the VRRP group).
    pub dst_multicast: bool,
    /// The message came under an IP Authentication Header (IPv4 protocol
    /// 51, next header 112); `vrrp_len` is then what follows the AH.
    pub in_ah: bool,
}

/// The header fields of an advert that passed the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// 2 or 3.
    pub version: u8,
    /// 1-255.
    pub vrid: u8,
    /// 0 (resigning) to 255 (address owner).
    pub priority: u8,
    /// Count of addresses.
    pub count: u8,
    /// Interval in centiseconds: v3 Max Adver Int, v2 Adver Int x 100.
    pub interval_cs: u16,
    /// v2 authentication type; 0 for v3.
    pub auth_type: u8,
}

/// The first step for every protocol-112 packet: whose is it? The VRID
/// whose instance (on this interface and family) judges the packet, or
/// `Carp` for a CARP packet, which is nobody's here.
///
/// Nothing else is checked: a packet, valid or not, for a VRID that no
/// instance serves belongs to whoever else speaks VRRP on the interface
/// (keepalived or FRR for other VRIDs, during a migration) and goes up the
/// stack untouched (`Verdict::UnknownVrid`, which `passes`). So the caller
/// looks the VRID up before any other check, and `check_header` runs only
/// for a VRID we serve. `hdr` is the first 8 bytes of the message as the
/// frame holds them (zero-padded by a caller whose message is shorter).
pub fn attribute(hdr: &[u8; HEADER_LEN], ip: &IpMeta) -> Result<u8, Verdict> {
    // CARP shares protocol 112 and its vhid sits where the VRID does: it is
    // told apart by its shape first, whatever its vhid.
    if ip.family == FAMILY_IPV4 {
        let p = Packet::new_unchecked(&hdr[..]);
        if let Err(Verdict::Carp) = check_fixed(&p, Family::V4, ip.vrrp_len as usize) {
            return Err(Verdict::Carp);
        }
    }
    // No VRID at all, or VRID 0 (RFC 5798 5.2.3): no VRRP speaker can
    // accept it, so it is nobody else's either, and dropping it is safe.
    if ip.vrrp_len < 2 {
        return Err(Verdict::TooShort);
    }
    if hdr[1] == 0 {
        return Err(Verdict::BadVrid);
    }
    Ok(hdr[1])
}

/// Check the fixed header of one protocol-112 packet for a VRID we serve
/// (see `attribute`, which runs first).
///
/// `hdr` is the first 8 bytes of the message; the caller has already
/// checked that the frame holds them, and returns `TooShort` itself when it
/// does not.
pub fn check_header(hdr: &[u8; HEADER_LEN], ip: &IpMeta) -> Result<Advert, Verdict> {
    if ip.fragment {
        return Err(Verdict::Fragment);
    }
    let family = match ip.family {
        FAMILY_IPV4 => Family::V4,
        FAMILY_IPV6 => Family::V6,
        _ => return Err(Verdict::BadVersion),
    };
    let p = Packet::new_unchecked(&hdr[..]);
    let len = ip.vrrp_len as usize;
    if len < HEADER_LEN {
        return Err(Verdict::TooShort);
    }
    // CARP is judged before the TTL: it is not ours to judge at all.
    if let Err(Verdict::Carp) = check_fixed(&p, family, len) {
        return Err(Verdict::Carp);
    }
    // RFC 5798 5.1.1.3 / 5.1.2.3: the sender sets 255; a router that
    // forwarded it would have decremented it (RFC 5798 7.1).
    if crate::rx::ttl_applies(ip.dst_multicast) && ip.ttl != 255 {
        return Err(Verdict::BadTtl);
    }
    let version = check_fixed(&p, family, len)?;
    // RFC 5798 5.1.2.1: IPv6 adverts come from the link-local address.
    if family == Family::V6 && !(ip.src[0] == 0xfe && ip.src[1] & 0xc0 == 0x80) {
        return Err(Verdict::NotLinkLocal);
    }
    let (interval_cs, auth_type) = match version {
        Version::V2 => (Centis::from_secs(p.adver_int()).0, p.auth_type()),
        Version::V3 => (p.max_adver_int().0, 0),
    };
    Ok(Advert {
        version: version as u8,
        vrid: p.vrid(),
        priority: p.priority(),
        count: p.count(),
        interval_cs,
        auth_type,
    })
}

/// Facts about the envelope that need map lookups, gathered by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The source is one of our own addresses on the interface.
    pub src_is_own: bool,
    /// The destination is one of our own addresses on the interface.
    pub dst_is_own: bool,
    /// The destination is a multicast address (the VRRP group).
    pub dst_multicast: bool,
    /// The source is an allowed unicast peer of the instance.
    pub peer_allowed: bool,
    /// The message came under an IP Authentication Header (protocol 51).
    pub in_ah: bool,
}

/// The checks against the instance configured for the advert's VRID, in
/// the order both receive paths apply them (cheap before expensive; the
/// checksum comes after these).
pub fn check_instance(
    adv: &Advert,
    cfg: &InstanceConfig,
    facts: &Facts,
    auth_data: &[u8; 8],
) -> Result<(), Verdict> {
    // Looped back to us (some switches and bonds reflect multicast).
    if facts.src_is_own {
        return Err(Verdict::OwnAdvert);
    }
    // RFC 5798 5.1.1.2: to the group; keepalived's unicast mode sends to
    // our own address.
    if !facts.dst_multicast && !facts.dst_is_own {
        return Err(Verdict::BadDestination);
    }
    if cfg.flags & INST_UNICAST != 0 && !facts.peer_allowed {
        return Err(Verdict::NotAPeer);
    }
    // keepalived (vrrp_check_packet): an AH header where the instance
    // expects none, or none where it expects one, is an auth type
    // mismatch, whatever the message says.
    if facts.in_ah != (cfg.auth_type == crate::wire::vrrp::AUTH_AH) {
        return Err(Verdict::AuthTypeMismatch);
    }
    if adv.version != cfg.version {
        return Err(Verdict::BadVersion);
    }
    if adv.version == 2 {
        // RFC 3768 7.1: the authentication type must match ours ...
        if adv.auth_type != cfg.auth_type {
            return Err(Verdict::AuthTypeMismatch);
        }
        // ... and so must a simple password (RFC 2338 5.3.6.1).
        if adv.auth_type == crate::wire::vrrp::AUTH_SIMPLE && *auth_data != cfg.password {
            return Err(Verdict::AuthFailure);
        }
        // RFC 3768 7.1: discard if the Adver Interval differs from ours.
        if adv.interval_cs != cfg.interval_cs {
            return Err(Verdict::IntervalMismatch);
        }
    }
    Ok(())
}

/// The kernel's master-down watch: for an accepted advert, how long to
/// (re-)arm the instance's timer, in ns, or None to leave it alone.
///
/// Mirrors the backup's rule (RFC 5798 6.4.2): an advert with a priority
/// at least the instance's `watch_priority` (its own priority when it
/// preempts, 1 when it does not) resets the Master_Down_Timer to
/// Master_Down_Interval, from the advert's interval and our priority.
/// Priority 0 is left to the agent (an `EVENT_RESIGN`, Skew_Time), and so
/// is a lower-priority advert a preempting backup discards: the timer then
/// runs out as the RFC's would.
pub fn watch_ns(adv: &Advert, cfg: &InstanceConfig) -> Option<u64> {
    if cfg.watch_priority == 0 || adv.priority == 0 || adv.priority < cfg.watch_priority {
        return None;
    }
    let mdi = Centis(adv.interval_cs).master_down_micros(adv.version == 3, cfg.priority);
    Some(mdi * 1000)
}

/// How long before Master_Down_Interval runs out the watch reports the
/// silence: at most 2 ms, and at most a sixteenth of the interval.
///
/// The report is an early warning, not the decision. On this kind of
/// machine a timer that expires on an idle CPU, and the agent it wakes,
/// each run a few hundred µs late (a vCPU waking from idle); measured
/// from the master's last advert that lateness was most of a takeover's
/// excess over Master_Down_Interval. Warned this much earlier, the agent
/// is awake before the deadline and waits for it on the CPU; it still
/// takes over only once the interval has fully passed without an advert
/// (RFC 5798 6.4.2), reading the peer table again at the deadline.
pub const WATCH_LEAD_MAX_NS: u64 = 2_000_000;

/// The watch's lead for a Master_Down_Interval of `mdi_ns`
/// (`WATCH_LEAD_MAX_NS`).
pub const fn watch_lead_ns(mdi_ns: u64) -> u64 {
    let sixteenth = mdi_ns / 16;
    if sixteenth < WATCH_LEAD_MAX_NS { sixteenth } else { WATCH_LEAD_MAX_NS }
}

/// How long the watch's timer runs when armed by a holding advert:
/// Master_Down_Interval less its lead (`watch_lead_ns`).
pub const fn watch_wait_ns(mdi_ns: u64) -> u64 {
    mdi_ns - watch_lead_ns(mdi_ns)
}

/// When the watch's timer fires at `now_ns`: how much longer to wait, if
/// a holding advert arrived since it was armed (the master is alive), or
/// None when the warning is due: Master_Down_Interval less its lead has
/// passed since the last one (`watch_lead_ns`).
///
/// The XDP program records each holding advert (`last_hold_ns`, `mdi_ns`)
/// with two stores and arms the timer only when it is idle, so a steady
/// master costs one timer expiry per Master_Down_Interval, not a timer
/// re-arm per advert.
pub const fn watch_remaining(now_ns: u64, last_hold_ns: u64, mdi_ns: u64) -> Option<u64> {
    let deadline = last_hold_ns.saturating_add(watch_wait_ns(mdi_ns));
    if now_ns < deadline { Some(deadline - now_ns) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ttl: u8, len: u16) -> IpMeta {
        let mut src = [0; 16];
        src[..4].copy_from_slice(&[192, 0, 2, 1]);
        IpMeta {
            family: FAMILY_IPV4,
            ttl,
            vrrp_len: len,
            fragment: false,
            src,
            dst_multicast: true,
            in_ah: false,
        }
    }

    fn v6(src0: u8, len: u16) -> IpMeta {
        let mut src = [0; 16];
        src[0] = src0;
        src[1] = 0x80;
        IpMeta {
            family: FAMILY_IPV6,
            ttl: 255,
            vrrp_len: len,
            fragment: false,
            src,
            dst_multicast: true,
            in_ah: false,
        }
    }

    #[test]
    fn v2_advert_with_one_address() {
        // v2, type 1, VRID 51, prio 150, 1 address, PASS auth, 1 s.
        let hdr = [0x21, 51, 150, 1, 1, 1, 0xab, 0xcd];
        let a = check_header(&hdr, &v4(255, 20)).expect("valid");
        assert_eq!(
            a,
            Advert { version: 2, vrid: 51, priority: 150, count: 1, interval_cs: 100, auth_type: 1 }
        );
    }

    #[test]
    fn v3_interval_is_12_bits() {
        // Reserved nibble set: it must be ignored, 0xf00a -> 10 cs.
        let hdr = [0x31, 7, 100, 2, 0xf0, 0x0a, 0, 0];
        let a = check_header(&hdr, &v4(255, 16)).expect("valid");
        assert_eq!(a.interval_cs, 10);
        assert_eq!(a.version, 3);
    }

    #[test]
    fn rejections() {
        let good = [0x21, 51, 150, 1, 1, 1, 0, 0];
        assert_eq!(check_header(&good, &v4(64, 20)), Err(Verdict::BadTtl));
        assert_eq!(check_header(&good, &v4(255, 24)), Err(Verdict::LengthMismatch));
        assert_eq!(check_header(&good, &v4(255, 7)), Err(Verdict::TooShort));
        let mut frag = v4(255, 20);
        frag.fragment = true;
        assert_eq!(check_header(&good, &frag), Err(Verdict::Fragment));
        let bad_type = [0x22, 51, 150, 1, 1, 1, 0, 0];
        assert_eq!(check_header(&bad_type, &v4(255, 20)), Err(Verdict::BadType));
        let bad_version = [0x41, 51, 150, 1, 1, 1, 0, 0];
        assert_eq!(check_header(&bad_version, &v4(255, 20)), Err(Verdict::BadVersion));
        let vrid0 = [0x21, 0, 150, 1, 1, 1, 0, 0];
        assert_eq!(check_header(&vrid0, &v4(255, 20)), Err(Verdict::BadVrid));
        // v2 over IPv6 does not exist.
        assert_eq!(check_header(&good, &v6(0xfe, 28)), Err(Verdict::BadVersion));
    }

    #[test]
    fn v3_ipv6_needs_link_local_source() {
        let hdr = [0x31, 9, 100, 1, 0, 100, 0, 0];
        assert!(check_header(&hdr, &v6(0xfe, 24)).is_ok());
        assert_eq!(check_header(&hdr, &v6(0x20, 24)), Err(Verdict::NotLinkLocal));
    }

    #[test]
    fn carp_is_told_apart() {
        // CARP: version 2, type 1, vhid 1, advskew 0, authlen 7, 36 bytes.
        let carp = [0x21, 1, 0, 7, 0, 1, 0, 0];
        assert_eq!(check_header(&carp, &v4(255, 36)), Err(Verdict::Carp));
        // A VRRPv2 advert with 5 addresses is also 36 bytes: still VRRP.
        let vrrp5 = [0x21, 1, 100, 5, 0, 1, 0, 0];
        assert!(check_header(&vrrp5, &v4(255, 36)).is_ok());
        // So is a VRRPv3 advert with 7 IPv4 addresses (found by proptest).
        let v3_7 = [0x31, 1, 100, 7, 0, 100, 0, 0];
        assert!(check_header(&v3_7, &v4(255, 36)).is_ok());
    }

    #[test]
    fn attribute_reads_only_the_vrid_and_the_carp_shape() {
        // Broken in every way check_header looks at, yet attributed to its
        // VRID: whether it is ours is decided before anything else.
        let broken = [0x52, 77, 150, 9, 9, 9, 0, 0];
        assert_eq!(attribute(&broken, &v4(1, 13)), Ok(77));
        let mut frag = v4(255, 20);
        frag.fragment = true;
        assert_eq!(attribute(&broken, &frag), Ok(77));
        assert_eq!(attribute(&broken, &v6(0x20, 3)), Ok(77));
        // CARP is nobody's here, whatever its vhid.
        let carp = [0x21, 5, 0, 7, 0, 1, 0, 0];
        assert_eq!(attribute(&carp, &v4(255, 36)), Err(Verdict::Carp));
        // Without a VRID, or with VRID 0, it is no VRRP speaker's.
        assert_eq!(attribute(&broken, &v4(255, 1)), Err(Verdict::TooShort));
        let vrid0 = [0x31, 0, 100, 1, 0, 100, 0, 0];
        assert_eq!(attribute(&vrid0, &v4(255, 16)), Err(Verdict::BadVrid));
    }

    fn advert(priority: u8, interval_cs: u16, version: u8) -> Advert {
        Advert { version, vrid: 51, priority, count: 1, interval_cs, auth_type: 0 }
    }

    fn watching(watch_priority: u8, priority: u8) -> InstanceConfig {
        InstanceConfig {
            flags: 0,
            version: 3,
            auth_type: 0,
            interval_cs: 100,
            password: [0; 8],
            watch_priority,
            priority,
            _pad: [0; 2],
        }
    }

    #[test]
    fn watch_arms_to_master_down_interval() {
        // v3, 10 ms adverts, backup priority 100: 3 × 10 ms + 156/256 × 10 ms.
        assert_eq!(watch_ns(&advert(150, 1, 3), &watching(100, 100)), Some(36_093_000));
        // v2, 1 s: the skew is in seconds: 3 s + 156/256 s.
        assert_eq!(watch_ns(&advert(150, 100, 2), &watching(100, 100)), Some(3_609_375_000));
        // Equal priority holds a backup down too.
        assert!(watch_ns(&advert(100, 1, 3), &watching(100, 100)).is_some());
    }

    #[test]
    fn watch_leaves_what_the_backup_discards_or_the_agent_handles() {
        // Not a backup: no watch.
        assert_eq!(watch_ns(&advert(150, 1, 3), &watching(0, 100)), None);
        // Lower priority while preempting: discarded, the timer runs out.
        assert_eq!(watch_ns(&advert(99, 1, 3), &watching(100, 100)), None);
        // Resignation: the agent's Skew_Time.
        assert_eq!(watch_ns(&advert(0, 1, 3), &watching(1, 100)), None);
        // nopreempt (watch_priority 1): any live master holds us down.
        assert!(watch_ns(&advert(2, 1, 3), &watching(1, 200)).is_some());
    }

    #[test]
    fn watch_rearms_while_the_master_is_alive() {
        // Master_Down_Interval 36 ms: the warning comes 2 ms before it.
        assert_eq!(watch_wait_ns(36_000_000), 34_000_000);
        // Armed at 0, fires at 34 ms; an advert at 30 ms: warn at 64 ms.
        assert_eq!(watch_remaining(34_000_000, 30_000_000, 36_000_000), Some(30_000_000));
        // No advert since: warn now.
        assert_eq!(watch_remaining(34_000_000, 0, 36_000_000), None);
        // Exactly at the warning's time counts as due.
        assert_eq!(watch_remaining(64_000_000, 30_000_000, 36_000_000), None);
        // Never at or after the deadline itself: 1 ns before it is due too.
        assert_eq!(watch_remaining(65_999_999, 30_000_000, 36_000_000), None);
        // No overflow near the end of time.
        assert_eq!(watch_remaining(u64::MAX - 5, u64::MAX - 10, u64::MAX), Some(5));
    }

    #[test]
    fn the_lead_is_small_beside_the_interval() {
        // v3 at 10 ms (the shortest common interval), priority 100:
        // 36.09 ms; a sixteenth is 2.26 ms, so the 2 ms cap holds.
        assert_eq!(watch_lead_ns(36_093_750), WATCH_LEAD_MAX_NS);
        // A short interval takes a sixteenth (v3's minimum is 10 ms, but
        // a malformed advert's interval must not underflow the wait).
        assert_eq!(watch_lead_ns(16_000_000), 1_000_000);
        assert_eq!(watch_wait_ns(0), 0);
        assert_eq!(watch_wait_ns(15), 15);
        // 1 s adverts: 2 ms of 3.6 s.
        assert_eq!(watch_wait_ns(3_609_375_000), 3_607_375_000);
    }
}
