//! Failover scenarios for `cargo xtask bench`: the reference unicast pair
//! (node 1 priority 150, node 2 priority 100) on a bridge, the master
//! killed (SIGKILL) or stopped (SIGTERM, priority 0), timed from a capture
//! on the backup's bridge port: the master's last advert to the backup's
//! first gratuitous ARP for the VIP. That gap's protocol limit is exactly
//! Master_Down_Interval (crash) or Skew_Time (graceful); the excess over it
//! is what an implementation adds. Both arms, this agent and keepalived,
//! run in the same harness, one after the other.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use vrrp_tests::capture::{self, Capture};
use vrrp_tests::lab::Segment;
use vrrp_tests::netns;
use vrrp_tests::process::Process;

const VIP: &str = "192.0.2.130";
const VIP_OCTETS: [u8; 4] = [192, 0, 2, 130];
const MASTER: [u8; 4] = [192, 0, 2, 20];

/// Which implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// vrrp-agent.
    Agent,
    /// Debian's keepalived.
    Keepalived,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::Agent => "vrrp-agent",
            Arm::Keepalived => "keepalived",
        }
    }
}

/// How the master goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SIGKILL: silence; limit Master_Down_Interval.
    Crash,
    /// SIGTERM: priority 0; limit Skew_Time.
    Graceful,
}

/// One scenario's samples.
pub struct Series {
    pub arm: Arm,
    pub kind: Kind,
    /// Advert interval, centiseconds.
    pub interval_cs: u16,
    /// The protocol's limit for the gap, ms.
    pub limit_ms: f64,
    /// Gap minus limit, per run, ms.
    pub excess_ms: Vec<f64>,
    /// From the signal to the VIP present on the backup, per run, ms.
    pub to_vip_ms: Vec<f64>,
}

/// keepalived's `version` and `advert_int` for an interval: v2 for whole
/// seconds, v3 otherwise.
pub fn advert_int(interval_cs: u16) -> (u8, String) {
    if interval_cs.is_multiple_of(100) {
        (2, format!("{}", interval_cs / 100))
    } else {
        (3, format!("{}.{:02}", interval_cs / 100, interval_cs % 100))
    }
}

pub fn conf(priority: u8, me: &str, peer: &str, interval_cs: u16) -> String {
    let (version, int) = advert_int(interval_cs);
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int {int}\n  version {version}\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// Skew_Time and Master_Down_Interval in ms for `priority` at `interval_cs`
/// (RFC 5798 6.1; v2's skew is in seconds whatever the interval).
pub fn limits(priority: u64, interval_cs: u16) -> (f64, f64) {
    let interval_ms = f64::from(interval_cs) * 10.0;
    let skew = if interval_cs.is_multiple_of(100) {
        (256 - priority) as f64 * 1000.0 / 256.0
    } else {
        (256 - priority) as f64 * interval_ms / 256.0
    };
    (skew, 3.0 * interval_ms + skew)
}

/// Start `arm` on node `i` in its own process group (SIGKILL takes
/// keepalived's child processes along); waits for its first state.
pub fn start(
    seg: &Segment,
    arm: Arm,
    i: usize,
    text: &str,
    agent: &Path,
    extra: &[String],
) -> Result<Process> {
    let mut p = spawn(seg, arm, i, text, agent, extra)?;
    p.wait_for_line("Entering", Duration::from_secs(15))?;
    Ok(p)
}

/// As `start`, without waiting.
pub fn spawn(
    seg: &Segment,
    arm: Arm,
    i: usize,
    text: &str,
    agent: &Path,
    extra: &[String],
) -> Result<Process> {
    let tag = netns::unique("bench");
    let path = seg.file(&format!("{tag}.conf"), text)?;
    let mut cmd = match arm {
        Arm::Agent => {
            let mut c = seg.nodes[i].ns.command(agent.to_str().context("agent path")?);
            // One name per node of a segment: a restarted agent replaces
            // what its killed predecessor left pinned (its XDP link), as a
            // service manager's restart would. `PinCleanup` removes the
            // last one's.
            let name = format!("{}-n{i}", seg.lan.name());
            c.arg("run").arg("-f").arg(&path).args(["--name", &name]).args(extra);
            c
        }
        Arm::Keepalived => {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                seg.nodes[i].ns.name(),
                "keepalived",
                "-n",
                "-l",
                "--vrrp",
                "--no-syslog",
                "-f",
            ]);
            c.arg(&path);
            c.arg("-p").arg(std::env::temp_dir().join(format!("{tag}.pid")));
            c.arg("-r").arg(std::env::temp_dir().join(format!("{tag}.vrrp.pid")));
            c
        }
    };
    cmd.process_group(0);
    Process::spawn(&format!("{}-{i}", arm.name()), &mut cmd, false)
}

