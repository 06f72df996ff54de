//! Properties of the codec: emit-then-parse is the identity for every
//! valid advert; no input makes any parser panic; the kernel's header
//! check agrees with the full parser on valid adverts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vrrp_common::classify::{self, IpMeta};
use vrrp_common::maps::{FAMILY_IPV4, FAMILY_IPV6};
use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, ChecksumForm, Packet, Repr, RxIp, Version, ip};
use vrrp_common::{Centis, Verdict};

#[derive(Debug, Clone)]
struct Advert {
    version: Version,
    vrid: u8,
    priority: u8,
    interval: u16,
    auth: Auth,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    src: IpAddr,
    dst: IpAddr,
    as_v2: bool,
}

fn v4_advert() -> impl Strategy<Value = Advert> {
    (
        prop_oneof![Just(Version::V2), Just(Version::V3)],
        1u8..=255,
        any::<u8>(),
        1u16..=4095,
        proptest::option::of(any::<[u8; 8]>()),
        proptest::collection::vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..=60),
        any::<[u8; 4]>(),
        proptest::option::of(any::<[u8; 4]>()),
        any::<bool>(),
    )
        .prop_map(|(version, vrid, priority, interval, pw, v4, src, dst, as_v2)| {
            let (interval, auth) = match version {
                Version::V2 => ((interval % 255 + 1) * 100, pw.map_or(Auth::None, Auth::Simple)),
                Version::V3 => (interval, Auth::None),
            };
            Advert {
                version,
                vrid,
                priority,
                interval,
                auth,
                v4,
                v6: Vec::new(),
                src: IpAddr::V4(Ipv4Addr::from(src)),
                dst: IpAddr::V4(dst.map_or(GROUP_V4, Ipv4Addr::from)),
                as_v2,
            }
        })
}

fn v6_advert() -> impl Strategy<Value = Advert> {
    (
        1u8..=255,
        any::<u8>(),
        1u16..=4095,
        proptest::collection::vec(any::<[u8; 16]>().prop_map(Ipv6Addr::from), 0..=30),
        any::<u64>(),
        proptest::option::of(any::<[u8; 16]>()),
    )
        .prop_map(|(vrid, priority, interval, v6, iid, dst)| {
            let mut src = [0u8; 16];
            src[0] = 0xfe;
            src[1] = 0x80;
            src[8..].copy_from_slice(&iid.to_be_bytes());
            Advert {
                version: Version::V3,
                vrid,
                priority,
                interval,
                auth: Auth::None,
                v4: Vec::new(),
                v6,
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(dst.map_or(GROUP_V6, Ipv6Addr::from)),
                as_v2: false,
            }
        })
}

fn advert() -> impl Strategy<Value = Advert> {
    prop_oneof![v4_advert(), v6_advert()]
}

