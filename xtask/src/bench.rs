//! `cargo xtask bench`: scenarios in network namespaces, measured, written
//! to `bench-results/` as `results.json` and `report.md`.
//!
//! So far: the flood scenario (invalid adverts at the agent's interface).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_common::Centis;
use vrrp_common::wire::vrrp::{GROUP_V4, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version};
use vrrp_tests::process::Process;
use vrrp_tests::{Netns, frame, netns};

use crate::bench_failover::{self, Arm, Kind};
use crate::bench_proc::{Memory, Usage};
use crate::{bench_health, bench_plot, bench_scale, bench_startup, bench_steady, bench_targets};
use crate::{prereqs, sh};

/// Result of the flood scenario, one arm.
struct Flood {
    arm: &'static str,
    seconds: f64,
    rejected: u64,
    verdict: &'static str,
    accepted: u64,
    agent_cpu_pct: f64,
    agent_rss_kib: u64,
    /// The XDP program's own run time (softirq), when it ran.
    xdp: Option<(f64, f64, f64)>,
}

/// What to run.
pub struct Opts {
    /// Seconds per flood arm.
    pub seconds: u64,
    /// Runs per failover series.
    pub runs: usize,
    /// Only this scenario (flood, crash, graceful).
    pub only: Option<String>,
    /// Advert intervals (ms) for the failover series.
    pub intervals_ms: Vec<u16>,
    /// Extra arguments for the agent arm's master.
    pub master_args: Vec<String>,
    /// Seconds of steady-state measurement.
    pub steady_seconds: u64,
    /// Instances in the scale scenario.
    pub instances: u16,
    /// The scale4k scenario: interfaces, VRIDs on each, seconds measured,
    /// and which arms (agent, keepalived).
    pub scale4k: bench_scale::Shape,
    pub scale4k_arms: Vec<String>,
    /// Output directory (see `out_dir`).
    pub out: Option<std::path::PathBuf>,
    /// Only redraw the plots from the output directory's results.json.
    pub replot: bool,
}

impl Opts {
    /// Health runs: half the failover runs (each takes seconds), at least 5.
    fn health_runs(&self) -> usize {
        (self.runs / 2).max(5)
    }

    /// `--out`, else bench-results/ for a full run and
    /// bench-results/only-<scenario>/ for a partial one.
    fn out_dir(&self) -> std::path::PathBuf {
        let base = sh::root().join("bench-results");
        match (&self.out, &self.only) {
            (Some(o), _) => o.clone(),
            (None, Some(only)) => base.join(format!("only-{only}")),
            (None, None) => base,
        }
    }
}

/// The agent's crash takeovers split into steps (its own timestamps beside
/// the capture's), and every run over 1 ms placed by its largest step.
fn write_breakdown(md: &mut String, failovers: &[bench_failover::Series]) -> Result<()> {
    let crash: Vec<&bench_failover::Series> =
        failovers.iter().filter(|f| f.kind == Kind::Crash && f.arm == Arm::Agent).collect();
    if crash.iter().all(|f| f.steps.iter().all(Option::is_none)) {
        return Ok(());
    }
    writeln!(
        md,
        "\nWhere the agent's excess goes (crash, the backup's own CLOCK_MONOTONIC timestamps in its status file's `last_takeover`, placed against the capture's with the CLOCK_REALTIME offset): from the master's last advert on the wire to the XDP program recording it; the kernel's timer past that advert + Master_Down_Interval (negative: the watch warns the agent up to 2 ms ahead); the agent's wake-up on the ring buffer; its wait for Master_Down_Interval's end, awake (\"to deadline\"; a run over 1 ms is placed in a later step when the agent was awake before the deadline); its decision (peer table, state machine); its first advert as master; the VIP's netlink add acknowledged; the first gratuitous ARP handed to the kernel (its sendto returned); that frame on the capture (negative: the capture sees the frame inside that sendto). The steps add up to the excess. Of the address add, the time the agent's thread waited for a CPU (its schedstat run delay); the rest of that step is the kernel's work and the agent sleeping on it (the RTNL lock). The daemons of both arms run at nice 0 even when the bench is niced. median / p95 / max, ms:\n"
    )?;
    write!(md, "| advert_int | runs |")?;
    for n in bench_failover::STEP_NAMES {
        write!(md, " {n} |")?;
    }
    writeln!(md, " of VIPs added: waiting for a CPU | load (1 min) |")?;
    writeln!(md, "|---|---|{}---|---|", "---|".repeat(bench_failover::STEP_NAMES.len()))?;
    let mut outliers = Vec::new();
    for f in &crash {
        let runs = f.steps.iter().flatten().count();
        write!(md, "| {} ms | {runs} |", u32::from(f.interval_cs) * 10)?;
        for k in 0..bench_failover::STEP_NAMES.len() {
            let v: Vec<f64> = f.steps.iter().flatten().filter_map(|s| s.ms[k]).collect();
            if v.is_empty() {
                write!(md, " - |")?;
            } else {
                let s = bench_failover::summary(&v);
                write!(md, " {:.3} / {:.3} / {:.3} |", s[1], s[2], s[3])?;
            }
        }
        let w: Vec<f64> = f.steps.iter().flatten().filter_map(|s| s.vips_cpu_wait_ms).collect();
        if w.is_empty() {
            write!(md, " - |")?;
        } else {
            let s = bench_failover::summary(&w);
            write!(md, " {:.3} / {:.3} / {:.3} |", s[1], s[2], s[3])?;
        }
        let l = bench_failover::summary(&f.load);
        writeln!(md, " {:.1} / {:.1} / {:.1} |", l[1], l[2], l[3])?;
        for (run, (e, st)) in f.excess_ms.iter().zip(&f.steps).enumerate() {
            if *e <= 1.0 {
                continue;
            }
            let load = f.load.get(run).copied().unwrap_or(f64::NAN);
            let place = st.as_ref().and_then(|s| s.largest().map(|l| (s, l))).map_or_else(
                || "no record from the agent".to_owned(),
                |(s, (n, v))| {
                    let mut p = format!("{v:.3} ms of it in \"{n}\"");
                    if n == "VIPs added"
                        && let (Some(w), Some(z)) = (s.vips_cpu_wait_ms, s.vips_sleeps)
                    {
                        p.push_str(&format!(" ({w:.3} ms of that waiting for a CPU, {z} sleep(s))"));
                    }
                    p
                },
            );
            outliers.push(format!(
                "- {} ms, run {run}: {e:.3} ms over the limit; {place} (load {load:.1})",
                u32::from(f.interval_cs) * 10
            ));
        }
    }
    if outliers.is_empty() {
        writeln!(md, "\nNo run of the agent exceeded the limit by more than 1 ms.")?;
    } else {
        writeln!(md, "\nRuns of the agent over 1 ms, and the step that took the time:\n")?;
        for o in outliers {
            writeln!(md, "{o}")?;
        }
    }
    Ok(())
}

