//! Every parser in vrrp-common on arbitrary input: nothing may panic, and
//! whatever `Repr::parse` accepts must survive emit-then-parse unchanged.
//! Run: `cargo xtask fuzz` (see the README).
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp_common::Centis;
use vrrp_common::classify::{self, IpMeta};
use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::vrrp::{GROUP_V4, TxIp};
use vrrp_common::wire::{AddrList, Auth, ChecksumForm, Family, Packet, Repr, RxIp, Version, ip};

fuzz_target!(|data: &[u8]| {
    // Layout: flags (1) | src (16) | dst (16) | ttl (1) | message.
    let Some((head, msg)) = data.split_at_checked(34) else { return };
    let flags = head[0];
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&head[1..17]);
    b.copy_from_slice(&head[17..33]);
    let ttl = head[33];
    let v6 = flags & 1 != 0;
    let (src, dst) = if v6 {
        (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        let d = if flags & 2 != 0 { GROUP_V4 } else { Ipv4Addr::new(b[0], b[1], b[2], b[3]) };
        (IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), IpAddr::V4(d))
    };

    let _ = ip::parse(msg);
    let mut hdr = [0u8; 8];
    for (h, x) in hdr.iter_mut().zip(msg) {
        *h = *x;
    }
    let meta = IpMeta {
        family: if v6 { 6 } else { 4 },
        ttl,
        vrrp_len: msg.len() as u16,
        fragment: flags & 4 != 0,
        src: a,
        dst_multicast: dst.is_multicast(),
    };
    let kernel = classify::check_header(&hdr, &meta);

    let own = [dst];
    let expect =
        Expect { version: Version::V3, auth: Auth::None, interval: Centis(100), own: &own, peers: &[] };
    let _ = rx::admit(msg, &Envelope { src, dst, ttl }, |_, _| Some(expect));

    // Flag 8: repair the checksum first, so the fuzzer explores what lies
    // behind it (flag 16: in the v3-over-IPv4 form without pseudo-header).
    let mut owned = msg.to_vec();
    if flags & 8 != 0 && owned.len() >= 8 {
        let version = if owned[0] >> 4 == 2 { Version::V2 } else { Version::V3 };
        let tx = TxIp { src, dst, v3_checksum_as_v2: flags & 16 != 0 };
        Packet::new_unchecked(&mut owned[..]).fill_checksum(version, &tx);
    }
    let msg = &owned[..];
    let Ok(packet) = Packet::new_checked(msg) else { return };
    let rxip = RxIp { src, dst };
    let Ok((repr, form)) = Repr::parse(&packet, &rxip) else { return };

    // The kernel's header check accepts what the parser accepts (given
    // TTL 255, no fragment and an IPv6 link-local source, which are IP
    // envelope rules the parser does not see).
    if ttl == 255 && flags & 4 == 0 && (!v6 || rx::is_link_local_v6(&src)) {
        assert!(kernel.is_ok(), "kernel rejects {kernel:?} what the parser accepts: {repr:?}");
    }

    // Emit what was parsed, in the same checksum form, and parse again.
    let tx_dst = if form == ChecksumForm::PseudoHeaderGroup { IpAddr::V4(GROUP_V4) } else { dst };
    let tx = TxIp { src, dst: tx_dst, v3_checksum_as_v2: form == ChecksumForm::Plain };
    let addrs: Vec<IpAddr> = repr.addrs.iter().collect();
    let v4: Vec<Ipv4Addr> =
        addrs.iter().filter_map(|a| if let IpAddr::V4(a) = a { Some(*a) } else { None }).collect();
    let v6a: Vec<Ipv6Addr> =
        addrs.iter().filter_map(|a| if let IpAddr::V6(a) = a { Some(*a) } else { None }).collect();
    let list = if repr.addrs.family() == Family::V4 { AddrList::V4(&v4) } else { AddrList::V6(&v6a) };
    let fresh = Repr { addrs: list, ..repr };
    if repr.interval.0 == 0 {
        // Interval 0 parses (the state machine judges it) but is never sent.
        assert!(fresh.emit(&mut [0u8; 1100], &tx).is_err());
        return;
    }
    let mut out = [0u8; 1100];
    let n = fresh.emit(&mut out, &tx).expect("a parsed advert re-emits");
    let again = Packet::new_checked(&out[..n]).expect("header");
    let (back, _) = Repr::parse(&again, &rxip).expect("re-emitted advert parses");
    assert_eq!(back, repr);
});
