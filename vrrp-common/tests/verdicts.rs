//! Every rejection reason, triggered by a packet built for it. The last
//! test checks the table covers every `Verdict`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, ChecksumForm, Repr, Version, ip};
use vrrp_common::{Centis, Verdict, checksum};

const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: [Ipv4Addr; 1] = [Ipv4Addr::new(192, 0, 2, 100)];

fn v2(auth: Auth, interval: u16, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let r = Repr {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval: Centis(interval),
        auth,
        addrs: AddrList::V4(&VIP),
    };
    let mut b = vec![0u8; r.buffer_len()];
    let n = r
        .emit(&mut b, &TxIp { src: IpAddr::V4(src), dst: IpAddr::V4(dst), v3_checksum_as_v2: false })
        .expect("emit");
    b.truncate(n);
    b
}

fn good() -> Vec<u8> {
    v2(Auth::simple(b"secret"), 100, SRC, GROUP_V4)
}

fn fix_checksum(m: &mut [u8]) {
    m[6..8].fill(0);
    let c = checksum::of(m);
    m[6..8].copy_from_slice(&c.to_be_bytes());
}

fn env(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Envelope {
    Envelope { src: IpAddr::V4(src), dst: IpAddr::V4(dst), ttl, in_ah: false }
}

/// Admit `msg` at a multicast v2 instance for VRID 51 with password
/// "secret", interval 1 s, own address 192.0.2.2, and `peers`.
fn admit_with(msg: &[u8], e: Envelope, peers: &[IpAddr]) -> Result<ChecksumForm, Verdict> {
    let own = [IpAddr::V4(OWN)];
    let expect = Expect {
        version: Version::V2,
        auth: Auth::simple(b"secret"),
        interval: Centis(100),
        own: &own,
        peers,
    };
    rx::admit(msg, &e, |vrid, _| (vrid == 51).then_some(expect)).map(|(_, f)| f)
}

fn admit(msg: &[u8], e: Envelope) -> Result<ChecksumForm, Verdict> {
    admit_with(msg, e, &[])
}

fn cases() -> Vec<(Verdict, Result<ChecksumForm, Verdict>)> {
    let group = env(SRC, GROUP_V4, 255);
    let mut out = vec![(Verdict::Accepted, admit(&good(), group))];
    out.push((Verdict::TooShort, admit(&good()[..7], group)));
    let mut m = good();
    m[0] = 0x41;
    out.push((Verdict::BadVersion, admit(&m, group)));
    let mut m = good();
    m[0] = 0x22;
    out.push((Verdict::BadType, admit(&m, group)));
    let mut m = good();
    m[1] = 0;
    out.push((Verdict::BadVrid, admit(&m, group)));
    out.push((Verdict::BadTtl, admit(&good(), env(SRC, GROUP_V4, 254))));
    let mut m = good();
    m.extend_from_slice(&[0; 4]);
    out.push((Verdict::LengthMismatch, admit(&m, group)));
    let mut m = good();
    m[2] ^= 1;
    out.push((Verdict::BadChecksum, admit(&m, group)));
    out.push((Verdict::AuthTypeMismatch, admit(&v2(Auth::None, 100, SRC, GROUP_V4), group)));
    out.push((Verdict::AuthFailure, admit(&v2(Auth::simple(b"wrong"), 100, SRC, GROUP_V4), group)));
    // Auth type 2 (AH) without an AH header around it: keepalived's
    // "No AH header but auth type is AH" / auth type mismatch.
    let mut m = good();
    m[4] = 2;
    fix_checksum(&mut m);
    out.push((Verdict::AuthTypeMismatch, admit(&m, group)));
    out.extend(ah_cases());
    out.push((Verdict::IntervalMismatch, admit(&v2(Auth::simple(b"secret"), 200, SRC, GROUP_V4), group)));
    let stranger = Ipv4Addr::new(192, 0, 2, 99);
    out.push((
        Verdict::BadDestination,
        admit(&v2(Auth::simple(b"secret"), 100, SRC, stranger), env(SRC, stranger, 255)),
    ));
    out.push((Verdict::NotLinkLocal, not_link_local()));
    let mut m = good();
    m[1] = 52;
    fix_checksum(&mut m);
    out.push((Verdict::UnknownVrid, admit(&m, group)));
    let peer = [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3))];
    out.push((
        Verdict::NotAPeer,
        admit_with(&v2(Auth::simple(b"secret"), 100, SRC, OWN), env(SRC, OWN, 255), &peer),
    ));
    out.push((
        Verdict::OwnAdvert,
        admit(&v2(Auth::simple(b"secret"), 100, OWN, GROUP_V4), env(OWN, GROUP_V4, 255)),
    ));
    out.push((Verdict::Carp, admit(&carp(), group)));
    out.push((Verdict::Fragment, fragment()));
    out
}

