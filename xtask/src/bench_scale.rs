//! Thousands of instances for `cargo xtask bench --only scale4k` (issue
//! 15): two namespaces joined by `ifaces` veth pairs (`vl0`, `vl1`, ...;
//! this kernel has no 8021q module, so veth stands in for the VLAN
//! interfaces of a router), `vrids` multicast VRRPv3 instances on each at
//! 100 ms adverts, one /32 VIP each. Both arms in one run, the same
//! topology and file: the master (priority 150) first, then the backup
//! (priority 100), timed from its spawn until every instance logged BACKUP;
//! then both process trees' CPU (schedstat, every thread) and resident
//! memory; then SIGKILL to the master's process group, timed until every
//! instance on the backup is MASTER and every VIP is on its interfaces.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use vrrp_tests::Netns;
use vrrp_tests::netns;
use vrrp_tests::process::Process;

use crate::bench_failover::{self, Arm, PinCleanup};
use crate::bench_proc::{BpfStats, Memory, Usage, XdpRun, process_tree};

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Interfaces (veth pairs) between the two nodes.
    pub ifaces: u16,
    /// VRIDs per interface (1..=vrids).
    pub vrids: u16,
    /// Seconds of CPU measurement after the warm-up.
    pub seconds: u64,
}

impl Shape {
    pub fn instances(&self) -> usize {
        usize::from(self.ifaces) * usize::from(self.vrids)
    }
}

/// Advert interval, centiseconds.
const INTERVAL_CS: u16 = 10;

/// One process of a tree: pid, command name, memory.
#[derive(Clone, Debug)]
pub struct ProcMem {
    pub pid: u32,
    pub comm: String,
    pub mem: Memory,
}

/// The crash failover of every instance at once.
#[derive(Clone, Debug, Default)]
pub struct Failover {
    /// Kill → the first and the last VIP added on the backup, from
    /// `ip -ts monitor address` in its namespace (ms).
    pub first_vip_ms: f64,
    pub last_vip_ms: f64,
    /// VIP additions the monitor saw (less than the instances if its
    /// socket overflowed).
    pub monitored: usize,
    /// Kill → `ip -o addr` first showed every VIP (polled every 20 ms).
    pub all_polled_ms: f64,
    /// Kill → the backup's last "Entering MASTER" line, by the backup's
    /// own log timestamp (the agent's; keepalived's console log has
    /// whole seconds only).
    pub last_master_log_ms: Option<f64>,
    /// Instances that entered MASTER on the backup after the kill.
    pub masters: usize,
    /// The backup's processes, MASTER of every instance, about 1 s after
    /// the takeover (its announcements sent, its heap trimmed).
    pub taken_over_mem: Vec<ProcMem>,
}

/// One arm's figures.
#[derive(Clone, Debug)]
pub struct Scale {
    pub arm: Arm,
    pub shape: Shape,
    /// Spawn of the backup → every instance logged BACKUP (ms).
    pub start_to_backup_ms: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// (% of one core, wake-ups per second).
    pub master: (f64, f64),
    pub backup: (f64, f64),
    /// The backup's XDP program (runs/s, ns/run, % of a core in softirq).
    pub backup_xdp: Option<(f64, f64, f64)>,
    pub master_mem: Vec<ProcMem>,
    pub backup_mem: Vec<ProcMem>,
    /// MASTER entries on the backup while the master ran: between its
    /// start and the measurement, and during the measurement (the
    /// election did not hold if any then).
    pub startup_masters: usize,
    pub false_masters: usize,
    /// VIPs on the master and on the backup at the end of the measurement.
    pub held: (usize, usize),
    pub failover: Option<Failover>,
    /// Master_Down_Interval of the backup (ms).
    pub mdi_ms: f64,
    /// `uptime` before and after the arm.
    pub load: (String, String),
}

impl Scale {
    pub fn election_held(&self) -> bool {
        self.false_masters == 0 && self.held == (self.shape.instances(), 0)
    }
}

fn vip(vrid: u16) -> String {
    format!("198.51.100.{vrid}")
}

/// `ifaces` × `vrids` multicast instances, the same file on both nodes
/// but for the priority. The same VIP on different interfaces is one
/// address per interface to the kernel (and to keepalived).
pub fn conf(shape: Shape, priority: u8) -> String {
    let (version, int) = bench_failover::advert_int(INTERVAL_CS);
    let mut s = String::new();
    for n in 0..shape.ifaces {
        for v in 1..=shape.vrids {
            let _ = write!(
                s,
                "vrrp_instance V{n}_{v} {{\n  state BACKUP\n  interface vl{n}\n  virtual_router_id {v}\n  priority {priority}\n  advert_int {int}\n  version {version}\n  virtual_ipaddress {{\n    {}/32\n  }}\n}}\n",
                vip(v)
            );
        }
    }
    s
}

