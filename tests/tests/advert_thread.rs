//! A master's periodic adverts from a thread of their own (issue 15): at
//! 10 ms adverts the agent's event loop no longer wakes once per advert
//! (the thread does, and nothing else), every advert still goes out, and a
//! stop's priority-0 advert (RFC 5798 6.4.3) is the master's last: no
//! periodic advert follows it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use vrrp_tests::capture::{Capture, is_advert_from};
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

const CONF: &str = "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  \
                    priority 150\n  advert_int 0.01\n  version 3\n  virtual_ipaddress {\n    198.51.100.61/32\n  }\n}\n";

/// Voluntary context switches (one per sleep) of each thread of `pid`,
/// by thread name.
fn sleeps(pid: u32) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = t?.path();
        let name = std::fs::read_to_string(dir.join("comm"))?.trim().to_owned();
        let status = std::fs::read_to_string(dir.join("status"))?;
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .context("voluntary_ctxt_switches")?;
        out.push((name, n));
    }
    Ok(out)
}

fn of(list: &[(String, u64)], name: &str) -> Option<u64> {
    list.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

#[test]
fn a_master_s_adverts_do_not_wake_its_event_loop_and_its_resignation_is_the_last() -> Result<()> {
    let test = "a_master_s_adverts_do_not_wake_its_event_loop_and_its_resignation_is_the_last";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    // Without the supervisor: the process spawned is the worker.
    let mut agent = seg.agent(0, CONF, &["--no-supervise"])?;
    wait_until(Duration::from_secs(10), || Ok(agent.count("Entering MASTER") == 1))?;
    // The advert thread is handed the instance before its transition is
    // logged.
    let pid = agent.pid();

    let cap = Capture::start(&seg.nodes[1].ns, "eth0")?;
    let t0 = Instant::now();
    let before = sleeps(pid)?;
    std::thread::sleep(Duration::from_secs(2));
    let after = sleeps(pid)?;
    let secs = t0.elapsed().as_secs_f64();
    // The event loop is the main thread, named after the program.
    let delta = |name: &str| -> Result<f64> {
        let (a, b) = (of(&after, name), of(&before, name));
        Ok(a.zip(b).map(|(a, b)| a.saturating_sub(b)).context(format!("no thread {name}"))? as f64 / secs)
    };
    // 100 adverts a second are due. The loop wakes about once a second
    // (the status file's counters, the XDP program's alive deadline); it
    // woke once per advert before the thread.
    let loop_rate = delta("vrrp-agent")?;
    ensure!(loop_rate < 20.0, "the event loop woke {loop_rate:.0} times a second at 10 ms adverts");
    let thread_rate = delta("adverts")?;
    ensure!(thread_rate >= 50.0, "the advert thread woke {thread_rate:.0} times a second at 10 ms adverts");

    // A stop: the resignation goes out, and nothing after it.
    agent.stop(Duration::from_secs(10))?;
    let frames = cap.stop();
    let adverts: Vec<u8> = frames
        .iter()
        .filter(|f| is_advert_from(f, [192, 0, 2, 20]))
        // Ethernet 14 + IPv4 20: the VRRP header's priority is its third byte.
        .filter_map(|f| f.data.get(36).copied())
        .collect();
    // Every advert went out: at least 150 of the 200 due in 2 s (the
    // capture also ran during the stop).
    ensure!(adverts.len() >= 150, "{} adverts captured in about 2 s at 10 ms", adverts.len());
    let zero = adverts.iter().position(|p| *p == 0).context("no priority-0 advert at the stop")?;
    ensure!(
        zero == adverts.len() - 1,
        "adverts after the resignation: {:?}",
        &adverts[zero.saturating_sub(2)..]
    );
    ensure!(adverts[..zero].iter().all(|p| *p == 150), "adverts of another priority: {adverts:?}");
    Ok(())
}