fn not_link_local() -> Result<ChecksumForm, Verdict> {
    let src: Ipv6Addr = "2001:db8::1".parse().expect("addr");
    let vip: [Ipv6Addr; 1] = ["2001:db8::100".parse().expect("addr")];
    let r = Repr {
        version: Version::V3,
        vrid: 51,
        priority: 100,
        interval: Centis(100),
        auth: Auth::None,
        addrs: AddrList::V6(&vip),
    };
    let mut b = [0u8; 64];
    let tx = TxIp { src: IpAddr::V6(src), dst: IpAddr::V6(GROUP_V6), v3_checksum_as_v2: false };
    let n = r.emit(&mut b, &tx).expect("emit");
    let e = Envelope { src: IpAddr::V6(src), dst: IpAddr::V6(GROUP_V6), ttl: 255, in_ah: false };
    let own = [IpAddr::V6("fe80::2".parse().expect("addr"))];
    let expect =
        Expect { version: Version::V3, auth: Auth::None, interval: Centis(100), own: &own, peers: &[] };
    // An IPv6 instance for VRID 51: the source is judged only for a VRID
    // we serve.
    rx::admit(&b[..n], &e, |vrid, _| (vrid == 51).then_some(expect)).map(|(_, f)| f)
}

/// A CARP advert: version 2, type 1, vhid 1, advskew 0, authlen 7,
/// demote 0, advbase 1, checksum, 8-byte counter, 20-byte HMAC.
fn carp() -> Vec<u8> {
    let mut m = vec![0x21, 1, 0, 7, 0, 1, 0, 0];
    m.extend_from_slice(&[0x11; 28]);
    fix_checksum(&mut m);
    assert_eq!(m.len(), 36);
    m
}

fn fragment() -> Result<ChecksumForm, Verdict> {
    let msg = good();
    let mut pkt = vec![0u8; 20 + msg.len()];
    ip::emit_ipv4(&mut pkt, SRC, GROUP_V4, msg.len() as u16, 9).expect("fits");
    pkt[20..].copy_from_slice(&msg);
    pkt[6] |= 0x20; // More Fragments
    ip::parse(&pkt).map(|_| ChecksumForm::Plain)
}

