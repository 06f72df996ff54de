//! Another VRRP daemon on the agent's interface (issue 12, case 12): during
//! a migration keepalived (or FRR) runs other VRIDs on the same host and
//! interface as the agent. The agent's XDP program must pass their adverts
//! up the stack, or the other daemon's backup stops hearing its master and
//! becomes a second MASTER.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_common::Centis;
use vrrp_common::wire::vrrp::{GROUP_V4, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version};
use vrrp_tests::frame::{self, FrameSocket, V4};
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::{require_root, require_tool};

/// keepalived's VIP (VRID 6) and the agent's (VRID 5).
const KA_VIP: &str = "192.0.2.66";
const AGENT_VIP: &str = "192.0.2.55";

fn keepalived_conf(state: &str, priority: u8) -> String {
    format!(
        "vrrp_instance KA_6 {{\n  state {state}\n  interface eth0\n  virtual_router_id 6\n  priority {priority}\n  \
         advert_int 1\n  version 3\n  virtual_ipaddress {{\n    {KA_VIP}/24\n  }}\n}}\n"
    )
}

const AGENT_CONF: &str = "vrrp_instance VI_5 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 5\n  \
                          priority 100\n  advert_int 1\n  version 3\n  virtual_ipaddress {\n    192.0.2.55/24\n  \
                          }\n}\n";