/// Removes the pins (and so the XDP links) that killed agents of a
/// segment's nodes left behind; a clean stop leaves none.
pub struct PinCleanup(pub String);

impl PinCleanup {
    pub fn new(seg: &Segment) -> PinCleanup {
        PinCleanup(seg.lan.name().to_owned())
    }
}

impl Drop for PinCleanup {
    fn drop(&mut self) {
        let root = Path::new("/sys/fs/bpf/vrrp-agent");
        let Ok(entries) = std::fs::read_dir(root) else { return };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{}-n", self.0)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

pub fn wait_for(limit: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let t = Instant::now();
    loop {
        if f()? {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            bail!("condition not met within {limit:?}");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// min, median, p95, max.
pub fn summary(v: &[f64]) -> [f64; 4] {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    [percentile(&s, 0.0), percentile(&s, 0.5), percentile(&s, 0.95), percentile(&s, 1.0)]
}

/// Run `runs` failovers of `kind` for `arm` at `interval_cs`.
/// `master_args`: extra arguments for the agent arm's master (to isolate
/// effects, e.g. `--receive socket`).
pub fn series(
    arm: Arm,
    kind: Kind,
    interval_cs: u16,
    runs: usize,
    agent: &Path,
    master_args: &[String],
) -> Result<Series> {
    let (skew2, mdi2) = limits(100, interval_cs);
    let (_, mdi1) = limits(150, interval_cs);
    let limit_ms = if kind == Kind::Crash { mdi2 } else { skew2 };
    println!(
        "{} {:?} at {} ms adverts: {runs} runs (limit {limit_ms:.3} ms)",
        arm.name(),
        kind,
        u32::from(interval_cs) * 10
    );
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let _pins = PinCleanup::new(&seg);
    let backup_mac = capture::mac(&seg.nodes[1].ns, "eth0")?;
    let _backup = start(&seg, arm, 1, &conf(100, "192.0.2.52", "192.0.2.20", interval_cs), agent, &[])?;
    let master_conf = conf(150, "192.0.2.20", "192.0.2.52", interval_cs);
    let interval = Duration::from_micros(u64::from(interval_cs) * 10_000);
    let mut out = Series { arm, kind, interval_cs, limit_ms, excess_ms: Vec::new(), to_vip_ms: Vec::new() };
    for run in 0..runs {
        let master = start(&seg, arm, 0, &master_conf, agent, master_args)?;
        // Node 1 preempts (or is elected): wait until it alone holds the VIP.
        let settle = Duration::from_secs_f64(mdi1 / 1000.0 * 2.0) + Duration::from_secs(3);
        wait_for(settle, || Ok(seg.holders(VIP)? == [0]))
            .with_context(|| format!("run {run}: node 1 never became the only master"))?;
        let cap = Capture::start(&seg.lan, "p1")?;
        std::thread::sleep(interval * 3 / 2);
        let pid = Pid::from_raw(master.pid() as i32);
        match kind {
            Kind::Crash => killpg(pid, Signal::SIGKILL)?,
            Kind::Graceful => kill(pid, Signal::SIGTERM)?,
        }
        let to_vip = wait_for(Duration::from_secs_f64(limit_ms / 1000.0) + Duration::from_secs(5), || {
            seg.holds(1, VIP)
        })
        .with_context(|| format!("run {run}: the backup never took the VIP"))?;
        // Let the announcement reach the capture before stopping it.
        std::thread::sleep(Duration::from_millis(20));
        let frames = cap.stop();
        let garp = frames.iter().find(|f| capture::is_garp(f, backup_mac, VIP_OCTETS));
        let last = garp.and_then(|g| {
            frames.iter().rev().find(|f| f.ts_ns <= g.ts_ns && capture::is_advert_from(f, MASTER))
        });
        match (last, garp) {
            (Some(l), Some(g)) => {
                let gap_ms = (g.ts_ns - l.ts_ns) as f64 / 1e6;
                out.excess_ms.push(gap_ms - limit_ms);
                out.to_vip_ms.push(to_vip.as_secs_f64() * 1000.0);
            }
            _ => println!(
                "  run {run}: no advert/announcement pair in the capture ({} frames); skipped",
                frames.len()
            ),
        }
        drop(master);
        // A killed master leaves its VIP; take it away for the next run.
        if seg.holds(0, VIP)? {
            seg.nodes[0].ns.ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"])?;
        }
    }
    let s = summary(&out.excess_ms);
    println!(
        "  excess over the limit, ms: min {:.3} median {:.3} p95 {:.3} max {:.3} ({} runs)",
        s[0],
        s[1],
        s[2],
        s[3],
        out.excess_ms.len()
    );
    Ok(out)
}
