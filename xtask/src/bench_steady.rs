//! Steady state and scale for `cargo xtask bench`: a backup listening to a
//! master, the CPU and wake-ups of each side's process tree, resident
//! memory, and the time from start to Backup. One instance at 10 ms
//! adverts (steady state), or many at 100 ms (scale), which then also fail
//! over when the master is killed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use vrrp_tests::lab::Segment;
use vrrp_tests::process::Process;

use crate::bench_failover::{self, Arm};
use crate::bench_proc::{BpfStats, Memory, SoftirqTrace, Usage, XdpRun, monotonic_ns, process_tree};

/// One arm's figures.
pub struct Steady {
    pub arm: Arm,
    pub instances: u16,
    pub interval_cs: u16,
    pub seconds: f64,
    /// From spawning the backup until all its instances logged BACKUP.
    pub start_to_backup_ms: f64,
    /// (% of one core, wake-ups per second), backup then master.
    pub backup: (f64, f64),
    pub master: (f64, f64),
    /// The network softirqs run in the master's context (% of one core,
    /// runs per second): part of `master.0` (see `SoftirqTrace`).
    pub master_softirq: Option<(f64, f64)>,
    /// The backup's XDP program: (runs/s, ns per run, % of one core in
    /// softirq, outside the process).
    pub backup_xdp: Option<(f64, f64, f64)>,
    pub backup_mem: Memory,
    pub master_mem: Memory,
    /// Kill → first and last VIP on the backup (ms), for scale.
    pub failover_ms: Option<(f64, f64)>,
    /// Master_Down_Interval of the backup (ms).
    pub mdi_ms: f64,
}

/// VIP of instance `vrid` in the many-instance setup.
fn vip(n: u16, vrid: u16) -> String {
    if n == 1 { "192.0.2.130".to_owned() } else { format!("198.51.100.{vrid}") }
}

/// `n` unicast instances, VRIDs 1..=n (or VRID 55 for one), one VIP each.
pub fn conf(n: u16, priority: u8, me: &str, peer: &str, interval_cs: u16) -> String {
    if n == 1 {
        return bench_failover::conf(priority, me, peer, interval_cs);
    }
    let (version, int) = bench_failover::advert_int(interval_cs);
    let mut s = String::new();
    for vrid in 1..=n {
        s += &format!(
            "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int {int}\n  version {version}\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {}/32\n  }}\n}}\n",
            vip(n, vrid)
        );
    }
    s
}

