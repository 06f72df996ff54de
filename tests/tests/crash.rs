//! A killed agent (SIGKILL of the worker) cannot tear anything down: its XDP link is
//! pinned, so the program stays attached (no teardown competing for the
//! kernel's RTNL lock while a backup takes over), fails open once its alive
//! deadline passes, and the next agent of the same name replaces it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, icmp_unreachables_sent, signal_worker, worker_pid};
use vrrp_tests::netns;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.130";

fn conf(priority: u8, me: &str, peer: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 0.1\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn has_xdp(seg: &Segment, i: usize) -> Result<bool> {
    let out = seg.nodes[i].ns.ip(&["link", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("prog/xdp"))
}

#[test]
fn a_killed_agents_program_stays_fails_open_and_is_replaced() -> Result<()> {
    if !require_root("a_killed_agents_program_stays_fails_open_and_is_replaced") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let name = netns::unique("crash");
    let pins = PinDir(PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name));
    // Node 1 (priority 150) is master and sends unicast adverts to node 0,
    // whose agent (priority 100) is the backup.
    let _master = seg.agent(1, &conf(150, "192.0.2.52", "192.0.2.20"), &[])?;
    // Not started again after the kill (--respawn-limit 0): the program
    // is left to itself, as when systemd restarts the whole agent.
    let backup = seg.agent_as(0, &conf(100, "192.0.2.20", "192.0.2.52"), &name, &["--respawn-limit", "0"])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(5))?;
    assert!(pins.0.join("link_eth0").exists(), "the XDP link is pinned");

    // Consumed: no protocol-unreachable for the master's unicast adverts.
    let before = icmp_unreachables_sent(&seg.nodes[0].ns)?;
    // The worker, not its supervisor: a killed supervisor makes the worker
    // resign and detach cleanly (PR_SET_PDEATHSIG), which is not a crash.
    let worker = worker_pid(&backup)?;
    signal_worker(&backup, Signal::SIGKILL)?;
    let killed = Instant::now();
    // A backup holds no VIP: its supervisor has nothing to remove and exits
    // at once with 128 + SIGKILL; the program is left to itself.
    let mut backup = backup;
    backup.wait_for_line(
        &format!("worker pid {worker} was killed by SIGKILL; it held no VIP"),
        Duration::from_secs(5),
    )?;
    assert_eq!(backup.stop(Duration::from_secs(5))?.code(), Some(137), "the supervisor exits 128 + SIGKILL");
    drop(backup);
    assert!(has_xdp(&seg, 0)?, "the program stays attached after SIGKILL");
    // The agent had moved its alive deadline (5 s ahead) at most 2 s before
    // it died: the program fails open 3-5 s after the kill, not before.
    wait_until(Duration::from_secs(8), || Ok(icmp_unreachables_sent(&seg.nodes[0].ns)? > before))?;
    let open_after = killed.elapsed();
    if open_after < Duration::from_millis(2_900) {
        bail!("the program failed open {open_after:?} after the kill, before its alive deadline");
    }
    assert!(open_after < Duration::from_secs(6), "failed open only after {open_after:?}");
    assert!(seg.holds(1, VIP)?, "the master kept the VIP");

    // The next agent of the same name removes the stale link and attaches.
    let mut again = seg.agent_as(0, &conf(100, "192.0.2.20", "192.0.2.52"), &name, &[])?;
    assert!(
        again.lines().iter().any(|l| l.contains("removed the stale XDP link")),
        "the restart says it removed the stale link"
    );
    // Consumed again: the counter stops.
    std::thread::sleep(Duration::from_millis(300));
    let resumed = icmp_unreachables_sent(&seg.nodes[0].ns)?;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        icmp_unreachables_sent(&seg.nodes[0].ns)?,
        resumed,
        "adverts consumed again after the restart"
    );
    seg.wait_holders(VIP, &[1], Duration::from_secs(2))?;

    // A clean stop detaches and leaves no pin but the verified-program
    // cache (vrrp-agent/src/datapath/cache.rs).
    let status = again.stop(Duration::from_secs(5))?;
    assert!(status.success(), "agent exit: {status}");
    assert!(!has_xdp(&seg, 0)?, "detached on a clean stop");
    let left: Vec<String> = std::fs::read_dir(&pins.0)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| n == "cache"), "pins left after a clean stop: {left:?}");
    Ok(())
}

