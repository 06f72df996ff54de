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
    /// From the signal to the kernel's notice of the VIP added on the
    /// backup, per run, ms.
    pub to_vip_ms: Vec<f64>,
    /// The agent arm's backup: where each run's excess went (its own
    /// timestamps); None for keepalived or when it reported none.
    pub steps: Vec<Option<Steps>>,
    /// The 1-minute load average at each run (other work on the machine).
    pub load: Vec<f64>,
}

/// Names of `Steps::ms`, in order: from the master's last advert on the
/// wire to the backup's first gratuitous ARP on the wire, less the limit.
pub const STEP_NAMES: [&str; 9] = [
    "to XDP",
    "kernel timer",
    "wake-up",
    "to deadline",
    "decision",
    "first advert",
    "VIPs added",
    "GARP sent",
    "to wire",
];

/// One takeover of the agent's backup, split into steps (ms, each from
/// the end of the one before): the master's last advert from the capture
/// to the XDP program (its last holding advert), the kernel's timer past
/// that advert + Master_Down_Interval (the protocol's own wait is not in
/// it; negative when the watch warns ahead of the deadline), the agent
/// waking (ring buffer), its wait on the CPU for the deadline (after an
/// early warning), its decision (peer table, state machine), the first advert as master, the VIP's netlink add
/// acknowledged, the first gratuitous ARP handed to the kernel, and that
/// frame on the capture. They add up to the run's excess over the limit.
#[derive(Clone, Debug)]
pub struct Steps {
    /// Per `STEP_NAMES`; None where the step did not happen (no kernel
    /// watch: the agent's own timer decided, "kernel timer" then is its
    /// lateness and "to XDP"/"wake-up" are absent).
    pub ms: [Option<f64>; 9],
    /// Of "VIPs added": the agent's thread waiting for a CPU, ms, and how
    /// often it slept (voluntary context switches: the RTNL lock, the
    /// netlink reply).
    pub vips_cpu_wait_ms: Option<f64>,
    pub vips_sleeps: Option<u64>,
    /// The agent was awake before the deadline and waited for it: the
    /// kernel's timer, the wake-up and the wait were then off the path
    /// to the takeover (their sum is the wait's overshoot, a few µs).
    pub waited: bool,
}

