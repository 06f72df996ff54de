//! The supervisor (`vrrp-agent run` without `--no-supervise`): a worker
//! killed or stopped loses its VIPs before the backup takes over, so at
//! no moment do two nodes hold the VIP; a killed supervisor makes the
//! worker resign.
//!
//! Each node's addresses are polled about every millisecond from a thread
//! in its namespace; the single-holder rule fails the test if the backup
//! was seen holding the VIP at or before the last poll that saw it on the
//! old master.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nix::sys::signal::{Signal, kill};
use vrrp_tests::lab::{Segment, signal_worker, worker_pid};
use vrrp_tests::netns::{self, Netns};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.140";
/// Slack for a loaded machine on top of the protocol's times.
const MARGIN: Duration = Duration::from_secs(2);

fn conf(priority: u8, me: &str, peer: &str, advert_int: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 56\n  priority {priority}\n  advert_int {advert_int}\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn master_conf(advert_int: &str) -> String {
    conf(150, "192.0.2.20", "192.0.2.52", advert_int)
}

fn backup_conf(advert_int: &str) -> String {
    conf(100, "192.0.2.52", "192.0.2.20", advert_int)
}

/// RFC 5798 Master_Down_Interval of a v3 router of `priority` at `adv`.
fn mdi(adv: Duration, priority: u32) -> Duration {
    adv * 3 + adv * (256 - priority) / 256
}

/// What the pollers saw, from the event at `t0`.
struct Watch {
    /// Node 0 (the old master) no longer holds the VIP.
    gone: Duration,
    /// Node 1 (the backup) holds it.
    taken: Duration,
    /// Longest time between two polls of one node.
    max_poll: Duration,
}

/// One node's view: every poll's time and answer, from a thread inside its
/// namespace reading the addresses (getifaddrs: a netlink dump, as `ip
/// addr` does, but without starting a process, so a poll takes well under
/// a millisecond).
struct Poller {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<(Instant, bool)>>>,
}

impl Poller {
    /// Poll node `ns` for the VIP; `seen` is raised once a poll gives `want`.
    fn start(ns: &Netns, want: bool) -> Result<Poller> {
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicBool::new(false));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let vip: IpAddr = VIP.parse()?;
        let thread = std::thread::spawn(move || -> Result<Vec<(Instant, bool)>> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let mut polls = Vec::with_capacity(1 << 16);
            while !stop2.load(Ordering::Relaxed) {
                let holds = nix::ifaddrs::getifaddrs()?.any(|a| {
                    a.interface_name == "eth0"
                        && a.address
                            .and_then(|s| s.as_sockaddr_in().map(|i| IpAddr::V4(i.ip())))
                            .is_some_and(|ip| ip == vip)
                });
                polls.push((Instant::now(), holds));
                if holds == want {
                    seen2.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(polls)
        });
        Ok(Poller { stop, seen, thread })
    }

    fn finish(self) -> Result<Vec<(Instant, bool)>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("poller panicked"))?
    }
}

/// Pollers on node 0 (holding the VIP) and node 1 (not holding it), to be
/// started before the event.
fn watch_start(seg: &Segment) -> Result<(Poller, Poller)> {
    let (a, b) = (Poller::start(&seg.nodes[0].ns, false)?, Poller::start(&seg.nodes[1].ns, true)?);
    Ok((a, b))
}

/// Wait until node 0 has let go of the VIP and node 1 holds it; fail if,
/// at any poll, both held it: node 1 seen holding it at or before the
/// last time node 0 was seen holding it (node 1 keeps it once it has it).
fn watch_handover(pollers: (Poller, Poller), t0: Instant, limit: Duration) -> Result<Watch> {
    let (a, b) = pollers;
    let waited = wait_until(limit, || Ok(a.seen.load(Ordering::Relaxed) && b.seen.load(Ordering::Relaxed)));
    let (pa, pb) = (a.finish()?, b.finish()?);
    waited?;
    let max_poll =
        [&pa, &pb].iter().flat_map(|p| p.windows(2).map(|w| w[1].0 - w[0].0)).max().unwrap_or_default();
    let last_a = pa.iter().filter(|(_, h)| *h).map(|(t, _)| *t).max();
    let first_gone = pa.iter().find(|(t, h)| !h && *t >= t0).map(|(t, _)| *t);
    let first_b = pb.iter().find(|(_, h)| *h).map(|(t, _)| *t);
    let (Some(gone), Some(taken)) = (first_gone, first_b) else {
        bail!("pollers saw no handover");
    };
    if let Some(last_a) = last_a
        && taken <= last_a
    {
        bail!(
            "both nodes held {VIP}: node 1 from {:?} after the event, node 0 until {:?}",
            taken.saturating_duration_since(t0),
            last_a.saturating_duration_since(t0)
        );
    }
    Ok(Watch {
        gone: gone.saturating_duration_since(t0),
        taken: taken.saturating_duration_since(t0),
        max_poll,
    })
}

fn runs(default: usize) -> usize {
    std::env::var("VRRP_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn summary(label: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{label}: median {:.1} ms, max {:.1} ms, min {:.1} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        ms(v[0])
    )
}

