//! The IP Authentication Header around a VRRPv2 advert (`auth_type AH`),
//! as keepalived 2.2.7 builds and checks it (RFC 2338 5.3.6.2 points at
//! RFC 2402; keepalived's `vrrp_build_ipsecah`, `vrrp_update_pkt` and
//! `vrrp_in_chk_ipsecah`).
//!
//! ```text
//! AH (RFC 2402 2), 24 bytes for HMAC-MD5-96
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Header   |  Payload Len  |          RESERVED             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Security Parameters Index (SPI)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Sequence Number Field                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Authentication Data: HMAC-MD5-96, 12 bytes            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! keepalived's choices, followed here exactly:
//! - Next Header 112, Payload Len 4 ((24 / 4) - 2), SPI = the IPv4 source
//!   address (as it is on the wire), checked on receipt.
//! - The key is `auth_pass` cut or zero-padded to 8 bytes.
//! - The ICV is HMAC-MD5 truncated to 96 bits over the IPv4 header with
//!   TOS, flags/fragment offset and header checksum zeroed (and the TTL too
//!   for unicast instances, not for multicast ones), then the AH header with
//!   the ICV zeroed, then the VRRP message. The IP ID is covered, so the
//!   sender writes the IP header itself (keepalived counts it from 1).
//! - The VRRP message carries auth type 2 and eight zero bytes of
//!   authentication data.
//! - Sequence numbers: one counter per instance shared by sending and
//!   receiving (`SeqCounter`).

use crate::Verdict;
use crate::wire::ip::IPV4_HLEN;

/// IP protocol number of the Authentication Header (RFC 2402 2).
pub const IPPROTO_AH: u8 = 51;
/// The header's length with a 96-bit ICV.
pub const AH_LEN: usize = 24;
/// HMAC-MD5-96: the digest truncated to 12 bytes (RFC 2403 2).
pub const ICV_LEN: usize = 12;
/// Payload Len for a 96-bit ICV: 32-bit words minus 2 (RFC 2402 2.2).
pub const PAYLOAD_LEN: u8 = 4;
/// The key: keepalived's `auth_data`, 8 bytes.
pub const KEY_LEN: usize = 8;

mod field {
    pub const NEXT_HEADER: usize = 0;
    pub const PAYLOAD_LEN: usize = 1;
    pub const RESERVED: core::ops::Range<usize> = 2..4;
    pub const SPI: core::ops::Range<usize> = 4..8;
    pub const SEQ: core::ops::Range<usize> = 8..12;
    pub const ICV: core::ops::Range<usize> = 12..24;
}

/// The key keepalived makes of `auth_pass`: the first 8 bytes, zero padded.
pub fn key(password: &[u8]) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    let n = password.len().min(KEY_LEN);
    k[..n].copy_from_slice(&password[..n]);
    k
}

/// A zero-copy view of an Authentication Header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap, checking the buffer holds the 24-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Verdict> {
        if buffer.as_ref().len() < AH_LEN { Err(Verdict::TooShort) } else { Ok(Packet { buffer }) }
    }

    /// Next Header: 112 for VRRP.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Payload Len.
    pub fn payload_len(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_LEN]
    }

    /// The SPI as its 4 bytes on the wire (keepalived: the source address).
    pub fn spi(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::SPI];
        [b[0], b[1], b[2], b[3]]
    }

    /// Sequence Number.
    pub fn seq(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Authentication data (the ICV).
    pub fn icv(&self) -> [u8; ICV_LEN] {
        let mut o = [0u8; ICV_LEN];
        o.copy_from_slice(&self.buffer.as_ref()[field::ICV]);
        o
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the ICV.
    pub fn set_icv(&mut self, icv: &[u8; ICV_LEN]) {
        self.buffer.as_mut()[field::ICV].copy_from_slice(icv);
    }
}

/// A decoded Authentication Header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    /// Next Header.
    pub next_header: u8,
    /// SPI bytes.
    pub spi: [u8; 4],
    /// Sequence Number.
    pub seq: u32,
    /// ICV.
    pub icv: [u8; ICV_LEN],
}

