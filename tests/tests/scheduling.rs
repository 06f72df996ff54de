//! keepalived's `vrrp_rt_priority`, `vrrp_rlimit_rttime` and
//! `vrrp_priority` (global_defs) set the VRRP process's scheduling, in the
//! agent as in keepalived 2.2.7 (lib/process.c, set_process_priorities):
//! the same configuration runs under both, and each one's VRRP process is
//! read back from /proc.

use std::time::Duration;

use anyhow::{Context, Result};
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

fn conf(global: &str, priority: u8, vrid: u8) -> String {
    format!(
        "global_defs {{\n{global}}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    192.0.2.{vrid}/24\n  }}\n}}\n"
    )
}

/// The children of `pid`'s main thread (the supervisor's worker,
/// keepalived's VRRP child).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// (scheduling policy, realtime priority, nice) of `pid`'s main thread.
fn sched(pid: u32) -> Result<(u32, u32, i32)> {
    sched_of(&format!("/proc/{pid}/stat"))
}

/// The same, from a stat file (a process's or one of its threads').
fn sched_of(path: &str) -> Result<(u32, u32, i32)> {
    let stat = std::fs::read_to_string(path)?;
    // Fields after the command name; field n of proc(5) is index n - 3.
    let f: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let at = |n: usize| f.get(n - 3).context("short stat");
    Ok((at(41)?.parse()?, at(40)?.parse()?, at(19)?.parse()?))
}

/// RLIMIT_RTTIME of `pid` as /proc/PID/limits says it: (soft, hard).
fn rttime(pid: u32) -> Result<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits.lines().find(|l| l.starts_with("Max realtime timeout")).context("no rttime line")?;
    let w: Vec<&str> = line.split_whitespace().collect();
    Ok((w.get(3).context("soft")?.to_string(), w.get(4).context("hard")?.to_string()))
}

/// The VRRP process under `pid`: the child whose scheduling became
/// what the configuration asks (within 15 s of the start).
fn vrrp_child(pid: u32, want: impl Fn((u32, u32, i32)) -> bool) -> Result<u32> {
    let mut found = None;
    wait_until(Duration::from_secs(15), || {
        found = children(pid).into_iter().find(|c| sched(*c).is_ok_and(&want));
        Ok(found.is_some())
    })
    .with_context(|| {
        let seen: Vec<_> = children(pid).into_iter().map(|c| (c, sched(c).ok())).collect();
        format!("no child of {pid} with the scheduling asked for; children: {seen:?}")
    })?;
    found.context("vanished")
}

const SCHED_OTHER: u32 = 0;
const SCHED_RR: u32 = 2;

#[test]
fn vrrp_rt_priority_and_its_cpu_limit_are_set_as_keepalived_sets_them() -> Result<()> {
    if !require_root("vrrp_rt_priority_and_its_cpu_limit_are_set_as_keepalived_sets_them") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.81", "192.0.2.82"])?;
    let global = "  vrrp_rt_priority 30\n  vrrp_rlimit_rttime 400000\n";
    let agent = seg.agent(0, &conf(global, 100, 81), &[])?;
    let keepalived = seg.keepalived(1, &conf(global, 100, 81))?;
    let rr = |s: (u32, u32, i32)| s.0 == SCHED_RR && s.1 == 30;
    let worker = vrrp_child(agent.pid(), rr)?;
    let vrrp = vrrp_child(keepalived.pid(), rr)?;
    // keepalived: the soft limit is half the configured one (SIGXCPU,
    // logged), the hard one the configured (SIGKILL).
    for (who, pid) in [("vrrp-agent worker", worker), ("keepalived VRRP process", vrrp)] {
        assert_eq!(rttime(pid)?, ("200000".to_owned(), "400000".to_owned()), "{who}");
    }
    // A master's adverts leave from the worker's advert thread: it runs at
    // the same priority (keepalived's process sends its own adverts).
    let tasks = std::fs::read_dir(format!("/proc/{worker}/task"))?;
    let adverts = tasks
        .filter_map(|t| t.ok())
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "adverts"))
        .context("the worker has no advert thread")?;
    let thread = sched_of(&adverts.path().join("stat").to_string_lossy())?;
    assert!(rr(thread), "advert thread's scheduling: {thread:?}");
    // The supervisor is no VRRP process, as keepalived's parent is not.
    assert_eq!(sched(agent.pid())?.0, SCHED_OTHER);
    assert_eq!(sched(keepalived.pid())?.0, SCHED_OTHER);
    Ok(())
}

#[test]
fn vrrp_priority_sets_the_nice_value_as_keepalived_does() -> Result<()> {
    if !require_root("vrrp_priority_sets_the_nice_value_as_keepalived_does") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.83", "192.0.2.84"])?;
    let global = "  vrrp_priority -7\n  vrrp_no_swap\n";
    let agent = seg.agent(0, &conf(global, 100, 83), &[])?;
    let keepalived = seg.keepalived(1, &conf(global, 100, 83))?;
    let niced = |s: (u32, u32, i32)| s.0 == SCHED_OTHER && s.2 == -7;
    vrrp_child(agent.pid(), niced)?;
    vrrp_child(keepalived.pid(), niced)?;
    Ok(())
}