/// How many of the `n` VIPs node `i` holds.
fn held(seg: &Segment, i: usize, n: u16) -> Result<usize> {
    let out = seg.nodes[i].ns.ip(&["-o", "addr", "show", "dev", "eth0"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want: Vec<String> = (1..=n).map(|v| vip(n, v)).collect();
    Ok(text
        .split_whitespace()
        .filter_map(|w| w.split('/').next())
        .filter(|a| want.iter().any(|v| v == a))
        .count())
}

fn count(p: &Process, needle: &str) -> usize {
    p.lines().iter().filter(|l| l.contains(needle)).count()
}

/// `run_once`, again (three tries in all) when the election did not hold:
/// on a loaded machine (builds beside the benchmark) a master of either
/// implementation is sometimes late by more than a 10 ms
/// Master_Down_Interval and the backup takes over; such a window measures
/// a failover, not the steady state.
pub fn run(arm: Arm, n: u16, interval_cs: u16, seconds: u64, kill: bool, agent: &Path) -> Result<Steady> {
    let mut tries = 0;
    loop {
        tries += 1;
        match run_once(arm, n, interval_cs, seconds, kill, agent) {
            Err(e) if tries < 3 && e.to_string().contains("the election did not hold") => {
                println!("  {e:#}\n  again ({} of 3)", tries + 1);
            }
            r => return r,
        }
    }
}

/// Run one arm: master on node 0 (priority 150), then the backup on node 1
/// (priority 100), measured for `seconds`; with `kill`, then SIGKILL the
/// master and time the backup taking every VIP.
pub fn run_once(
    arm: Arm,
    n: u16,
    interval_cs: u16,
    seconds: u64,
    kill: bool,
    agent: &Path,
) -> Result<Steady> {
    println!("{}: {n} instance(s) at {} ms adverts, {seconds} s", arm.name(), u32::from(interval_cs) * 10);
    let _stats = BpfStats::enable()?;
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let _pins = crate::bench_failover::PinCleanup::new(&seg);
    let nu = usize::from(n);
    let master = bench_failover::start(
        &seg,
        arm,
        0,
        &conf(n, 150, "192.0.2.20", "192.0.2.52", interval_cs),
        agent,
        &[],
    )?;
    let (_, mdi1) = bench_failover::limits(150, interval_cs);
    bench_failover::wait_for(Duration::from_secs_f64(mdi1 / 1000.0 * 2.0) + Duration::from_secs(10), || {
        Ok(held(&seg, 0, n)? == nu)
    })
    .context("the master never held every VIP")?;

    let backup_text = conf(n, 100, "192.0.2.52", "192.0.2.20", interval_cs);
    let t0 = Instant::now();
    let backup = bench_failover::spawn(&seg, arm, 1, &backup_text, agent, &[])?;
    bench_failover::wait_for(Duration::from_secs(30), || Ok(count(&backup, "Entering BACKUP") >= nu))
        .context("the backup never entered BACKUP for every instance")?;
    let start_to_backup_ms = t0.elapsed().as_secs_f64() * 1000.0;

    // Warm-up: first adverts learnt, start-up work done.
    std::thread::sleep(Duration::from_secs(2));
    let (bt, mt) = (process_tree(backup.pid()), process_tree(master.pid()));
    let xdp = |seg: &Segment| -> Result<Option<XdpRun>> {
        if arm == Arm::Agent { XdpRun::read(&seg.nodes[1].ns, "eth0").map(Some) } else { Ok(None) }
    };
    // One instance only: with many, the trace's own cost would weigh.
    let trace = if n == 1 { Some(SoftirqTrace::start(&mt)?) } else { None };
    let t0 = monotonic_ns();
    let (b0, m0, x0) = (Usage::read(&bt)?, Usage::read(&mt)?, xdp(&seg)?);
    std::thread::sleep(Duration::from_secs(seconds));
    let (b1, m1, x1) = (Usage::read(&bt)?, Usage::read(&mt)?, xdp(&seg)?);
    let t1 = monotonic_ns();
    let secs = b1.at.zip(b0.at).map(|(a, b)| a.duration_since(b).as_secs_f64()).unwrap_or(f64::NAN);
    let master_softirq = match trace {
        Some(t) => {
            let s = t.stop(t0, t1)?;
            let window = (t1 - t0) as f64 / 1e9;
            Some((s.ns as f64 / 1e9 / window * 100.0, s.runs as f64 / window))
        }
        None => None,
    };
    let backup_xdp = x1.zip(x0).map(|(a, b)| a.since(&b, secs));
    let (backup_mem, master_mem) = (Memory::read(&bt)?, Memory::read(&mt)?);
    // The measurement only counts if the election held throughout.
    let (h0, h1, bm) = (held(&seg, 0, n)?, held(&seg, 1, n)?, count(&backup, "Entering MASTER"));
    if h0 != nu || h1 != 0 || bm != 0 {
        let tail = |p: &Process| p.lines().iter().rev().take(8).rev().cloned().collect::<Vec<_>>().join("\n");
        bail!(
            "{}: the election did not hold during the measurement: the master holds {h0} of {n} VIPs, the backup {h1}, and it entered MASTER {bm} times\nmaster:\n{}\nbackup:\n{}",
            arm.name(),
            tail(&master),
            tail(&backup)
        );
    }
    let (_, mdi_ms) = bench_failover::limits(100, interval_cs);
    let mut out = Steady {
        arm,
        instances: n,
        interval_cs,
        seconds: secs,
        start_to_backup_ms,
        backup: b1.since(&b0),
        master: m1.since(&m0),
        master_softirq,
        backup_xdp,
        backup_mem,
        master_mem,
        failover_ms: None,
        mdi_ms,
    };
    if kill {
        let t = Instant::now();
        killpg(Pid::from_raw(master.pid() as i32), Signal::SIGKILL)?;
        let mut first = None;
        bench_failover::wait_for(Duration::from_secs_f64(mdi_ms / 1000.0) + Duration::from_secs(10), || {
            let h = held(&seg, 1, n)?;
            if h > 0 && first.is_none() {
                first = Some(t.elapsed());
            }
            Ok(h == nu)
        })
        .with_context(|| format!("{}: the backup never took every VIP", arm.name()))?;
        let last = t.elapsed();
        let masters = count(&backup, "Entering MASTER");
        if masters != nu {
            bail!("{}: {masters} of {n} instances entered MASTER on the backup", arm.name());
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        out.failover_ms = Some((first.map(ms).unwrap_or(f64::NAN), ms(last)));
    }
    drop(master);
    println!(
        "  start→Backup {:.0} ms; backup CPU {:.3}% {:.0} wake-ups/s; master CPU {:.3}% {:.0} wake-ups/s{}; backup RSS {} KiB PSS {} KiB{}",
        out.start_to_backup_ms,
        out.backup.0,
        out.backup.1,
        out.master.0,
        out.master.1,
        out.master_softirq.map(|(p, r)| format!(" (softirq in it {p:.3}%, {r:.0}/s)")).unwrap_or_default(),
        out.backup_mem.rss_kib,
        out.backup_mem.pss_kib,
        out.failover_ms
            .map(|(a, b)| format!("; failover first {a:.1} ms, all {b:.1} ms"))
            .unwrap_or_default()
    );
    Ok(out)
}