impl Steps {
    /// The step that took longest.
    pub fn largest(&self) -> Option<(&'static str, f64)> {
        STEP_NAMES
            .iter()
            .zip(self.ms)
            .enumerate()
            .filter(|(k, _)| !(self.waited && (1..=3).contains(k)))
            .filter_map(|(_, (n, v))| v.map(|v| (*n, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, ns: the capture's timestamps are
/// the former, the agent's the latter (one kernel, so one offset). The
/// closest of a few paired reads.
pub fn realtime_offset_ns() -> i128 {
    let read = |c| {
        nix::time::clock_gettime(c)
            .map_or(0, |t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
    };
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..5 {
        let m0 = read(nix::time::ClockId::CLOCK_MONOTONIC);
        let r = read(nix::time::ClockId::CLOCK_REALTIME);
        let m1 = read(nix::time::ClockId::CLOCK_MONOTONIC);
        let width = m1 - m0;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, r - (m0 + m1) / 2));
        }
    }
    best.map_or(0, |(_, o)| o)
}

/// The agent's status file (`/run/vrrp-agent/<name>.json`): instance
/// VI_1's `last_takeover`, if any.
fn last_takeover(name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read(format!("/run/vrrp-agent/{name}.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["instances"].as_array()?.iter().find(|i| i["iname"] == "VI_1")?.get("last_takeover").cloned()
}

/// Split a run from its capture times (CLOCK_REALTIME ns) and the agent's
/// takeover record (CLOCK_MONOTONIC ns).
pub fn steps(
    t: &serde_json::Value,
    advert_ns: u64,
    garp_ns: u64,
    limit_ms: f64,
    offset_ns: i128,
) -> Option<Steps> {
    let mono = |real: u64| i128::from(real) - offset_ns;
    let f = |k: &str| t.get(k).and_then(serde_json::Value::as_u64).map(i128::from);
    let ms = |a: Option<i128>, b: Option<i128>| Some((b? - a?) as f64 / 1e6);
    let (adv, garp) = (Some(mono(advert_ns)), Some(mono(garp_ns)));
    let limit = (limit_ms * 1e6).round() as i128;
    let (hold, fired, woke, state) = (f("watch_hold_ns"), f("watch_fired_ns"), f("woke_ns")?, f("state_ns")?);
    // Warned early by the kernel's watch, the agent waits for the deadline
    // awake: "kernel timer" is then negative (the warning's lead), and the
    // wait is a step of its own.
    let due = f("due_ns");
    let (advert, vips, announce) = (f("advert_ns"), f("vips_ns"), f("announce_ns"));
    let timer = match (hold, fired) {
        (Some(h), Some(x)) => ms(Some(h + limit), Some(x)),
        // The agent's own timer: its lateness past the last advert heard.
        _ => ms(f("heard_ns").map(|h| h + limit), Some(woke)),
    };
    Some(Steps {
        ms: [
            ms(adv, hold),
            timer,
            ms(fired, Some(woke)),
            due.and_then(|d| ms(Some(woke), Some(d))),
            ms(due.or(Some(woke)), Some(state)),
            ms(Some(state), advert),
            ms(advert.or(Some(state)), vips),
            ms(vips, announce),
            ms(announce, garp),
        ],
        vips_cpu_wait_ms: f("vips_run_delay_ns").map(|n| n as f64 / 1e6),
        vips_sleeps: t.get("vips_sleeps").and_then(serde_json::Value::as_u64),
        waited: due.is_some_and(|d| d >= woke),
    })
}

/// The kernel's address notifications (RTMGRP_IPV4_IFADDR) in one
/// namespace: when an address appears, without polling. Polling `ip addr`
/// every 0.5 ms (a process each time) was itself a load on this 2-core
/// machine while the backup took over.
pub struct AddrEvents(std::os::fd::OwnedFd);

impl AddrEvents {
    /// Subscribe in `ns`; a socket stays in the namespace it was made in.
    pub fn open(ns: &vrrp_tests::Netns) -> Result<AddrEvents> {
        use std::os::fd::FromRawFd;
        let fd = ns.run_in(|| {
            // SAFETY: plain socket(2); owned right away.
            let raw = unsafe {
                libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
            };
            if raw < 0 {
                return Err(std::io::Error::last_os_error()).context("netlink socket");
            }
            // SAFETY: a fresh fd nothing else owns.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
            // SAFETY: zeroed sockaddr_nl is valid; filled below.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = libc::RTMGRP_IPV4_IFADDR as u32;
            // SAFETY: address valid for its size.
            let r = unsafe {
                libc::bind(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    (&raw const sa).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error()).context("binding the netlink socket");
            }
            Ok(fd)
        })?;
        let tv = nix::sys::time::TimeVal::new(0, 100_000);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)?;
        Ok(AddrEvents(fd))
    }

    /// Wait up to `limit` for `addr` to be added; how long it took.
    pub fn wait_added(&self, addr: [u8; 4], limit: Duration) -> Result<Duration> {
        use std::os::fd::AsRawFd;
        let t = Instant::now();
        let mut buf = vec![0u8; 16384];
        while t.elapsed() <= limit {
            // SAFETY: buffer valid for its length.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            if new_addr_in(&buf[..n as usize], addr) {
                return Ok(t.elapsed());
            }
        }
        bail!("{addr:?} not added within {limit:?}")
    }
}

/// Whether netlink messages `b` hold an RTM_NEWADDR with IFA_LOCAL or
/// IFA_ADDRESS `addr`.
fn new_addr_in(mut b: &[u8], addr: [u8; 4]) -> bool {
    const RTM_NEWADDR: u16 = 20;
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            return false;
        }
        // nlmsghdr (16) + ifaddrmsg (8), then rtattrs (len u16, type u16).
        if kind == RTM_NEWADDR {
            let mut a = &b[24.min(len)..len];
            while a.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([a[0], a[1]]));
                let atype = u16::from_ne_bytes([a[2], a[3]]);
                if alen < 4 || alen > a.len() {
                    break;
                }
                if (atype == 1 || atype == 2) && a[4..alen] == addr {
                    return true;
                }
                a = &a[((alen + 3) & !3).min(a.len())..];
            }
        }
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    false
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse().ok()))
        .unwrap_or(f64::NAN)
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
        "{}vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int {int}\n  version {version}\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n",
        global_defs()
    )
}