/// The two nodes and their links.
struct Pair {
    nodes: [Netns; 2],
    dir: std::path::PathBuf,
}

impl Pair {
    fn new(shape: Shape) -> Result<Pair> {
        let a = Netns::new("vka")?;
        let b = Netns::new("vkb")?;
        for n in 0..shape.ifaces {
            let name = format!("vl{n}");
            a.veth_to(&name, &b, &name)?;
            // A /32 each: the adverts' source; 203.0.113.1-16 and .101-116.
            a.ip(&["addr", "add", &format!("203.0.113.{}/32", n + 1), "dev", &name])?;
            b.ip(&["addr", "add", &format!("203.0.113.{}/32", n + 101), "dev", &name])?;
        }
        let dir = std::env::temp_dir().join(netns::unique("vrrp-scale-"));
        std::fs::create_dir_all(&dir)?;
        Ok(Pair { nodes: [a, b], dir })
    }

    /// The agents' `--name` prefix (`PinCleanup` removes `<prefix>-n*`).
    fn pin_prefix(&self) -> String {
        self.nodes[0].name().to_owned()
    }

    /// How many VIPs node `i` holds (on any of its interfaces).
    fn held(&self, i: usize) -> Result<usize> {
        let out = self.nodes[i].ip(&["-o", "-4", "addr", "show"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w.starts_with("198.51.100.")))
            .count())
    }

    fn spawn(&self, arm: Arm, i: usize, text: &str, agent: &Path) -> Result<Process> {
        let tag = netns::unique("scale");
        let path = self.dir.join(format!("{tag}.conf"));
        std::fs::write(&path, text)?;
        let mut cmd = match arm {
            Arm::Agent => {
                let mut c = self.nodes[i].command(agent.to_str().context("agent path")?);
                let name = format!("{}-n{i}", self.pin_prefix());
                c.arg("run").arg("-f").arg(&path).args(["--name", &name]);
                c
            }
            Arm::Keepalived => {
                let mut c = Command::new("ip");
                c.args([
                    "netns",
                    "exec",
                    self.nodes[i].name(),
                    "keepalived",
                    "-n",
                    "-l",
                    "--vrrp",
                    "--no-syslog",
                ]);
                c.arg("-f").arg(&path);
                c.arg("-p").arg(self.dir.join(format!("{tag}.pid")));
                c.arg("-r").arg(self.dir.join(format!("{tag}.vrrp.pid")));
                c
            }
        };
        // Its own process group: SIGKILL takes the whole tree (the agent's
        // worker, keepalived's VRRP child).
        cmd.process_group(0);
        Process::spawn(&format!("{}-{i}", arm.name()), &mut cmd, false)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn per_process(pids: &[u32]) -> Vec<ProcMem> {
    pids.iter()
        .filter_map(|&pid| {
            let mem = Memory::read(&[pid]).ok()?;
            let comm =
                std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
            Some(ProcMem { pid, comm, mem })
        })
        .collect()
}

/// Seconds since midnight of the first `HH:MM:SS.ffffff` in `line` (the
/// agent's RFC 3339 log stamps, `ip -ts`'s), UTC.
pub fn time_of_day(line: &str) -> Option<f64> {
    let b = line.as_bytes();
    (0..b.len().saturating_sub(8)).find_map(|i| {
        let w = &b[i..];
        let digits = |r: std::ops::Range<usize>| r.clone().all(|j| w.get(j).is_some_and(u8::is_ascii_digit));
        if !(digits(0..2) && w[2] == b':' && digits(3..5) && w[5] == b':' && digits(6..8)) {
            return None;
        }
        if i > 0 && b[i - 1].is_ascii_digit() {
            return None;
        }
        let frac_len = if w.get(8) == Some(&b'.') {
            w[9..].iter().take_while(|c| c.is_ascii_digit()).count()
        } else {
            0
        };
        let text = std::str::from_utf8(&w[..if frac_len > 0 { 9 + frac_len } else { 8 }]).ok()?;
        let (h, rest) = text.split_once(':')?;
        let (m, s) = rest.split_once(':')?;
        Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
    })
}

/// From `t0` (seconds since midnight) to `t`, across midnight.
fn since_ms(t0: f64, t: f64) -> f64 {
    let d = t - t0;
    (if d < -43_200.0 { d + 86_400.0 } else { d }) * 1000.0
}

fn now_of_day() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() % 86_400.0).unwrap_or(0.0)
}