/// An AH instance (VRID 51, key "secret") and the AH verdicts.
fn ah_cases() -> Vec<(Verdict, Result<ChecksumForm, Verdict>)> {
    use vrrp_common::wire::ah;
    let own = [IpAddr::V4(OWN)];
    let expect =
        Expect { version: Version::V2, auth: Auth::Ah, interval: Centis(100), own: &own, peers: &[] };
    let key = ah::key(b"secret");
    let repr = Repr {
        version: Version::V2,
        vrid: 51,
        priority: 100,
        interval: Centis(100),
        auth: Auth::Ah,
        addrs: AddrList::V4(&VIP),
    };
    let tx = TxIp { src: IpAddr::V4(SRC), dst: IpAddr::V4(GROUP_V4), v3_checksum_as_v2: false };
    let mut pkt = vec![0u8; 128];
    let n =
        ah::emit_ipv4(&mut pkt, SRC, GROUP_V4, 1, 7, &key, false, |b| repr.emit(b, &tx).ok()).expect("fits");
    pkt.truncate(n);
    let view = ah::split(&pkt).expect("structure").expect("vrrp inside");
    let in_ah = Envelope { src: IpAddr::V4(SRC), dst: IpAddr::V4(GROUP_V4), ttl: 255, in_ah: true };
    let mut out = Vec::new();
    // Structurally fine under AH for an AH instance; then authentic once,
    // a replay the second time, and a wrong key fails.
    let admitted = rx::admit(view.payload, &in_ah, |_, _| Some(expect)).map(|(_, f)| f);
    out.push((Verdict::Accepted, admitted));
    let mut counter = ah::SeqCounter::default();
    let mut icv = |k: &[u8; 8]| {
        ah::check(k, &view, &pkt[20..44], false, &mut counter)
            .map(|()| ChecksumForm::Plain)
            .map_err(ah::AhReject::verdict)
    };
    out.push((Verdict::Accepted, icv(&key)));
    out.push((Verdict::AhReplay, icv(&key)));
    out.push((Verdict::AuthFailure, icv(&ah::key(b"wrong"))));
    // An AH message for an instance without AH, and a plain one for an AH
    // instance: auth type mismatch both ways.
    out.push((Verdict::AuthTypeMismatch, admit(view.payload, in_ah)));
    let plain = v2(Auth::None, 100, SRC, GROUP_V4);
    out.push((
        Verdict::AuthTypeMismatch,
        rx::admit(&plain, &env(SRC, GROUP_V4, 255), |_, _| Some(expect)).map(|(_, f)| f),
    ));
    out
}

#[test]
fn each_packet_gets_its_verdict() {
    for (want, got) in cases() {
        match want {
            Verdict::Accepted => assert!(got.is_ok(), "baseline rejected: {got:?}"),
            _ => assert_eq!(got, Err(want), "packet built for {want:?}"),
        }
    }
}

/// Case 12 of issue 12: another VRRP daemon on the interface (keepalived
/// or FRR for other VRIDs) must keep hearing its master, so a packet for a
/// VRID no instance serves is passed up whatever else is wrong with it:
/// only what is invalid for an instance we serve is dropped.
#[test]
fn packets_for_a_vrid_we_do_not_serve_are_passed_whatever_they_carry() {
    let group = env(SRC, GROUP_V4, 255);
    let other = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut m = good();
        m[1] = 6;
        edit(&mut m);
        m
    };
    let broken: Vec<(&str, Vec<u8>, Envelope)> = vec![
        ("valid", other(&|m| fix_checksum(m)), group),
        ("too short", other(&|m| m.truncate(7)), group),
        ("bad version", other(&|m| m[0] = 0x41), group),
        ("bad type", other(&|m| m[0] = 0x22), group),
        ("bad checksum", other(&|m| m[7] ^= 1), group),
        ("length mismatch", other(&|m| m.extend_from_slice(&[0; 4])), group),
        ("auth AH", other(&|m| m[4] = 2), group),
        ("under AH", other(&|m| fix_checksum(m)), Envelope { in_ah: true, ..group }),
        ("wrong password", other(&|m| m[12] ^= 1), group),
        ("TTL 64", other(&|m| fix_checksum(m)), env(SRC, GROUP_V4, 64)),
        ("our own source", other(&|m| fix_checksum(m)), env(OWN, GROUP_V4, 255)),
        ("to a stranger", other(&|m| fix_checksum(m)), env(SRC, Ipv4Addr::new(192, 0, 2, 99), 255)),
    ];
    for (what, m, e) in broken {
        assert_eq!(admit(&m, e), Err(Verdict::UnknownVrid), "{what}, VRID 6");
    }
    assert!(Verdict::UnknownVrid.passes());
    assert!(Verdict::Carp.passes());
    // What is invalid for the instance we serve is still dropped.
    let mut m = good();
    m[0] = 0x22;
    assert_eq!(admit(&m, group), Err(Verdict::BadType));
    for v in Verdict::ALL {
        let passes =
            matches!(v, Verdict::Accepted | Verdict::Carp | Verdict::UnknownVrid | Verdict::AhToAgent);
        assert_eq!(v.passes(), passes, "{v:?}");
    }
}

