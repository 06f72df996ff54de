//! What the benchmarks read about processes and XDP programs: CPU time and
//! wake-ups of a process tree (all threads), resident memory, and the
//! kernel's run-time statistics of an attached XDP program.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use vrrp_tests::Netns;

/// The pids of `pid` and all its descendants (keepalived's VRRP child).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(parent) && !out.contains(&child) {
                    out.push(child);
                }
            }
        }
        i += 1;
    }
    out
}

/// Cumulative CPU time and wake-ups of a set of processes, all threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Time on a CPU, ns (`/proc/PID/task/TID/schedstat`, first field).
    pub cpu_ns: u64,
    /// Voluntary context switches: each is a sleep, so each is followed by
    /// one wake-up (`voluntary_ctxt_switches`).
    pub wakeups: u64,
    /// When it was read.
    pub at: Option<Instant>,
}

impl Usage {
    /// Read it for `pids` now.
    pub fn read(pids: &[u32]) -> Result<Usage> {
        let mut u = Usage { at: Some(Instant::now()), ..Usage::default() };
        for pid in pids {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .with_context(|| format!("reading /proc/{pid}/task"))?;
            for t in tasks.flatten() {
                let dir = t.path();
                let sched = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
                u.cpu_ns += sched.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
                u.wakeups += status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(u)
    }

    /// From `earlier` to `self`: (% of one core, wake-ups per second).
    pub fn since(&self, earlier: &Usage) -> (f64, f64) {
        let secs = match (self.at, earlier.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64().max(1e-9),
            _ => return (f64::NAN, f64::NAN),
        };
        let cpu = self.cpu_ns.saturating_sub(earlier.cpu_ns) as f64 / 1e9 / secs * 100.0;
        let wake = self.wakeups.saturating_sub(earlier.wakeups) as f64 / secs;
        (cpu, wake)
    }
}

/// Resident memory of a set of processes, summed (KiB): RSS counts shared
/// pages once per process, PSS shares them out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl Memory {
    pub fn read(pids: &[u32]) -> Result<Memory> {
        let mut m = Memory::default();
        for pid in pids {
            let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            m.rss_kib += field("Rss:");
            m.pss_kib += field("Pss:");
        }
        Ok(m)
    }
}

/// The kernel's BPF run-time statistics (`kernel.bpf_stats_enabled`),
/// on while this lives, restored on drop.
pub struct BpfStats {
    was: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> Result<BpfStats> {
        let was = std::fs::read_to_string(BPF_STATS).context("reading kernel.bpf_stats_enabled")?;
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(BpfStats { was: was.trim().to_owned() })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.was);
    }
}

/// Cumulative run count and run time of the XDP program on `dev` in `ns`.
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpRun {
    pub runs: u64,
    pub ns: u64,
}

impl XdpRun {
    pub fn read(ns: &Netns, dev: &str) -> Result<XdpRun> {
        let net = run_json(Command::new("ip").args([
            "netns",
            "exec",
            ns.name(),
            "bpftool",
            "-j",
            "net",
            "show",
            "dev",
            dev,
        ]))?;
        let id = net
            .get(0)
            .and_then(|n| n.get("xdp"))
            .and_then(|x| x.get(0))
            .and_then(|x| {
                x.get("id")
                    .or_else(|| x.get("multi_attachments").and_then(|m| m.get(0)).and_then(|m| m.get("id")))
            })
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("no XDP program on {dev} in {}: {net}", ns.name()))?;
        let prog = run_json(Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]))?;
        let get = |k: &str| prog.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Ok(XdpRun { runs: get("run_cnt"), ns: get("run_time_ns") })
    }

    /// From `earlier` to `self` over `secs`: (runs per second, ns per run,
    /// % of one core).
    pub fn since(&self, earlier: &XdpRun, secs: f64) -> (f64, f64, f64) {
        let runs = self.runs.saturating_sub(earlier.runs) as f64;
        let ns = self.ns.saturating_sub(earlier.ns) as f64;
        let per_run = if runs > 0.0 { ns / runs } else { 0.0 };
        (runs / secs, per_run, ns / 1e9 / secs * 100.0)
    }
}

fn run_json(cmd: &mut Command) -> Result<serde_json::Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("parsing the output of {cmd:?}"))
}
