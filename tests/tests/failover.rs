//! Real agents (and real keepalived) in namespaces on a bridge: the
//! tutorial's two-node pair elects, fails over on a clean stop within
//! Skew_Time, on a crash within Master_Down_Interval, preempts back, and
//! interoperates with keepalived in both roles.

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, signal_worker};
use vrrp_tests::privilege::{require_root, require_tool};

const VIP: &str = "192.0.2.130";
/// Generous allowance for polling, netlink and scheduling on a busy CI
/// machine, on top of the protocol's own time.
const MARGIN: Duration = Duration::from_millis(600);

struct Conf<'a> {
    state: &'a str,
    priority: u8,
    me: &'a str,
    peers: &'a [&'a str],
    version: u8,
    advert_int: &'a str,
    auth: bool,
}

impl Conf<'_> {
    /// keepalived.conf text, as in the reference tutorial.
    fn text(&self) -> String {
        let mut s = format!(
            "vrrp_instance VI_1 {{\n  state {}\n  interface eth0\n  virtual_router_id 55\n  priority {}\n  advert_int {}\n  version {}\n",
            self.state, self.priority, self.advert_int, self.version
        );
        if !self.peers.is_empty() {
            s += &format!("  unicast_src_ip {}\n  unicast_peer {{\n", self.me);
            for p in self.peers {
                s += &format!("    {p}\n");
            }
            s += "  }\n";
        }
        if self.auth {
            s += "  authentication {\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }\n";
        }
        s += &format!("  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n");
        s
    }
}

fn node1() -> Conf<'static> {
    Conf {
        state: "MASTER",
        priority: 150,
        me: "192.0.2.20",
        peers: &["192.0.2.52"],
        version: 2,
        advert_int: "1",
        auth: true,
    }
}

fn node2() -> Conf<'static> {
    Conf {
        state: "BACKUP",
        priority: 100,
        me: "192.0.2.52",
        peers: &["192.0.2.20"],
        version: 2,
        advert_int: "1",
        auth: true,
    }
}

/// Skew_Time and Master_Down_Interval for a priority at 1 s (v2).
fn v2_times(priority: u64) -> (Duration, Duration) {
    let skew = Duration::from_micros((256 - priority) * 1_000_000 / 256);
    (skew, Duration::from_secs(3) + skew)
}

fn pair() -> Result<Segment> {
    Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])
}

#[test]
fn tutorial_pair_elects_fails_over_on_stop_and_preempts_back() -> Result<()> {
    if !require_root("tutorial_pair_elects_fails_over_on_stop_and_preempts_back") {
        return Ok(());
    }
    let seg = pair()?;
    let mut a = seg.agent(0, &node1().text(), &[])?;
    let b = seg.agent(1, &node2().text(), &[])?;
    let (_, mdi1) = v2_times(150);
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;

    // Clean stop: node 1 resigns with priority 0; node 2 takes over after
    // its Skew_Time (RFC 5798 6.4.2).
    a.signal(Signal::SIGTERM)?;
    let (skew2, _) = v2_times(100);
    let took = seg.wait_holders(VIP, &[1], skew2 + MARGIN)?;
    let status = a.stop(Duration::from_secs(5))?;
    assert!(status.success(), "agent exit: {status}");
    eprintln!("graceful failover: {took:?} (Skew_Time {skew2:?})");
    assert!(a.lines().iter().any(|l| l.contains("(VI_1) sent 0 priority")));

    // Node 1 comes back with the higher priority and preempts.
    let a2 = seg.agent(0, &node1().text(), &[])?;
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    assert!(
        b.lines().iter().any(|l| l
            .contains("(VI_1) Master received advert from 192.0.2.20 with higher priority 150, ours 100")),
        "{:#?}",
        b.lines()
    );
    drop((a2, b));
    Ok(())
}

