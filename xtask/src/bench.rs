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
        for arm in ["vrrp-agent (XDP)", "vrrp-agent (raw sockets)", "keepalived"] {
            let r = split_flood(arm, opts.seconds, &agent)?;
            writeln!(md, "| {arm} | {:.2} | {} | {} |", r.0, r.1, r.2)?;
            rows.push(serde_json::json!({ "arm": arm, "backup_cpu_pct": r.0, "false_master": r.1, "max_holders": r.2 }));
        }
        json["split_flood"] = serde_json::Value::Array(rows);
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

/// The pair with a third node flooding the backup: (backup CPU %, false
/// MASTER entries on the backup, most VIP holders seen at once).
fn split_flood(arm: &str, seconds: u64, agent: &std::path::Path) -> Result<(f64, usize, usize)> {
    println!("split-brain flood: {arm}");
    let (impl_arm, extra): (Arm, Vec<String>) = match arm {
        "keepalived" => (Arm::Keepalived, vec![]),
        "vrrp-agent (raw sockets)" => (Arm::Agent, vec!["--receive".into(), "socket".into()]),
        _ => (Arm::Agent, vec!["--receive".into(), "xdp".into()]),
    };
    let seg = vrrp_tests::lab::Segment::new(&["192.0.2.20/24", "192.0.2.52/24", "192.0.2.66/24"])?;
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
    let pids = bench_failover::process_tree(backup.pid());
    let ticks = |pids: &[u32]| -> u64 {
        pids.iter().filter_map(|p| cpu_ticks_and_rss(*p).ok()).map(|(t, _)| t).sum()
    };
    let t0 = ticks(&pids);
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
    while child.try_wait()?.is_none() {
        max_holders = max_holders.max(seg.holders(vip)?.len());
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let t1 = ticks(&pids);
    let _ = std::fs::remove_file(&conf);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (t1 - t0) as f64 / hz / elapsed * 100.0;
    let false_master =
        backup.lines().iter().filter(|l| l.contains("Entering MASTER")).count() - masters_before;
    println!("  backup CPU {cpu:.2}%, false MASTER entries {false_master}, most VIP holders {max_holders}");
    Ok((cpu, false_master, max_holders))
}
