//! The IP headers around an advert: built for a raw socket with
//! `IP_HDRINCL` / packet sockets, and read on the userspace receive path.
//!
//! ```text
//! IPv4 (RFC 791)                        IPv6 (RFC 8200)
//! |Ver| IHL |  TOS  |  Total Length  |  |Ver| TC |     Flow Label      |
//! |   Identification |Flags| Offset  |  | Payload Len  | NH  | HopLim  |
//! |  TTL  | Proto |  Header Checksum |  |        Source (16 bytes)      |
//! |          Source Address          |  |     Destination (16 bytes)    |
//! |        Destination Address       |
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{IPPROTO_VRRP, Verdict, checksum};

/// IPv4 header without options.
pub const IPV4_HLEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HLEN: usize = 40;
/// VRRP's TTL / hop limit (RFC 5798 5.1.1.3, 5.1.2.3).
pub const VRRP_TTL: u8 = 255;
/// DSCP CS6 (internetwork control), what keepalived sets in TOS / traffic
/// class for adverts.
pub const TOS_CS6: u8 = 0xc0;

/// Write an IPv4 header for a VRRP payload of `payload_len` bytes into
/// `buf[..20]`; returns 20, or None if `buf` is short.
pub fn emit_ipv4(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: u16,
    ident: u16,
) -> Option<usize> {
    emit_ipv4_proto(buf, src, dst, payload_len, ident, IPPROTO_VRRP)
}

/// `emit_ipv4` for IP protocol `proto` (112, or 51 for an advert under an
/// Authentication Header).
pub fn emit_ipv4_proto(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: u16,
    ident: u16,
    proto: u8,
) -> Option<usize> {
    let h = buf.get_mut(..IPV4_HLEN)?;
    h[0] = 0x45;
    h[1] = TOS_CS6;
    h[2..4].copy_from_slice(&(IPV4_HLEN as u16 + payload_len).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6..8].fill(0);
    h[8] = VRRP_TTL;
    h[9] = proto;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::of(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    Some(IPV4_HLEN)
}

/// Write an IPv6 header for a VRRP payload into `buf[..40]`.
pub fn emit_ipv6(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, payload_len: u16) -> Option<usize> {
    let h = buf.get_mut(..IPV6_HLEN)?;
    // Version 6, traffic class CS6, flow label 0.
    h[0] = 0x60 | (TOS_CS6 >> 4);
    h[1] = (TOS_CS6 & 0x0f) << 4;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    h[6] = IPPROTO_VRRP;
    h[7] = VRRP_TTL;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    Some(IPV6_HLEN)
}

/// An IP packet carrying protocol 112, as read from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpView<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The VRRP message: exactly the IP payload (link padding cut off).
    pub payload: &'a [u8],
}

/// Read an IPv4 or IPv6 packet (no link header) carrying protocol 112.
/// IPv6 extension headers are not followed: VRRP does not use them.
pub fn parse(packet: &[u8]) -> Result<IpView<'_>, Verdict> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let h = packet.get(..IPV4_HLEN).ok_or(Verdict::TooShort)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            if h[9] != IPPROTO_VRRP || ihl < IPV4_HLEN {
                return Err(Verdict::BadVersion);
            }
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return Err(Verdict::Fragment);
            }
            let payload = packet.get(ihl..total).ok_or(Verdict::TooShort)?;
            Ok(IpView {
                src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                ttl: h[8],
                payload,
            })
        }
        Some(6) => {
            let h = packet.get(..IPV6_HLEN).ok_or(Verdict::TooShort)?;
            if h[6] != IPPROTO_VRRP {
                return Err(Verdict::BadVersion);
            }
            let len = u16::from_be_bytes([h[4], h[5]]) as usize;
            let payload = packet.get(IPV6_HLEN..IPV6_HLEN + len).ok_or(Verdict::TooShort)?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            Ok(IpView {
                src: IpAddr::V6(Ipv6Addr::from(s)),
                dst: IpAddr::V6(Ipv6Addr::from(d)),
                ttl: h[7],
                payload,
            })
        }
        _ => Err(Verdict::TooShort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_matches_keepalived() {
        // From fixture v2-unicast-pass-ipv4: 45c0 0028 0001 0000 ff70 365c
        // c0000214 c0000234.
        let mut b = [0u8; 20];
        emit_ipv4(&mut b, Ipv4Addr::new(192, 0, 2, 20), Ipv4Addr::new(192, 0, 2, 52), 20, 1).expect("fits");
        let want = [
            0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x36, 0x5c, 0xc0, 0x00, 0x02, 0x14,
            0xc0, 0x00, 0x02, 0x34,
        ];
        assert_eq!(b, want);
        let mut full = [0u8; 40];
        full[..20].copy_from_slice(&b);
        let v = parse(&full).expect("parses");
        assert_eq!(v.ttl, 255);
        assert_eq!(v.payload.len(), 20);
        assert_eq!(v.dst, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 52)));
    }

    #[test]
    fn ipv6_header_round_trips() {
        let mut b = [0u8; 64];
        let s: Ipv6Addr = "fe80::1".parse().expect("addr");
        let d = crate::wire::vrrp::GROUP_V6;
        emit_ipv6(&mut b, s, d, 24).expect("fits");
        let v = parse(&b).expect("parses");
        assert_eq!((v.src, v.dst, v.ttl, v.payload.len()), (IpAddr::V6(s), IpAddr::V6(d), 255, 24));
    }

    #[test]
    fn short_and_fragmented() {
        assert_eq!(parse(&[0x45; 10]), Err(Verdict::TooShort));
        let mut b = [0u8; 28];
        emit_ipv4(&mut b, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 8, 0).expect("fits");
        b[6] = 0x20; // MF
        assert_eq!(parse(&b), Err(Verdict::Fragment));
        assert_eq!(parse(&[]), Err(Verdict::TooShort));
    }
}
