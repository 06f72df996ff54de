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
}

pub fn run(opts: &Opts) -> Result<()> {
    crate::build(true)?;
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
    let wants = |s: &str| opts.only.as_deref().is_none_or(|o| o == s);
    let agent = sh::root().join("target/release/vrrp-agent");
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
            "The reference unicast pair (priorities 150 and 100) on a bridge. Gap: from the master's last advert to the backup's first gratuitous ARP for the VIP, both from one capture on the backup's bridge port (kernel timestamps). Its protocol limit is Master_Down_Interval for a crash (SIGKILL) and Skew_Time for a graceful stop (SIGTERM, priority 0); the table gives the excess over it. \"To VIP\": from the signal until the VIP is on the backup, polled every 0.5 ms.\n"
        )?;
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
            }));
        }
        json["failover"] = serde_json::Value::Array(rows);
        writeln!(md)?;
    }

    if wants("flood") {
        let arms = [flood(opts.seconds, "xdp")?, flood(opts.seconds, "socket")?];
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
            "| receive path | rejected ({}) | per second | accepted | agent CPU (% of one core) | agent RSS |",
            arms[0].verdict
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        for f in &arms {
            let pps = f.rejected as f64 / f.seconds;
            writeln!(
                md,
                "| {} | {} | {:.0} | {} | {:.2} | {} KiB |",
                f.arm, f.rejected, pps, f.accepted, f.agent_cpu_pct, f.agent_rss_kib
            )?;
            rows.push(serde_json::json!({
                "arm": f.arm, "seconds": f.seconds, "verdict": f.verdict, "rejected": f.rejected,
                "rejected_pps": pps, "accepted": f.accepted, "agent_cpu_pct": f.agent_cpu_pct, "agent_rss_kib": f.agent_rss_kib,
            }));
        }
        json["flood"] = serde_json::Value::Array(rows);
        writeln!(md)?;
    }

    let out = sh::root().join("bench-results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(out.join("report.md"), &md)?;
    println!("\n{md}");
    println!("written: {}/results.json, {}/report.md", out.display(), out.display());
    Ok(())
}

fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = sh::output(Command::new("uname").arg("-r")).unwrap_or_default().trim().to_owned();
    (cores, kernel)
}

/// utime + stime of `pid`, in clock ticks, and its RSS in KiB.
fn cpu_ticks_and_rss(pid: u32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks, rss))
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

fn flood(seconds: u64, receive: &'static str) -> Result<Flood> {
    sh::step(&format!("flood: invalid adverts at the agent ({receive} receive path) for {seconds} s"));
    let agent = sh::root().join("target/release/vrrp-agent");
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

    let (t0, _) = cpu_ticks_and_rss(pid)?;
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
    let (t1, rss) = cpu_ticks_and_rss(pid)?;
    let _ = std::fs::remove_file(&conf);
    // timeout exits 124 when it had to stop trafgen, as intended; trafgen
    // itself sometimes exits 1 on SIGINT ("Flushing TX_RING failed") after
    // sending: judged below by what arrived.
    let trafgen_ok = status.success() || status.code() == Some(124);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
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
        agent_cpu_pct: (t1 - t0) as f64 / hz / elapsed * 100.0,
        agent_rss_kib: rss,
    })
}
