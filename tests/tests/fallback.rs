//! The userspace receive path (raw sockets) on a real veth: the same
//! verdicts, peers and events as the XDP path for the same frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_agent::fallback::{Instance, Receiver};
use vrrp_common::maps::{EVENT_NEW_PEER, PeerEvent, PeerKey};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, Family, Repr, Version};
use vrrp_common::{Centis, Verdict};
use vrrp_tests::Netns;
use vrrp_tests::frame::{self, FrameSocket, V4};
use vrrp_tests::privilege::require_root;

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn ll(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n)
}

fn msg(version: Version, vrid: u8, priority: u8, auth: Auth, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let v4 = [Ipv4Addr::new(192, 0, 2, 100)];
    let v6 = [Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100)];
    let addrs = if src.is_ipv4() { AddrList::V4(&v4) } else { AddrList::V6(&v6) };
    let r = Repr { version, vrid, priority, interval: Centis(100), auth, addrs };
    let mut b = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut b, &TxIp { src, dst, v3_checksum_as_v2: false }).expect("valid");
    b.truncate(n);
    b
}

/// Send `frame`, then read the receiver until one more packet is counted;
/// check it was counted as `want`. Returns the event, if any.
fn expect(rx: &mut Receiver, tx: &FrameSocket, frame: &[u8], want: Verdict) -> Result<Option<PeerEvent>> {
    let total = |r: &Receiver| r.counters().values().sum::<u64>();
    let before = rx.counters().clone();
    let start = total(rx);
    tx.send(frame)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut event = None;
    while total(rx) == start {
        match rx.recv_one(1) {
            Ok(ev) => event = event.or(ev),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("nothing received for {want:?}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let key = (rx.ifindex(), want);
    assert_eq!(
        rx.counters().get(&key).copied().unwrap_or(0),
        before.get(&key).copied().unwrap_or(0) + 1,
        "wanted {want:?}, counters now {:?}",
        rx.counters()
    );
    Ok(event)
}

#[test]
fn raw_socket_path_gives_the_kernels_verdicts() -> Result<()> {
    if !require_root("raw_socket_path_gives_the_kernels_verdicts") {
        return Ok(());
    }
    let a = Netns::new("vfa")?;
    let b = Netns::new("vfb")?;
    a.veth_to("va0", &b, "vb0")?;
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "va0"])?;
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "vb0"])?;
    let (mut rx4, mut rx6) =
        b.run_in(|| Ok((Receiver::open("vb0", Family::V4)?, Receiver::open("vb0", Family::V6)?)))?;
    let secret = Auth::simple(b"secret");
    let inst = Instance {
        version: Version::V2,
        auth: secret,
        interval: Centis(100),
        own: vec![IpAddr::V4(B)],
        peers: vec![],
        ah: None,
    };
    rx4.add_instance(51, inst);
    rx6.add_instance(
        54,
        Instance {
            version: Version::V3,
            auth: Auth::None,
            interval: Centis(100),
            own: vec![IpAddr::V6(ll(2))],
            peers: vec![],
            ah: None,
        },
    );
    let tx = a.run_in(|| FrameSocket::open("va0"))?;
    let group = |ttl, m: &[u8]| {
        frame::ipv4(&V4 { src: A, dst: GROUP_V4, ttl, fragment: false, vlan: None, dst_mac: None }, m)
    };
    let good = msg(Version::V2, 51, 150, secret, IpAddr::V4(A), IpAddr::V4(GROUP_V4));

    let ev = expect(&mut rx4, &tx, &group(255, &good), Verdict::Accepted)?.expect("a new peer is an event");
    assert_eq!((ev.kind, ev.key), (EVENT_NEW_PEER, PeerKey::v4(rx4.ifindex(), 51, A.octets())));
    assert!(
        expect(&mut rx4, &tx, &group(255, &good), Verdict::Accepted)?.is_none(),
        "steady state: no event"
    );
    assert_eq!(rx4.peers().values().next().map(|p| p.adverts), Some(2));
    let wrong = msg(Version::V2, 51, 150, Auth::simple(b"wrong"), IpAddr::V4(A), IpAddr::V4(GROUP_V4));
    expect(&mut rx4, &tx, &group(255, &wrong), Verdict::AuthFailure)?;
    expect(&mut rx4, &tx, &group(254, &good), Verdict::BadTtl)?;
    let other = msg(Version::V2, 99, 150, secret, IpAddr::V4(A), IpAddr::V4(GROUP_V4));
    expect(&mut rx4, &tx, &group(255, &other), Verdict::UnknownVrid)?;

    // IPv6: destination and hop limit come from control messages.
    let v6 = msg(Version::V3, 54, 120, Auth::None, IpAddr::V6(ll(1)), IpAddr::V6(GROUP_V6));
    let ev = expect(&mut rx6, &tx, &frame::ipv6(ll(1), GROUP_V6, 255, None, &v6), Verdict::Accepted)?;
    assert_eq!(ev.map(|e| e.state.priority), Some(120));
    expect(&mut rx6, &tx, &frame::ipv6(ll(1), GROUP_V6, 64, None, &v6), Verdict::BadTtl)?;
    let global = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let from_global = msg(Version::V3, 54, 120, Auth::None, IpAddr::V6(global), IpAddr::V6(GROUP_V6));
    expect(&mut rx6, &tx, &frame::ipv6(global, GROUP_V6, 255, None, &from_global), Verdict::NotLinkLocal)?;
    drop((a, b));
    Ok(())
}