/// A backup that takes over from a killed master records the takeover step
/// by step in its status file (`last_takeover`): the kernel's watch (the
/// last advert that held it down, its warning a little before
/// Master_Down_Interval ends), its own wake-up, its wait for the
/// interval's end (never MASTER sooner), the state change, the first advert, the VIP's
/// netlink add and the first gratuitous ARP, in that order, on the clock
/// of the XDP program (CLOCK_MONOTONIC), so that a slow failover can be
/// placed (`cargo xtask bench` splits each crash run by them).
#[test]
fn a_backup_records_its_takeover_step_by_step() -> Result<()> {
    if !require_root("a_backup_records_its_takeover_step_by_step") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let master_name = netns::unique("crash");
    let _pins = PinDir(PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&master_name));
    // Not started again: its backup must take over.
    let master =
        seg.agent_as(1, &conf(150, "192.0.2.52", "192.0.2.20"), &master_name, &["--respawn-limit", "0"])?;
    let (_backup, name) = seg.agent_named(0, &conf(100, "192.0.2.20", "192.0.2.52"), &[])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(5))?;
    let takeover = || -> Result<Option<serde_json::Value>> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("/run/vrrp-agent/{name}.json"))?)?;
        Ok(v["instances"][0].get("last_takeover").cloned())
    };
    assert_eq!(takeover()?, None, "no takeover recorded before the first");

    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    // Its supervisor removes the killed worker's VIP; the backup hears
    // nothing more and its kernel watch fires.
    signal_worker(&master, Signal::SIGKILL)?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(3))?;
    let mut t = None;
    wait_until(Duration::from_secs(3), || {
        t = takeover()?;
        Ok(t.as_ref().is_some_and(|t| t.get("announce_ns").is_some()))
    })?;
    watch.finish()?.assert_single_holder()?;
    let t = t.context("last_takeover")?;
    assert_eq!(t["seq"], 1, "{t}");
    let ns = |k: &str| t[k].as_u64().with_context(|| format!("{k} in {t}"));
    // v3 at 100 ms, priority 100: 300 ms + 156/256 × 100 ms, the skew
    // in whole µs as keepalived computes it (VRRP_TIMER_SKEW).
    let mdi = 300_000_000 + (156 * 100_000 / 256) * 1_000;
    let (hold, fired) = (ns("watch_hold_ns")?, ns("watch_fired_ns")?);
    // The watch warns its lead (2 ms here) before the interval ends.
    let lead = vrrp_common::classify::watch_lead_ns(mdi);
    assert!(
        fired >= hold + mdi - lead - 1_000 && fired < hold + mdi + 200_000_000,
        "the kernel's warning fired {} ns after the last holding advert, Master_Down_Interval is {mdi} ns, its lead {lead} ns",
        fired - hold
    );
    // RFC 5798 6.4.2: master only once Master_Down_Interval has passed
    // without an advert; the early warning must not make it sooner.
    assert!(
        ns("state_ns")? >= hold + mdi,
        "MASTER {} ns after the last holding advert, before Master_Down_Interval ({mdi} ns): {t}",
        ns("state_ns")? - hold
    );
    // Warned early, it waited for the deadline itself, awake.
    let due = ns("due_ns")?;
    assert!(due >= hold + mdi, "waited for {due}, before the deadline {}: {t}", hold + mdi);
    eprintln!("takeover record: {t}");
    assert!(ns("heard_ns")? >= hold, "the peer table's last advert is the watch's or later: {t}");
    let order = ["watch_fired_ns", "woke_ns", "state_ns", "advert_ns", "vips_ns", "announce_ns"];
    for w in order.windows(2) {
        assert!(ns(w[0])? <= ns(w[1])?, "{} after {}: {t}", w[0], w[1]);
    }
    Ok(())
}

/// Removes what a failed run left in bpffs (unpinning detaches).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