#[test]
fn a_killed_master_is_replaced_within_master_down_interval() -> Result<()> {
    if !require_root("a_killed_master_is_replaced_within_master_down_interval") {
        return Ok(());
    }
    let seg = pair()?;
    // Without the supervisor (which removes a killed worker's VIPs itself,
    // see tests/tests/supervise.rs), so the next run's clean-up is tested.
    let (a, name) = seg.agent_named(0, &node1().text(), &["--no-supervise"])?;
    let _b = seg.agent(1, &node2().text(), &[])?;
    let (_, mdi1) = v2_times(150);
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    a.signal(Signal::SIGKILL)?;
    // A killed agent cannot remove its VIP (keepalived's neither): node 1
    // keeps a stale copy; what matters is that node 2 takes over.
    let (_, mdi2) = v2_times(100);
    let took = seg.wait_holders(VIP, &[0, 1], mdi2 + MARGIN)?;
    eprintln!("crash failover: {took:?} (Master_Down_Interval {mdi2:?})");
    drop(a);
    // The next run of that agent takes the stale copy back at once, before
    // it even starts its election.
    let again = seg.agent_as(0, &node1().text(), &name, &[])?;
    assert!(
        again.lines().iter().any(|l| l.contains("removed 192.0.2.130/24, left by an earlier run")),
        "{:#?}",
        again.lines()
    );
    assert_eq!(seg.holders(VIP)?, vec![1]);
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    Ok(())
}

#[test]
fn a_stopped_backup_agent_does_not_take_over_when_it_resumes() -> Result<()> {
    if !require_root("a_stopped_backup_agent_does_not_take_over_when_it_resumes") {
        return Ok(());
    }
    let seg = pair()?;
    let fast = |c: Conf<'static>| Conf { version: 3, advert_int: "0.1", auth: false, ..c };
    let _a = seg.agent(0, &fast(node1()).text(), &[])?;
    let b = seg.agent(1, &fast(node2()).text(), &[])?;
    // v3 at 100 ms: Master_Down_Interval of node 2 is 300 + 60.9 ms.
    let mdi2 = Duration::from_micros(300_000 + 156 * 100_000 / 256);
    seg.wait_holders(VIP, &[0], Duration::from_secs(1) + MARGIN)?;
    // The worker: stopping its supervisor would stop nothing that matters.
    signal_worker(&b, Signal::SIGSTOP)?;
    std::thread::sleep(mdi2 * 5);
    signal_worker(&b, Signal::SIGCONT)?;
    // Watch for three Master_Down_Intervals after it resumes: its late
    // timer must find the master's fresh last-seen time in the kernel.
    let deadline = std::time::Instant::now() + mdi2 * 3;
    while std::time::Instant::now() < deadline {
        assert_eq!(seg.holders(VIP)?, vec![0], "the backup took the VIP after SIGCONT");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!b.lines().iter().any(|l| l.contains("Entering MASTER")), "{:#?}", b.lines());
    Ok(())
}

#[test]
fn three_nodes_multicast_elect_the_highest_and_hand_over_to_the_next() -> Result<()> {
    if !require_root("three_nodes_multicast_elect_the_highest_and_hand_over_to_the_next") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24", "192.0.2.53/24"])?;
    let conf = |priority, me| Conf {
        state: "BACKUP",
        priority,
        me,
        peers: &[],
        version: 3,
        advert_int: "0.1",
        auth: false,
    };
    let mut a = seg.agent(0, &conf(150, "192.0.2.20").text(), &[])?;
    let _b = seg.agent(1, &conf(101, "192.0.2.52").text(), &[])?;
    let _c = seg.agent(2, &conf(102, "192.0.2.53").text(), &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(1) + MARGIN)?;
    a.signal(Signal::SIGTERM)?;
    // The higher of the two backups (102) wins: its Skew_Time is shorter.
    seg.wait_holders(VIP, &[2], Duration::from_millis(100) + MARGIN)?;
    a.stop(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn keepalived_master_with_agent_backup_and_the_other_way_round() -> Result<()> {
    let name = "keepalived_master_with_agent_backup_and_the_other_way_round";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let (_, mdi1) = v2_times(150);
    let (skew2, _) = v2_times(100);

    // keepalived as master, the agent as backup.
    let seg = pair()?;
    let mut ka = seg.keepalived(0, &node1().text())?;
    let agent = seg.agent(1, &node2().text(), &[])?;
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    // The agent hears keepalived's adverts: it stays backup.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP)?, vec![0]);
    assert!(!agent.lines().iter().any(|l| l.contains("Entering MASTER")), "{:#?}", agent.lines());
    ka.stop(Duration::from_secs(10))?;
    let took = seg.wait_holders(VIP, &[1], skew2 + MARGIN)?;
    eprintln!("keepalived -> agent: {took:?}");
    drop((ka, agent, seg));

    // The agent as master, keepalived as backup.
    let seg = pair()?;
    let mut agent = seg.agent(0, &node1().text(), &[])?;
    let ka = seg.keepalived(1, &node2().text())?;
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP)?, vec![0]);
    assert!(
        !ka.lines().iter().any(|l| l.contains("Entering MASTER")),
        "keepalived took over: {:#?}",
        ka.lines()
    );
    agent.signal(Signal::SIGTERM)?;
    let took = seg.wait_holders(VIP, &[1], skew2 + MARGIN)?;
    agent.stop(Duration::from_secs(5))?;
    eprintln!("agent -> keepalived: {took:?}");
    Ok(())
}

