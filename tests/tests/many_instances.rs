//! Many instances (issue 15): more than the XDP object's 2,048-entry
//! instance map (9 interfaces × 250 VRIDs) start on the XDP path with
//! `--receive xdp` (no fallback to raw sockets), every instance reaches
//! BACKUP and a SIGTERM right then stops cleanly; 250 instances fail
//! over together when their master's worker is killed and not started
//! again, with one holder; started again, all 250 resume and nothing moves;
//! a backup of 1,000 instances at 100 ms adverts started beside their
//! master never takes over.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use nix::sys::signal::Signal;
use vrrp_tests::capture::{Capture, is_garp, mac};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, signal_worker};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

const IFACES: u16 = 9;
const VRIDS: u16 = 250;

fn conf() -> String {
    let mut s = String::new();
    for n in 0..IFACES {
        for v in 1..=VRIDS {
            // The same VIP on different interfaces is accepted; 1 s adverts
            // keep every instance in BACKUP while the test looks.
            s += &format!(
                "vrrp_instance V{n}_{v} {{\n  state BACKUP\n  interface va{n}\n  virtual_router_id {v}\n  \
                 priority 100\n  advert_int 1\n  version 3\n  virtual_ipaddress {{\n    198.51.100.{v}/32\n  }}\n}}\n"
            );
        }
    }
    s
}

#[test]
fn more_instances_than_the_objects_map_start_on_xdp_and_stop() -> Result<()> {
    if !require_root("more_instances_than_the_objects_map_start_on_xdp_and_stop") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.52/24"])?;
    let ns = &seg.nodes[0].ns;
    for n in 0..IFACES {
        let (a, b) = (format!("va{n}"), format!("vb{n}"));
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        ns.ip(&["addr", "add", &format!("203.0.113.{}/32", n + 1), "dev", &a])?;
        ns.ip(&["link", "set", &a, "up"])?;
        ns.ip(&["link", "set", &b, "up"])?;
    }
    let want = usize::from(IFACES * VRIDS);
    let mut agent = seg.agent(0, &conf(), &["--receive", "xdp"])?;
    let backups =
        |a: &vrrp_tests::process::Process| a.lines().iter().filter(|l| l.contains("Entering BACKUP")).count();
    wait_until(Duration::from_secs(30), || Ok(backups(&agent) >= want))?;
    let lines = agent.lines();
    ensure!(
        !lines.iter().any(|l| l.contains("raw socket") || l.contains("XDP unavailable")),
        "the agent left the XDP path"
    );
    let attached = lines.iter().filter(|l| l.contains("XDP program attached to va")).count();
    ensure!(attached == usize::from(IFACES), "XDP attached to {attached} of {IFACES} interfaces");
    // SIGTERM right after the last BACKUP: the worker stops cleanly. (It
    // used to die of the signal's default action in about half the runs:
    // its SIGTERM handler was installed only when the event loop first
    // ran, after the start-up's last reconcile; bench-results/startup.md.)
    let status = agent.stop(Duration::from_secs(30))?;
    let lines = agent.lines();
    ensure!(
        !lines.iter().any(|l| l.contains("was killed by")),
        "the worker was killed instead of stopping:\n{}",
        lines.iter().rev().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    ensure!(lines.iter().any(|l| l.ends_with(" Stopped")), "no clean stop logged");
    ensure!(status.success(), "the agent exited with {status}");
    Ok(())
}

/// A SIGTERM while the instances wait out `vrrp_startup_delay`: a clean
/// stop at once (keepalived's event loop takes signals during the delay),
/// not a worker killed by the signal's default action, as it was when
/// the SIGTERM handler was first installed by the event loop.
#[test]
fn sigterm_during_the_startup_delay_stops_the_worker_cleanly() -> Result<()> {
    if !require_root("sigterm_during_the_startup_delay_stops_the_worker_cleanly") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.52/24"])?;
    let conf = "global_defs {\n  vrrp_startup_delay 30\n}\nvrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n    192.0.2.130/24\n  }\n}\n";
    let path = seg.file("delay.conf", conf)?;
    let bin = vrrp_tests::lab::agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(bin.to_str().unwrap_or("vrrp-agent"));
    let name = vrrp_tests::netns::unique("dly");
    seg.clean_cache_of(&name);
    cmd.arg("run").arg("-f").arg(&path).args(["--name", &name]);
    let mut agent = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    agent.wait_for_line("Delaying startup", Duration::from_secs(15))?;
    let t = Instant::now();
    let status = agent.stop(Duration::from_secs(10))?;
    let lines = agent.lines();
    ensure!(
        !lines.iter().any(|l| l.contains("was killed by")),
        "the worker was killed by the signal:\n{}",
        lines.join("\n")
    );
    ensure!(status.success(), "the agent exited with {status}:\n{}", lines.join("\n"));
    ensure!(lines.iter().any(|l| l.ends_with(" Stopped")), "no clean stop logged:\n{}", lines.join("\n"));
    // Not after the 30 s delay: at once (generous for a loaded machine).
    ensure!(t.elapsed() < Duration::from_secs(5), "the stop waited {:?}", t.elapsed());
    Ok(())
}

/// How many of the VIPs (198.51.100.x) node `i` holds, on any interface.
fn vips_held(seg: &Segment, i: usize) -> Result<usize> {
    let out = seg.nodes[i].ns.ip(&["-o", "-4", "addr", "show"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w.starts_with("198.51.100.")))
        .count())
}

