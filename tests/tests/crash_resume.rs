//! A crashed agent recovers without a failover when it comes back in
//! time (issue 13): the master's worker SIGKILLed over and over, its
//! supervisor starting a new worker at once, which resumes from the live
//! record (`/run/vrrp-agent/<name>.live`); both processes SIGKILLed and the
//! agent started again as systemd would, within the window and after it;
//! and the crash-loop limit, past which the VIPs go before the backup can
//! take over. keepalived 2.2.7 is the backup; `HolderWatch` polls the VIP
//! on both nodes; both bridge ports are captured.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vrrp_tests::capture::{self, Capture};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::{Process, wait_until};

const VIP: &str = "192.0.2.141";
const VIP_OCTETS: [u8; 4] = [192, 0, 2, 141];
const VRID: u8 = 61;
const AGENT: [u8; 4] = [192, 0, 2, 1];

fn conf(priority: u8, advert_int: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {VRID}\n  \
         priority {priority}\n  advert_int {advert_int}\n  version 3\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// Every worker the supervisor started, in order.
fn workers(p: &Process) -> Vec<Pid> {
    p.lines()
        .iter()
        .filter_map(|l| l.split("supervising worker pid ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .collect()
}

/// RFC 5798 Master_Down_Interval of a v3 backup of `priority`, ms.
fn mdi_ms(interval_ms: u64, priority: u64) -> u64 {
    3 * interval_ms + (256 - priority) * interval_ms / 256
}

/// The master (node 0, the agent, priority 200) and keepalived as its
/// backup (node 1, `backup_priority`), both at `advert_int`.
struct Pair {
    seg: Segment,
    ka: Process,
    name: String,
    conf: String,
}

impl Pair {
    fn start(advert_int: &str, backup_priority: u8, extra: &[&str]) -> Result<(Pair, Process)> {
        let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
        let ka = seg.keepalived(1, &conf(backup_priority, advert_int))?;
        let name = netns::unique("cr");
        let agent = seg.agent_as(0, &conf(200, advert_int), &name, extra)?;
        seg.wait_holders(VIP, &[0], Duration::from_secs(10))?;
        wait_until(Duration::from_secs(5), || Ok(ka.lines().iter().any(|l| l.contains("Entering BACKUP"))))?;
        Ok((Pair { seg, ka, name, conf: conf(200, advert_int) }, agent))
    }

    /// Start the agent again as systemd would (`Restart=`), same name.
    fn again(&self) -> Result<Process> {
        let path = self.seg.file(&format!("{}.conf", netns::unique("again")), &self.conf)?;
        let bin = agent_bin()?;
        let mut cmd = self.seg.nodes[0].ns.command(&bin.to_string_lossy());
        cmd.arg("run").arg("-f").arg(&path).args(["--name", &self.name]);
        Process::spawn("agent-again", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())
    }
}

/// An agent killed whole (both processes) leaves its status file, live
/// record and pins behind by design (the next start of the name reads
/// them); the test's name is gone with the test, so they go too.
impl Drop for Pair {
    fn drop(&mut self) {
        for ext in ["json", "live", "vips", "resume", "lock", "data", "stats"] {
            let _ = std::fs::remove_file(format!("/run/vrrp-agent/{}.{ext}", self.name));
        }
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/vrrp-agent/{}", self.name));
    }
}

/// Both bridge ports captured and the VIP watched on both nodes.
struct Observe {
    master: Capture,
    backup: Capture,
    watch: HolderWatch,
    backup_mac: [u8; 6],
}

impl Observe {
    fn start(p: &Pair) -> Result<Observe> {
        Ok(Observe {
            master: Capture::start(&p.seg.lan, "p0")?,
            backup: Capture::start(&p.seg.lan, "p1")?,
            watch: HolderWatch::start(&[&p.seg.nodes[0].ns, &p.seg.nodes[1].ns], VIP)?,
            backup_mac: capture::mac(&p.seg.nodes[1].ns, "eth0")?,
        })
    }

    /// One holder throughout and it was the master all along, no
    /// gratuitous ARP from the backup, no priority-0 advert; returns the
    /// pauses in the master's adverts longer than 1.5 intervals and the
    /// longest pause, ms.
    fn finish(self, interval_ms: u64) -> Result<(Vec<u64>, u64)> {
        let seen = self.watch.finish()?;
        let master_frames = self.master.stop();
        let backup_frames = self.backup.stop();
        let ads = capture::master_kept_it(
            &seen,
            &master_frames,
            &backup_frames,
            self.backup_mac,
            VIP_OCTETS,
            AGENT,
            VRID,
        )?;
        let pauses: Vec<u64> = ads
            .windows(2)
            .map(|w| (w[1] - w[0]) / 1_000_000)
            .filter(|ms| *ms > interval_ms * 3 / 2)
            .collect();
        let gap = ads.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).max().context("adverts")?;
        Ok((pauses, gap))
    }
}

/// SIGKILL the master's worker `crashes` times; each time the supervisor
/// starts a new worker at once, which resumes as MASTER. Returns the
/// longest pause in the master's adverts, ms.
fn worker_crashes(interval_ms: u64, advert_int: &str, crashes: usize) -> Result<u64> {
    const BACKUP: u64 = 100;
    let (pair, mut agent) = Pair::start(advert_int, BACKUP as u8, &[])?;
    let ka_master_before = pair.ka.count("Entering MASTER");
    let obs = Observe::start(&pair)?;
    std::thread::sleep(Duration::from_millis(3 * interval_ms));
    let mut killed = Vec::new();
    for k in 1..=crashes {
        let worker = *workers(&agent).last().context("no worker")?;
        kill(worker, Signal::SIGKILL)?;
        killed.push(worker);
        wait_until(Duration::from_secs(10), || Ok(agent.count("Resuming MASTER STATE") >= k))
            .with_context(|| format!("crash {k}:\n{}", agent.lines().join("\n")))?;
        // Adverts from the new worker, and the supervisor's fence (due
        // 2 x advert_int after the death) lost to its claim.
        wait_until(Duration::from_secs(10), || Ok(agent.count("took over what worker pid") >= k))
            .with_context(|| format!("crash {k}:\n{}", agent.lines().join("\n")))?;
        std::thread::sleep(Duration::from_millis(3 * interval_ms));
    }
    let (pauses, gap) = obs.finish(interval_ms)?;
    let log = agent.lines().join("\n");
    for w in &killed {
        assert!(log.contains(&format!("resuming as MASTER after worker pid {w} died")), "{log}");
    }
    assert_eq!(agent.count("starting a new worker at once"), crashes, "{log}");
    assert_eq!(agent.count("sent 0 priority"), 0, "no resignation:\n{log}");
    assert_eq!(agent.count(": held by worker pid"), 0, "the supervisor removed a VIP:\n{log}");
    assert_eq!(
        pair.ka.count("Entering MASTER"),
        ka_master_before,
        "keepalived left BACKUP:\n{}",
        pair.ka.lines().join("\n")
    );
    let down = mdi_ms(interval_ms, BACKUP);
    eprintln!(
        "{crashes} worker crashes at {interval_ms} ms adverts: pauses {pauses:?} ms, longest advert gap {gap} ms (backup's Master_Down_Interval {down} ms)"
    );
    assert!(gap < down, "adverts paused {gap} ms, the backup's Master_Down_Interval is {down} ms");
    let status = agent.stop(Duration::from_secs(5))?;
    assert!(status.success(), "clean stop after the crashes: {status}");
    Ok(gap)
}

#[test]
fn a_master_whose_worker_is_killed_five_times_at_100ms_adverts_keeps_the_vip() -> Result<()> {
    let test = "a_master_whose_worker_is_killed_five_times_at_100ms_adverts_keeps_the_vip";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    worker_crashes(100, "0.1", 5).map(|_| ())
}

#[test]
fn a_master_whose_worker_is_killed_at_1s_adverts_keeps_the_vip() -> Result<()> {
    let test = "a_master_whose_worker_is_killed_at_1s_adverts_keeps_the_vip";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    worker_crashes(1000, "1", 3).map(|_| ())
}

/// Both processes killed at once, as `systemctl kill -s KILL` does: the
/// worker is frozen first (SIGSTOP), so that the supervisor's death (its
/// PR_SET_PDEATHSIG SIGTERM) cannot make it resign before its own SIGKILL.
fn kill_both(agent: &mut Process) -> Result<Pid> {
    let worker = *workers(agent).last().context("no worker")?;
    kill(worker, Signal::SIGSTOP)?;
    kill(Pid::from_raw(i32::try_from(agent.pid())?), Signal::SIGKILL)?;
    kill(worker, Signal::SIGKILL)?;
    wait_until(Duration::from_secs(5), || Ok(agent.try_wait()?.is_some()))?;
    // Reaped by whoever adopted it; its descriptors (the lock) are closed
    // once it is a zombie.
    wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(format!("/proc/{worker}/stat")).map_or(true, |s| s.contains(") Z")))
    })?;
    Ok(worker)
}

