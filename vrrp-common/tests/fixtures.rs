//! Known-good adverts from real implementations (see
//! tests/fixtures/README.md): each parses to the expected fields and
//! re-emits byte for byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use vrrp_common::Centis;
use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::vrrp::TxIp;
use vrrp_common::wire::{Auth, ChecksumForm, Packet, Repr, RxIp, Version, ip};

struct Case {
    file: &'static str,
    version: Version,
    vrid: u8,
    priority: u8,
    interval: u16,
    auth: Auth,
    addrs: &'static [&'static str],
    form: ChecksumForm,
    /// keepalived builds the IPv4 header itself; compare it too.
    ip_header_is_ours: bool,
}

const CASES: &[Case] = &[
    Case {
        file: "v2-unicast-pass-ipv4",
        version: Version::V2,
        vrid: 55,
        priority: 150,
        interval: 100,
        auth: Auth::Simple(*b"e^Ho6HWa"),
        addrs: &["192.0.2.130"],
        form: ChecksumForm::Plain,
        ip_header_is_ours: true,
    },
    Case {
        file: "v2-multicast-none-ipv4",
        version: Version::V2,
        vrid: 7,
        priority: 200,
        interval: 200,
        auth: Auth::None,
        addrs: &["192.0.2.131", "192.0.2.132"],
        form: ChecksumForm::Plain,
        ip_header_is_ours: true,
    },
    Case {
        file: "v3-unicast-ipv4",
        version: Version::V3,
        vrid: 55,
        priority: 150,
        interval: 100,
        auth: Auth::None,
        addrs: &["192.0.2.130"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: true,
    },
    Case {
        file: "v3-multicast-ipv4",
        version: Version::V3,
        vrid: 3,
        priority: 254,
        interval: 10,
        auth: Auth::None,
        addrs: &["192.0.2.133"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: true,
    },
    Case {
        file: "v3-multicast-ipv6",
        version: Version::V3,
        vrid: 66,
        priority: 120,
        interval: 100,
        auth: Auth::None,
        addrs: &["2001:db8::130", "2001:db8::131"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: false,
    },
    Case {
        file: "v3-unicast-ipv6",
        version: Version::V3,
        vrid: 67,
        priority: 100,
        interval: 50,
        auth: Auth::None,
        addrs: &["2001:db8::140"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: false,
    },
    Case {
        file: "scapy-v2-pass-ipv4",
        version: Version::V2,
        vrid: 42,
        priority: 100,
        interval: 300,
        auth: Auth::Simple(*b"password"),
        addrs: &["198.51.100.1", "198.51.100.2"],
        form: ChecksumForm::Plain,
        ip_header_is_ours: false,
    },
    Case {
        file: "scapy-v3-ipv4",
        version: Version::V3,
        vrid: 9,
        priority: 255,
        interval: 5,
        auth: Auth::None,
        addrs: &["198.51.100.9"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: false,
    },
    Case {
        file: "scapy-v3-ipv6",
        version: Version::V3,
        vrid: 200,
        priority: 1,
        interval: 4095,
        auth: Auth::None,
        addrs: &["2001:db8::9", "2001:db8::10"],
        form: ChecksumForm::PseudoHeader,
        ip_header_is_ours: false,
    },
];

fn frames(file: &str) -> Vec<Vec<u8>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(format!("{file}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let out: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex")).collect()
        })
        .collect();
    assert!(!out.is_empty(), "{file} has no frames");
    out
}

/// Strip Ethernet (frames here have no VLAN tag).
fn l3(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

#[test]
fn fixtures_parse_to_expected_fields_and_re_emit_identically() {
    for case in CASES {
        for (n, frame) in frames(case.file).iter().enumerate() {
            let what = format!("{} frame {n}", case.file);
            let view = ip::parse(l3(frame)).unwrap_or_else(|v| panic!("{what}: IP {v:?}"));
            let rx = RxIp { src: view.src, dst: view.dst };
            let packet = Packet::new_checked(view.payload).expect("header");
            let (repr, form) = Repr::parse(&packet, &rx).unwrap_or_else(|v| panic!("{what}: {v:?}"));
            assert_eq!(repr.version, case.version, "{what}");
            assert_eq!(repr.vrid, case.vrid, "{what}");
            assert_eq!(repr.priority, case.priority, "{what}");
            assert_eq!(repr.interval, Centis(case.interval), "{what}");
            assert_eq!(repr.auth, case.auth, "{what}");
            let want: Vec<IpAddr> = case.addrs.iter().map(|a| a.parse().expect("addr")).collect();
            assert_eq!(repr.addrs.iter().collect::<Vec<_>>(), want, "{what}");
            assert_eq!(form, case.form, "{what}");

            // Re-emit from the parsed fields only.
            let v4: Vec<Ipv4Addr> =
                want.iter().filter_map(|a| if let IpAddr::V4(a) = a { Some(*a) } else { None }).collect();
            let v6: Vec<Ipv6Addr> =
                want.iter().filter_map(|a| if let IpAddr::V6(a) = a { Some(*a) } else { None }).collect();
            let addrs = if v6.is_empty() {
                vrrp_common::wire::AddrList::V4(&v4)
            } else {
                vrrp_common::wire::AddrList::V6(&v6)
            };
            let fresh = Repr { addrs, ..repr };
            let tx = TxIp { src: view.src, dst: view.dst, v3_checksum_as_v2: form == ChecksumForm::Plain };
            let mut buf = [0u8; 1100];
            let n_out = fresh.emit(&mut buf, &tx).unwrap_or_else(|e| panic!("{what}: emit {e}"));
            assert_eq!(&buf[..n_out], view.payload, "{what}: re-emitted VRRP bytes differ");

            if case.ip_header_is_ours {
                let (IpAddr::V4(s), IpAddr::V4(d)) = (view.src, view.dst) else { panic!("{what}: not v4") };
                let ident = u16::from_be_bytes([l3(frame)[4], l3(frame)[5]]);
                let mut h = [0u8; 20];
                ip::emit_ipv4(&mut h, s, d, n_out as u16, ident).expect("fits");
                assert_eq!(&h[..], &l3(frame)[..20], "{what}: IPv4 header differs");
            }
        }
    }
}

#[test]
fn keepalived_v3_unicast_ipv4_puts_the_peer_in_the_pseudo_header() {
    // keepalived 2.2.7 uses the real unicast destination, not 224.0.0.18
    // (the pre-1.3.6 form, still accepted as PseudoHeaderGroup).
    let frame = &frames("v3-unicast-ipv4")[0];
    let view = ip::parse(l3(frame)).expect("ip");
    assert_eq!(view.dst, "192.0.2.52".parse::<IpAddr>().expect("addr"));
    let packet = Packet::new_checked(view.payload).expect("header");
    let form = packet.verify_checksum(Version::V3, &RxIp { src: view.src, dst: view.dst });
    assert_eq!(form, Some(ChecksumForm::PseudoHeader));
    // The same message to a different unicast address does not verify.
    let other = RxIp { src: view.src, dst: "192.0.2.53".parse().expect("addr") };
    assert_eq!(packet.verify_checksum(Version::V3, &other), None);
}

#[test]
fn tutorial_backup_admits_the_tutorial_master() {
    // Node 2 of the reference tutorial (addresses moved to 192.0.2.0/24)
    // receiving node 1's adverts.
    let frame = &frames("v2-unicast-pass-ipv4")[0];
    let view = ip::parse(l3(frame)).expect("ip");
    let own = ["192.0.2.52".parse().expect("addr")];
    let peers = ["192.0.2.20".parse().expect("addr")];
    let env = Envelope { src: view.src, dst: view.dst, ttl: view.ttl, in_ah: false };
    let expect = Expect {
        version: Version::V2,
        auth: Auth::simple(b"e^Ho6HWa"),
        interval: Centis(100),
        own: &own,
        peers: &peers,
    };
    let (repr, _) =
        rx::admit(view.payload, &env, |vrid, _| (vrid == 55).then_some(expect)).expect("admitted");
    assert_eq!(repr.priority, 150);
}

#[test]
fn keepalived_ipv6_unicast_hop_limit_64_is_admitted_from_a_peer() {
    let frame = &frames("v3-unicast-ipv6")[0];
    let view = ip::parse(l3(frame)).expect("ip");
    assert_eq!(view.ttl, 64, "keepalived 2.2.7 sends IPv6 unicast adverts with hop limit 64");
    let own = [view.dst];
    let peers = [view.src];
    let env = Envelope { src: view.src, dst: view.dst, ttl: view.ttl, in_ah: false };
    let expect =
        Expect { version: Version::V3, auth: Auth::None, interval: Centis(100), own: &own, peers: &peers };
    assert!(rx::admit(view.payload, &env, |_, _| Some(expect)).is_ok());
}
