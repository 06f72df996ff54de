//! keepalived's command line and exit statuses (issue 13): a unit or
//! script written for keepalived runs the agent unchanged (`--dont-fork
//! -D -l -f FILE -p PIDFILE`), `-t` tests the configuration with
//! keepalived's meaning, and a missing privilege is named and has its
//! documented exit status.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::{Process, wait_until};

const VIP: &str = "192.0.2.77";

fn conf() -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state MASTER\n  interface eth0\n  virtual_router_id 77\n  priority 150\n  \
         advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn pid_in(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Debian's keepalived.service runs `keepalived --dont-fork $DAEMON_ARGS`;
/// with the agent's binary in its place, the same line runs the agent,
/// writes keepalived's pid files (-p: the supervisor, -r: the VRRP worker),
/// and a stop removes the VIP and the pid files.
#[test]
fn keepalived_s_unit_line_runs_the_agent() -> Result<()> {
    if !require_root("keepalived_s_unit_line_runs_the_agent") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let path = seg.file("keepalived.conf", &conf())?;
    let pid = seg.file("keepalived.pid", "")?;
    let vrrp_pid = seg.file("vrrp.pid", "")?;
    // keepalived's command line has no --name: the agent's is "default".
    seg.clean_cache_of("default");
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(bin.to_str().context("path")?);
    cmd.args(["--dont-fork", "-D", "-l", "-f"]).arg(&path).arg("-p").arg(&pid).arg("-r").arg(&vrrp_pid);
    let mut p = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    p.wait_for_line("Entering MASTER STATE", Duration::from_secs(15))?;
    assert!(seg.holds(0, VIP)?, "{:#?}", p.lines());
    assert_eq!(pid_in(&pid), Some(p.pid()), "-p holds the supervisor's pid");
    let worker = vrrp_tests::lab::worker_pid(&p)?;
    assert_eq!(pid_in(&vrrp_pid), Some(worker.as_raw() as u32), "-r holds the VRRP worker's pid");
    for opt in ["-n/--dont-fork", "-D/--log-detail", "-l/--log-console"] {
        assert!(
            p.lines().iter().any(|l| l.contains(&format!("keepalived option {opt}: accepted"))),
            "{opt} is acknowledged: {:#?}",
            p.lines()
        );
    }
    p.signal(Signal::SIGTERM)?;
    let st = p.stop(Duration::from_secs(10))?;
    assert_eq!(st.code(), Some(0), "{:#?}", p.lines());
    assert!(!seg.holds(0, VIP)?);
    assert!(!pid.exists() && !vrrp_pid.exists(), "pid files removed at stop");
    Ok(())
}

/// Exit status and first line of the agent run with `args`.
fn status_of(args: &[&str], path: &std::path::Path) -> Result<(Option<i32>, String)> {
    let out = Command::new(agent_bin()?).args(args).arg(path).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code(), text))
}

#[test]
fn config_test_exits_as_documented() -> Result<()> {
    let dir = std::env::temp_dir().join(vrrp_tests::netns::unique("vrrp-kacli-"));
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("good.conf");
    std::fs::write(&good, conf())?;
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, conf().replace("priority 150", "priority 300"))?;
    let results = [
        status_of(&["-t", "-f"], &good)?,
        status_of(&["-t", "-f"], &bad)?,
        status_of(&["-t", "-f"], &dir.join("missing.conf"))?,
    ];
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(results[0].0, Some(0), "{}", results[0].1);
    assert_eq!(results[1].0, Some(2), "a refused configuration: {}", results[1].1);
    assert!(results[1].1.contains("bad.conf:5:12: error: `priority 300`"), "{}", results[1].1);
    assert_eq!(results[2].0, Some(6), "no configuration file: {}", results[2].1);
    let sig = Command::new(agent_bin()?).arg("--signum=RELOAD").output()?;
    assert_eq!(String::from_utf8_lossy(&sig.stdout).trim(), "1");
    Ok(())
}

/// Without CAP_NET_ADMIN (dropped from the bounding set, as a unit's
/// CapabilityBoundingSet would) `run` names the capability and exits 4,
/// before touching anything.
#[test]
fn a_missing_capability_is_named() -> Result<()> {
    if !require_root("a_missing_capability_is_named")
        || !require_tool("a_missing_capability_is_named", "setpriv")
    {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let path = seg.file("k.conf", &conf())?;
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command("setpriv");
    cmd.args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(&bin)
        .args(["run", "--name", &vrrp_tests::netns::unique("cap"), "-f"])
        .arg(&path);
    let mut p = Process::spawn("agent", &mut cmd, false)?;
    wait_until(Duration::from_secs(10), || Ok(p.try_wait()?.is_some()))?;
    let st = p.stop(Duration::from_secs(1))?;
    assert_eq!(st.code(), Some(4), "{:#?}", p.lines());
    assert!(p.lines().iter().any(|l| l.contains("missing privilege: CAP_NET_ADMIN")), "{:#?}", p.lines());
    assert!(!seg.holds(0, VIP)?);
    Ok(())
}

/// keepalived's `net_namespace NAME`: started in the host's namespace, the
/// agent joins /run/netns/NAME (as keepalived does, without `ip netns
/// exec`), holds the VIP there and never in the host's namespace, takes
/// the namespace's name as its own (so one agent per namespace can run
/// with one file each), and a stop removes the VIP there. `-s NAME` does
/// the same from the command line.
#[test]
fn net_namespace_runs_the_agent_in_that_namespace() -> Result<()> {
    if !require_root("net_namespace_runs_the_agent_in_that_namespace") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let ns = seg.nodes[0].ns.name().to_owned();
    // The agent takes the namespace's name.
    seg.clean_cache_of(&ns);
    for how in ["config", "-s"] {
        let text = match how {
            "config" => format!("net_namespace {ns}\n{}", conf()),
            _ => conf(),
        };
        let path = seg.file(&format!("ns-{}.conf", how.trim_start_matches('-')), &text)?;
        let mut cmd = Command::new(agent_bin()?);
        if how == "-s" {
            cmd.args(["-n", "-s", &ns, "-f"]).arg(&path);
        } else {
            cmd.args(["run", "-f"]).arg(&path);
        }
        let mut p = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
        p.wait_for_line("Entering MASTER STATE", Duration::from_secs(15))?;
        assert!(seg.holds(0, VIP)?, "{how}: the VIP is in the namespace: {:#?}", p.lines());
        let host = Command::new("ip").args(["-4", "addr", "show"]).output()?;
        assert!(!String::from_utf8_lossy(&host.stdout).contains(VIP), "{how}: never in the host's namespace");
        let st = vrrp_agent::daemon::status::read(&ns)
            .with_context(|| format!("{how}: status under the namespace's name"))?;
        assert_eq!(st.instances[0].state, "MASTER");
        p.signal(Signal::SIGTERM)?;
        assert_eq!(p.stop(Duration::from_secs(10))?.code(), Some(0), "{:#?}", p.lines());
        assert!(!seg.holds(0, VIP)?, "{how}: removed at stop");
    }
    Ok(())
}