/// 250 instances on one interface at 1 s adverts on a pair; the
/// master's worker is killed (SIGKILL): its supervisor removes its 250
/// VIPs within its margin (two advert intervals; it learns of the death at
/// once now that the worker has one packet socket, not one per instance,
/// to close: it took 4.3 s to die with 250) and the backup takes over
/// every instance together, one reconcile adding the 250 VIPs (pipelined
/// requests) instead of one reconcile per instance. At no time do both
/// nodes hold a VIP. (Not more, yet: with 500, the debug build's
/// supervisor took about 0.8 s past its margin to remove them, and the
/// nodes overlapped for 0.6 s; from about 750 instances on, a backup
/// agent misses its master's adverts and takes over beside it. Both open,
/// see bench-results/scale4k.md.)
#[test]
fn many_instances_fail_over_together_with_one_holder() -> Result<()> {
    if !require_root("many_instances_fail_over_together_with_one_holder") {
        return Ok(());
    }
    // Not started again after the kill (a new worker would resume the
    // masters and nothing would move): the failover is what is measured.
    let Pair { seg, master, backup, n } = pair(&["--respawn-limit", "0"])?;
    let (a, b) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let watches =
        [HolderWatch::start(&[a, b], "198.51.100.1")?, HolderWatch::start(&[a, b], "198.51.100.250")?];
    // The new masters' gratuitous ARPs, as they leave the backup.
    let cap = Capture::start(b, "vl0")?;
    let me = mac(b, "vl0")?;
    signal_worker(&master, Signal::SIGKILL)?;
    let killed = Instant::now();
    wait_until(Duration::from_secs(20), || Ok(vips_held(&seg, 1)? == n))?;
    let took = killed.elapsed();
    wait_until(Duration::from_secs(10), || Ok(backup.count("Entering MASTER") >= n))?;
    ensure!(
        vips_held(&seg, 0)? == 0,
        "the dead master's supervisor left {} VIPs behind:\n{}",
        vips_held(&seg, 0)?,
        master
            .lines()
            .iter()
            .filter(|l| !l.contains("Entering") && !l.contains("Sending/queueing"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for w in watches {
        w.finish()?.assert_single_holder()?;
    }
    // keepalived's garp_master_repeat (5) for every VIP, none lost. The
    // lines are logged before the sends of their batch (and a held log
    // may leave at 64 KiB, mid-batch), so the batch's sends get up to a
    // second after the last line; the capture keeps every frame queued
    // before its stop. The second round (garp_master_delay) comes 5 s
    // after the takeover.
    wait_until(Duration::from_secs(10), || Ok(backup.count("Sending/queueing gratuitous ARPs") >= n))?;
    std::thread::sleep(Duration::from_secs(1));
    let frames = cap.stop();
    let short: Vec<(u8, usize)> = (1..=250u8)
        .map(|v| (v, frames.iter().filter(|f| is_garp(f, me, [198, 51, 100, v])).count()))
        .filter(|&(_, k)| k < 5)
        .collect();
    ensure!(
        short.is_empty(),
        "fewer than 5 gratuitous ARPs for 198.51.100.x, (x, count) {short:?} of {} frames captured; warnings:\n{}",
        frames.len(),
        backup.lines().iter().filter(|l| l.contains("WARN")).take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    // RFC 5798 6.4.2: Master_Down_Interval is 3 × 1 s + Skew_Time
    // (0.61 s at priority 100) after the last advert; every instance's
    // VIP must follow within a generous margin of it (a debug build on a
    // shared machine).
    ensure!(
        took < Duration::from_millis(3_610 + 1_500),
        "every VIP on the backup only {took:?} after the kill"
    );
    Ok(())
}

/// One link, 250 instances at 1 s adverts: node 0 master of all (priority
/// 150, started with `master_args`), node 1 backup of all, checked to
/// hear the master.
struct Pair {
    seg: Segment,
    master: Process,
    backup: Process,
    n: usize,
}

fn pair(master_args: &[&str]) -> Result<Pair> {
    let (seg, master, n) = master_of(1, "1", master_args)?;
    let backup = seg.agent(1, &pair_conf(1, "1", 100), &[])?;
    wait_until(Duration::from_secs(30), || Ok(backup.count("Entering BACKUP") >= n))?;
    // A few adverts heard by every instance.
    std::thread::sleep(Duration::from_millis(2_500));
    ensure!(
        vips_held(&seg, 1)? == 0 && backup.count("Entering MASTER") == 0,
        "the backup took over early:\n{}",
        backup
            .lines()
            .iter()
            .filter(|l| l.contains("MASTER") || l.contains("WARN"))
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(Pair { seg, master, backup, n })
}

/// `links` × 250 instances at `advert_int` (keepalived's seconds) with
/// `priority`: VRID v has VIP 198.51.100.v on every link (the same VIP on
/// different interfaces is accepted).
fn pair_conf(links: u16, advert_int: &str, priority: u8) -> String {
    let mut s = String::new();
    for l in 0..links {
        for v in 1..=VRIDS {
            s += &format!(
                "vrrp_instance V{l}_{v} {{\n  state BACKUP\n  interface vl{l}\n  virtual_router_id {v}\n  \
                 priority {priority}\n  advert_int {advert_int}\n  version 3\n  virtual_ipaddress {{\n    198.51.100.{v}/32\n  }}\n}}\n"
            );
        }
    }
    s
}

/// Two nodes joined by `links` veth pairs; node 0 runs the agent as
/// master of `links` × 250 instances (priority 150) and holds every VIP.
fn master_of(links: u16, advert_int: &str, master_args: &[&str]) -> Result<(Segment, Process, usize)> {
    let n = usize::from(links * VRIDS);
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let (a, b) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    for l in 0..links {
        let name = format!("vl{l}");
        a.veth_to(&name, b, &name)?;
        a.ip(&["addr", "add", &format!("203.0.113.{}/32", l + 1), "dev", &name])?;
        b.ip(&["addr", "add", &format!("203.0.113.{}/32", l + 101), "dev", &name])?;
    }
    let master = seg.agent(0, &pair_conf(links, advert_int, 150), master_args)?;
    wait_until(Duration::from_secs(60), || Ok(vips_held(&seg, 0)? == n))?;
    Ok((seg, master, n))
}

/// The same 250 masters' worker killed, and started again by its
/// supervisor (issue 13, crash recovery): every instance resumes as MASTER
/// from the live record, so the backup never takes over, over twice its
/// Master_Down_Interval (3.61 s), and one node holds each VIP throughout.
#[test]
fn many_masters_whose_worker_is_killed_resume_and_nothing_moves() -> Result<()> {
    if !require_root("many_masters_whose_worker_is_killed_resume_and_nothing_moves") {
        return Ok(());
    }
    let Pair { seg, master, backup, n } = pair(&[])?;
    let (a, b) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let watches =
        [HolderWatch::start(&[a, b], "198.51.100.1")?, HolderWatch::start(&[a, b], "198.51.100.250")?];
    signal_worker(&master, Signal::SIGKILL)?;
    wait_until(Duration::from_secs(10), || Ok(master.count("Resuming MASTER STATE") >= n))?;
    std::thread::sleep(Duration::from_millis(2 * 3_610));
    for w in watches {
        let w = w.finish()?;
        w.assert_single_holder()?;
    }
    ensure!(
        backup.count("Entering MASTER") == 0 && vips_held(&seg, 1)? == 0,
        "the backup took over: {} MASTER entries",
        backup.count("Entering MASTER")
    );
    ensure!(vips_held(&seg, 0)? == n, "the resumed master holds {} of {n} VIPs", vips_held(&seg, 0)?);
    Ok(())
}

/// Issue 15, the one-holder rule at start: a backup agent of
/// `links` × 250 instances (4 × 250 = 1,000 by default;
/// `VRRP_TEST_START_LINKS` for more by hand) at 100 ms adverts, started
/// while its master advertises, never takes over. RFC 5798 6.4.2: a
/// backup becomes master only when Master_Down_Timer fires, and every
/// advert of a higher priority resets it; the master never stops
/// advertising here. (From about 750 instances on, every backup
/// instance used to enter MASTER one Master_Down_Interval after its
/// start, beside the master, then fall back: the backup's XDP attach made
/// the kernel send a link event for each veth's other end, in the
/// master's namespace, and the master dumped every interface address once
/// per instance on that link, 250 times per event: it sent no advert for
/// 1.5 s. Seen with 4 × 250, debug and release builds.)
#[test]
fn a_backup_started_beside_a_master_of_a_thousand_instances_never_takes_over() -> Result<()> {
    if !require_root("a_backup_started_beside_a_master_of_a_thousand_instances_never_takes_over") {
        return Ok(());
    }
    let links: u16 = std::env::var("VRRP_TEST_START_LINKS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let (seg, master, n) = master_of(links, "0.1", &[])?;
    let (a, b) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let watches = [
        HolderWatch::start(&[a, b], "198.51.100.1")?,
        HolderWatch::start(&[a, b], "198.51.100.125")?,
        HolderWatch::start(&[a, b], "198.51.100.250")?,
    ];
    let started = Instant::now();
    let backup = seg.agent(1, &pair_conf(links, "0.1", 100), &[])?;
    wait_until(Duration::from_secs(60), || Ok(backup.count("Entering BACKUP") >= n))?;
    let all_backup = started.elapsed();
    // Many Master_Down_Intervals (0.36 s at priority 100) after the last
    // instance entered BACKUP: a takeover would have happened by now.
    std::thread::sleep(Duration::from_millis(3_000));
    let took = backup.count("Entering MASTER");
    ensure!(
        took == 0 && vips_held(&seg, 1)? == 0,
        "the starting backup took over {took} of {n} instances beside the master (all BACKUP {all_backup:?} after its start):\n{}",
        backup
            .lines()
            .iter()
            .filter(|l| l.contains("MASTER") || l.contains("WARN") || l.contains("ERROR"))
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Its one MASTER entry per instance at its own start, no more.
    ensure!(
        master.count("Entering MASTER") == n && vips_held(&seg, 0)? == n,
        "the master lost instances: {} MASTER entries, {} of {n} VIPs",
        master.count("Entering MASTER"),
        vips_held(&seg, 0)?
    );
    for w in watches {
        w.finish()?.assert_single_holder()?;
    }
    Ok(())
}