/// `ip -ts -o monitor address` in a namespace, its lines kept.
struct Monitor {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(ns: &Netns) -> Result<Monitor> {
        let mut child = Command::new("ip")
            .env("TZ", "UTC")
            .args(["-n", ns.name(), "-ts", "-o", "monitor", "address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ip monitor")?;
        let out = child.stdout.take().context("ip monitor's stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(mut v) = l.lock() {
                    v.push(line);
                }
            }
        });
        Ok(Monitor { child, lines })
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(p: &Process, needle: &str) -> usize {
    p.count(needle)
}

/// Run one arm.
pub fn run(arm: Arm, shape: Shape, agent: &Path) -> Result<Scale> {
    let n = shape.instances();
    println!(
        "{}: {} × {} = {n} instances at {} ms adverts, {} s",
        arm.name(),
        shape.ifaces,
        shape.vrids,
        u32::from(INTERVAL_CS) * 10,
        shape.seconds
    );
    let load_before = uptime();
    let _stats = BpfStats::enable()?;
    let pair = Pair::new(shape)?;
    let _pins = PinCleanup(pair.pin_prefix());
    let master = pair.spawn(arm, 0, &conf(shape, 150), agent)?;
    // With no one else on the links, every instance of the master goes
    // MASTER after its Master_Down_Interval.
    bench_failover::wait_for(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(50));
        Ok(pair.held(0)? == n)
    })
    .with_context(|| format!("{}: the master never held every VIP", arm.name()))?;

    let t0 = Instant::now();
    let backup = pair.spawn(arm, 1, &conf(shape, 100), agent)?;
    bench_failover::wait_for(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(2));
        Ok(count(&backup, "Entering BACKUP") >= n)
    })
    .with_context(|| format!("{}: the backup never entered BACKUP for every instance", arm.name()))?;
    let start_to_backup_ms = t0.elapsed().as_secs_f64() * 1000.0;
    println!("  backup: all {n} BACKUP {start_to_backup_ms:.0} ms after its spawn");

    // Warm-up: first adverts learnt, start-up work done.
    std::thread::sleep(Duration::from_secs(3));
    let (bt, mt) = (process_tree(backup.pid()), process_tree(master.pid()));
    let xdp = || -> Result<Option<XdpRun>> {
        if arm == Arm::Agent { XdpRun::read(&pair.nodes[1], "vl0").map(Some) } else { Ok(None) }
    };
    let masters_before = count(&backup, "Entering MASTER");
    let (b0, m0, x0) = (Usage::read(&bt)?, Usage::read(&mt)?, xdp()?);
    std::thread::sleep(Duration::from_secs(shape.seconds));
    let (b1, m1, x1) = (Usage::read(&bt)?, Usage::read(&mt)?, xdp()?);
    let secs = b1.at.zip(b0.at).map(|(a, b)| a.duration_since(b).as_secs_f64()).unwrap_or(f64::NAN);
    let backup_xdp = x1.zip(x0).map(|(a, b)| a.since(&b, secs));
    let (backup_mem, master_mem) = (per_process(&bt), per_process(&mt));
    let held = (pair.held(0)?, pair.held(1)?);
    let false_masters = count(&backup, "Entering MASTER") - masters_before;
    let (_, mdi_ms) = bench_failover::limits(100, INTERVAL_CS);
    let mut out = Scale {
        arm,
        shape,
        start_to_backup_ms,
        seconds: secs,
        master: m1.since(&m0),
        backup: b1.since(&b0),
        backup_xdp,
        master_mem,
        backup_mem,
        startup_masters: masters_before,
        false_masters,
        held,
        failover: None,
        mdi_ms,
        load: (load_before, String::new()),
    };
    println!(
        "  master CPU {:.2}% ({:.0} wake-ups/s), backup CPU {:.3}% ({:.0} wake-ups/s); held {held:?}; {false_masters} MASTER entries on the backup ({masters_before} before the measurement)",
        out.master.0, out.master.1, out.backup.0, out.backup.1
    );
    if out.election_held() {
        let f = failover(&pair, arm, &master, &backup, n, mdi_ms)
            .with_context(|| format!("{}: crash failover", arm.name()))?;
        println!(
            "  kill → first VIP {:.1} ms, last VIP {:.1} ms (monitor, {} seen), all present by polling {:.1} ms, last MASTER log {}; Master_Down_Interval {mdi_ms:.1} ms",
            f.first_vip_ms,
            f.last_vip_ms,
            f.monitored,
            f.all_polled_ms,
            f.last_master_log_ms.map_or("-".to_owned(), |v| format!("{v:.1} ms"))
        );
        out.failover = Some(f);
    } else {
        println!("  the election did not hold: no failover measured");
    }
    drop(master);
    drop(backup);
    out.load.1 = uptime();
    Ok(out)
}