impl Repr {
    /// Decode; `LengthMismatch` for an ICV other than 96 bits, which
    /// keepalived never sends.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, Verdict> {
        if p.payload_len() != PAYLOAD_LEN {
            return Err(Verdict::LengthMismatch);
        }
        Ok(Repr { next_header: p.next_header(), spi: p.spi(), seq: p.seq(), icv: p.icv() })
    }

    /// Write the header into `buf[..24]` (reserved zero); None if short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let h = buf.get_mut(..AH_LEN)?;
        h[field::NEXT_HEADER] = self.next_header;
        h[field::PAYLOAD_LEN] = PAYLOAD_LEN;
        h[field::RESERVED].fill(0);
        h[field::SPI].copy_from_slice(&self.spi);
        h[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        h[field::ICV].copy_from_slice(&self.icv);
        Some(AH_LEN)
    }
}

/// An IPv4 packet carrying AH then a VRRP message, as read from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AhView<'a> {
    /// The IP header (with options, if any).
    pub ip_header: &'a [u8],
    /// The AH header.
    pub ah: Repr,
    /// The VRRP message: the rest of the IP payload.
    pub payload: &'a [u8],
}

/// Split an IPv4 packet (no link header) of protocol 51 into its IP
/// header, AH header and the message after it. `Ok(None)` for an AH packet
/// protecting something other than VRRP: somebody's IPsec, not ours
/// (keepalived ignores it too).
pub fn split(packet: &[u8]) -> Result<Option<AhView<'_>>, Verdict> {
    let h = packet.get(..IPV4_HLEN).ok_or(Verdict::TooShort)?;
    if h[0] >> 4 != 4 || h[9] != IPPROTO_AH {
        return Err(Verdict::BadVersion);
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if ihl < IPV4_HLEN {
        return Err(Verdict::BadVersion);
    }
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return Err(Verdict::Fragment);
    }
    let ip_payload = packet.get(ihl..total).ok_or(Verdict::TooShort)?;
    let p = Packet::new_checked(ip_payload)?;
    if p.next_header() != crate::IPPROTO_VRRP {
        return Ok(None);
    }
    let ah = Repr::parse(&p)?;
    Ok(Some(AhView { ip_header: &packet[..ihl], ah, payload: &ip_payload[AH_LEN..] }))
}

/// The ICV keepalived computes: HMAC-MD5-96 with `key` over `ip_header`
/// (mutable fields zeroed: TOS, flags and fragment offset, checksum, and
/// the TTL when `unicast`), `ah` (24 bytes, its ICV zeroed) and `vrrp`.
#[cfg(any(test, feature = "icv"))]
pub fn icv(key: &[u8; KEY_LEN], ip_header: &[u8], ah: &[u8], vrrp: &[u8], unicast: bool) -> [u8; ICV_LEN] {
    use hmac::Mac;
    let mac = mac(key, ip_header, ah, vrrp, unicast);
    let full = mac.finalize().into_bytes();
    let mut o = [0u8; ICV_LEN];
    o.copy_from_slice(&full[..ICV_LEN]);
    o
}

/// Whether `icv` is right for the packet (see `icv`); compared in
/// constant time, as keepalived does.
#[cfg(any(test, feature = "icv"))]
pub fn icv_ok(
    key: &[u8; KEY_LEN],
    ip_header: &[u8],
    ah: &[u8],
    vrrp: &[u8],
    unicast: bool,
    icv: &[u8; ICV_LEN],
) -> bool {
    use hmac::Mac;
    mac(key, ip_header, ah, vrrp, unicast).verify_truncated_left(icv).is_ok()
}

