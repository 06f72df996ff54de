//! The instance lock and `status`: a second agent of a running agent's
//! name is refused even when the lock file was deleted (and so never
//! touches the running one's VIPs), and `status` of a dead agent says it
//! is not running, with exit status 3, instead of its last state.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use vrrp_tests::lab::{Segment, agent_bin, signal_worker, worker_pid};
use vrrp_tests::netns::{self, Netns};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

const VIP: &str = "192.0.2.150";

fn conf(advert_int: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 57\n  priority 150\n  advert_int {advert_int}\n  version 3\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// `vrrp-agent status --name NAME ARGS`, from the host's network
/// namespace or, with `ns`, from inside one.
fn status(name: &str, ns: Option<&Netns>, args: &[&str]) -> Result<Output> {
    let bin = agent_bin()?;
    let bin = bin.to_str().context("agent path")?;
    let mut cmd = match ns {
        Some(ns) => ns.command(bin),
        None => Command::new(bin),
    };
    cmd.args(["status", "--name", name]).args(args);
    cmd.output().context("running vrrp-agent status")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `status` says agent `name` runs, as MASTER, from both namespaces.
fn assert_running(name: &str, ns: &Netns) -> Result<()> {
    for where_ in [None, Some(ns)] {
        let out = status(name, where_, &[])?;
        assert!(out.status.success(), "status of a running agent: {:?} {}", out.status, text(&out.stderr));
        assert!(text(&out.stdout).contains("VI_1: MASTER"), "{}", text(&out.stdout));
    }
    Ok(())
}

/// `status` says agent `name` is not running, exit 3, from both
/// namespaces, in text and JSON.
fn assert_not_running(name: &str, ns: &Netns) -> Result<()> {
    for where_ in [None, Some(ns)] {
        for args in [&[][..], &["--json"][..]] {
            let out = status(name, where_, args)?;
            assert_eq!(out.status.code(), Some(3), "status {args:?} of a dead agent: {}", text(&out.stdout));
            assert!(text(&out.stderr).contains("is not running"), "{}", text(&out.stderr));
            assert!(text(&out.stdout).is_empty(), "a dead agent's state printed: {}", text(&out.stdout));
        }
    }
    Ok(())
}

#[test]
fn status_of_a_killed_agent_says_it_is_not_running() -> Result<()> {
    if !require_root("status_of_a_killed_agent_says_it_is_not_running") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24"])?;
    let ns = &seg.nodes[0].ns;
    let name = netns::unique("st");
    let _pins = PinDir(PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name));

    // Unsupervised, killed: only the status file is left.
    let mut agent = seg.agent_as(0, &conf("0.1"), &name, &["--no-supervise"])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(3))?;
    wait_until(Duration::from_secs(3), || {
        Ok(text(&status(&name, None, &[])?.stdout).contains("VI_1: MASTER"))
    })?;
    assert_running(&name, ns)?;
    agent.signal(Signal::SIGKILL)?;
    agent.stop(Duration::from_secs(5))?;
    assert!(PathBuf::from(format!("/run/vrrp-agent/{name}.json")).exists(), "the stale file is there");
    assert_not_running(&name, ns)?;
    let out = status(&name, None, &[])?;
    assert!(text(&out.stderr).contains("MASTER"), "says what the stale file claimed: {}", text(&out.stderr));

    // Supervised, worker killed: dead already while the supervisor (which
    // holds the lock) waits to remove the VIP, and after it has exited.
    // A fresh node: the killed agent above left its VIP and XDP link.
    drop(seg);
    let seg = Segment::new(&["192.0.2.20/24"])?;
    let ns = &seg.nodes[0].ns;
    let name = netns::unique("st");
    // Not started again (--respawn-limit 0): the supervisor waits and exits.
    let agent = seg.agent_as(0, &conf("1"), &name, &["--respawn-limit", "0"])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(6))?;
    wait_until(Duration::from_secs(6), || {
        Ok(text(&status(&name, None, &[])?.stdout).contains("VI_1: MASTER"))
    })?;
    assert_running(&name, ns)?;
    signal_worker(&agent, Signal::SIGKILL)?;
    let killed = Instant::now();
    let worker = worker_pid(&agent)?;
    wait_until(Duration::from_secs(2), || Ok(nix::sys::signal::kill(worker, None).is_err()))?;
    assert_not_running(&name, ns)?;
    assert!(killed.elapsed() < Duration::from_secs(2), "checked within the supervisor's wait");
    agent.wait_for_line_once("exiting with status 137", Duration::from_secs(5))?;
    assert_not_running(&name, ns)?;
    Ok(())
}

