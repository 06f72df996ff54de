//! Restart without a failover: an agent MASTER restarted (SIGRTMIN+5, what
//! `vrrp-agent restart` sends: the supervisor executes the binary again)
//! over and over, with keepalived 2.2.7 as its backup. The backup never
//! leaves BACKUP (its log), the VIP never moves (HolderWatch), the backup
//! sends no gratuitous ARP (capture on its bridge port), and the master's
//! adverts never pause for as long as the backup's Master_Down_Interval.

use std::time::Duration;

use anyhow::{Context, Result};
use vrrp_tests::capture::{self, Capture};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::{Process, wait_until};

const VIP: &str = "192.0.2.140";
const VRID: u8 = 60;
const AGENT: [u8; 4] = [192, 0, 2, 1];
/// keepalived's priority: its Skew_Time is (256 - 100) / 256 intervals.
const BACKUP_PRIORITY: u64 = 100;

fn conf(priority: u8, advert_int: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {VRID}\n  \
         priority {priority}\n  advert_int {advert_int}\n  version 3\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// How the restart is asked for.
#[derive(Clone, Copy)]
enum How {
    /// SIGRTMIN+5 to the supervisor (what `systemctl kill -s` would send),
    /// which forwards it.
    SignalSupervisor,
    /// `vrrp-agent restart --name NAME` (to the worker).
    Command,
}

/// Restart the agent `restarts` times at `interval_ms` adverts; returns the
/// longest pause in its adverts, ms.
fn restarts(interval_ms: u64, advert_int: &str, restarts: usize, how: How) -> Result<u64> {
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let mut ka = seg.keepalived(1, &conf(BACKUP_PRIORITY as u8, advert_int))?;
    let name = netns::unique("rs");
    let mut agent = seg.agent_as(0, &conf(200, advert_int), &name, &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(10))?;
    wait_until(Duration::from_secs(5), || Ok(ka.lines().iter().any(|l| l.contains("Entering BACKUP"))))?;
    let ka_master_before = ka.count("Entering MASTER");
    let backup_mac = capture::mac(&seg.nodes[1].ns, "eth0")?;
    let vip: [u8; 4] = [192, 0, 2, 140];

    let cap_master = Capture::start(&seg.lan, "p0")?;
    let cap_backup = Capture::start(&seg.lan, "p1")?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    std::thread::sleep(Duration::from_millis(3 * interval_ms));
    let supervisor = nix::unistd::Pid::from_raw(i32::try_from(agent.pid())?);
    let handover = nix::libc::SIGRTMIN() + 5;
    for k in 1..=restarts {
        match how {
            How::SignalSupervisor => {
                // SAFETY: kill(2) with a pid and a valid signal number.
                let r = unsafe { nix::libc::kill(supervisor.as_raw(), handover) };
                anyhow::ensure!(r == 0, "signalling the agent");
            }
            How::Command => {
                let bin = agent_bin()?;
                let out = seg.nodes[0]
                    .ns
                    .command(&bin.to_string_lossy())
                    .args(["restart", "--name", &name])
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "vrrp-agent restart: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        wait_until(Duration::from_secs(10), || Ok(agent.count("Resuming MASTER STATE") >= k))
            .with_context(|| format!("restart {k}:\n{}", agent.lines().join("\n")))?;
        // A few adverts from the new process before the next restart.
        std::thread::sleep(Duration::from_millis(3 * interval_ms));
    }
    let seen = watch.finish()?;
    let master_frames = cap_master.stop();
    let backup_frames = cap_backup.stop();

    let log = agent.lines().join("\n");
    assert_eq!(agent.count("stopped for a restart"), restarts, "{log}");
    assert_eq!(agent.count("sent 0 priority"), 0, "no resignation:\n{log}");
    assert_eq!(
        ka.count("Entering MASTER"),
        ka_master_before,
        "keepalived left BACKUP:\n{}",
        ka.lines().join("\n")
    );
    let ads = capture::master_kept_it(&seen, &master_frames, &backup_frames, backup_mac, vip, AGENT, VRID)?;
    for w in ads.windows(2).filter(|w| (w[1] - w[0]) / 1_000_000 > interval_ms * 3 / 2) {
        eprintln!(
            "pause of {} ms from {}.{:06}",
            (w[1] - w[0]) / 1_000_000,
            w[0] / 1_000_000_000 % 100,
            w[0] / 1000 % 1_000_000
        );
    }
    let gap = ads.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).max().context("adverts")?;
    // The backup's Master_Down_Interval: 3 intervals and its Skew_Time.
    let down = 3 * interval_ms + (256 - BACKUP_PRIORITY) * interval_ms / 256;
    eprintln!(
        "{restarts} restarts at {interval_ms} ms adverts: longest advert gap {gap} ms (backup's Master_Down_Interval {down} ms)"
    );
    assert!(gap < down, "adverts paused {gap} ms, the backup's Master_Down_Interval is {down} ms");
    agent.stop(Duration::from_secs(5))?;
    ka.stop(Duration::from_secs(5))?;
    Ok(gap)
}

#[test]
fn restarting_a_master_at_100ms_adverts_ten_times_moves_nothing() -> Result<()> {
    if !require_root("restarting_a_master_at_100ms_adverts_ten_times_moves_nothing")
        || !require_tool("restarting_a_master_at_100ms_adverts_ten_times_moves_nothing", "keepalived")
    {
        return Ok(());
    }
    restarts(100, "0.1", 10, How::SignalSupervisor).map(|_| ())
}

#[test]
fn restarting_a_master_at_1s_adverts_moves_nothing() -> Result<()> {
    if !require_root("restarting_a_master_at_1s_adverts_moves_nothing")
        || !require_tool("restarting_a_master_at_1s_adverts_moves_nothing", "keepalived")
    {
        return Ok(());
    }
    restarts(1000, "1", 10, How::Command).map(|_| ())
}

/// A restart whose configuration changed the instance as the backups see
/// it (here its priority) is a normal start: the new process does not
/// resume, the VIPs the old one left go at once (before the backup's
/// Master_Down_Interval runs out), the backup takes over, and the agent
/// preempts it back. Never two holders beyond a preemption's handover.
#[test]
fn a_restart_with_a_changed_instance_starts_it_normally() -> Result<()> {
    let test = "a_restart_with_a_changed_instance_starts_it_normally";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _ka = seg.keepalived(1, &conf(BACKUP_PRIORITY as u8, "0.1"))?;
    let path = seg.file("changed.conf", &conf(200, "0.1"))?;
    let bin = agent_bin()?;
    let name = netns::unique("rc");
    seg.clean_cache_of(&name);
    let mut cmd = seg.nodes[0].ns.command(&bin.to_string_lossy());
    cmd.arg("run").arg("-f").arg(&path).args(["--name", &name]);
    let mut agent = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    agent.wait_for_line("Entering MASTER", Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(5))?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    std::fs::write(&path, conf(190, "0.1"))?;
    // SAFETY: kill(2) with a pid and a valid signal number.
    let r = unsafe { nix::libc::kill(i32::try_from(agent.pid())?, nix::libc::SIGRTMIN() + 5) };
    anyhow::ensure!(r == 0, "signalling the agent");
    agent.wait_for_line(
        "not resuming as MASTER: its configuration changed; starting normally",
        Duration::from_secs(10),
    )?;
    agent.wait_for_line("Entering BACKUP STATE (init)", Duration::from_secs(5))?;
    // The backup takes over, then the agent (190 > 100) preempts it.
    seg.wait_holders(VIP, &[0], Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(300));
    let seen = watch.finish()?;
    seen.assert_single_holder_but_handovers(Duration::from_millis(100))?;
    assert!(agent.count("Resuming MASTER STATE") == 0, "{}", agent.lines().join("\n"));
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// A resume record older than 2.5 x advert_int is not trusted (a backup may
/// already hold the VIP): the start is a normal one, and the addresses
/// the earlier run recorded are removed as after a crash.
#[test]
fn a_stale_resume_record_is_not_trusted() -> Result<()> {
    let test = "a_stale_resume_record_is_not_trusted";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let name = netns::unique("rt");
    seg.clean_cache_of(&name);
    let ifindex = seg.nodes[0].ns.ifindex("eth0")?;
    seg.nodes[0].ns.ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
    let dir = std::path::Path::new("/run/vrrp-agent");
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.vips")), format!("{ifindex} {VIP}/24\n"))?;
    // Written by a hitless stop long ago (CLOCK_MONOTONIC 1 µs).
    std::fs::write(
        dir.join(format!("{name}.resume")),
        format!("at 1\nmaster VI_1 eth0 {VRID} 4 3 200 10 {VIP}\n"),
    )?;
    let mut agent = seg.agent_as(0, &conf(200, "0.1"), &name, &[])?;
    let lines = agent.lines().join("\n");
    assert!(lines.contains("(VI_1) not resuming as MASTER: its last advert went out"), "{lines}");
    assert!(lines.contains("past the 250 ms limit; starting normally"), "{lines}");
    assert!(lines.contains(&format!("removed {VIP}/24, left by an earlier run")), "{lines}");
    assert!(lines.contains("Entering BACKUP STATE (init)"), "{lines}");
    assert!(!dir.join(format!("{name}.resume")).exists(), "the record is used once");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}