#[test]
fn keepalived_interop_vrrpv3_multicast() -> Result<()> {
    let name = "keepalived_interop_vrrpv3_multicast";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let v3 = |c: Conf<'static>| Conf { version: 3, peers: &[], auth: false, ..c };
    let seg = pair()?;
    let mut ka = seg.keepalived(0, &v3(node1()).text())?;
    let agent = seg.agent(1, &v3(node2()).text(), &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(4) + MARGIN)?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP)?, vec![0], "{:#?}", agent.lines());
    ka.stop(Duration::from_secs(10))?;
    // v3 Skew_Time at 1 s is (256 - 100) / 256 s, as v2's.
    let (skew2, _) = v2_times(100);
    seg.wait_holders(VIP, &[1], skew2 + MARGIN)?;
    Ok(())
}

#[test]
fn the_raw_socket_receive_path_runs_the_same_pair() -> Result<()> {
    if !require_root("the_raw_socket_receive_path_runs_the_same_pair") {
        return Ok(());
    }
    let seg = pair()?;
    let sockets = ["--receive", "socket"];
    let mut a = seg.agent(0, &node1().text(), &sockets)?;
    let b = seg.agent(1, &node2().text(), &sockets)?;
    assert!(a.lines().iter().any(|l| l.contains("receiving on a raw socket on eth0")), "{:#?}", a.lines());
    let (_, mdi1) = v2_times(150);
    seg.wait_holders(VIP, &[0], mdi1 + MARGIN)?;
    a.signal(Signal::SIGTERM)?;
    let (skew2, _) = v2_times(100);
    seg.wait_holders(VIP, &[1], skew2 + MARGIN)?;
    a.stop(Duration::from_secs(5))?;
    drop(b);
    Ok(())
}

#[test]
fn an_ipv6_pair_elects_and_fails_over() -> Result<()> {
    if !require_root("an_ipv6_pair_elects_and_fails_over") {
        return Ok(());
    }
    let seg = Segment::new(&["2001:db8::20/64", "2001:db8::52/64"])?;
    seg.wait_ipv6_ready()?;
    let conf = |priority: u8| {
        format!(
            "vrrp_instance VI_6 {{\n  interface eth0\n  virtual_router_id 66\n  priority {priority}\n  advert_int 0.1\n  version 3\n  virtual_ipaddress {{\n    2001:db8::130/64\n  }}\n}}\n"
        )
    };
    let mut a = seg.agent(0, &conf(150), &[])?;
    let b = seg.agent(1, &conf(100), &[])?;
    seg.wait_holders("2001:db8::130", &[0], Duration::from_secs(1) + MARGIN)?;
    assert!(
        a.lines()
            .iter()
            .any(|l| l
                .contains("Sending/queueing unsolicited neighbour advertisements on eth0 for 2001:db8::130")),
        "{:#?}",
        a.lines()
    );
    a.signal(Signal::SIGTERM)?;
    // v3 at 100 ms: Skew_Time of priority 100 is 156 * 100 / 256 ms.
    seg.wait_holders("2001:db8::130", &[1], Duration::from_micros(156 * 100_000 / 256) + MARGIN)?;
    a.stop(Duration::from_secs(5))?;
    drop(b);
    Ok(())
}
