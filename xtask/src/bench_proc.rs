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

/// The network softirqs (NET_TX, NET_RX) the kernel runs in the context of
/// a set of processes, traced with perf (`irq:softirq_entry`/`_exit`, on
/// CLOCK_MONOTONIC). This kernel accounts CPU time by tick, without
/// CONFIG_IRQ_TIME_ACCOUNTING: a softirq run while a process is current
/// (the tail of its `sendto` on a veth, where the peer's receive path runs
/// at once) is in that process's schedstat time. On a veth pair that is
/// the receiving node's work (its bridge, its XDP program or its IP input
/// and socket delivery), which a real backup would do on its own CPU.
pub struct SoftirqTrace {
    child: std::process::Child,
    file: std::path::PathBuf,
}

/// What a `SoftirqTrace` saw in a window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Softirqs {
    /// Time in NET_TX/NET_RX softirqs, ns.
    pub ns: u64,
    /// How many ran.
    pub runs: u64,
}

/// CLOCK_MONOTONIC now, ns (perf's `--clockid monotonic` timestamps).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

impl SoftirqTrace {
    /// Start tracing every thread of `pids`.
    pub fn start(pids: &[u32]) -> Result<SoftirqTrace> {
        let file =
            std::env::temp_dir().join(format!("vrrp-bench-softirq-{}-{}.data", std::process::id(), pids[0]));
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "--clockid",
                "monotonic",
                "-e",
                "irq:softirq_entry",
                "-e",
                "irq:softirq_exit",
            ])
            .arg("-o")
            .arg(&file)
            .args(["-p", &list.join(",")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting perf record (linux-perf)")?;
        // perf needs a moment to open its events; the window starts after.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(SoftirqTrace { child, file })
    }

    /// Stop, and sum the network softirqs that started within
    /// `from_ns..to_ns` (CLOCK_MONOTONIC).
    pub fn stop(mut self, from_ns: u64, to_ns: u64) -> Result<Softirqs> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGINT)?;
        self.child.wait()?;
        let out = Command::new("perf")
            .args(["script", "--ns", "-F", "tid,time,event,trace", "-i"])
            .arg(&self.file)
            .output()
            .context("running perf script")?;
        let _ = std::fs::remove_file(&self.file);
        if !out.status.success() {
            bail!("perf script: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(sum_softirqs(&String::from_utf8_lossy(&out.stdout), from_ns, to_ns))
    }
}

/// Pair each thread's softirq entries and exits in `perf script` lines
/// (`TID SECS.NANOS: irq:softirq_entry: vec=3 [action=NET_RX]`).
fn sum_softirqs(text: &str, from_ns: u64, to_ns: u64) -> Softirqs {
    let mut open: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let mut s = Softirqs::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(tid), Some(time), Some(event)) = (f.next(), f.next(), f.next()) else { continue };
        if !(line.contains("action=NET_RX") || line.contains("action=NET_TX")) {
            continue;
        }
        let (Ok(tid), Some((secs, nanos))) = (tid.parse::<u32>(), time.trim_end_matches(':').split_once('.'))
        else {
            continue;
        };
        let (Ok(secs), Ok(nanos)) = (secs.parse::<u64>(), nanos.parse::<u64>()) else { continue };
        let t = secs * 1_000_000_000 + nanos;
        if event.starts_with("irq:softirq_entry") {
            open.insert(tid, t);
        } else if event.starts_with("irq:softirq_exit")
            && let Some(start) = open.remove(&tid)
            && (from_ns..to_ns).contains(&start)
        {
            s.ns += t.saturating_sub(start);
            s.runs += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softirqs_pair_per_thread_and_count_only_the_network_ones_in_the_window() {
        let text = " 10 100.000000100: irq:softirq_entry: vec=3 [action=NET_RX]
 10 100.000000400:  irq:softirq_exit: vec=3 [action=NET_RX]
 10 100.000001000: irq:softirq_entry: vec=1 [action=TIMER]
 10 100.000002000:  irq:softirq_exit: vec=1 [action=TIMER]
 11 100.000003000: irq:softirq_entry: vec=2 [action=NET_TX]
 11 100.000003050:  irq:softirq_exit: vec=2 [action=NET_TX]
 11 200.000000000: irq:softirq_entry: vec=3 [action=NET_RX]
 11 200.000000500:  irq:softirq_exit: vec=3 [action=NET_RX]
";
        let s = sum_softirqs(text, 100_000_000_000, 150_000_000_000);
        assert_eq!((s.ns, s.runs), (350, 2));
    }
}