/// Within the window (1 s adverts, started again 100 ms after the kill,
/// systemd's RestartSec=100ms): the new agent resumes, nothing moves.
#[test]
fn an_agent_killed_whole_and_started_again_in_time_resumes_without_a_failover() -> Result<()> {
    let test = "an_agent_killed_whole_and_started_again_in_time_resumes_without_a_failover";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    const BACKUP: u64 = 100;
    let (pair, mut agent) = Pair::start("1", BACKUP as u8, &[])?;
    let ka_master_before = pair.ka.count("Entering MASTER");
    let obs = Observe::start(&pair)?;
    std::thread::sleep(Duration::from_millis(2500));
    let worker = kill_both(&mut agent)?;
    std::thread::sleep(Duration::from_millis(100));
    let mut again = pair.again()?;
    again.wait_for_line("Resuming MASTER STATE", Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(3000));
    let (pauses, gap) = obs.finish(1000)?;
    let log = again.lines().join("\n");
    assert!(log.contains(&format!("(VI_1) resuming as MASTER after worker pid {worker} died")), "{log}");
    assert_eq!(
        pair.ka.count("Entering MASTER"),
        ka_master_before,
        "keepalived left BACKUP:\n{}",
        pair.ka.lines().join("\n")
    );
    let down = mdi_ms(1000, BACKUP);
    eprintln!(
        "agent killed whole, started again 100 ms later: pauses {pauses:?} ms, longest advert gap {gap} ms (backup's Master_Down_Interval {down} ms)"
    );
    assert!(gap < down, "adverts paused {gap} ms, the backup's Master_Down_Interval is {down} ms");
    again.stop(Duration::from_secs(5))?;
    Ok(())
}