/// VRRP_BENCH_GLOBAL_DEFS: `global_defs` lines (separated by `;`) for both
/// arms of the failover series, e.g. `vrrp_rt_priority 50` to compare the
/// two at keepalived's realtime scheduling.
pub fn global_defs() -> String {
    match std::env::var("VRRP_BENCH_GLOBAL_DEFS") {
        Ok(v) if !v.trim().is_empty() => {
            let lines: String = v.split(';').map(|l| format!("  {}\n", l.trim())).collect();
            format!("global_defs {{\n{lines}}}\n")
        }
        _ => String::new(),
    }
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
    // The daemons under test at the default nice value, as a service
    // manager starts them, even when the bench itself is niced (as it is
    // on a machine shared with builds): they inherit it otherwise, and
    // their scheduling delay is then the niceness's, not theirs.
    // SAFETY: setpriority is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, 0);
            Ok(())
        });
    }
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
    /// The bench's agents' pins, and their files in /run/vrrp-agent (a
    /// master killed on purpose leaves its status, live and crash records
    /// there, as a crashed agent does): nothing of a bench run stays on
    /// the machine.
    fn drop(&mut self) {
        let prefix = format!("{}-n", self.0);
        let ours = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with(&prefix);
        if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf/vrrp-agent") {
            for e in entries.flatten().filter(ours) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/vrrp-agent") {
            for e in entries.flatten().filter(ours) {
                let _ = std::fs::remove_file(e.path());
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
    let mut out = Series {
        arm,
        kind,
        interval_cs,
        limit_ms,
        excess_ms: Vec::new(),
        to_vip_ms: Vec::new(),
        steps: Vec::new(),
        load: Vec::new(),
    };
    let backup_name = format!("{}-n1", seg.lan.name());
    let seq = |t: &Option<serde_json::Value>| t.as_ref().and_then(|t| t["seq"].as_u64()).unwrap_or(0);
    for run in 0..runs {
        let master = start(&seg, arm, 0, &master_conf, agent, master_args)?;
        // Node 1 preempts (or is elected): wait until it alone holds the VIP.
        let settle = Duration::from_secs_f64(mdi1 / 1000.0 * 2.0) + Duration::from_secs(3);
        wait_for(settle, || Ok(seg.holders(VIP)? == [0]))
            .with_context(|| format!("run {run}: node 1 never became the only master"))?;
        let cap = Capture::start(&seg.lan, "p1")?;
        std::thread::sleep(interval * 3 / 2);
        let before = seq(&last_takeover(&backup_name));
        let added = AddrEvents::open(&seg.nodes[1].ns)?;
        let pid = Pid::from_raw(master.pid() as i32);
        match kind {
            Kind::Crash => killpg(pid, Signal::SIGKILL)?,
            Kind::Graceful => kill(pid, Signal::SIGTERM)?,
        }
        let to_vip = added
            .wait_added(VIP_OCTETS, Duration::from_secs_f64(limit_ms / 1000.0) + Duration::from_secs(5))
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
                out.load.push(loadavg());
                // The backup's own record of this takeover: written to its
                // status file right after the announcement.
                let mut record = None;
                if arm == Arm::Agent {
                    let _ = wait_for(Duration::from_secs(2), || {
                        record = last_takeover(&backup_name)
                            .filter(|t| seq(&Some(t.clone())) > before && t.get("announce_ns").is_some());
                        Ok(record.is_some())
                    });
                }
                let offset = realtime_offset_ns();
                let s = record.and_then(|t| steps(&t, l.ts_ns, g.ts_ns, limit_ms, offset));
                if s.is_none() && arm == Arm::Agent {
                    println!("  run {run}: the backup reported no takeover record");
                }
                out.steps.push(s);
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
    if out.steps.iter().any(Option::is_some) {
        let mut line = String::from("  the backup's steps, median/p95 ms:");
        for (k, n) in STEP_NAMES.iter().enumerate() {
            let v: Vec<f64> = out.steps.iter().flatten().filter_map(|s| s.ms[k]).collect();
            if !v.is_empty() {
                let s = summary(&v);
                line.push_str(&format!(" {n} {:.3}/{:.3};", s[1], s[2]));
            }
        }
        println!("{line}");
    }
    for (run, (e, st)) in out.excess_ms.iter().zip(&out.steps).enumerate() {
        if *e > 1.0 {
            println!(
                "  run {run}: {e:.3} ms over; steps {:?}; VIPs added: {:?} ms waiting for a CPU, {:?} sleeps",
                st.as_ref().map(|s| s.ms),
                st.as_ref().and_then(|s| s.vips_cpu_wait_ms),
                st.as_ref().and_then(|s| s.vips_sleeps)
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWADDR as the kernel sends it: nlmsghdr, ifaddrmsg, then
    /// IFA_ADDRESS and IFA_LOCAL.
    fn newaddr(kind: u16, addr: [u8; 4]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(0u32.to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend([2, 24, 0, 0, 3, 0, 0, 0]);
        for t in [1u16, 2] {
            m.extend(8u16.to_ne_bytes());
            m.extend(t.to_ne_bytes());
            m.extend(addr);
        }
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn finds_the_address_in_a_new_address_notice_only() {
        let vip = [192, 0, 2, 130];
        assert!(new_addr_in(&newaddr(20, vip), vip));
        assert!(!new_addr_in(&newaddr(21, vip), vip), "RTM_DELADDR");
        assert!(!new_addr_in(&newaddr(20, [192, 0, 2, 131]), vip));
        // Second of two messages; a truncated one is no match and no panic.
        let mut two = newaddr(20, [192, 0, 2, 1]);
        two.extend(newaddr(20, vip));
        assert!(new_addr_in(&two, vip));
        let whole = newaddr(20, vip);
        for cut in 0..whole.len() {
            assert!(!new_addr_in(&whole[..cut], vip), "cut at {cut}");
        }
    }

    #[test]
    fn steps_add_up_to_the_excess() {
        // Capture (realtime) = monotonic + 1 s.
        let offset: i128 = 1_000_000_000;
        let limit_ms = 360.9375;
        let advert_mono: u64 = 5_000_000_000;
        let t = serde_json::json!({
            "seq": 2,
            "heard_ns": advert_mono + 20_000,
            "watch_hold_ns": advert_mono + 20_000,
            "watch_fired_ns": advert_mono + 20_000 + 360_937_500 + 50_000,
            "woke_ns": advert_mono + 361_100_000,
            "state_ns": advert_mono + 361_150_000,
            "advert_ns": advert_mono + 361_180_000,
            "vips_ns": advert_mono + 361_400_000,
            "announce_ns": advert_mono + 361_420_000,
        });
        let garp_mono = advert_mono + 361_450_000;
        let s = steps(&t, advert_mono + 1_000_000_000, garp_mono + 1_000_000_000, limit_ms, offset)
            .expect("steps");
        let sum: f64 = s.ms.iter().flatten().sum();
        let excess = (garp_mono - advert_mono) as f64 / 1e6 - limit_ms;
        assert!((sum - excess).abs() < 1e-6, "{sum} against {excess}");
        assert_eq!(s.largest().map(|l| l.0), Some("VIPs added"));
        // The agent's own timer: no kernel times, the lateness is "kernel timer".
        let own = serde_json::json!({
            "seq": 3, "heard_ns": advert_mono, "woke_ns": advert_mono + 361_000_000,
            "state_ns": advert_mono + 361_010_000, "vips_ns": advert_mono + 361_100_000,
            "announce_ns": advert_mono + 361_110_000,
        });
        let s = steps(&own, advert_mono + 1_000_000_000, garp_mono + 1_000_000_000, limit_ms, offset)
            .expect("steps");
        assert_eq!((s.ms[0], s.ms[2], s.ms[3], s.ms[5]), (None, None, None, None));
        let sum: f64 = s.ms.iter().flatten().sum();
        assert!((sum - excess).abs() < 1e-6, "{sum} against {excess}");
        // Warned 2 ms early, the agent waited for the deadline awake.
        let hold = advert_mono + 20_000;
        let deadline = hold + 360_937_500;
        let early = serde_json::json!({
            "seq": 4, "heard_ns": hold, "watch_hold_ns": hold,
            "watch_fired_ns": deadline - 2_000_000 + 30_000, "woke_ns": deadline - 1_900_000,
            "due_ns": deadline + 1_000, "state_ns": deadline + 60_000, "advert_ns": deadline + 90_000,
            "vips_ns": deadline + 400_000, "announce_ns": deadline + 420_000,
        });
        let s = steps(&early, advert_mono + 1_000_000_000, garp_mono + 1_000_000_000, limit_ms, offset)
            .expect("steps");
        assert!(s.ms[1].is_some_and(|t| t < -1.9), "the warning's lead: {:?}", s.ms[1]);
        assert!(s.ms[3].is_some_and(|t| (t - 1.901).abs() < 1e-6), "the wait: {:?}", s.ms[3]);
        // The wait is no cause: the address add is the largest step.
        assert!(s.waited);
        assert_eq!(s.largest().map(|l| l.0), Some("VIPs added"));
        let sum: f64 = s.ms.iter().flatten().sum();
        assert!((sum - excess).abs() < 1e-6, "{sum} against {excess}");
    }
}
