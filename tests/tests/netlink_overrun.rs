//! The kernel drops netlink notifications when the agent's event socket
//! is full (ENOBUFS: netlink-proto's "netlink socket buffer full"). The
//! changes in them are lost, so the agent must read the kernel again
//! rather than go on with a stale picture. Here the master's event socket
//! is made tiny (the test-only `VRRP_AGENT_TEST_NETLINK_RCVBUF`) and the
//! master is frozen (SIGSTOP, run without its supervisor) while a burst of
//! unrelated address changes fills it and then the change that matters
//! happens: its VIP deleted by hand, or a tracked interface set down. That
//! change's notification is certainly lost; only the re-read can see it.

use std::time::Duration;

use anyhow::{Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::Segment;
use vrrp_tests::netns::unique;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::Process;

const VIP: &str = "192.0.2.141";
const ADDRS: [&str; 2] = ["192.0.2.22/24", "192.0.2.54/24"];
/// Master_Down_Interval of the backup (priority 100) at advert_int 1 s:
/// 3 × 1 s + (256 - 100) / 256 × 1 s. The master is frozen for far less
/// than that (a burst of `ip -batch`), so the backup never takes over
/// because of the freeze itself.
const MDI: Duration = Duration::from_micros(3_609_375);
/// Allowance for netlink, scheduling and polling on a busy machine.
const MARGIN: Duration = Duration::from_millis(1_500);
/// The kernel's floor for a receive buffer is a few KiB (SOCK_MIN_RCVBUF):
/// a handful of notifications.
const TINY: &str = "1";

fn conf(i: usize, track: &str) -> String {
    let (priority, me, peer) =
        if i == 1 { (150, "192.0.2.54", "192.0.2.22") } else { (100, "192.0.2.22", "192.0.2.54") };
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 58\n  priority {priority}\n  advert_int 1\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n{track}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// A pair, node 1 master with a tiny event socket and no supervisor (so
/// that freezing it is only a freeze); node 1 gets a veth `burst0` to
/// churn addresses on, and `trk0` (up) when `track`.
fn pair(seg: &Segment, track: bool) -> Result<(Process, Process)> {
    // veth pairs inside the node (no dummy module on every kernel).
    seg.nodes[1].ns.ip(&["link", "add", "burst0", "type", "veth", "peer", "name", "burst1"])?;
    seg.nodes[1].ns.ip(&["link", "set", "burst0", "up"])?;
    let t = if track {
        seg.nodes[1].ns.ip(&["link", "add", "trk0", "type", "veth", "peer", "name", "trk1"])?;
        seg.nodes[1].ns.ip(&["link", "set", "trk1", "up"])?;
        seg.nodes[1].ns.ip(&["link", "set", "trk0", "up"])?;
        "  track_interface {\n    trk0\n  }\n"
    } else {
        ""
    };
    let master = seg.agent_env(
        1,
        &conf(1, t),
        &unique("t"),
        &["--no-supervise"],
        &[("VRRP_AGENT_TEST_NETLINK_RCVBUF", TINY)],
    )?;
    let backup = seg.agent(0, &conf(0, ""), &[])?;
    seg.wait_holders(VIP, &[1], MDI * 2 + MARGIN)?;
    Ok((backup, master))
}

/// With the master frozen: 300 IPv6 addresses added and removed on
/// `burst0` (600 notifications, a hundred times what the tiny buffer
/// holds), then `last` (the change whose notification is lost), in one
/// `ip -batch`. The freeze must stay well inside the backup's
/// Master_Down_Interval (else the backup rightly takes over beside a
/// frozen master that still holds the VIP): it is checked.
fn burst_then(seg: &Segment, master: &Process, last: &str) -> Result<()> {
    let mut batch = String::new();
    for n in 0..300 {
        batch.push_str(&format!("addr add 2001:db8:5e::{n:x}/128 dev burst0 nodad\n"));
    }
    for n in 0..300 {
        batch.push_str(&format!("addr del 2001:db8:5e::{n:x}/128 dev burst0\n"));
    }
    batch.push_str(last);
    batch.push('\n');
    let path = seg.file(&format!("burst-{}.batch", unique("")), &batch)?;
    let t0 = std::time::Instant::now();
    master.signal(Signal::SIGSTOP)?;
    let done = seg.nodes[1].ns.ip(&["-batch", path.to_str().unwrap_or_default()]);
    master.signal(Signal::SIGCONT)?;
    let frozen = t0.elapsed();
    done?;
    eprintln!("master frozen for {frozen:?}");
    if frozen > MDI / 2 {
        bail!("the master was frozen for {frozen:?} (a loaded machine?): the backup may take over beside it");
    }
    Ok(())
}

#[test]
fn a_vip_deleted_while_events_are_lost_is_put_back() -> Result<()> {
    if !require_root("a_vip_deleted_while_events_are_lost_is_put_back") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, mut master) = pair(&seg, false)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    burst_then(&seg, &master, &format!("addr del {VIP}/24 dev eth0"))?;
    master.wait_for_line("dropped netlink events", Duration::from_secs(5))?;
    // Back on the master, well before the backup could take over.
    seg.wait_holders(VIP, &[1], Duration::from_secs(2))?;
    w.finish()?.assert_single_holder()?;
    Ok(())
}

#[test]
fn a_tracked_link_downed_while_events_are_lost_fails_the_master() -> Result<()> {
    if !require_root("a_tracked_link_downed_while_events_are_lost_fails_the_master") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, mut master) = pair(&seg, true)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    burst_then(&seg, &master, "link set trk0 down")?;
    master.wait_for_line("dropped netlink events", Duration::from_secs(5))?;
    // FAULT: the master gives the VIP up and the backup takes over.
    seg.wait_holders(VIP, &[0], MDI + MARGIN)?;
    master.wait_for_line("FAULT", Duration::from_secs(2))?;
    w.finish()?.assert_single_holder()?;
    Ok(())
}