fn failover(
    pair: &Pair,
    arm: Arm,
    master: &Process,
    backup: &Process,
    n: usize,
    mdi_ms: f64,
) -> Result<Failover> {
    let monitor = Monitor::start(&pair.nodes[1])?;
    // Let the monitor subscribe before the kill.
    std::thread::sleep(Duration::from_millis(300));
    let masters_before = count(backup, "Entering MASTER");
    let t = Instant::now();
    let kill_tod = now_of_day();
    killpg(Pid::from_raw(master.pid() as i32), Signal::SIGKILL)?;
    bench_failover::wait_for(Duration::from_secs_f64(mdi_ms / 1000.0) + Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(20));
        Ok(pair.held(1)? >= n)
    })
    .context("the backup never held every VIP")?;
    let all_polled_ms = t.elapsed().as_secs_f64() * 1000.0;
    bench_failover::wait_for(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(20));
        Ok(count(backup, "Entering MASTER") >= masters_before + n)
    })
    .context("not every instance on the backup entered MASTER")?;
    // The monitor's last lines.
    std::thread::sleep(Duration::from_millis(200));
    let adds: Vec<f64> = monitor
        .lines()
        .iter()
        .filter(|l| !l.contains("Deleted") && l.contains(" 198.51.100."))
        .filter_map(|l| time_of_day(l))
        .map(|t| since_ms(kill_tod, t))
        .collect();
    if adds.is_empty() {
        bail!("ip monitor saw no VIP added");
    }
    // A backup that took over every instance must stay under the RSS
    // target too (issue 15): it holds what a master holds.
    std::thread::sleep(Duration::from_millis(800));
    let taken_over_mem = per_process(&process_tree(backup.pid()));
    let lines = backup.lines();
    let master_lines: Vec<&String> = lines.iter().filter(|l| l.contains("Entering MASTER")).collect();
    let last_master_log_ms = master_lines
        .iter()
        .skip(masters_before)
        .filter_map(|l| time_of_day(l))
        .filter(|_| arm == Arm::Agent && master_lines.len() >= masters_before + n)
        .map(|t| since_ms(kill_tod, t))
        .reduce(f64::max);
    Ok(Failover {
        first_vip_ms: adds.iter().copied().fold(f64::INFINITY, f64::min),
        last_vip_ms: adds.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        monitored: adds.len(),
        all_polled_ms,
        last_master_log_ms,
        masters: master_lines.len() - masters_before,
        taken_over_mem,
    })
}