/// After the window (2 s adverts, started again 2.5 x advert_int after the
/// kill, so at least that long after the last advert): a normal start,
/// which removes the VIP the killed agent left before the backup (priority
/// 1: Master_Down_Interval 7.99 s after the last advert) takes over; the
/// agent then preempts back. One holder throughout, but for the
/// preemption's handover.
#[test]
fn an_agent_killed_whole_and_started_again_too_late_starts_normally_with_one_holder() -> Result<()> {
    let test = "an_agent_killed_whole_and_started_again_too_late_starts_normally_with_one_holder";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let (pair, mut agent) = Pair::start("2", 1, &[])?;
    let watch = HolderWatch::start(&[&pair.seg.nodes[0].ns, &pair.seg.nodes[1].ns], VIP)?;
    std::thread::sleep(Duration::from_millis(500));
    let worker = kill_both(&mut agent)?;
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(5000).saturating_sub(killed.elapsed()));
    let mut again = pair.again()?;
    again.wait_for_line("Entering BACKUP STATE (init)", Duration::from_secs(10))?;
    let log = again.lines().join("\n");
    assert!(
        log.contains(&format!(
            "(VI_1) not resuming as MASTER after worker pid {worker} died: its last advert went out"
        )),
        "{log}"
    );
    assert!(log.contains("past the 5000 ms limit"), "{log}");
    assert!(log.contains(&format!("removed {VIP}/24, left by an earlier run")), "{log}");
    // The backup takes over, then the agent (200 > 1) preempts it.
    wait_until(Duration::from_secs(15), || Ok(pair.ka.count("Entering MASTER") >= 1))?;
    pair.seg.wait_holders(VIP, &[0], Duration::from_secs(20))?;
    let seen = watch.finish()?;
    // The killed agent's VIP went before the backup took it.
    let left = seen.spans[0].first().context("node 0 never held the VIP")?.1;
    let taken = seen.spans[1].first().context("the backup never held the VIP")?.0;
    assert!(left < taken, "the killed agent's VIP stayed until {left:?}, the backup took it at {taken:?}");
    eprintln!(
        "too late: restarted {:?} after the kill; VIP off node 0 {:?} after the kill, on the backup {:?} after it",
        Duration::from_millis(5000),
        left.saturating_duration_since(killed),
        taken.saturating_duration_since(killed)
    );
    seen.assert_single_holder_but_handovers(Duration::from_millis(100))?;
    again.stop(Duration::from_secs(5))?;
    Ok(())
}

