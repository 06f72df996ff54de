//! Accept Mode (RFC 5798 6.1, 6.4.3) in the kernel: while an instance
//! that is not the address owner is MASTER in non-accept mode (keepalived's
//! `no_accept`, implied by `vrrp_strict`), packets addressed to its VIPs
//! are dropped, "MUST NOT accept packets addressed to the IPvX address(es)
//! associated with the virtual router if it is not the IPvX address owner".
//!
//! keepalived does this with a firewall (vrrp_nftables.c: `ip daddr @vips
//! drop` in an input hook; for IPv6 `icmpv6 type { nd-neighbor-solicit,
//! nd-neighbor-advert } accept` before it, so the VIP stays resolvable;
//! IPv6 link-local VIPs are matched with their interface). This module is
//! the same rule as pure functions, shared by the XDP program and the
//! agent; the agent keeps `NOACCEPT_MAP` holding exactly the VIPs (and
//! excluded VIPs) of its non-accept masters.
//!
//! Not IP (ARP) never reaches this rule: keepalived's netfilter rules do
//! not see ARP either, so an IPv4 VIP stays resolvable too.

use bytemuck::{Pod, Zeroable};

use crate::maps::{FAMILY_IPV4, FAMILY_IPV6};

/// Name of the map: `VipKey` -> `VipOwner`, a BPF hash map written by the
/// agent: the addresses packets to which are dropped.
pub const NOACCEPT_MAP: &str = "VRRP_NOACCEPT";
/// Name of a one-element array (`u32`): how many rows `NOACCEPT_MAP`
/// holds, kept by the agent. While it is 0 (no non-accept master on the
/// node: the usual case, accept being keepalived's default) the program
/// skips the hash lookup, so other traffic pays an array read only.
pub const NOACCEPT_ROWS_MAP: &str = "VRRP_NOACCEPT_ROWS";
/// Name of the counters: `NoAcceptCounterKey` -> `u64`, a per-CPU hash.
pub const NOACCEPT_COUNTERS_MAP: &str = "VRRP_NOACCEPT_COUNTERS";
/// Capacity of `NOACCEPT_MAP`: VIPs and excluded VIPs of every instance.
pub const NOACCEPT_MAX_ENTRIES: u32 = 4096;
/// Capacity of the counters: interfaces x reasons.
pub const NOACCEPT_COUNTERS_MAX_ENTRIES: u32 = 64 * NoAcceptVerdict::COUNT as u32;

/// IP protocol numbers the verdict tells apart.
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 Neighbor Solicitation and Advertisement (RFC 4861 4.3, 4.4).
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

/// A VIP in `NOACCEPT_MAP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct VipKey {
    /// 0 for an address matched on any interface (keepalived's `vips`
    /// set: `ip daddr`), the interface index for an IPv6 link-local VIP
    /// (its `vips_link_local` set: address and interface). Host byte order.
    pub ifindex: u32,
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    /// Always zero.
    pub _pad: [u8; 3],
    /// The address in network byte order; IPv4 fills the first 4 bytes.
    pub addr: [u8; 16],
}

/// Which instance asked for a `NOACCEPT_MAP` row (for bpftool readers and
/// the agent's bookkeeping; the program only tests presence).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct VipOwner {
    /// The instance's interface (host byte order).
    pub ifindex: u32,
    /// Its VRID.
    pub vrid: u8,
    /// Always zero.
    pub _pad: [u8; 3],
}

/// Index of `NOACCEPT_COUNTERS_MAP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct NoAcceptCounterKey {
    /// Interface the packet arrived on (host byte order).
    pub ifindex: u32,
    /// `NoAcceptVerdict as u32` (host byte order).
    pub reason: u32,
}

/// What happened to a packet addressed to a non-accept master's VIP.
/// Stable numbering: it is the counter key bpftool shows.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoAcceptVerdict {
    /// ICMP (echo and everything else) to the VIP: dropped.
    DropIcmp = 0,
    /// TCP to the VIP: dropped.
    DropTcp = 1,
    /// UDP to the VIP: dropped.
    DropUdp = 2,
    /// Any other protocol (or an IPv6 extension header first): dropped.
    DropOther = 3,
    /// ICMPv6 Neighbor Solicitation / Advertisement to the VIP: passed,
    /// as keepalived's nftables rules do, so the VIP stays resolvable.
    PassNd = 4,
}

impl NoAcceptVerdict {
    /// Number of verdicts.
    pub const COUNT: usize = 5;

    /// Whether the packet is dropped.
    pub const fn drops(self) -> bool {
        !matches!(self, NoAcceptVerdict::PassNd)
    }

    /// From its number (counter keys).
    pub const fn from_u32(n: u32) -> Option<NoAcceptVerdict> {
        Some(match n {
            0 => NoAcceptVerdict::DropIcmp,
            1 => NoAcceptVerdict::DropTcp,
            2 => NoAcceptVerdict::DropUdp,
            3 => NoAcceptVerdict::DropOther,
            4 => NoAcceptVerdict::PassNd,
            _ => return None,
        })
    }

    /// The name `vrrp-agent stats` prints.
    pub const fn name(self) -> &'static str {
        match self {
            NoAcceptVerdict::DropIcmp => "dropped_icmp",
            NoAcceptVerdict::DropTcp => "dropped_tcp",
            NoAcceptVerdict::DropUdp => "dropped_udp",
            NoAcceptVerdict::DropOther => "dropped_other",
            NoAcceptVerdict::PassNd => "passed_nd",
        }
    }
}

