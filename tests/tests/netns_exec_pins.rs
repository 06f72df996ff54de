//! An agent started under `ip netns exec` (issue 12, case 13): that
//! command runs it in a private mount namespace where the host's bpffs is
//! hidden. A bpffs mounted there dies with the agent, and with it every pin:
//! a SIGKILLed agent's XDP program was detached at once, unlike the
//! README's promise (it stays attached, fails open, and the next agent of
//! the same name replaces it). The agent now pins through an ancestor's
//! view of the bpffs (`/proc/<pid>/root/sys/fs/bpf`), so the promise holds
//! however it was started.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, agent_bin, signal_worker};
use vrrp_tests::netns;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

/// Removes the agent's pin directory on drop, in case the test fails with
/// the killed agent's pins still there.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CONF: &str = "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 9\n  \
                    priority 100\n  advert_int 1\n  virtual_ipaddress {\n    192.0.2.99/24\n  }\n}\n";

fn start(seg: &Segment, conf: &std::path::Path, name: &str) -> Result<Process> {
    let bin = agent_bin()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", seg.nodes[0].ns.name()]).arg(&bin);
    // A killed worker is not started again: the agent dies with it.
    cmd.arg("run").arg("-f").arg(conf).args(["--name", name, "--respawn-limit", "0"]);
    let mut p = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    p.wait_for_line("Entering", Duration::from_secs(15))?;
    Ok(p)
}

fn xdp_on_eth0(seg: &Segment) -> Result<bool> {
    let out = seg.nodes[0].ns.ip(&["link", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("prog/xdp id"))
}

#[test]
fn a_killed_agent_under_ip_netns_exec_leaves_its_program_attached() -> Result<()> {
    if !require_root("a_killed_agent_under_ip_netns_exec_leaves_its_program_attached") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let conf = seg.file("agent.conf", CONF)?;
    let name = netns::unique("nx");
    let pins = PinDir(PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name));
    let mut agent = start(&seg, &conf, &name)?;
    assert!(xdp_on_eth0(&seg)?, "no XDP program on eth0 while the agent runs");
    // A crash of the worker (killing the supervisor would make the worker
    // resign and detach cleanly); its supervisor then exits too.
    signal_worker(&agent, Signal::SIGKILL)?;
    wait_until(Duration::from_secs(8), || Ok(agent.try_wait()?.is_some()))
        .context("the agent did not die")?;
    // Its private mount namespace is gone with it; the program is not.
    assert!(xdp_on_eth0(&seg)?, "the killed agent's program was detached with its mount namespace");
    assert!(pins.0.join("link_eth0").exists(), "no pinned link in the host's bpffs");
    drop(agent);
    // The next agent of that name, started the same way, replaces it.
    let mut again = start(&seg, &conf, &name)?;
    assert!(again.lines().iter().any(|l| l.contains("removed the stale XDP link")), "{:#?}", again.lines());
    assert!(xdp_on_eth0(&seg)?);
    // A clean stop detaches and removes every pin.
    let status = again.stop(Duration::from_secs(10))?;
    assert!(status.success(), "clean stop: {status}");
    assert!(!xdp_on_eth0(&seg)?, "the program stayed attached after a clean stop");
    // Only the verified-program cache stays (vrrp-agent/src/datapath/cache.rs).
    let left: Vec<String> = std::fs::read_dir(&pins.0)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.iter().all(|n| n == "cache"), "pins left after a clean stop: {left:?}");
    Ok(())
}