/// Past the crash-loop limit (here `--respawn-limit 1`: the second crash
/// within 60 s): no new worker; the supervisor removes the VIP before the
/// backup's Master_Down_Interval runs out and exits 128 + SIGKILL.
#[test]
fn past_the_crash_loop_limit_the_vip_goes_before_the_backup_takes_over() -> Result<()> {
    let test = "past_the_crash_loop_limit_the_vip_goes_before_the_backup_takes_over";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let (pair, mut agent) = Pair::start("0.1", 100, &["--respawn-limit", "1"])?;
    let first = *workers(&agent).last().context("no worker")?;
    kill(first, Signal::SIGKILL)?;
    agent.wait_for_line("Resuming MASTER STATE", Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(300));
    let second = *workers(&agent).last().context("no worker")?;
    assert_ne!(first, second);
    let watch = HolderWatch::start(&[&pair.seg.nodes[0].ns, &pair.seg.nodes[1].ns], VIP)?;
    let t0 = Instant::now();
    kill(second, Signal::SIGKILL)?;
    let status = loop {
        if let Some(s) = agent.try_wait()? {
            break s;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(10), "the supervisor did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    wait_until(Duration::from_secs(5), || Ok(pair.seg.holders(VIP)? == [1]))?;
    let seen = watch.finish()?;
    seen.assert_single_holder()?;
    let log = agent.lines().join("\n");
    assert_eq!(status.code(), Some(137), "the supervisor exits 128 + SIGKILL:\n{log}");
    assert!(log.contains(&format!("worker pid {second} was killed by SIGKILL: crash loop")), "{log}");
    assert!(log.contains(&format!("removed {VIP}/24: held by worker pid {second}")), "{log}");
    let gone = seen.spans[0].iter().map(|(_, last)| *last).max().context("node 0 never seen holding")?;
    let taken = seen.spans[1].iter().map(|(first, _)| *first).min().context("the backup never held it")?;
    eprintln!(
        "crash loop at 100 ms adverts: VIP last seen on the dead node {:?} after the kill, on the backup {:?} after it (Master_Down_Interval {} ms)",
        gone.saturating_duration_since(t0),
        taken.saturating_duration_since(t0),
        mdi_ms(100, 100)
    );
    Ok(())
}
