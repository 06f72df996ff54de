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

pub fn run(seconds: u64) -> Result<()> {
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
    let arms = [flood(seconds, "xdp")?, flood(seconds, "socket")?];
    let out = sh::root().join("bench-results");
    std::fs::create_dir_all(&out)?;
    let machine = machine();
    let rows: Vec<String> = arms
        .iter()
        .map(|f| {
            format!(
                "    {{ \"arm\": \"{}\", \"seconds\": {:.2}, \"verdict\": \"{}\", \"rejected\": {}, \"rejected_pps\": {:.0}, \"accepted\": {}, \"agent_cpu_pct\": {:.2}, \"agent_rss_kib\": {} }}",
                f.arm,
                f.seconds,
                f.verdict,
                f.rejected,
                f.rejected as f64 / f.seconds,
                f.accepted,
                f.agent_cpu_pct,
                f.agent_rss_kib
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"machine\": {{ \"cores\": {}, \"kernel\": \"{}\" }},\n  \"flood\": [\n{}\n  ]\n}}\n",
        machine.0,
        machine.1,
        rows.join(",\n")
    );
    std::fs::write(out.join("results.json"), &json)?;
    let mut md = String::new();
    writeln!(md, "# vrrp-agent benchmarks\n")?;
    writeln!(md, "Machine: {} cores, kernel {}.\n", machine.0, machine.1)?;
    writeln!(md, "## Flood: invalid adverts (wrong password, from a stranger) at the agent's interface\n")?;
    writeln!(md, "trafgen on one core in the sender namespace; {seconds} s per arm.\n")?;
    writeln!(
        md,
        "| receive path | rejected ({}) | per second | accepted | agent CPU (% of one core) | agent RSS |",
        arms[0].verdict
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for f in &arms {
        writeln!(
            md,
            "| {} | {} | {:.0} | {} | {:.2} | {} KiB |",
            f.arm,
            f.rejected,
            f.rejected as f64 / f.seconds,
            f.accepted,
            f.agent_cpu_pct,
            f.agent_rss_kib
        )?;
    }
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
    // timeout exits 124 when it had to stop trafgen, as intended.
    if !(status.success() || status.code() == Some(124)) {
        bail!("trafgen failed: {status}");
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // The agent prints its totals when it stops.
    let status = p.stop(Duration::from_secs(10))?;
    if !status.success() {
        bail!("the agent exited with {status}");
    }
    let lines = p.lines();
    let verdict = "auth_failure";
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