#[test]
fn every_verdict_has_a_packet() {
    let covered: BTreeSet<Verdict> = cases().into_iter().map(|(v, _)| v).collect();
    // AuthAhUnsupported is retired (AH is supported); AhToAgent is the XDP
    // program's hand-over of an AH advert, tested in tests/xdp_datapath.rs.
    for v in
        Verdict::ALL.into_iter().filter(|v| !matches!(v, Verdict::AuthAhUnsupported | Verdict::AhToAgent))
    {
        assert!(covered.contains(&v), "no packet triggers {v:?}");
    }
}

#[test]
fn version_mismatch_with_the_instance_is_bad_version() {
    // A valid v3 advert at a v2 instance.
    let r = Repr {
        version: Version::V3,
        vrid: 51,
        priority: 100,
        interval: Centis(100),
        auth: Auth::None,
        addrs: AddrList::V4(&VIP),
    };
    let mut b = [0u8; 32];
    let tx = TxIp { src: IpAddr::V4(SRC), dst: IpAddr::V4(GROUP_V4), v3_checksum_as_v2: false };
    let n = r.emit(&mut b, &tx).expect("emit");
    assert_eq!(admit(&b[..n], env(SRC, GROUP_V4, 255)), Err(Verdict::BadVersion));
}

#[test]
fn v3_ipv4_checksum_forms_are_all_accepted_and_told_apart() {
    let r = Repr {
        version: Version::V3,
        vrid: 9,
        priority: 100,
        interval: Centis(100),
        auth: Auth::None,
        addrs: AddrList::V4(&VIP),
    };
    let own = [IpAddr::V4(OWN)];
    let peers = [IpAddr::V4(SRC)];
    let expect =
        Expect { version: Version::V3, auth: Auth::None, interval: Centis(100), own: &own, peers: &peers };
    let e = env(SRC, OWN, 255);
    let mut b = [0u8; 32];
    for (as_v2, want) in [(false, ChecksumForm::PseudoHeader), (true, ChecksumForm::Plain)] {
        let tx = TxIp { src: IpAddr::V4(SRC), dst: IpAddr::V4(OWN), v3_checksum_as_v2: as_v2 };
        let n = r.emit(&mut b, &tx).expect("emit");
        let (_, form) = rx::admit(&b[..n], &e, |_, _| Some(expect)).expect("admitted");
        assert_eq!(form, want);
    }
    // keepalived before 1.3.6: the group in the pseudo-header of a unicast advert.
    let tx = TxIp { src: IpAddr::V4(SRC), dst: IpAddr::V4(GROUP_V4), v3_checksum_as_v2: false };
    let n = r.emit(&mut b, &tx).expect("emit");
    let (_, form) = rx::admit(&b[..n], &e, |_, _| Some(expect)).expect("admitted");
    assert_eq!(form, ChecksumForm::PseudoHeaderGroup);
}

#[test]
fn unicast_adverts_from_a_peer_may_have_crossed_a_router() {
    let peers = [IpAddr::V4(SRC)];
    let unicast = v2(Auth::simple(b"secret"), 100, SRC, OWN);
    assert!(admit_with(&unicast, env(SRC, OWN, 64), &peers).is_ok());
    // To the group the rule stands.
    assert_eq!(admit_with(&good(), env(SRC, GROUP_V4, 64), &peers), Err(Verdict::BadTtl));
}