/// The report's section and the results' rows.
pub fn report(md: &mut String, arms: &[Scale]) -> Result<serde_json::Value> {
    let Some(first) = arms.first() else { return Ok(serde_json::Value::Null) };
    let s = first.shape;
    writeln!(md, "## Scale: {} instances\n", s.instances())?;
    writeln!(
        md,
        "Two namespaces joined by {} veth pairs (this kernel has no 8021q module: veth stands in for VLAN interfaces), {} multicast VRRPv3 instances on each (VRIDs 1-{}) at 100 ms adverts, one /32 VIP each; master priority 150, backup 100, the same file otherwise, both arms in one run. Start → BACKUP: the backup's spawn until all its instances logged BACKUP, the master already advertising. CPU: every thread of each process tree (schedstat) over {} s after a 3 s warm-up; the XDP program's softirq time beside it. Then SIGKILL to the master's process group: kill → first and last VIP added on the backup (`ip -ts monitor address` in its namespace), kill → every VIP seen by `ip -o addr` (polled every 20 ms), and the backup's own log stamp of its last MASTER entry (the agent only: keepalived's console log has whole seconds). The limit is the backup's Master_Down_Interval ({:.1} ms) + 50 ms, counted from the kill (stricter than from the master's last advert).\n",
        s.ifaces, s.vrids, s.vrids, s.seconds, first.mdi_ms
    )?;
    writeln!(
        md,
        "| arm | start → BACKUP (ms) | master CPU (%) | master wake-ups/s | backup CPU (%) | backup wake-ups/s | backup XDP: runs/s, ns/run, % | kill → first / last VIP (ms) | kill → all VIPs polled (ms) | last MASTER log (ms) | MASTER entries on the backup: start-up / measured | election held | load before / after |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let mut rows = Vec::new();
    for a in arms {
        let f = a.failover.clone();
        writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.0} | {:.3} | {:.0} | {} | {} | {} | {} | {} / {} | {} | {} / {} |",
            a.arm.name(),
            a.start_to_backup_ms,
            a.master.0,
            a.master.1,
            a.backup.0,
            a.backup.1,
            crate::bench::xdp_cell(a.backup_xdp),
            f.as_ref().map_or("-".to_owned(), |f| format!("{:.1} / {:.1}", f.first_vip_ms, f.last_vip_ms)),
            f.as_ref().map_or("-".to_owned(), |f| format!("{:.0}", f.all_polled_ms)),
            f.as_ref().and_then(|f| f.last_master_log_ms).map_or("-".to_owned(), |v| format!("{v:.1}")),
            a.startup_masters,
            a.false_masters,
            if a.election_held() {
                "yes".to_owned()
            } else {
                format!("**no**: {} MASTER entries on the backup, VIPs {:?}", a.false_masters, a.held)
            },
            a.load.0,
            a.load.1
        )?;
        let mem = |m: &[ProcMem]| {
            m.iter()
                .map(|p| serde_json::json!({ "pid": p.pid, "comm": p.comm, "rss_kib": p.mem.rss_kib, "pss_kib": p.mem.pss_kib }))
                .collect::<Vec<_>>()
        };
        rows.push(serde_json::json!({
            "arm": a.arm.name(), "ifaces": s.ifaces, "vrids": s.vrids, "instances": s.instances(),
            "seconds": a.seconds, "start_to_backup_ms": a.start_to_backup_ms,
            "master_cpu_pct": a.master.0, "master_wakeups_per_s": a.master.1,
            "backup_cpu_pct": a.backup.0, "backup_wakeups_per_s": a.backup.1,
            "backup_xdp": a.backup_xdp.map(|(r, n, p)| serde_json::json!({ "runs_per_s": r, "ns_per_run": n, "cpu_pct": p })),
            "master_mem": mem(&a.master_mem), "backup_mem": mem(&a.backup_mem),
            "master_rss_max_kib": a.master_mem.iter().map(|p| p.mem.rss_kib).max(),
            "backup_rss_max_kib": a.backup_mem.iter().map(|p| p.mem.rss_kib).max(),
            "taken_over_rss_max_kib": f.as_ref().and_then(|f| f.taken_over_mem.iter().map(|p| p.mem.rss_kib).max()),
            "election_held": a.election_held(), "false_masters": a.false_masters, "startup_masters": a.startup_masters,
            "mdi_ms": a.mdi_ms, "load_before": a.load.0, "load_after": a.load.1,
            "failover": f.as_ref().map(|f| serde_json::json!({
                "first_vip_ms": f.first_vip_ms, "last_vip_ms": f.last_vip_ms, "monitored": f.monitored,
                "all_polled_ms": f.all_polled_ms, "last_master_log_ms": f.last_master_log_ms, "masters": f.masters,
            })),
        }));
    }
    writeln!(
        md,
        "\nResident memory per process (KiB, RSS / PSS), at the end of the measurement, and the backup's about 1 s after it took over every instance:\n"
    )?;
    writeln!(md, "| arm | node | process | RSS | PSS |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for a in arms {
        let none = Vec::new();
        let taken = a.failover.as_ref().map_or(&none, |f| &f.taken_over_mem);
        for (node, list) in
            [("master", &a.master_mem), ("backup", &a.backup_mem), ("backup after the takeover", taken)]
        {
            for p in list {
                writeln!(
                    md,
                    "| {} | {node} | {} ({}) | {} | {} |",
                    a.arm.name(),
                    p.comm,
                    p.pid,
                    p.mem.rss_kib,
                    p.mem.pss_kib
                )?;
            }
        }
    }
    if let [a, k] = arms {
        writeln!(
            md,
            "\nCPU ratio keepalived / vrrp-agent: master {}, backup {}.\n",
            crate::bench::ratio(k.master.0, a.master.0),
            crate::bench::ratio(k.backup.0, a.backup.0)
        )?;
    }
    Ok(serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_reads_both_stamps() {
        let a = time_of_day("2026-12-01T15:47:21.689184Z (V0_1) Entering MASTER STATE").unwrap_or(0.0);
        assert!((a - (15.0 * 3600.0 + 47.0 * 60.0 + 21.689_184)).abs() < 1e-6);
        let b = time_of_day("[2026-12-01T00:00:01.5] 3: v0    inet 198.51.100.9/32").unwrap_or(0.0);
        assert!((b - 1.5).abs() < 1e-9);
        assert_eq!(time_of_day("no time here 12:3"), None);
        assert!((since_ms(86_399.9, 0.1) - 200.0).abs() < 1e-6);
    }
}