/// Node 0: keepalived MASTER of VRID 6. Node 1: keepalived BACKUP of
/// VRID 6 and, on the same eth0, the agent (XDP) for VRID 5. For three
/// Master_Down_Intervals of VRID 6 (3.61 s each at 1 s adverts), only
/// node 0 may hold keepalived's VIP, and node 1's keepalived must never
/// enter MASTER; the agent meanwhile holds its own VIP, with its program
/// counting VRID 6's adverts as passed (`unknown_vrid`).
#[test]
fn keepalived_beside_the_agent_keeps_hearing_its_master() -> Result<()> {
    if !require_root("keepalived_beside_the_agent_keeps_hearing_its_master")
        || !require_tool("keepalived_beside_the_agent_keeps_hearing_its_master", "keepalived")
    {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _master = seg.keepalived(0, &keepalived_conf("MASTER", 200))?;
    let backup = seg.keepalived(1, &keepalived_conf("BACKUP", 100))?;
    // keepalived's own election first: its master holds VRID 6's VIP.
    seg.wait_holders(KA_VIP, &[0], Duration::from_secs(10))?;
    let (agent, name) = seg.agent_named(1, AGENT_CONF, &["--receive", "xdp"])?;
    assert!(
        agent.lines().iter().any(|l| l.contains("XDP program attached to eth0")),
        "the agent must run its XDP program on eth0: {:#?}",
        agent.lines()
    );
    // Alone on VRID 5, the agent becomes its master (Master_Down_Interval
    // at priority 100: 3.61 s).
    seg.wait_holders(AGENT_VIP, &[1], Duration::from_secs(8))?;
    let watch = Duration::from_millis(3 * 3610);
    let start = Instant::now();
    while start.elapsed() < watch {
        let h = seg.holders(KA_VIP)?;
        if h != [0] {
            bail!(
                "after {:?} with the agent beside it, keepalived's VIP is held by nodes {h:?}: \
                 node 1's keepalived stopped hearing its master\n{:#?}",
                start.elapsed(),
                backup.lines()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !backup.lines().iter().any(|l| l.contains("Entering MASTER STATE")),
        "node 1's keepalived became MASTER of VRID 6: {:#?}",
        backup.lines()
    );
    // The agent's program saw VRID 6's adverts and passed them
    // (unknown_vrid), accepted none of them.
    let passed = seg.verdict_count(1, &name, "unknown_vrid")?;
    assert!(passed >= 5, "VRID 6's adverts were not counted as passed: {passed}");
    Ok(())
}

/// The program is attached only once every instance's map entry is in
/// place: while a peer advertises VRID 5 as fast as a frame socket can
/// send, an agent starting for VRID 5 never takes one of them for
/// somebody else's (`unknown_vrid`). Before, the program was attached
/// first and configured after, and the adverts in between were counted
/// (and, since case 12, would have been passed up) as another daemon's.
#[test]
fn no_advert_is_taken_for_somebody_elses_at_start() -> Result<()> {
    if !require_root("no_advert_is_taken_for_somebody_elses_at_start") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let ((agent, name), sent) =
        flooding_vrid5(&seg, || seg.agent_named(1, AGENT_CONF, &["--receive", "xdp"]))?;
    let accepted = seg.verdict_count(1, &name, "accepted")?;
    let unknown = seg.verdict_count(1, &name, "unknown_vrid")?;
    eprintln!("sent {sent} adverts; accepted {accepted}, unknown_vrid {unknown}");
    assert!(accepted > 0, "the program saw none of the adverts: {:#?}", agent.lines());
    assert_eq!(unknown, 0, "adverts for VRID 5 taken for another daemon's while the agent started");
    Ok(())
}

/// The reproduction: FRR's vrrpd, BACKUP of VRID 6 on node 1's
/// eth0, beside the agent (XDP) for VRID 5 there; node 0 is VRID 6's
/// master (an agent, priority 200). FRR must stay Backup, still counting
/// adverts, for three Master_Down_Intervals after the agent started.
#[test]
fn frr_beside_the_agent_keeps_hearing_its_master() -> Result<()> {
    let test = "frr_beside_the_agent_keeps_hearing_its_master";
    if !require_root(test) || !require_tool(test, "vtysh") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let master_conf = "vrrp_instance VI_6 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 6\n  \
                       priority 200\n  advert_int 1\n  version 3\n  virtual_ipaddress {\n    192.0.2.66/24\n  \
                       }\n}\n";
    let _master = seg.agent(0, master_conf, &[])?;
    seg.wait_holders(KA_VIP, &[0], Duration::from_secs(8))?;

    // FRR on node 1 (see vrrp_tests::frr): a macvlan with VRID 6's
    // virtual MAC carries the VIP.
    let ns = &seg.nodes[1].ns;
    vrrp_tests::frr::macvlan(ns, "eth0", "vrrp6", 4, 6, &["192.0.2.66/24"])?;
    vrrp_tests::lab::exec(
        ns,
        &["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"],
    )?;
    let frr = vrrp_tests::frr::Frr::start(ns)?;
    frr.configure(
        "eth0",
        &[
            "vrrp 6 version 3",
            "vrrp 6 priority 100",
            "vrrp 6 advertisement-interval 1000",
            "vrrp 6 ip 192.0.2.66",
        ],
    )?;
    let frr_vrrp6 = |_: &vrrp_tests::Netns| frr.status(6, "v4");
    // FRR hears the master and settles as Backup.
    vrrp_tests::process::wait_until(Duration::from_secs(10), || {
        let (status, _, rx) = frr_vrrp6(ns)?;
        Ok(status == "Backup" && rx > 0)
    })?;
    let (_, transitions, rx0) = frr_vrrp6(ns)?;

    let _agent = seg.agent(1, AGENT_CONF, &["--receive", "xdp"])?;
    seg.wait_holders(AGENT_VIP, &[1], Duration::from_secs(8))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3 * 3610) {
        let (status, t, _) = frr_vrrp6(ns)?;
        if status != "Backup" || t != transitions {
            bail!("after {:?} beside the agent, FRR's VRID 6 is {status} ({t} transitions)", start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, _, rx) = frr_vrrp6(ns)?;
    assert!(rx >= rx0 + 10, "FRR stopped counting its master's adverts: {rx0} then {rx}");
    Ok(())
}

/// Run `start` (an agent's start on node 1) while node 0 sends valid VRID 5
/// adverts (priority 200) as fast as a frame socket can; what it returned
/// and how many adverts were sent.
fn flooding_vrid5<T>(seg: &Segment, start: impl FnOnce() -> Result<T>) -> Result<(T, u64)> {
    let vip = [Ipv4Addr::new(192, 0, 2, 55)];
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let r = Repr {
        version: Version::V3,
        vrid: 5,
        priority: 200,
        interval: Centis(100),
        auth: Auth::None,
        addrs: AddrList::V4(&vip),
    };
    let mut m = vec![0u8; r.buffer_len()];
    let n =
        r.emit(&mut m, &TxIp { src: IpAddr::V4(src), dst: IpAddr::V4(GROUP_V4), v3_checksum_as_v2: false })?;
    m.truncate(n);
    let f = frame::ipv4(&V4 { src, dst: GROUP_V4, ttl: 255, fragment: false, vlan: None, dst_mac: None }, &m);
    let tx = seg.nodes[0].ns.run_in(|| FrameSocket::open("eth0"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if tx.send(&f).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let started = start();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    Ok((started?, sent.load(Ordering::Relaxed)))
}

/// The same for `vrrp-agent watch` (the diagnostic receive path), which
/// also configures its VRIDs before attaching.
#[test]
fn watch_takes_no_advert_for_somebody_elses_at_start() -> Result<()> {
    if !require_root("watch_takes_no_advert_for_somebody_elses_at_start") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let name = vrrp_tests::netns::unique("w");
    let bin = vrrp_tests::lab::agent_bin()?;
    let (watch, sent) = flooding_vrid5(&seg, || {
        let mut cmd = seg.nodes[1].ns.command(&bin.to_string_lossy());
        cmd.args(["watch", "-i", "eth0", "--vrid", "5", "--version", "3", "--name", &name]);
        let mut p = vrrp_tests::process::Process::spawn("watch", &mut cmd, false)?;
        p.wait_for_line("maps pinned", Duration::from_secs(15))?;
        Ok(p)
    })?;
    let accepted = seg.verdict_count(1, &name, "accepted")?;
    let unknown = seg.verdict_count(1, &name, "unknown_vrid")?;
    eprintln!("sent {sent} adverts; accepted {accepted}, unknown_vrid {unknown}");
    assert!(accepted > 0, "the program saw none of the adverts: {:#?}", watch.lines());
    assert_eq!(unknown, 0, "adverts for VRID 5 taken for another daemon's while watch started");
    Ok(())
}