#[cfg(any(test, feature = "icv"))]
fn mac(key: &[u8; KEY_LEN], ip_header: &[u8], ah: &[u8], vrrp: &[u8], unicast: bool) -> hmac::Hmac<md5::Md5> {
    use hmac::Mac;
    // HMAC accepts any key length; an 8-byte key cannot fail.
    let mut mac = <hmac::Hmac<md5::Md5> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    // An IPv4 header is at most 60 bytes.
    let mut iph = [0u8; 60];
    let n = ip_header.len().min(iph.len());
    iph[..n].copy_from_slice(&ip_header[..n]);
    if n >= IPV4_HLEN {
        iph[1] = 0; // TOS
        iph[6] = 0; // flags, fragment offset
        iph[7] = 0;
        iph[10] = 0; // header checksum
        iph[11] = 0;
        if unicast {
            // keepalived zeroes the TTL for unicast instances only.
            iph[8] = 0;
        }
    }
    mac.update(&iph[..n]);
    let mut ahz = [0u8; AH_LEN];
    let m = ah.len().min(AH_LEN);
    ahz[..m].copy_from_slice(&ah[..m]);
    ahz[field::ICV].fill(0);
    mac.update(&ahz[..m]);
    mac.update(vrrp);
    mac
}

/// Why an AH advert is refused after its structure checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AhReject {
    /// The ICV does not verify: wrong `auth_pass`, or a mutated packet.
    BadIcv,
    /// The SPI is not the source address.
    BadSpi,
    /// The sequence number is not above the last one accepted: a replay.
    Replay {
        /// Received.
        seq: u32,
        /// The instance's counter.
        local: u32,
    },
}

impl AhReject {
    /// The verdict counted for it.
    pub const fn verdict(self) -> Verdict {
        match self {
            AhReject::BadIcv | AhReject::BadSpi => Verdict::AuthFailure,
            AhReject::Replay { .. } => Verdict::AhReplay,
        }
    }
}

/// keepalived's per-instance `ipsecah_counter`: one sequence number that
/// both the adverts sent and the adverts accepted move, so a backup that
/// takes over continues above its old master's numbers, and a returning
/// master (its counter reset by a restart) learns the current number from
/// the adverts it accepts before it preempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqCounter {
    /// The last number sent or accepted (keepalived starts from 0, so the
    /// first advert carries 1).
    pub seq: u32,
    /// Set when the counter reached its end (keepalived: 0xFFFFFFFD);
    /// cleared by an accepted advert or by becoming master, which starts
    /// again from 0.
    pub cycle: bool,
}

/// Past this the counter stops (keepalived's limit).
pub const SEQ_LIMIT: u32 = 0xFFFF_FFFD;

impl SeqCounter {
    /// The number for the next advert sent (keepalived's
    /// `vrrp_update_pkt`): one more than the last, stuck at the limit.
    pub fn next_tx(&mut self) -> u32 {
        if self.seq > SEQ_LIMIT {
            self.cycle = true;
        } else {
            self.seq += 1;
        }
        self.seq
    }

    /// An advert whose ICV and SPI checked out carries `seq`: accept it if
    /// it is above the counter, which then moves to it
    /// (`vrrp_in_chk_ipsecah`).
    pub fn check_rx(&mut self, seq: u32) -> Result<(), AhReject> {
        if seq > self.seq {
            self.seq = seq;
            self.cycle = false;
            Ok(())
        } else {
            Err(AhReject::Replay { seq, local: self.seq })
        }
    }

    /// The instance becomes master (`vrrp_state_goto_master`): a counter
    /// that reached its end starts again.
    pub fn on_master(&mut self) {
        if self.cycle {
            self.cycle = false;
            self.seq = 0;
        }
    }
}

/// The whole check of a received AH advert, keepalived's order: ICV, SPI,
/// then the sequence number (only a packet that authenticated moves the
/// counter).
#[cfg(any(test, feature = "icv"))]
pub fn check(
    key: &[u8; KEY_LEN],
    view: &AhView<'_>,
    raw_ah: &[u8],
    unicast: bool,
    counter: &mut SeqCounter,
) -> Result<(), AhReject> {
    if !icv_ok(key, view.ip_header, raw_ah, view.payload, unicast, &view.ah.icv) {
        return Err(AhReject::BadIcv);
    }
    if view.ip_header.get(12..16) != Some(&view.ah.spi[..]) {
        return Err(AhReject::BadSpi);
    }
    counter.check_rx(view.ah.seq)
}