/// How to read the figures: what each one includes and leaves out.
const NOTES: &str = "## Notes on the figures

- Both \"nodes\" are network namespaces of one kernel: they share its CPU,
  its clock and its RTNL lock. A killed agent's XDP program used to be torn
  down at its death, holding RTNL while the backup needed it to add the
  VIP: crash failover at 10 ms then had a p95 of 8.0 ms over the limit
  (previous report). The agent now pins its XDP link, so a killed agent's
  program stays attached (it fails open after its alive deadline, and the
  next agent of the same name replaces it); that outlier is gone.
- CPU is time on a CPU of every thread of the process tree. This kernel
  accounts CPU time by tick, without CONFIG_IRQ_TIME_ACCOUNTING: a softirq
  that runs while a process is current is counted as that process's time.
  On a veth pair the receiver's softirq work (the bridge, the backup's XDP
  program or keepalived's IP input and raw-socket delivery) runs at the
  end of the sender's `sendto`, in its context: part of a master's CPU is
  its backup's receive path. The steady scenario traces those softirqs
  (perf, NET_RX and NET_TX) and gives the master's CPU without them; the
  XDP program's own run time is given beside the backup
  (kernel.bpf_stats_enabled), and is part of the master's softirq time.
- A backup agent sleeps while its master advertises: the XDP program arms a
  kernel timer (bpf_timer) per instance to Master_Down_Interval on each
  advert that holds the backup down and wakes the agent only when it
  expires; the agent's own timer is a backstop one second later, and it
  moves the program's alive deadline every 2 s. Hence about one wake-up per
  second against keepalived's one per advert.
- \"To VIP\" in the crash rows is shorter than the limit because it is
  measured from the kill, and the master's last advert was sent before it.
- The health failover's bound is interval × fall + Master_Down_Interval:
  a preempting backup discards the lower-priority advert of a master whose
  check failed and waits for its Master_Down_Timer (RFC 5798 6.4.2), as
  keepalived 2.x does; detection itself lands anywhere in the last
  interval, so the spread is about one script interval.
";

const SCENARIOS: [&str; 9] =
    ["crash", "graceful", "health", "split", "flood", "steady", "scale", "startup", "scale4k"];

