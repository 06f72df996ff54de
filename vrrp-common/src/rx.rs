//! What a receiver checks beyond the message itself: the IP envelope
//! (TTL, destination, source) and the instance's expectations (version,
//! authentication, v2 interval, unicast peers). One function, `admit`,
//! applies them all in order and names the first rule broken.

use core::net::IpAddr;

use crate::Verdict;
use crate::classify::{self, Facts, HEADER_LEN, IpMeta};
use crate::maps::{INST_UNICAST, InstanceConfig};
use crate::units::Centis;
use crate::wire::vrrp::{AUTH_AH, AUTH_NONE, AUTH_SIMPLE, addr_bytes};
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
    /// The message came under an IP Authentication Header.
    pub in_ah: bool,
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

/// Whether the TTL-255 rule applies: to adverts sent to a multicast group.
/// A unicast advert to one of our addresses is only accepted from a
/// configured peer, which is the check that replaces it.
pub const fn ttl_applies(dst_multicast: bool) -> bool {
    dst_multicast
}

impl Expect<'_> {
    /// The kernel's form of these expectations.
    pub fn config(&self) -> InstanceConfig {
        let (auth_type, password) = match self.auth {
            Auth::None => (AUTH_NONE, [0; 8]),
            Auth::Simple(p) => (AUTH_SIMPLE, p),
            // The key stays in the agent: the kernel checks no ICV.
            Auth::Ah => (AUTH_AH, [0; 8]),
        };
        InstanceConfig {
            flags: if self.peers.is_empty() { 0 } else { INST_UNICAST },
            version: self.version as u8,
            auth_type,
            interval_cs: self.interval.0,
            password,
            watch_priority: 0,
            priority: 0,
            _pad: [0; 2],
        }
    }
}

/// Check a received message against the envelope rules and the instance
/// `lookup(vrid, family)` returns; the decoded advert on success.
///
/// The rules run in the XDP program's order (`classify::attribute` and
/// the lookup, then `classify::check_header`, then
/// `classify::check_instance`, then the checksum), so both receive paths
/// name the same reason for a packet.
pub fn admit<'a, 'e>(
    msg: &'a [u8],
    env: &Envelope,
    lookup: impl FnOnce(u8, Family) -> Option<Expect<'e>>,
) -> Result<(Repr<'a>, ChecksumForm), Verdict> {
    let ip = RxIp { src: env.src, dst: env.dst };
    let family = ip.family();
    let len = u16::try_from(msg.len()).map_err(|_| Verdict::LengthMismatch)?;
    let meta = IpMeta {
        family: family.code(),
        ttl: env.ttl,
        vrrp_len: len,
        fragment: false,
        src: addr_bytes(&env.src),
        dst_multicast: env.dst.is_multicast(),
        in_ah: env.in_ah,
    };
    // The XDP program reads 8 bytes of the frame, whose padding fills a
    // shorter message; `attribute` looks only at bytes the message has, so
    // zero-padding here gives it the same view.
    let mut hdr = [0u8; HEADER_LEN];
    let n = msg.len().min(HEADER_LEN);
    hdr[..n].copy_from_slice(&msg[..n]);
    // Whose packet first: one for a VRID no instance serves is not ours to
    // judge (classify::attribute).
    let vrid = classify::attribute(&hdr, &meta)?;
    let inst = lookup(vrid, family).ok_or(Verdict::UnknownVrid)?;
    let adv = classify::check_header(&hdr, &meta)?;
    let facts = Facts {
        src_is_own: inst.own.contains(&env.src),
        dst_is_own: inst.own.contains(&env.dst),
        dst_multicast: meta.dst_multicast,
        peer_allowed: inst.peers.contains(&env.src),
        in_ah: env.in_ah,
    };
    let packet = Packet::new_checked(msg)?;
    let auth = if adv.version == 2 { packet.auth_data().ok_or(Verdict::LengthMismatch)? } else { [0; 8] };
    classify::check_instance(&adv, &inst.config(), &facts, &auth)?;
    Repr::parse(&packet, &ip)
}
