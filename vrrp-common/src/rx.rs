//! What a receiver checks beyond the message itself: the IP envelope
//! (TTL, destination, source) and the instance's expectations (version,
//! authentication, v2 interval, unicast peers). One function, `admit`,
//! applies them all in order and names the first rule broken.

use core::net::IpAddr;

use crate::Verdict;
use crate::units::Centis;
use crate::wire::vrrp::{GROUP_V4, GROUP_V6};
use crate::wire::{Auth, ChecksumForm, Family, Packet, Repr, RxIp, Version};

/// The IP envelope of a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
}

/// What an instance expects of adverts for its VRID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The instance's version.
    pub version: Version,
    /// v2 authentication (must match type and password).
    pub auth: Auth,
    /// The instance's advert interval; v2 adverts must carry the same
    /// (RFC 3768 7.1), v3 learns the master's.
    pub interval: Centis,
    /// Our own addresses on the interface: adverts to us are unicast to
    /// one of these, and adverts from one of these are our own.
    pub own: &'a [IpAddr],
    /// Unicast peers; empty for multicast instances.
    pub peers: &'a [IpAddr],
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10).
pub fn is_link_local_v6(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Whether the TTL-255 rule applies: to adverts sent to the VRRP group.
/// A unicast advert to one of our addresses is only accepted from a
/// configured peer, which is the check that replaces it.
pub const fn ttl_applies(to_group: bool) -> bool {
    to_group
}

/// Check a received message against the envelope rules and the instance
/// `lookup(vrid, family)` returns; the decoded advert on success.
pub fn admit<'a, 'e>(
    msg: &'a [u8],
    env: &Envelope,
    lookup: impl FnOnce(u8, Family) -> Option<Expect<'e>>,
) -> Result<(Repr<'a>, ChecksumForm), Verdict> {
    let to_group = env.dst == IpAddr::V4(GROUP_V4) || env.dst == IpAddr::V6(GROUP_V6);
    // RFC 5798 7.1: TTL / hop limit must be 255, else it crossed a router.
    // Unicast adverts are keepalived's extension, which it lets cross
    // routers (`unicast_ttl`) and which keepalived 2.2.7 sends over IPv6
    // with hop limit 64 (fixture v3-unicast-ipv6): for those the peer list
    // does the source check instead. See `ttl_applies`.
    if ttl_applies(to_group) && env.ttl != 255 {
        return Err(Verdict::BadTtl);
    }
    let ip = RxIp { src: env.src, dst: env.dst };
    let family = ip.family();
    let packet = Packet::new_checked(msg)?;
    let (repr, form) = Repr::parse(&packet, &ip)?;
    // RFC 5798 5.1.2.1: v3 over IPv6 is sent from the link-local address.
    if family == Family::V6 && !is_link_local_v6(&env.src) {
        return Err(Verdict::NotLinkLocal);
    }
    let inst = lookup(repr.vrid, family).ok_or(Verdict::UnknownVrid)?;
    if inst.own.contains(&env.src) {
        return Err(Verdict::OwnAdvert);
    }
    if !to_group && !inst.own.contains(&env.dst) {
        return Err(Verdict::BadDestination);
    }
    if !inst.peers.is_empty() && !inst.peers.contains(&env.src) {
        return Err(Verdict::NotAPeer);
    }
    if repr.version != inst.version {
        return Err(Verdict::BadVersion);
    }
    if repr.version == Version::V2 {
        // RFC 3768 7.1: authentication type must match, then the data.
        match (repr.auth, inst.auth) {
            (Auth::None, Auth::None) => {}
            (Auth::Simple(got), Auth::Simple(want)) if got == want => {}
            (Auth::Simple(_), Auth::Simple(_)) => return Err(Verdict::AuthFailure),
            _ => return Err(Verdict::AuthTypeMismatch),
        }
        // RFC 3768 7.1: discard if Adver Interval differs from ours.
        if repr.interval != inst.interval {
            return Err(Verdict::IntervalMismatch);
        }
    }
    Ok((repr, form))
}