/// Build a whole IPv4 packet with AH as keepalived sends it: IP header
/// (TOS 0xc0, `ident`, TTL 255, protocol 51, checksum filled), AH header
/// (`seq`, SPI = `src`), the VRRP message `vrrp` writes into the slice it
/// is given (returning its length), then the ICV. Returns the length.
#[cfg(any(test, feature = "icv"))]
#[expect(clippy::too_many_arguments, reason = "the fields of one packet, each needed once")]
pub fn emit_ipv4(
    buf: &mut [u8],
    src: core::net::Ipv4Addr,
    dst: core::net::Ipv4Addr,
    ident: u16,
    seq: u32,
    key: &[u8; KEY_LEN],
    unicast: bool,
    vrrp: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let start = IPV4_HLEN + AH_LEN;
    let n = vrrp(buf.get_mut(start..)?)?;
    let payload = u16::try_from(AH_LEN + n).ok()?;
    crate::wire::ip::emit_ipv4_proto(buf, src, dst, payload, ident, IPPROTO_AH)?;
    let ah = Repr { next_header: crate::IPPROTO_VRRP, spi: src.octets(), seq, icv: [0; ICV_LEN] };
    ah.emit(&mut buf[IPV4_HLEN..])?;
    let c = icv(key, &buf[..IPV4_HLEN], &buf[IPV4_HLEN..start], &buf[start..start + n], unicast);
    Packet::new_unchecked(&mut buf[IPV4_HLEN..start]).set_icv(&c);
    Some(start + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::vrrp::{AUTH_AH, Auth, Packet as VrrpPacket, Repr as VrrpRepr, RxIp, TxIp, Version};
    use core::net::{IpAddr, Ipv4Addr};
    use std::vec::Vec;

    fn frames(text: &str) -> Vec<Vec<u8>> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                (0..l.len() / 2).map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).expect("hex")).collect()
            })
            .collect()
    }

    /// keepalived 2.2.7, VRID 8, multicast, `auth_pass s3cr3t`, seq 1-3.
    const MULTICAST: &str = include_str!("../../../tests/fixtures/v2-multicast-ah-ipv4.hex");
    /// keepalived 2.2.7, VRID 9, unicast 192.0.2.20 -> .52,
    /// `auth_pass longer-than-8` (cut to "longer-t").
    const UNICAST: &str = include_str!("../../../tests/fixtures/v2-unicast-ah-ipv4.hex");

    #[test]
    fn keepalived_adverts_verify_and_reemit_byte_for_byte() {
        for (text, pass, unicast, vrid, dst) in [
            (MULTICAST, &b"s3cr3t"[..], false, 8, Ipv4Addr::new(224, 0, 0, 18)),
            (UNICAST, &b"longer-than-8"[..], true, 9, Ipv4Addr::new(192, 0, 2, 52)),
        ] {
            let k = key(pass);
            let mut counter = SeqCounter::default();
            let mut tx = SeqCounter::default();
            for (n, frame) in frames(text).iter().enumerate() {
                let pkt = &frame[14..];
                let v = split(pkt).expect("structure").expect("VRRP inside");
                assert_eq!(v.ah.next_header, 112);
                assert_eq!(v.ah.spi, [192, 0, 2, 20], "SPI is the source address");
                assert_eq!(v.ah.seq, n as u32 + 1, "keepalived counts from 1");
                // The IP ID counts from 1 too, and is covered by the ICV.
                assert_eq!(u16::from_be_bytes([pkt[4], pkt[5]]), n as u16 + 1);
                check(&k, &v, &pkt[20..44], unicast, &mut counter).expect("authentic");
                // Replayed: refused, and the counter stays.
                assert_eq!(
                    check(&k, &v, &pkt[20..44], unicast, &mut counter),
                    Err(AhReject::Replay { seq: n as u32 + 1, local: n as u32 + 1 })
                );
                // A wrong password, or the TTL-zeroing of the other mode,
                // breaks the ICV.
                let mut c2 = SeqCounter::default();
                assert_eq!(check(&key(b"wrong"), &v, &pkt[20..44], unicast, &mut c2), Err(AhReject::BadIcv));
                assert_eq!(check(&k, &v, &pkt[20..44], !unicast, &mut c2), Err(AhReject::BadIcv));
                assert_eq!(c2, SeqCounter::default(), "only an authentic advert moves the counter");

                // The VRRP message: auth type 2, zero authentication data.
                let msg = VrrpPacket::new_checked(v.payload).expect("vrrp");
                assert_eq!(msg.auth_type(), AUTH_AH);
                assert_eq!(msg.auth_data(), Some([0; 8]));
                let rx = RxIp { src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)), dst: IpAddr::V4(dst) };
                let (repr, _) = VrrpRepr::parse(&msg, &rx).expect("parses");
                assert_eq!((repr.version, repr.vrid, repr.auth), (Version::V2, vrid, Auth::Ah));

                // Built again from its parts, it is the same packet.
                let mut out = [0u8; 128];
                let txip = TxIp { src: rx.src, dst: rx.dst, v3_checksum_as_v2: false };
                let len = emit_ipv4(
                    &mut out,
                    Ipv4Addr::new(192, 0, 2, 20),
                    dst,
                    n as u16 + 1,
                    tx.next_tx(),
                    &k,
                    unicast,
                    |b| repr.emit(b, &txip).ok(),
                )
                .expect("fits");
                // Our IP checksum is filled; the kernel fills keepalived's.
                assert_eq!(&out[..len], pkt, "frame {n}");
            }
        }
    }

    #[test]
    fn spi_must_be_the_source() {
        let f = &frames(MULTICAST)[0];
        let mut pkt = f[14..].to_vec();
        pkt[12..16].copy_from_slice(&[192, 0, 2, 99]);
        let v = split(&pkt).expect("ok").expect("vrrp");
        // The source is covered by the ICV too: it fails first.
        assert_eq!(
            check(&key(b"s3cr3t"), &v, &pkt[20..44], false, &mut SeqCounter::default()),
            Err(AhReject::BadIcv)
        );
    }

    #[test]
    fn split_refuses_what_is_not_ah_vrrp() {
        let f = &frames(MULTICAST)[0];
        let pkt = &f[14..];
        let mut other = pkt.to_vec();
        other[20] = 6; // TCP under AH: somebody's IPsec
        assert_eq!(split(&other), Ok(None));
        assert_eq!(split(&pkt[..30]), Err(Verdict::TooShort));
        let mut frag = pkt.to_vec();
        frag[6] = 0x20;
        assert_eq!(split(&frag), Err(Verdict::Fragment));
        let mut plen = pkt.to_vec();
        plen[21] = 5;
        assert_eq!(split(&plen), Err(Verdict::LengthMismatch));
    }

    #[test]
    fn counter_follows_keepalived() {
        let mut c = SeqCounter::default();
        assert_eq!(c.next_tx(), 1);
        assert_eq!(c.next_tx(), 2);
        // A peer's advert above ours moves us; ours continue above it.
        assert_eq!(c.check_rx(10), Ok(()));
        assert_eq!(c.next_tx(), 11);
        assert!(c.check_rx(11).is_err());
        // At the end it sticks and flags the cycle; becoming master restarts.
        let mut end = SeqCounter { seq: SEQ_LIMIT, cycle: false };
        assert_eq!(end.next_tx(), SEQ_LIMIT + 1);
        assert_eq!(end.next_tx(), SEQ_LIMIT + 1);
        assert!(end.cycle);
        end.on_master();
        assert_eq!(end, SeqCounter::default());
        assert_eq!(end.next_tx(), 1);
    }
}