/// Whether an IPv6 address is link-local (fe80::/10).
#[inline(always)]
pub const fn is_link_local_v6(addr: &[u8; 16]) -> bool {
    addr[0] == 0xfe && addr[1] & 0xc0 == 0x80
}

/// The `NOACCEPT_MAP` key of destination `addr` (network byte order, IPv4
/// in the first 4 bytes) arriving on `ifindex`, and of a VIP of an
/// instance on `ifindex`: link-local IPv6 is per interface, the rest is
/// not (keepalived's sets).
#[inline(always)]
pub const fn vip_key(ifindex: u32, family: u8, addr: &[u8; 16]) -> VipKey {
    let ifindex = if family == FAMILY_IPV6 && is_link_local_v6(addr) { ifindex } else { 0 };
    VipKey { ifindex, family, _pad: [0; 3], addr: *addr }
}

/// The verdict for a packet whose destination is in `NOACCEPT_MAP`:
/// `proto` is the IPv4 protocol or the IPv6 Next Header of the fixed
/// header (keepalived's nftables rule matches that field too, so ND behind
/// an extension header is dropped), `icmp_type` the first byte after the
/// IP header if the frame has it.
#[inline(always)]
pub const fn verdict(family: u8, proto: u8, icmp_type: Option<u8>) -> NoAcceptVerdict {
    match (family, proto) {
        (FAMILY_IPV6, IPPROTO_ICMPV6) => match icmp_type {
            Some(ND_NEIGHBOR_SOLICIT | ND_NEIGHBOR_ADVERT) => NoAcceptVerdict::PassNd,
            _ => NoAcceptVerdict::DropIcmp,
        },
        (FAMILY_IPV4, IPPROTO_ICMP) => NoAcceptVerdict::DropIcmp,
        (_, IPPROTO_TCP) => NoAcceptVerdict::DropTcp,
        (_, IPPROTO_UDP) => NoAcceptVerdict::DropUdp,
        _ => NoAcceptVerdict::DropOther,
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): repr(C), every bit pattern valid, no padding;
    // bytemuck's derive(Pod) above checks exactly this at compile time.
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipOwner {}
    unsafe impl aya::Pod for super::NoAcceptCounterKey {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_fixed() {
        assert_eq!(size_of::<VipKey>(), 24);
        assert_eq!(size_of::<VipOwner>(), 8);
        assert_eq!(size_of::<NoAcceptCounterKey>(), 8);
    }

    #[test]
    fn neighbour_discovery_passes_and_everything_else_is_dropped() {
        assert_eq!(verdict(FAMILY_IPV6, 58, Some(135)), NoAcceptVerdict::PassNd);
        assert_eq!(verdict(FAMILY_IPV6, 58, Some(136)), NoAcceptVerdict::PassNd);
        // Echo request, router solicitation, a truncated ICMPv6 header.
        assert_eq!(verdict(FAMILY_IPV6, 58, Some(128)), NoAcceptVerdict::DropIcmp);
        assert_eq!(verdict(FAMILY_IPV6, 58, Some(133)), NoAcceptVerdict::DropIcmp);
        assert_eq!(verdict(FAMILY_IPV6, 58, None), NoAcceptVerdict::DropIcmp);
        // ND behind a hop-by-hop header: keepalived's rule reads the fixed
        // header's Next Header, so it is dropped there too.
        assert_eq!(verdict(FAMILY_IPV6, 0, Some(135)), NoAcceptVerdict::DropOther);
        // IPv4: ICMP 135 is nothing special; everything is dropped.
        assert_eq!(verdict(FAMILY_IPV4, 1, Some(135)), NoAcceptVerdict::DropIcmp);
        assert_eq!(verdict(FAMILY_IPV4, 1, Some(8)), NoAcceptVerdict::DropIcmp);
        assert_eq!(verdict(FAMILY_IPV4, 6, None), NoAcceptVerdict::DropTcp);
        assert_eq!(verdict(FAMILY_IPV6, 17, None), NoAcceptVerdict::DropUdp);
        assert_eq!(verdict(FAMILY_IPV4, 47, None), NoAcceptVerdict::DropOther);
        for n in 0..NoAcceptVerdict::COUNT as u32 {
            let v = NoAcceptVerdict::from_u32(n).expect("numbered");
            assert_eq!(v as u32, n);
            assert_eq!(v.drops(), v != NoAcceptVerdict::PassNd);
        }
        assert_eq!(NoAcceptVerdict::from_u32(NoAcceptVerdict::COUNT as u32), None);
    }

    #[test]
    fn only_ipv6_link_local_is_keyed_by_interface() {
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert_eq!(vip_key(7, FAMILY_IPV6, &ll).ifindex, 7);
        let mut g = [0u8; 16];
        g[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(vip_key(7, FAMILY_IPV6, &g).ifindex, 0);
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[0xfe, 0x80, 0, 1]);
        assert_eq!(vip_key(7, FAMILY_IPV4, &v4).ifindex, 0, "254.128.0.1 is not link-local");
        assert_eq!(vip_key(7, FAMILY_IPV4, &v4)._pad, [0; 3]);
    }
}