pub fn run(opts: &Opts) -> Result<()> {
    if opts.replot {
        return bench_plot::replot(&opts.out_dir());
    }
    // VRRP_BENCH_NO_BUILD: measure the binaries as they are (a busy
    // machine, where a release build takes many minutes).
    if std::env::var_os("VRRP_BENCH_NO_BUILD").is_none() {
        crate::build(true)?;
    }
    prereqs::ensure(&prereqs::Need::all())?;
    if !prereqs::is_root() {
        bail!("the benchmarks create network namespaces and attach XDP: run them as root");
    }
    if prereqs::which("trafgen").is_none() {
        sh::step("installing netsniff-ng (trafgen)");
        sh::run(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "netsniff-ng",
        ]))?;
    }
    if let Some(o) = &opts.only
        && !SCENARIOS.contains(&o.as_str())
    {
        bail!("--only {o}: no such scenario (one of {})", SCENARIOS.join(", "));
    }
    let wants = |s: &str| opts.only.as_deref().is_none_or(|o| o == s);
    let out = opts.out_dir();
    std::fs::create_dir_all(&out)?;
    // VRRP_BENCH_AGENT: another build of the agent (an older commit's, for
    // a before/after comparison in the same harness).
    let agent = std::env::var_os("VRRP_BENCH_AGENT")
        .map_or_else(|| sh::root().join("target/release/vrrp-agent"), std::path::PathBuf::from);
    let machine = machine();
    let mut md = String::new();
    writeln!(md, "# vrrp-agent benchmarks\n")?;
    writeln!(
        md,
        "Machine: {} cores, kernel {}. Produced by `cargo xtask bench`; both arms run in the same harness, one after the other.\n",
        machine.0, machine.1
    )?;
    let mut json = serde_json::json!({ "machine": { "cores": machine.0, "kernel": machine.1 } });

    let mut failovers = Vec::new();
    if wants("crash") {
        sh::step("crash failover: SIGKILL the master");
        for interval_cs in opts.intervals_ms.iter().map(|ms| ms / 10) {
            for arm in [Arm::Agent, Arm::Keepalived] {
                failovers.push(bench_failover::series(
                    arm,
                    Kind::Crash,
                    interval_cs,
                    opts.runs,
                    &agent,
                    &opts.master_args,
                )?);
            }
        }
    }
    if wants("graceful") {
        sh::step("graceful failover: SIGTERM the master (priority 0)");
        for interval_cs in opts.intervals_ms.iter().map(|ms| ms / 10).filter(|cs| *cs < 100) {
            for arm in [Arm::Agent, Arm::Keepalived] {
                failovers.push(bench_failover::series(
                    arm,
                    Kind::Graceful,
                    interval_cs,
                    opts.runs,
                    &agent,
                    &opts.master_args,
                )?);
            }
        }
    }
    if !failovers.is_empty() {
        writeln!(md, "## Failover\n")?;
        writeln!(
            md,
            "The reference unicast pair (priorities 150 and 100) on a bridge. Gap: from the master's last advert to the backup's first gratuitous ARP for the VIP, both from one capture on the backup's bridge port (kernel timestamps). Its protocol limit is Master_Down_Interval for a crash (SIGKILL) and Skew_Time for a graceful stop (SIGTERM, priority 0); the table gives the excess over it. \"To VIP\": from the signal until the kernel notifies the VIP's addition on the backup (an RTMGRP_IPV4_IFADDR subscription in its namespace; no polling process competes with the takeover).\n"
        )?;
        let defs = bench_failover::global_defs();
        if !defs.is_empty() {
            writeln!(md, "Both arms ran with (VRRP_BENCH_GLOBAL_DEFS):\n\n```\n{defs}```\n")?;
        }
        writeln!(
            md,
            "| scenario | advert_int | arm | runs | limit (ms) | excess min / median / p95 / max (ms) | to VIP median (ms) |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for f in &failovers {
            let s = bench_failover::summary(&f.excess_ms);
            let v = bench_failover::summary(&f.to_vip_ms);
            writeln!(
                md,
                "| {} | {} ms | {} | {} | {:.3} | {:.3} / {:.3} / {:.3} / {:.3} | {:.1} |",
                if f.kind == Kind::Crash { "crash" } else { "graceful" },
                u32::from(f.interval_cs) * 10,
                f.arm.name(),
                f.excess_ms.len(),
                f.limit_ms,
                s[0],
                s[1],
                s[2],
                s[3],
                v[1]
            )?;
            rows.push(serde_json::json!({
                "scenario": if f.kind == Kind::Crash { "crash" } else { "graceful" },
                "advert_int_ms": u32::from(f.interval_cs) * 10,
                "arm": f.arm.name(),
                "limit_ms": f.limit_ms,
                "excess_ms": f.excess_ms,
                "to_vip_ms": f.to_vip_ms,
                "excess_summary_ms": { "min": s[0], "median": s[1], "p95": s[2], "max": s[3] },
                "load_1min": f.load,
                "steps_ms": f.steps.iter().map(|st| st.as_ref().map(|st| {
                    let mut m = bench_failover::STEP_NAMES.iter().zip(st.ms).map(|(n, v)| ((*n).to_owned(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>();
                    m.insert("VIPs added: waiting for a CPU".to_owned(), serde_json::json!(st.vips_cpu_wait_ms));
                    m.insert("VIPs added: sleeps".to_owned(), serde_json::json!(st.vips_sleeps));
                    m
                })).collect::<Vec<_>>(),
            }));
        }
        json["failover"] = serde_json::Value::Array(rows);
        write_breakdown(&mut md, &failovers)?;
        let strips: Vec<(String, usize, Vec<f64>)> = failovers
            .iter()
            .map(|f| {
                let kind = if f.kind == Kind::Crash { "crash" } else { "graceful" };
                let label =
                    bench_plot::failover_label(kind, u64::from(f.interval_cs) * 10, f.arm == Arm::Keepalived);
                (label, usize::from(f.arm == Arm::Keepalived), f.excess_ms.clone())
            })
            .collect();
        bench_plot::strips(
            &out.join("failover.svg"),
            bench_plot::FAILOVER_TITLE,
            "ms over the limit",
            &strips,
        )?;
        writeln!(md, "\n![failover excess, every run](failover.svg)")?;
        writeln!(md)?;
    }

    if wants("health") {
        sh::step("health failover: the master's check starts failing");
        let mut rows = Vec::new();
        writeln!(md, "## Health failover\n")?;
        writeln!(
            md,
            "The pair at 100 ms adverts (v3 unicast). The master (priority 100) tracks a vrrp_script (`test -f FILE`, interval 1 s, fall 2, rise 1, weight 60: 160 while healthy); the backup has 120. Timed from removing FILE to the VIP on the backup (polled every 0.5 ms), {} runs per arm, each started at a different phase of the script's interval. Reference: interval × fall + one advert; bound: interval × fall + Master_Down_Interval, because the backup discards the lower-priority advert and waits for its Master_Down_Timer (RFC 5798 6.4.2; keepalived 2.x does the same).\n",
            opts.health_runs()
        )?;
        writeln!(
            md,
            "| arm | runs | reference (ms) | bound (ms) | min / median / p95 / max (ms) | within bound |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        let mut health_strips = Vec::new();
        for arm in [Arm::Agent, Arm::Keepalived] {
            let h = bench_health::series(arm, opts.health_runs(), &agent)?;
            health_strips.push((
                arm.name().to_owned(),
                usize::from(arm == Arm::Keepalived),
                h.to_vip_ms.clone(),
            ));
            let s = bench_failover::summary(&h.to_vip_ms);
            let within = h.to_vip_ms.iter().filter(|v| **v <= h.bound_ms).count();
            writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} | {:.1} / {:.1} / {:.1} / {:.1} | {within}/{} |",
                arm.name(),
                h.to_vip_ms.len(),
                h.reference_ms,
                h.bound_ms,
                s[0],
                s[1],
                s[2],
                s[3],
                h.to_vip_ms.len()
            )?;
            rows.push(serde_json::json!({
                "arm": arm.name(), "reference_ms": h.reference_ms, "bound_ms": h.bound_ms,
                "to_vip_ms": h.to_vip_ms,
                "summary_ms": { "min": s[0], "median": s[1], "p95": s[2], "max": s[3] },
            }));
        }
        json["health"] = serde_json::Value::Array(rows);
        bench_plot::strips(&out.join("health.svg"), bench_plot::HEALTH_TITLE, "ms", &health_strips)?;
        writeln!(md, "\n![health failover, every run](health.svg)")?;
        writeln!(md)?;
    }

    if wants("split") {
        sh::step("flood at a backup while the master advertises: false MASTER entries, VIP holders");
        let mut rows = Vec::new();
        writeln!(md, "## Flood at the backup: split brain\n")?;
        writeln!(
            md,
            "The reference pair (v2 unicast, PASS, 1 s); a third node floods the backup with well-formed adverts carrying the wrong password (trafgen, one core) for {} s while the master advertises. Both nodes run the same implementation.\n",
            opts.seconds
        )?;
        writeln!(
            md,
            "| arm | backup CPU (% of one core) | false MASTER entries | most VIP holders at once |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        let mut cpu_lines = Vec::new();
        for arm in ["vrrp-agent (XDP)", "vrrp-agent (raw sockets)", "keepalived"] {
            let r = split_flood(arm, opts.seconds, &agent)?;
            writeln!(md, "| {arm} | {:.2} | {} | {} |", r.cpu, r.false_master, r.max_holders)?;
            rows.push(serde_json::json!({
                "arm": arm, "backup_cpu_pct": r.cpu, "false_master": r.false_master,
                "max_holders": r.max_holders, "cpu_over_time": r.cpu_over_time,
            }));
            cpu_lines.push((arm.to_owned(), r.cpu_over_time));
        }
        json["split_flood"] = serde_json::Value::Array(rows);
        bench_plot::lines(&out.join("flood-cpu.svg"), bench_plot::FLOOD_TITLE, "% of one core", &cpu_lines)?;
        writeln!(md, "\n![backup CPU during the flood](flood-cpu.svg)")?;
        writeln!(md)?;
    }

    if wants("flood") {
        let arms = [flood_full(opts.seconds, "xdp")?, flood_full(opts.seconds, "socket")?];
        writeln!(
            md,
            "## Flood: invalid adverts (wrong password, from a stranger) at the agent's interface\n"
        )?;
        writeln!(
            md,
            "trafgen on one core in the sender namespace; {} s per arm; the agent runs `watch` (the receive path alone).\n",
            opts.seconds
        )?;
        writeln!(
            md,
            "| receive path | rejected ({}) | per second | accepted | agent CPU (% of one core) | agent RSS | XDP program: runs/s, ns/run, % of a core (softirq) |",
            arms[0].verdict
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for f in &arms {
            let pps = f.rejected as f64 / f.seconds;
            writeln!(
                md,
                "| {} | {} | {:.0} | {} | {:.2} | {} KiB | {} |",
                f.arm,
                f.rejected,
                pps,
                f.accepted,
                f.agent_cpu_pct,
                f.agent_rss_kib,
                xdp_cell(f.xdp)
            )?;
            rows.push(serde_json::json!({
                "arm": f.arm, "seconds": f.seconds, "verdict": f.verdict, "rejected": f.rejected,
                "rejected_pps": pps, "accepted": f.accepted, "agent_cpu_pct": f.agent_cpu_pct, "agent_rss_kib": f.agent_rss_kib,
                "xdp": f.xdp.map(|(r, n, p)| serde_json::json!({ "runs_per_s": r, "ns_per_run": n, "cpu_pct": p })),
            }));
        }
        json["flood"] = serde_json::Value::Array(rows);
        writeln!(md)?;
    }

    let mut footprint = Vec::new();
    if wants("steady") {
        sh::step("steady state: a backup listening to a master at 10 ms adverts");
        let arms = [
            bench_steady::run(Arm::Agent, 1, 1, opts.steady_seconds, false, &agent)?,
            bench_steady::run(Arm::Keepalived, 1, 1, opts.steady_seconds, false, &agent)?,
        ];
        writeln!(md, "## Steady state\n")?;
        writeln!(
            md,
            "The pair at 10 ms adverts (v3 unicast), one instance; after 2 s of warm-up, {} s measured. CPU: time on a CPU of every thread of the process tree (`/proc/PID/task/*/schedstat`); wake-ups: voluntary context switches (each sleep ends in one). The XDP column is the kernel's run-time statistics of the backup's XDP program (`kernel.bpf_stats_enabled`). This kernel has no IRQ time accounting: a softirq that runs while a process is current is in that process's time. Sending on a veth runs the receiving side at once, in the sender's context: the bridge, then the backup's XDP program (agent) or its IP input and raw-socket delivery (keepalived). The master's softirq column is that time (NET_RX and NET_TX, traced with perf), already inside its CPU; the next column is the master's CPU without it: what a master costs when its backup is another machine.\n",
            opts.steady_seconds
        )?;
        writeln!(
            md,
            "| arm | backup CPU (% of one core) | backup wake-ups/s | master CPU (%) | master wake-ups/s | master softirq in it (%, runs/s) | master CPU without it (%) | backup XDP: runs/s, ns/run, % of a core |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for s in &arms {
            let (sirq, own) = match s.master_softirq {
                Some((p, r)) => (format!("{p:.3}, {r:.0}"), format!("{:.3}", s.master.0 - p)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            writeln!(
                md,
                "| {} | {:.3} | {:.1} | {:.3} | {:.1} | {sirq} | {own} | {} |",
                s.arm.name(),
                s.backup.0,
                s.backup.1,
                s.master.0,
                s.master.1,
                xdp_cell(s.backup_xdp)
            )?;
            rows.push(steady_json(s));
        }
        let own = |s: &bench_steady::Steady| s.master.0 - s.master_softirq.map_or(0.0, |(p, _)| p);
        writeln!(
            md,
            "\nCPU ratio keepalived / vrrp-agent: backup {}; master {} (without the softirq run in its context: {}).\n",
            ratio(arms[1].backup.0, arms[0].backup.0),
            ratio(arms[1].master.0, arms[0].master.0),
            ratio(own(&arms[1]), own(&arms[0]))
        )?;
        json["steady"] = serde_json::Value::Array(rows);
        footprint.extend(arms);
    }
    if wants("scale") {
        sh::step(&format!("scale: {} instances at 100 ms adverts on one pair", opts.instances));
        let arms = [
            bench_steady::run(Arm::Agent, opts.instances, 10, 20, true, &agent)?,
            bench_steady::run(Arm::Keepalived, opts.instances, 10, 20, true, &agent)?,
        ];
        writeln!(md, "## Scale\n")?;
        writeln!(
            md,
            "{} instances (VRIDs 1-{}, one /32 VIP each, v3 unicast, 100 ms adverts) on one pair. Election checked (the master holds every VIP, the backup none, before and after the measurement), then 20 s measured as above, then the master is killed (SIGKILL): every instance must enter MASTER on the backup; times from the kill to the first and to the last VIP on the backup, against the Master_Down_Interval of {:.1} ms.\n",
            opts.instances, opts.instances, arms[0].mdi_ms
        )?;
        writeln!(
            md,
            "| arm | backup CPU (%) | backup wake-ups/s | master CPU (%) | master wake-ups/s | backup XDP: runs/s, ns/run, % | kill → first / last VIP (ms) |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for s in &arms {
            let f = s.failover_ms.unwrap_or((f64::NAN, f64::NAN));
            writeln!(
                md,
                "| {} | {:.2} | {:.1} | {:.2} | {:.1} | {} | {:.1} / {:.1} |",
                s.arm.name(),
                s.backup.0,
                s.backup.1,
                s.master.0,
                s.master.1,
                xdp_cell(s.backup_xdp),
                f.0,
                f.1
            )?;
            rows.push(steady_json(s));
        }
        writeln!(
            md,
            "\nCPU ratio keepalived / vrrp-agent: backup {}, master {}.\n",
            ratio(arms[1].backup.0, arms[0].backup.0),
            ratio(arms[1].master.0, arms[0].master.0)
        )?;
        json["scale"] = serde_json::Value::Array(rows);
        footprint.extend(arms);
    }
    if wants("startup") {
        sh::step("start-up: spawn to every instance in BACKUP");
        writeln!(md, "## Start-up\n")?;
        writeln!(
            md,
            "From spawning the daemon in its namespace (the agent through `nsenter`, keepalived through `ip netns exec`, as in every scenario here) until every instance has logged BACKUP; no master answers, so the instances stay in BACKUP. Each run is stopped with SIGTERM and waited for before the next; the arms alternate run by run. The agent's arm includes its supervisor starting the worker, and the XDP program being loaded and attached: the first run of each series loads the object (the kernel's verifier runs); the later runs take the program and its maps from the verified-program cache the first one pinned (README, emptied before use), as any restart of an agent of the same name does. Since h3-late the agent enters BACKUP while the XDP attach still runs on a thread (its backups cannot take over before it is done: README, \"BACKUP before the XDP attach\"), so the attach is no longer in this time; earlier builds attached first.\n"
        )?;
        writeln!(md, "| arm | instances | runs | min / median / p95 / max (ms) |")?;
        writeln!(md, "|---|---|---|---|")?;
        let mut rows = Vec::new();
        for n in [1, opts.instances] {
            for s in bench_startup::series(n, opts.runs, &agent)? {
                let v = bench_failover::summary(&s.ms);
                writeln!(
                    md,
                    "| {} | {} | {} | {:.1} / {:.1} / {:.1} / {:.1} |",
                    s.arm.name(),
                    s.instances,
                    s.ms.len(),
                    v[0],
                    v[1],
                    v[2],
                    v[3]
                )?;
                rows.push(serde_json::json!({
                    "arm": s.arm.name(), "instances": s.instances, "start_to_backup_ms": s.ms,
                    "summary_ms": { "min": v[0], "median": v[1], "p95": v[2], "max": v[3] },
                }));
            }
        }
        json["startup"] = serde_json::Value::Array(rows);
        writeln!(md)?;
    }
    if opts.only.as_deref() == Some("scale4k") {
        // Minutes of work for both arms: only when asked for by name.
        sh::step(&format!(
            "scale4k: {} interfaces × {} VRIDs at 100 ms adverts",
            opts.scale4k.ifaces, opts.scale4k.vrids
        ));
        let mut arms = Vec::new();
        for arm in [Arm::Agent, Arm::Keepalived] {
            let word = if arm == Arm::Agent { "agent" } else { "keepalived" };
            if opts.scale4k_arms.iter().any(|a| a == word) {
                arms.push(bench_scale::run(arm, opts.scale4k, &agent)?);
            }
        }
        json["scale4k"] = bench_scale::report(&mut md, &arms)?;
    }
    if !footprint.is_empty() {
        writeln!(md, "## Footprint\n")?;
        writeln!(
            md,
            "Resident memory of the backup's processes after the measurement above (keepalived: its parent and VRRP child together; RSS counts shared pages in each, PSS shares them out), and the time from spawning the backup until every instance logged BACKUP (the agent loads and attaches its XDP program first).\n"
        )?;
        writeln!(md, "| arm | instances | RSS (KiB) | PSS (KiB) | start → Backup (ms) |")?;
        writeln!(md, "|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for s in &footprint {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.0} |",
                s.arm.name(),
                s.instances,
                s.backup_mem.rss_kib,
                s.backup_mem.pss_kib,
                s.start_to_backup_ms
            )?;
            rows.push(serde_json::json!({
                "arm": s.arm.name(), "instances": s.instances, "rss_kib": s.backup_mem.rss_kib,
                "pss_kib": s.backup_mem.pss_kib, "start_to_backup_ms": s.start_to_backup_ms,
            }));
        }
        json["footprint"] = serde_json::Value::Array(rows);
        writeln!(md)?;
    }

    // The targets first, judged from the figures below them; then notes.
    let targets = bench_targets::judge(&json);
    if !targets.is_empty() {
        let at = md.find("\n## ").map_or(md.len(), |i| i + 1);
        let mut t = String::from("## Targets\n\n");
        for line in &targets {
            writeln!(t, "- {line}")?;
        }
        t.push('\n');
        md.insert_str(at, &t);
    }
    md.push_str(NOTES);
    json["targets"] = serde_json::json!(targets);
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(out.join("report.md"), &md)?;
    println!("\n{md}");
    println!("written: {}/results.json, {}/report.md", out.display(), out.display());
    Ok(())
}

pub(crate) fn xdp_cell(x: Option<(f64, f64, f64)>) -> String {
    match x {
        Some((rate, per, pct)) => format!("{rate:.0}, {per:.0}, {pct:.3}"),
        None => "(no XDP)".to_owned(),
    }
}

/// `a / b` as "N×", or what it is when `b` rounds to nothing.
pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.1}×", a / b) } else { format!("{a:.3}% against 0") }
}

fn steady_json(s: &bench_steady::Steady) -> serde_json::Value {
    serde_json::json!({
        "arm": s.arm.name(), "instances": s.instances, "advert_int_ms": u32::from(s.interval_cs) * 10,
        "seconds": s.seconds, "start_to_backup_ms": s.start_to_backup_ms,
        "backup_cpu_pct": s.backup.0, "backup_wakeups_per_s": s.backup.1,
        "master_cpu_pct": s.master.0, "master_wakeups_per_s": s.master.1,
        "master_softirq": s.master_softirq.map(|(p, r)| serde_json::json!({ "cpu_pct": p, "runs_per_s": r })),
        "backup_xdp": s.backup_xdp.map(|(r, n, p)| serde_json::json!({ "runs_per_s": r, "ns_per_run": n, "cpu_pct": p })),
        "backup_rss_kib": s.backup_mem.rss_kib, "backup_pss_kib": s.backup_mem.pss_kib,
        "master_rss_kib": s.master_mem.rss_kib, "master_pss_kib": s.master_mem.pss_kib,
        "failover_ms": s.failover_ms.map(|(a, b)| serde_json::json!({ "first": a, "last": b })), "mdi_ms": s.mdi_ms,
    })
}

fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = sh::output(Command::new("uname").arg("-r")).unwrap_or_default().trim().to_owned();
    (cores, kernel)
}

/// The last cumulative count the agent printed for `verdict`
/// (`counter IFACE VERDICT: N (+k)`).
fn printed(lines: &[String], verdict: &str) -> u64 {
    lines
        .iter()
        .rev()
        .find_map(|l| {
            let rest = l.strip_prefix("counter ")?;
            let (_, tail) = rest.split_once(&format!(" {verdict}: "))?;
            tail.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// `flood`, again (up to three times) when trafgen stopped early: it
/// sometimes exits on a full TX ring ("Flushing TX_RING failed") after a
/// fraction of a second, which would make a rate from a short sample.
fn flood_full(seconds: u64, receive: &'static str) -> Result<Flood> {
    let mut last = flood(seconds, receive)?;
    for _ in 0..2 {
        if last.seconds >= seconds as f64 * 0.9 {
            break;
        }
        println!("  trafgen stopped after {:.2} s of {seconds}: again", last.seconds);
        last = flood(seconds, receive)?;
    }
    if last.seconds < seconds as f64 * 0.9 {
        bail!("trafgen kept stopping early ({:.2} s of {seconds})", last.seconds);
    }
    Ok(last)
}

fn flood(seconds: u64, receive: &'static str) -> Result<Flood> {
    sh::step(&format!("flood: invalid adverts at the agent ({receive} receive path) for {seconds} s"));
    // VRRP_BENCH_AGENT: another build of the agent (an older commit's, for
    // a before/after comparison in the same harness).
    let agent = std::env::var_os("VRRP_BENCH_AGENT")
        .map_or_else(|| sh::root().join("target/release/vrrp-agent"), std::path::PathBuf::from);
    let agent = agent.to_str().context("agent path")?;
    let a = Netns::new("vba")?;
    let b = Netns::new("vbb")?;
    a.veth_to("va0", &b, "vb0")?;
    a.ip(&["addr", "add", "198.51.100.66/24", "dev", "va0"])?;
    b.ip(&["addr", "add", "198.51.100.2/24", "dev", "vb0"])?;
    let name = netns::unique("bench-flood-");
    let mut watch = b.command(agent);
    watch.args(["watch", "-i", "vb0", "--name", &name, "--vrid", "51", "--auth-pass", "secret"]);
    watch.args(["--report-interval", "3600", "--receive", receive]);
    let mut p = Process::spawn("agent", &mut watch, false)?;
    let ready = if receive == "xdp" { "maps pinned" } else { "receiving on a raw socket" };
    p.wait_for_line(ready, Duration::from_secs(15))?;
    let pid = p.pid();

    // A well-formed v2 advert with the wrong password from a stranger.
    let vip = [Ipv4Addr::new(198, 51, 100, 100)];
    let repr = Repr {
        version: Version::V2,
        vrid: 51,
        priority: 254,
        interval: Centis(100),
        auth: Auth::simple(b"intruder"),
        addrs: AddrList::V4(&vip),
    };
    let src = Ipv4Addr::new(198, 51, 100, 66);
    let mut msg = vec![0u8; repr.buffer_len()];
    let tx = TxIp { src: IpAddr::V4(src), dst: IpAddr::V4(GROUP_V4), v3_checksum_as_v2: false };
    let n = repr.emit(&mut msg, &tx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let f = frame::ipv4(
        &frame::V4 { src, dst: GROUP_V4, ttl: 255, fragment: false, vlan: None, dst_mac: None },
        &msg[..n],
    );
    let conf = std::env::temp_dir().join(format!("{name}.trafgen"));
    let bytes: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
    std::fs::write(&conf, format!("{{ {} }}\n", bytes.join(", ")))?;

    let _stats = crate::bench_proc::BpfStats::enable()?;
    let xdp = |b: &Netns| {
        if receive == "xdp" { crate::bench_proc::XdpRun::read(b, "vb0").map(Some) } else { Ok(None) }
    };
    let x0 = xdp(&b)?;
    let u0 = Usage::read(&[pid])?;
    let start = Instant::now();
    let status = Command::new("timeout")
        .args(["-s", "INT", &seconds.to_string(), "ip", "netns", "exec", a.name(), "trafgen", "--dev", "va0"])
        .arg("--conf")
        .arg(&conf)
        .args(["--cpus", "1", "-q"])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running trafgen")?;
    let elapsed = start.elapsed().as_secs_f64();
    let (u1, mem) = (Usage::read(&[pid])?, Memory::read(&[pid])?);
    let x1 = xdp(&b)?;
    let _ = std::fs::remove_file(&conf);
    // timeout exits 124 when it had to stop trafgen, as intended; trafgen
    // itself sometimes exits 1 on SIGINT ("Flushing TX_RING failed") after
    // sending: judged below by what arrived.
    let trafgen_ok = status.success() || status.code() == Some(124);
    // The agent prints its totals when it stops.
    let status = p.stop(Duration::from_secs(10))?;
    if !status.success() {
        bail!("the agent exited with {status}");
    }
    let lines = p.lines();
    let verdict = "auth_failure";
    if printed(&lines, verdict) == 0 {
        bail!("no invalid advert reached the agent (trafgen: {status})");
    }
    if !trafgen_ok {
        println!("  trafgen exited with {status} after sending; counting what arrived");
    }
    Ok(Flood {
        arm: receive,
        seconds: elapsed,
        rejected: printed(&lines, verdict),
        verdict,
        accepted: printed(&lines, "accepted"),
        agent_cpu_pct: u1.since(&u0).0,
        agent_rss_kib: mem.rss_kib,
        xdp: x1.zip(x0).map(|(a, b)| a.since(&b, elapsed)),
    })
}

/// What the split-brain flood measured on the backup.
struct Split {
    /// % of one core over the flood.
    cpu: f64,
    /// MASTER entries during the flood.
    false_master: usize,
    /// Most VIP holders seen at once.
    max_holders: usize,
    /// (seconds, % of one core) per 0.5 s.
    cpu_over_time: Vec<(f64, f64)>,
}

/// The pair with a third node flooding the backup.
fn split_flood(arm: &str, seconds: u64, agent: &std::path::Path) -> Result<Split> {
    println!("split-brain flood: {arm}");
    let (impl_arm, extra): (Arm, Vec<String>) = match arm {
        "keepalived" => (Arm::Keepalived, vec![]),
        "vrrp-agent (raw sockets)" => (Arm::Agent, vec!["--receive".into(), "socket".into()]),
        _ => (Arm::Agent, vec!["--receive".into(), "xdp".into()]),
    };
    let seg = vrrp_tests::lab::Segment::new(&["192.0.2.20/24", "192.0.2.52/24", "192.0.2.66/24"])?;
    let _pins = crate::bench_failover::PinCleanup::new(&seg);
    let master_conf = bench_failover::conf(150, "192.0.2.20", "192.0.2.52", 100).replace(
        "  virtual_ipaddress",
        "  authentication {\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }\n  virtual_ipaddress",
    );
    let backup_conf = bench_failover::conf(100, "192.0.2.52", "192.0.2.20", 100).replace(
        "  virtual_ipaddress",
        "  authentication {\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }\n  virtual_ipaddress",
    );
    let _master = bench_failover::start(&seg, impl_arm, 0, &master_conf, agent, &extra)?;
    let backup = bench_failover::start(&seg, impl_arm, 1, &backup_conf, agent, &extra)?;
    let vip = "192.0.2.130";
    let t = Instant::now();
    while seg.holders(vip)? != [0] {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("{arm}: the master never held the VIP alone");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let masters_before = backup.lines().iter().filter(|l| l.contains("Entering MASTER")).count();
    // The flood: v2, VRID 55, priority 254, wrong password, from a stranger
    // to the backup's address and MAC.
    let backup_mac = vrrp_tests::capture::mac(&seg.nodes[1].ns, "eth0")?;
    let vips = [Ipv4Addr::new(192, 0, 2, 130)];
    let repr = Repr {
        version: Version::V2,
        vrid: 55,
        priority: 254,
        interval: Centis(100),
        auth: Auth::simple(b"intruder"),
        addrs: AddrList::V4(&vips),
    };
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 66), Ipv4Addr::new(192, 0, 2, 52));
    let mut msg = vec![0u8; repr.buffer_len()];
    let n = repr
        .emit(&mut msg, &TxIp { src: IpAddr::V4(src), dst: IpAddr::V4(dst), v3_checksum_as_v2: false })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let f = frame::ipv4(
        &frame::V4 { src, dst, ttl: 255, fragment: false, vlan: None, dst_mac: Some(backup_mac) },
        &msg[..n],
    );
    let conf = std::env::temp_dir().join(format!("{}.trafgen", netns::unique("split")));
    let bytes: Vec<String> = f.iter().map(|b| format!("0x{b:02x}")).collect();
    std::fs::write(&conf, format!("{{ {} }}\n", bytes.join(", ")))?;
    let pids = crate::bench_proc::process_tree(backup.pid());
    let u0 = Usage::read(&pids)?;
    let start = Instant::now();
    let mut tg = Command::new("timeout");
    tg.args([
        "-s",
        "INT",
        &seconds.to_string(),
        "ip",
        "netns",
        "exec",
        seg.nodes[2].ns.name(),
        "trafgen",
        "--dev",
        "eth0",
    ])
    .arg("--conf")
    .arg(&conf)
    .args(["--cpus", "1", "-q"])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = tg.spawn().context("starting trafgen")?;
    let mut max_holders = 0;
    let mut cpu_over_time = Vec::new();
    let mut sample = u0;
    while child.try_wait()?.is_none() {
        max_holders = max_holders.max(seg.holders(vip)?.len());
        std::thread::sleep(Duration::from_millis(10));
        if sample.at.is_some_and(|t| t.elapsed() >= Duration::from_millis(500)) {
            let now = Usage::read(&pids)?;
            cpu_over_time.push((start.elapsed().as_secs_f64(), now.since(&sample).0));
            sample = now;
        }
    }
    let u1 = Usage::read(&pids)?;
    let _ = std::fs::remove_file(&conf);
    let cpu = u1.since(&u0).0;
    let false_master =
        backup.lines().iter().filter(|l| l.contains("Entering MASTER")).count() - masters_before;
    println!("  backup CPU {cpu:.2}%, false MASTER entries {false_master}, most VIP holders {max_holders}");
    Ok(Split { cpu, false_master, max_holders, cpu_over_time })
}
