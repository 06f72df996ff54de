//! keepalived's trackers beside scripts and interfaces, run by the agent
//! in namespaces: `track_file` (inotify), `vrrp_track_process` (the
//! kernel's process events), `dont_track_primary`, and the notify FIFOs.
//! Priorities are read with `vrrp-agent status`; failovers are watched
//! with `HolderWatch` (one holder throughout).

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.140";

/// The longest overlap a preemption may show (the preempted master
/// removes the VIP when the preempting advert arrives).
const HANDOVER: Duration = Duration::from_millis(50);

/// (state, effective priority) of agent `name`'s first instance, from
/// `vrrp-agent status --json`.
fn status(name: &str) -> Result<(String, u8)> {
    let out = Command::new(agent_bin()?).args(["status", "--name", name, "--json"]).output()?;
    if !out.status.success() {
        bail!("vrrp-agent status: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("status JSON")?;
    let i = &v["instances"][0];
    let state = i["state"].as_str().context("state")?.to_owned();
    let prio = i["effective_priority"].as_u64().context("effective_priority")?;
    Ok((state, u8::try_from(prio)?))
}

/// Wait until agent `name` reports `state` at `prio`; how long it took.
fn expect(name: &str, state: &str, prio: u8, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Ok(s) = status(name) {
            if s.0 == state && s.1 == prio {
                return Ok(start.elapsed());
            }
            last = Some(s);
        }
        if start.elapsed() > limit {
            bail!("agent {name}: wanted {state} at {prio} within {limit:?}, status says {last:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn instance(vrid: u8, prio: u8, extra: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  priority {prio}\n  advert_int 1\n\
           virtual_ipaddress {{\n    {VIP}/24\n  }}\n{extra}}}\n"
    )
}

/// Master_Down_Interval at 1 s adverts, plus a margin for a busy machine.
const MOVE: Duration = Duration::from_secs(6);

/// Write `text` to `path` as an operator would (`echo N > file`: open,
/// truncate, write, close, which inotify reports as IN_CLOSE_WRITE).
fn put(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[test]
fn track_file_moves_the_priority_and_a_maintenance_file_fails_over() -> Result<()> {
    if !require_root("track_file_moves_the_priority_and_a_maintenance_file_fails_over") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.41/24", "192.0.2.42/24"])?;
    let prio = seg.file("prio", "")?;
    std::fs::remove_file(&prio)?;
    let maint = seg.file("maintenance", "0\n")?;
    // `prio` is missing at start: init_file creates it with 0. Its value
    // counts 10 times; `maintenance` is weight 0: non-zero is FAULT.
    let trackers = format!(
        "track_file prio {{\n  file {}\n  weight 10\n  init_file\n}}\n\
         vrrp_track_file maintenance {{\n  file {}\n}}\n",
        prio.display(),
        maint.display()
    );
    let c1 = format!(
        "{trackers}{}",
        instance(61, 150, "  track_file {\n    prio\n    maintenance weight 0\n  }\n")
    );
    let (_a, n1) = seg.agent_named(0, &c1, &[])?;
    let (_b, n2) = seg.agent_named(1, &instance(61, 120, ""), &[])?;
    assert_eq!(std::fs::read_to_string(&prio)?, "0\n", "init_file wrote the missing file");
    expect(&n1, "MASTER", 150, MOVE)?;
    expect(&n2, "BACKUP", 120, MOVE)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;

    // 3 x 10: 180, at once (inotify, not a poll).
    put(&prio, "3\n")?;
    let took = expect(&n1, "MASTER", 180, Duration::from_secs(2))?;
    eprintln!("track_file 3 -> priority 180 after {took:?}");
    // Negative values lower it (still above the backup's 120).
    put(&prio, "-2\n")?;
    expect(&n1, "MASTER", 130, Duration::from_secs(2))?;
    // The maintenance file: FAULT, the backup takes over.
    put(&maint, "1\n")?;
    expect(&n1, "FAULT", 130, Duration::from_secs(2))?;
    expect(&n2, "MASTER", 120, MOVE)?;
    assert_eq!(seg.holders(VIP)?, [1], "the VIP moved to node 2");
    // Deleting the file reads 0: back to BACKUP, then node 1 preempts
    // (130 > 120).
    std::fs::remove_file(&maint)?;
    expect(&n1, "MASTER", 130, MOVE)?;
    expect(&n2, "BACKUP", 120, MOVE)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    assert_eq!(seg.holders(VIP)?, [0]);
    Ok(())
}

/// `sleep` with an argument no other process has; killed on drop.
struct Sleeper(Child);

impl Sleeper {
    fn kill(&mut self) -> Result<()> {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper(tag: &str) -> Result<Sleeper> {
    Ok(Sleeper(Command::new("sleep").arg(tag).spawn().context("starting sleep")?))
}

#[test]
fn track_process_quorum_lost_and_regained_moves_the_vip() -> Result<()> {
    if !require_root("track_process_quorum_lost_and_regained_moves_the_vip") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.43/24", "192.0.2.44/24"])?;
    // A number unique to this run, as sleep's argument (sleep reads
    // fractional seconds): the tracker matches these sleeps only.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let tag = format!("3600.{}{nanos}", std::process::id());
    let delay = Duration::from_millis(1500);
    let trackers = format!(
        "vrrp_track_process sleepers {{\n  process sleep {tag}\n  quorum 2\n  weight -60\n  terminate_delay {}\n}}\n",
        delay.as_secs_f64()
    );
    let _s1 = sleeper(&tag)?;
    let c1 = format!("{trackers}{}", instance(62, 150, "  track_process {\n    sleepers\n  }\n"));
    let (_a, n1) = seg.agent_named(0, &c1, &[])?;
    // One sleeper: no quorum, 150 - 60.
    expect(&n1, "BACKUP", 90, Duration::from_secs(5))?;
    let (_b, n2) = seg.agent_named(1, &instance(62, 120, ""), &[])?;
    expect(&n2, "MASTER", 120, MOVE)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;

    // A second one: quorum, 150, node 1 preempts.
    let mut s2 = sleeper(&tag)?;
    let took = expect(&n1, "MASTER", 150, MOVE)?;
    eprintln!("second sleeper -> MASTER at 150 after {took:?}");
    expect(&n2, "BACKUP", 120, MOVE)?;

    // One killed: the quorum is lost after terminate_delay, not before.
    let killed = Instant::now();
    s2.kill()?;
    wait_until(delay + Duration::from_secs(3), || Ok(status(&n1)?.1 == 90))?;
    let after = killed.elapsed();
    eprintln!("sleeper killed -> priority 90 after {after:?} (terminate_delay {delay:?})");
    assert!(after >= delay - Duration::from_millis(100), "the drop waited terminate_delay: {after:?}");
    // 90 < 120: the backup preempts.
    expect(&n2, "MASTER", 120, MOVE)?;
    expect(&n1, "BACKUP", 90, MOVE)?;
    assert_eq!(seg.holders(VIP)?, [1]);

    // Started again: back.
    let _s3 = sleeper(&tag)?;
    expect(&n1, "MASTER", 150, MOVE)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    Ok(())
}

#[test]
fn dont_track_primary_keeps_an_instance_out_of_fault_when_its_link_goes_down() -> Result<()> {
    if !require_root("dont_track_primary_keeps_an_instance_out_of_fault_when_its_link_goes_down") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.45/24", "192.0.2.46/24"])?;
    // Two lone masters on different VRIDs: one with dont_track_primary.
    let (_a, n1) = seg.agent_named(0, &instance(63, 150, "  dont_track_primary\n"), &[])?;
    let c2 = instance(64, 150, "").replace(VIP, "192.0.2.141");
    let (_b, n2) = seg.agent_named(1, &c2, &[])?;
    expect(&n1, "MASTER", 150, MOVE)?;
    expect(&n2, "MASTER", 150, MOVE)?;
    seg.nodes[0].ns.ip(&["link", "set", "eth0", "down"])?;
    seg.nodes[1].ns.ip(&["link", "set", "eth0", "down"])?;
    // The one without it goes to FAULT (keepalived's default)...
    expect(&n2, "FAULT", 150, Duration::from_secs(3))?;
    // ...by which time the other has seen the same event and stayed.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&n1)?, ("MASTER".to_owned(), 150), "dont_track_primary: no FAULT");
    seg.nodes[0].ns.ip(&["link", "set", "eth0", "up"])?;
    seg.nodes[1].ns.ip(&["link", "set", "eth0", "up"])?;
    expect(&n2, "MASTER", 150, MOVE)?;
    assert_eq!(status(&n1)?.0, "MASTER");
    Ok(())
}

#[test]
fn notify_fifo_gets_a_failover_s_lines_in_order() -> Result<()> {
    if !require_root("notify_fifo_gets_a_failover_s_lines_in_order") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.47/24", "192.0.2.48/24"])?;
    let fifo = seg.file("state.fifo", "")?;
    std::fs::remove_file(&fifo)?;
    let log = seg.file("fifo.log", "")?;
    // keepalived passes the FIFO's path as the script's last argument.
    let script = seg.file("fifo.sh", &format!("#!/bin/sh\nexec cat \"$1\" >> {}\n", log.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let global = format!(
        "global_defs {{\n  vrrp_notify_fifo {}\n  vrrp_notify_fifo_script {}\n}}\n",
        fifo.display(),
        script.display()
    );
    let (mut a, n1) = seg.agent_named(0, &format!("{global}{}", instance(65, 150, "")), &[])?;
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo)?.file_type().is_fifo(), "the missing FIFO was created");
    expect(&n1, "MASTER", 150, MOVE)?;
    let (_b, n2) = seg.agent_named(1, &instance(65, 100, ""), &[])?;
    expect(&n2, "BACKUP", 100, MOVE)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    a.stop(Duration::from_secs(5))?;
    expect(&n2, "MASTER", 100, MOVE)?;
    w.finish()?.assert_single_holder()?;
    let want = ["INSTANCE \"VI_1\" BACKUP 150", "INSTANCE \"VI_1\" MASTER 150", "INSTANCE \"VI_1\" STOP 150"];
    wait_until(Duration::from_secs(5), || Ok(std::fs::read_to_string(&log)?.lines().count() >= want.len()))?;
    let got: Vec<String> = std::fs::read_to_string(&log)?.lines().map(str::to_owned).collect();
    assert_eq!(got, want, "the FIFO's lines");
    assert!(!fifo.exists(), "the FIFO the agent created is removed when it stops");
    Ok(())
}

#[test]
fn track_file_maintenance_beside_keepalived() -> Result<()> {
    if !require_root("track_file_maintenance_beside_keepalived")
        || !vrrp_tests::privilege::require_tool("track_file_maintenance_beside_keepalived", "keepalived")
    {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.55/24", "192.0.2.56/24"])?;
    // One configuration shape for both, each node with its own file: the
    // agent on node 1 (150), keepalived 2.2.7 on node 2 (100).
    let conf = |file: &std::path::Path, prio: u8| {
        format!(
            "track_file maintenance {{\n  file {}\n  weight 0\n}}\n{}",
            file.display(),
            instance(68, prio, "  track_file {\n    maintenance\n  }\n")
        )
    };
    let maint_a = seg.file("maint-agent", "0\n")?;
    let maint_k = seg.file("maint-keepalived", "0\n")?;
    let (_a, n1) = seg.agent_named(0, &conf(&maint_a, 150), &[])?;
    expect(&n1, "MASTER", 150, MOVE)?;
    let _k = seg.keepalived(1, &conf(&maint_k, 100))?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(seg.holders(VIP)?, [0], "keepalived stays backup");
    // The agent's node in maintenance: keepalived takes over.
    put(&maint_a, "1\n")?;
    expect(&n1, "FAULT", 150, Duration::from_secs(2))?;
    seg.wait_holders(VIP, &[1], MOVE)?;
    // keepalived's node too (its own reading of the file): nobody holds.
    put(&maint_k, "1\n")?;
    seg.wait_holders(VIP, &[], Duration::from_secs(3))?;
    // The agent's back: it takes the VIP; keepalived's back: it stays backup.
    put(&maint_a, "0\n")?;
    seg.wait_holders(VIP, &[0], MOVE)?;
    put(&maint_k, "0\n")?;
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(seg.holders(VIP)?, [0]);
    expect(&n1, "MASTER", 150, Duration::from_secs(1))?;
    w.finish()?.assert_single_holder_but_handovers(HANDOVER)?;
    Ok(())
}