/// Start an agent that must refuse to run; returns its output.
fn refused(seg: &Segment, name: &str, extra: &[&str]) -> Result<Vec<String>> {
    let path = seg.file(&format!("{}.conf", netns::unique("second")), &conf("0.1"))?;
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(bin.to_str().context("agent path")?);
    cmd.arg("run").arg("-f").arg(&path).args(["--name", name]).args(extra);
    let mut p = Process::spawn("second", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    p.wait_for_line_once(
        &format!("another vrrp-agent with --name {name} is running"),
        Duration::from_secs(10),
    )?;
    // Exited (a zombie until `stop` reaps it), not stopped by us.
    let stat = format!("/proc/{}/stat", p.pid());
    wait_until(Duration::from_secs(5), || {
        Ok(std::fs::read_to_string(&stat)
            .map(|t| t.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))?)
    })?;
    let st = p.stop(Duration::from_secs(5))?;
    assert_eq!(st.code(), Some(1), "the second agent exits 1: {:#?}", p.lines());
    Ok(p.lines())
}

#[test]
fn a_deleted_lock_file_does_not_let_a_second_agent_of_the_name_in() -> Result<()> {
    if !require_root("a_deleted_lock_file_does_not_let_a_second_agent_of_the_name_in") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24"])?;
    let name = netns::unique("lk");
    let pins = PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name);
    let _pin_guard = PinDir(pins.clone());
    let first = seg.agent_as(0, &conf("0.1"), &name, &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(3))?;
    let lock = PathBuf::from(format!("/run/vrrp-agent/{name}.lock"));
    std::fs::remove_file(&lock).context("deleting the lock file")?;
    for extra in [&[][..], &["--no-supervise"][..]] {
        let lines = refused(&seg, &name, extra)?;
        assert!(
            !lines.iter().any(|l| l.contains("removed")),
            "the second agent removed something: {lines:#?}"
        );
        // The running agent's VIP and pins are untouched, and it still
        // runs and holds the VIP for a while after.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            assert_eq!(seg.holders(VIP)?, vec![0], "the running agent's VIP was taken away");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(pins.join("link_eth0").exists(), "the running agent's XDP link is still pinned");
    }
    let worker = worker_pid(&first)?;
    assert!(nix::sys::signal::kill(worker, None).is_ok(), "the running agent's worker is alive");
    Ok(())
}

/// Removes what a failed run left in bpffs (unpinning detaches).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_instance_lock_outlives_its_file_and_is_released_with_its_holder() -> Result<()> {
    use vrrp_agent::instance_lock::{self, LockError};
    if !require_root("the_instance_lock_outlives_its_file_and_is_released_with_its_holder") {
        return Ok(());
    }
    let name = netns::unique("il");
    let held = instance_lock::acquire(&name)?;
    assert!(instance_lock::is_running(&name), "a held lock says running");
    assert!(
        matches!(instance_lock::acquire(&name), Err(LockError::Busy { .. })),
        "a second holder is refused"
    );
    std::fs::remove_file(instance_lock::lock_path(&name))?;
    assert!(
        matches!(instance_lock::acquire(&name), Err(LockError::Busy { .. })),
        "still refused with the file deleted"
    );
    assert!(instance_lock::is_running(&name), "still running with the file deleted");
    // A worker cannot adopt descriptors that are not this lock's.
    let (f, s) = held.handover();
    assert!(matches!(instance_lock::adopt(&name, &format!("{s},{f}")), Err(LockError::BadHandover { .. })));
    assert!(matches!(instance_lock::adopt(&name, "1,2"), Err(LockError::BadHandover { .. })));
    assert!(matches!(instance_lock::adopt(&name, "junk"), Err(LockError::BadHandover { .. })));
    drop(held);
    // Released with its holder. Polled, not asserted at once: another test
    // of this binary may fork a child between our open and its exec, and
    // that child holds copies of the descriptors (close-on-exec) until its
    // exec, a few milliseconds at most.
    wait_until(Duration::from_secs(2), || Ok(!instance_lock::is_running(&name)))
        .context("released with its holder")?;
    let again = instance_lock::acquire(&name)?;
    drop(again);
    Ok(())
}