/// Kill the master's worker `n` times at advert interval `adv`; each time
/// the VIP must leave the dead node no earlier than 2 x adv after the kill
/// (earlier would leave nobody answering), before the backup takes it, and
/// within the backup's Master_Down_Interval.
fn killed_worker(adv_text: &str, adv: Duration, n: usize) -> Result<()> {
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let name = netns::unique("sup");
    let (mdi0, mdi1) = (mdi(adv, 150), mdi(adv, 100));
    let _backup = seg.agent(1, &backup_conf(adv_text), &[])?;
    let (mut gone, mut taken, mut nobody, mut polls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..n {
        let mut master = seg.agent_as(0, &master_conf(adv_text), &name, &[])?;
        seg.wait_holders(VIP, &[0], mdi0 + MARGIN)?;
        let worker = worker_pid(&master)?;
        let pollers = watch_start(&seg)?;
        let t0 = Instant::now();
        kill(worker, Signal::SIGKILL)?;
        let w = watch_handover(pollers, t0, mdi1 + MARGIN)?;
        eprintln!(
            "run {run} at {adv:?}: VIP left the dead node after {:?}, on the backup after {:?} (poll <= {:?})",
            w.gone, w.taken, w.max_poll
        );
        // t0 is taken just before the kill, so this bound is exact.
        if w.gone < adv * 2 {
            bail!(
                "the VIP went {:?} after the kill, before 2 x advert_int: nobody answered meanwhile",
                w.gone
            );
        }
        assert!(
            w.gone < mdi1,
            "the dead node answered for {:?}, beyond Master_Down_Interval {mdi1:?}",
            w.gone
        );
        master.wait_for_line("exiting with status 137", Duration::from_secs(5))?;
        let status = master.stop(Duration::from_secs(5))?;
        assert_eq!(status.code(), Some(137), "the supervisor exits 128 + SIGKILL");
        assert!(
            master
                .lines()
                .iter()
                .any(|l| l.contains(&format!("removed {VIP}/24: held by worker pid {worker}"))),
            "{:#?}",
            master.lines()
        );
        gone.push(w.gone);
        taken.push(w.taken);
        nobody.push(w.taken - w.gone);
        polls.push(w.max_poll);
    }
    eprintln!("{n} runs at {adv:?} (Master_Down_Interval of the backup {mdi1:?}):");
    eprintln!("  {}", summary("kill to VIP off the dead node", gone));
    eprintln!("  {}", summary("kill to VIP on the backup", taken));
    eprintln!("  {}", summary("no holder", nobody));
    eprintln!("  {}", summary("longest poll", polls));
    Ok(())
}

#[test]
fn a_killed_worker_loses_its_vip_before_the_backup_takes_over_at_1s() -> Result<()> {
    if !require_root("a_killed_worker_loses_its_vip_before_the_backup_takes_over_at_1s") {
        return Ok(());
    }
    killed_worker("1", Duration::from_secs(1), runs(2))
}

#[test]
fn a_killed_worker_loses_its_vip_before_the_backup_takes_over_at_100ms() -> Result<()> {
    if !require_root("a_killed_worker_loses_its_vip_before_the_backup_takes_over_at_100ms") {
        return Ok(());
    }
    killed_worker("0.1", Duration::from_millis(100), runs(5))
}

#[test]
fn a_killed_supervisor_makes_its_worker_resign() -> Result<()> {
    if !require_root("a_killed_supervisor_makes_its_worker_resign") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let adv = Duration::from_millis(100);
    let master = seg.agent(0, &master_conf("0.1"), &[])?;
    let backup = seg.agent(1, &backup_conf("0.1"), &[])?;
    seg.wait_holders(VIP, &[0], mdi(adv, 150) + MARGIN)?;
    let worker = worker_pid(&master)?;
    let pollers = watch_start(&seg)?;
    let t0 = Instant::now();
    master.signal(Signal::SIGKILL)?;
    let w = watch_handover(pollers, t0, mdi(adv, 100) + MARGIN)?;
    eprintln!(
        "supervisor killed: VIP off the old master after {:?}, on the backup after {:?}",
        w.gone, w.taken
    );
    // PR_SET_PDEATHSIG: the worker got SIGTERM and resigned (priority 0),
    // so the backup took over on Skew_Time, not on Master_Down_Interval.
    master.wait_for_line_once("(VI_1) sent 0 priority", Duration::from_secs(5))?;
    backup.wait_for_line_once("Backup received priority 0", Duration::from_secs(5))?;
    // And it exited (reaped by whoever adopted it).
    wait_until(Duration::from_secs(10), || Ok(kill(worker, None).is_err()))?;
    drop(master);
    Ok(())
}

#[test]
fn a_stopped_worker_loses_its_vip_before_the_backup_takes_over() -> Result<()> {
    if !require_root("a_stopped_worker_loses_its_vip_before_the_backup_takes_over") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let adv = Duration::from_millis(100);
    let master = seg.agent(0, &master_conf("0.1"), &[])?;
    let _backup = seg.agent(1, &backup_conf("0.1"), &[])?;
    seg.wait_holders(VIP, &[0], mdi(adv, 150) + MARGIN)?;
    let worker = worker_pid(&master)?;
    let pollers = watch_start(&seg)?;
    let t0 = Instant::now();
    signal_worker(&master, Signal::SIGSTOP)?;
    let w = watch_handover(pollers, t0, mdi(adv, 100) + MARGIN)?;
    eprintln!("worker stopped: VIP off it after {:?}, on the backup after {:?}", w.gone, w.taken);
    master.wait_for_line_once(
        &format!("removed {VIP}/24: worker pid {worker} is stopped"),
        Duration::from_secs(2),
    )?;
    signal_worker(&master, Signal::SIGCONT)?;
    master.wait_for_line_once(&format!("worker pid {worker} continued"), Duration::from_secs(5))?;
    // Still supervised after the stop: a clean stop exits 0.
    let mut master = master;
    let status = master.stop(Duration::from_secs(5))?;
    assert!(status.success(), "supervisor exit after a clean stop: {status}");
    Ok(())
}