impl Advert {
    fn repr(&self) -> Repr<'_> {
        Repr {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            interval: Centis(self.interval),
            auth: self.auth,
            addrs: if self.v6.is_empty() && matches!(self.src, IpAddr::V4(_)) {
                AddrList::V4(&self.v4)
            } else {
                AddrList::V6(&self.v6)
            },
        }
    }

    fn emit(&self) -> Vec<u8> {
        let r = self.repr();
        let mut b = vec![0u8; r.buffer_len()];
        let tx = TxIp { src: self.src, dst: self.dst, v3_checksum_as_v2: self.as_v2 };
        let n = r.emit(&mut b, &tx).expect("valid advert emits");
        assert_eq!(n, b.len());
        b
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn emit_then_parse_is_identity(a in advert()) {
        let bytes = a.emit();
        let packet = Packet::new_checked(&bytes[..]).expect("header");
        let (parsed, form) = Repr::parse(&packet, &RxIp { src: a.src, dst: a.dst }).expect("parses");
        prop_assert_eq!(parsed, a.repr());
        let want = match (a.version, a.src) {
            (Version::V2, _) => ChecksumForm::Plain,
            (Version::V3, IpAddr::V4(_)) if a.as_v2 => ChecksumForm::Plain,
            _ => ChecksumForm::PseudoHeader,
        };
        // A v3 plain checksum can coincide with the pseudo-header one only
        // if the pseudo-header sums to zero; the parser prefers the latter.
        if form != want {
            prop_assert_eq!(want, ChecksumForm::Plain);
        }
    }

    #[test]
    fn kernel_header_check_agrees_on_valid_adverts(a in advert()) {
        let bytes = a.emit();
        let mut src = [0u8; 16];
        let family = match a.src {
            IpAddr::V4(s) => { src[..4].copy_from_slice(&s.octets()); FAMILY_IPV4 }
            IpAddr::V6(s) => { src = s.octets(); FAMILY_IPV6 }
        };
        let meta = IpMeta {
            family,
            ttl: 255,
            vrrp_len: bytes.len() as u16,
            fragment: false,
            src,
            dst_multicast: a.dst.is_multicast(),
            in_ah: false,
        };
        let hdr: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
        let got = classify::check_header(&hdr, &meta).expect("kernel accepts what the parser accepts");
        prop_assert_eq!(got.vrid, a.vrid);
        prop_assert_eq!(got.priority, a.priority);
        prop_assert_eq!(got.version, a.version as u8);
        prop_assert_eq!(got.interval_cs, a.interval);
        prop_assert_eq!(got.count as usize, a.v4.len() + a.v6.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1200),
        v6 in any::<bool>(),
        ttl in any::<u8>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        len in any::<u16>(),
        frag in any::<bool>(),
        mcast in any::<bool>(),
    ) {
        let (src, dst) = if v6 {
            (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
        } else {
            (IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        };
        if let Ok(p) = Packet::new_checked(&bytes[..]) {
            let _ = Repr::parse(&p, &RxIp { src, dst });
            let _ = p.addr_bytes(vrrp_common::wire::Family::V6);
            let _ = p.auth_data();
        }
        let _ = ip::parse(&bytes);
        let own = [dst];
        let expect = Expect { version: Version::V3, auth: Auth::None, interval: Centis(100), own: &own, peers: &[] };
        let _ = rx::admit(&bytes, &Envelope { src, dst, ttl, in_ah: false }, |_, _| Some(expect));
        let mut hdr = [0u8; 8];
        for (h, x) in hdr.iter_mut().zip(bytes.iter()) { *h = *x; }
        let meta = IpMeta { family: if v6 { FAMILY_IPV6 } else { FAMILY_IPV4 }, ttl, vrrp_len: len, fragment: frag, src: a, dst_multicast: mcast, in_ah: false };
        let _ = classify::check_header(&hdr, &meta);
    }

    #[test]
    fn one_flipped_bit_never_passes_as_the_same_advert(a in advert(), bit in 0usize..8000) {
        let mut bytes = a.emit();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(p) = Packet::new_checked(&bytes[..]) {
            if let Ok((r, _)) = Repr::parse(&p, &RxIp { src: a.src, dst: a.dst }) {
                // Only bits the checksum does not cover may flip unnoticed:
                // v3's reserved nibble, which the parser ignores.
                prop_assert_eq!(r, a.repr());
                prop_assert!(a.version == Version::V3 && bit / 8 == 4 && bit % 8 >= 4);
            }
        }
    }

    /// Issue 12, case 12: whatever the bytes and envelope, a message whose
    /// VRID byte names a VRID no instance serves is never judged: it is
    /// `UnknownVrid` (passed up) unless it has the CARP shape, no VRID
    /// byte, or VRID 0. The lookup is asked for that VRID only.
    #[test]
    fn an_unserved_vrid_is_never_judged(
        bytes in proptest::collection::vec(any::<u8>(), 0..1200),
        v6 in any::<bool>(),
        ttl in any::<u8>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
    ) {
        let (src, dst) = if v6 {
            (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
        } else {
            (IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        };
        let mut asked = Vec::new();
        let got = rx::admit(&bytes, &Envelope { src, dst, ttl, in_ah: false }, |vrid, _| {
            asked.push(vrid);
            None::<Expect<'_>>
        });
        let err = got.err();
        prop_assert!(
            matches!(err, Some(Verdict::UnknownVrid | Verdict::Carp | Verdict::TooShort | Verdict::BadVrid)),
            "{err:?}"
        );
        if err == Some(Verdict::UnknownVrid) {
            prop_assert_eq!(asked, vec![bytes[1]]);
        } else {
            prop_assert!(asked.is_empty());
        }
    }
}

/// An AH advert as keepalived sends it, from arbitrary fields.
#[expect(clippy::too_many_arguments, reason = "one per field the property varies")]
fn ah_packet(
    vrid: u8,
    priority: u8,
    vips: &[Ipv4Addr],
    src: [u8; 4],
    dst: [u8; 4],
    ident: u16,
    seq: u32,
    key: &[u8; 8],
    unicast: bool,
) -> Vec<u8> {
    use vrrp_common::wire::ah;
    let repr = Repr {
        version: Version::V2,
        vrid,
        priority,
        interval: Centis(100),
        auth: Auth::Ah,
        addrs: AddrList::V4(vips),
    };
    let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let tx = TxIp { src: IpAddr::V4(s), dst: IpAddr::V4(d), v3_checksum_as_v2: false };
    let mut buf = vec![0u8; 2048];
    let n =
        ah::emit_ipv4(&mut buf, s, d, ident, seq, key, unicast, |b| repr.emit(b, &tx).ok()).expect("fits");
    buf.truncate(n);
    buf
}

proptest! {
    /// Every AH advert built verifies with its key, parses back to its
    /// fields, and a change to any byte the ICV covers is caught; changes
    /// to the fields keepalived treats as mutable (TOS, flags/offset,
    /// checksum, and the TTL for unicast) are not.
    #[test]
    fn ah_icv_covers_exactly_the_immutable_bytes(
        vrid in 1u8..=255,
        priority in any::<u8>(),
        vips in proptest::collection::vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..=20),
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        ident in any::<u16>(),
        seq in 1u32..,
        key in any::<[u8; 8]>(),
        unicast in any::<bool>(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        use vrrp_common::wire::ah;
        let pkt = ah_packet(vrid, priority, &vips, src, dst, ident, seq, &key, unicast);
        let v = ah::split(&pkt).expect("structure").expect("vrrp inside");
        prop_assert_eq!(v.ah.seq, seq);
        prop_assert_eq!(v.ah.spi, src);
        let mut c = ah::SeqCounter::default();
        prop_assert_eq!(ah::check(&key, &v, &pkt[20..44], unicast, &mut c), Ok(()));
        let msg = Packet::new_checked(v.payload).expect("vrrp");
        let rx = RxIp { src: IpAddr::V4(Ipv4Addr::from(src)), dst: IpAddr::V4(Ipv4Addr::from(dst)) };
        let (r, _) = Repr::parse(&msg, &rx).expect("parses");
        prop_assert_eq!((r.vrid, r.priority, r.auth, r.addrs.len()), (vrid, priority, Auth::Ah, vips.len()));

        let i = pos.index(pkt.len());
        // Fields whose change would break the split itself are left out:
        // version/IHL, total length, protocol, next header, payload len.
        prop_assume!(![0usize, 2, 3, 9, 20, 21].contains(&i));
        let mut bad = pkt.clone();
        bad[i] ^= flip;
        // Flags/offset: a fragment is refused before any ICV.
        prop_assume!(u16::from_be_bytes([bad[6], bad[7]]) & 0x3fff == 0);
        let mutable = [1usize, 6, 7, 10, 11].contains(&i) || (unicast && i == 8);
        let v = ah::split(&bad).expect("structure").expect("vrrp inside");
        let got = ah::check(&key, &v, &bad[20..44], unicast, &mut ah::SeqCounter::default());
        if mutable {
            prop_assert_eq!(got, Ok(()), "byte {} is mutable", i);
        } else {
            prop_assert!(got.is_err(), "byte {} is covered", i);
        }
    }

    /// No input makes the AH splitter panic.
    #[test]
    fn ah_split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = vrrp_common::wire::ah::split(&bytes);
    }
}
