//! Reload (SIGHUP) without a flap: a master agent with two instances and
//! keepalived 2.2.7 as the backup (a mixed pair). Reloaded with
//! (a) the same file, (b) one instance's priority changed and a VIP added
//! to the other, (c) an instance added and one removed, (e) an instance's
//! VRID changed (restarted alone), (d) an invalid file. Throughout, the unchanged instance keeps its VIP on the agent's
//! node (HolderWatch), never logs a transition, never sends priority 0,
//! and its adverts (a capture on the agent's bridge port) never pause for
//! more than one interval plus scheduling margin.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::capture::{Capture, Frame, is_advert_from};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::{Process, wait_until};

const VIP_A: &str = "192.0.2.100";
const VIP_B: &str = "192.0.2.110";
const VIP_B2: &str = "192.0.2.111";
const VIP_C: &str = "192.0.2.120";
const VIP_D: &str = "192.0.2.121";
const AGENT: [u8; 4] = [192, 0, 2, 1];
/// The adverts' interval, ms (advert_int 0.2).
const INTERVAL_MS: u64 = 200;

fn instance(name: &str, vrid: u8, priority: u8, vips: &[&str]) -> String {
    let mut s = format!(
        "vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  \
         priority {priority}\n  advert_int 0.2\n  version 3\n  virtual_ipaddress {{\n"
    );
    for v in vips {
        s += &format!("    {v}/24\n");
    }
    s + "  }\n}\n"
}

/// Start the agent on node 0 reading `path` (kept, so SIGHUP re-reads it).
fn agent(seg: &Segment, path: &Path) -> Result<Process> {
    agent_as(seg, path, &netns::unique("rl"))
}

/// As `agent`, named `name` (for `vrrp-agent stats --name`).
fn agent_as(seg: &Segment, path: &Path, name: &str) -> Result<Process> {
    seg.clean_cache_of(name);
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(&bin.to_string_lossy());
    cmd.arg("run").arg("-f").arg(path).args(["--name", name]);
    let mut p = Process::spawn("agent", &mut cmd, std::env::var_os("VRRP_TEST_ECHO").is_some())?;
    p.wait_for_line("Entering", Duration::from_secs(15))?;
    Ok(p)
}

/// How many log lines contain `needle`.
fn count(p: &Process, needle: &str) -> usize {
    p.lines().iter().filter(|l| l.contains(needle)).count()
}

/// Wait until the agent's log has `n` lines with `needle`.
fn wait_count(p: &Process, needle: &str, n: usize) -> Result<()> {
    wait_until(Duration::from_secs(10), || Ok(count(p, needle) >= n))
        .with_context(|| format!("waiting for {n} x {needle:?}:\n{}", p.lines().join("\n")))
}

/// The agent's adverts for `vrid`: (time ns, priority).
fn adverts(frames: &[Frame], vrid: u8) -> Vec<(u64, u8)> {
    frames
        .iter()
        .filter(|f| is_advert_from(f, AGENT) && f.data[35] == vrid)
        .map(|f| (f.ts_ns, f.data[36]))
        .collect()
}

/// The VRIDs the agent's XDP program has instance rows for (bpftool on
/// the pinned `VRRP_INSTANCES`, whose key names its fields with BTF).
fn map_vrids(p: &Process) -> Result<Vec<u8>> {
    let line = p.wait_for_line_once("maps pinned under ", Duration::from_secs(1))?;
    let dir = line
        .split("maps pinned under ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("pin directory")?;
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(format!("{dir}/VRRP_INSTANCES"))
        .output()?;
    let text = String::from_utf8(out.stdout).context("bpftool output")?;
    let rows: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("bpftool: {text}"))?;
    let mut vrids: Vec<u8> = rows
        .as_array()
        .context("rows")?
        .iter()
        .filter_map(|r| {
            // Named fields with BTF; else the key's bytes in hex (ifindex
            // u32, family u8, vrid u8, padding).
            let named = r["formatted"]["key"]["vrid"].as_u64().or_else(|| r["key"]["vrid"].as_u64());
            let raw = || {
                let b = r["key"].as_array()?.get(5)?.as_str()?;
                u64::from_str_radix(b.trim_start_matches("0x"), 16).ok()
            };
            named.or_else(raw).and_then(|v| u8::try_from(v).ok())
        })
        .collect();
    vrids.sort_unstable();
    Ok(vrids)
}

fn max_gap_ms(ads: &[(u64, u8)]) -> u64 {
    ads.windows(2).map(|w| (w[1].0 - w[0].0) / 1_000_000).max().unwrap_or(u64::MAX)
}

#[test]
fn reload_applies_changes_without_a_flap_of_the_unchanged_instance() -> Result<()> {
    let test = "reload_applies_changes_without_a_flap_of_the_unchanged_instance";
    if !require_root(test) || !require_tool(test, "keepalived") || !require_tool(test, "bpftool") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    // keepalived, the backup of A and C (B, whose VIPs change, has no
    // backup: keepalived discards adverts whose address count differs
    // from its own configuration's).
    let ka = instance("A", 10, 100, &[VIP_A]) + &instance("C", 12, 100, &[VIP_C]);
    let _ka = seg.keepalived(1, &ka)?;
    let path =
        seg.file("reload.conf", &(instance("A", 10, 200, &[VIP_A]) + &instance("B", 11, 200, &[VIP_B])))?;
    let mut agent = agent(&seg, &path)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    seg.wait_holders(VIP_B, &[0], Duration::from_secs(10))?;
    // keepalived is master of C alone until C is added to the agent.
    seg.wait_holders(VIP_C, &[1], Duration::from_secs(10))?;
    assert_eq!(map_vrids(&agent)?, vec![10, 11]);
    let a_entered = count(&agent, "(A) Entering");
    assert_eq!(a_entered, 2, "BACKUP (init) then MASTER:\n{}", agent.lines().join("\n"));

    let cap = Capture::start(&seg.lan, "p0")?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_A)?;
    // Adverts before the first reload, to compare against.
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // (a) The same file.
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "is unchanged; nothing to do", 1)?;
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));

    // (b) A's priority changed, a VIP added to B.
    std::fs::write(&path, instance("A", 10, 210, &[VIP_A]) + &instance("B", 11, 200, &[VIP_B, VIP_B2]))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    seg.wait_holders(VIP_B2, &[0], Duration::from_secs(5))?;
    assert!(
        agent.lines().iter().any(|l| l.contains("(A) Reload: applying priority in place")),
        "{}",
        agent.lines().join("\n")
    );
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));

    // (c) C added, B removed: B resigns and its VIPs go, C is elected on
    // the agent (it preempts keepalived's 100).
    std::fs::write(&path, instance("A", 10, 210, &[VIP_A]) + &instance("C", 12, 200, &[VIP_C]))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 2)?;
    seg.wait_holders(VIP_B, &[], Duration::from_secs(5))?;
    seg.wait_holders(VIP_B2, &[], Duration::from_secs(5))?;
    seg.wait_holders(VIP_C, &[0], Duration::from_secs(5))?;
    assert_eq!(map_vrids(&agent)?, vec![10, 12], "the XDP rows follow");
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));

    // (e) C's VRID and VIP changed: another virtual router to its peers,
    // so C alone stops (priority 0: keepalived takes VIP_C back) and
    // starts anew (it is elected for VIP_D, which keepalived does not run).
    std::fs::write(&path, instance("A", 10, 210, &[VIP_A]) + &instance("C", 13, 200, &[VIP_D]))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 3)?;
    assert!(
        agent.lines().iter().any(|l| l.contains(
            "(C) Reload: virtual_router_id changed, which cannot be applied in place: stopping the instance and starting it anew"
        )),
        "{}",
        agent.lines().join("\n")
    );
    seg.wait_holders(VIP_C, &[1], Duration::from_secs(5))?;
    seg.wait_holders(VIP_D, &[0], Duration::from_secs(5))?;
    assert_eq!(map_vrids(&agent)?, vec![10, 13], "the XDP rows follow");
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));

    // (d) An invalid file: refused with file:line:col, nothing changes.
    let bad = instance("A", 10, 210, &[VIP_A])
        + "vrrp_instance C {\n  interface eth0\n  virtual_router_id 300\n}\n";
    std::fs::write(&path, bad)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload refused", 1)?;
    let at = format!("{}:", path.display());
    let diag = agent.lines().into_iter().find(|l| l.contains(&at)).context("a diagnostic naming the file")?;
    let rest = diag.split(&at).nth(1).unwrap_or_default();
    let mut nums = rest.split(':').take(2).map(|n| n.trim().parse::<u32>());
    if !(matches!(nums.next(), Some(Ok(_))) && matches!(nums.next(), Some(Ok(_)))) {
        bail!("no file:line:col in {diag:?}");
    }
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));
    assert_eq!(seg.holders(VIP_D)?, vec![0], "C still runs after the refused reload");
    assert_eq!(map_vrids(&agent)?, vec![10, 13], "the refused reload changed nothing");
    assert_eq!(seg.holders(VIP_A)?, vec![0]);

    let seen = watch.finish()?;
    let frames = cap.stop();
    seen.assert_single_holder()?;
    assert!(seen.spans[1].is_empty(), "the backup never held A's VIP: {:?}", seen.spans[1]);
    assert_eq!(seen.spans[0].len(), 1, "the master held A's VIP throughout: {:?}", seen.spans[0]);

    // A never transitioned, never resigned, and advertised every interval.
    let log = agent.lines().join("\n");
    assert_eq!(count(&agent, "(A) Entering"), a_entered, "A transitioned:\n{log}");
    let a = adverts(&frames, 10);
    assert!(a.len() > 20, "A's adverts captured: {}", a.len());
    assert!(a.iter().all(|(_, p)| *p != 0), "A sent priority 0");
    let gap = max_gap_ms(&a);
    eprintln!("A: {} adverts, max gap {gap} ms (interval {INTERVAL_MS} ms)", a.len());
    // One interval plus scheduling margin; a flap would be silent for a
    // Master_Down_Interval (3 intervals and more).
    assert!(gap <= INTERVAL_MS * 3 / 2, "A's adverts paused {gap} ms");
    // (b): A advertises its new priority.
    assert!(a.iter().any(|(_, p)| *p == 210), "A's new priority on the wire");
    // (c): B resigned with priority 0, once; C advertises.
    let b = adverts(&frames, 11);
    assert_eq!(b.iter().filter(|(_, p)| *p == 0).count(), 1, "B's resignation: {b:?}");
    assert!(b.last().is_some_and(|(_, p)| *p == 0), "B silent after its resignation");
    let c = adverts(&frames, 12);
    assert!(c.iter().any(|(_, p)| *p == 200), "C advertises");
    assert_eq!(c.iter().filter(|(_, p)| *p == 0).count(), 1, "C resigned on its old VRID: {c:?}");
    assert!(adverts(&frames, 13).iter().any(|(_, p)| *p == 200), "C advertises on its new VRID");
    assert!(log.contains("(B) Reload: removed from the configuration"), "{log}");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// An instance of the agent's with `extra` lines (tracking, peers,
/// routes) after advert_int.
fn instance_with(name: &str, vrid: u8, priority: u8, vip: &str, extra: &str) -> String {
    instance(name, vrid, priority, &[vip]).replacen("  version 3\n", &format!("  version 3\n{extra}"), 1)
}

/// A `vrrp_script` running `cmd` every second.
fn script(name: &str, cmd: &str, weight: i32) -> String {
    format!("vrrp_script {name} {{\n  script \"{cmd}\"\n  interval 1\n  weight {weight}\n}}\n")
}

/// How many log lines after the `from`-th contain `needle`.
fn count_after(p: &Process, from: usize, needle: &str) -> usize {
    p.lines().iter().skip(from).filter(|l| l.contains(needle)).count()
}

#[test]
fn reload_replaces_a_changed_vrrp_script_and_keeps_the_unchanged() -> Result<()> {
    let test = "reload_replaces_a_changed_vrrp_script_and_keeps_the_unchanged";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    // keepalived, the backup of both (it tracks nothing).
    let _ka = seg.keepalived(1, &(instance("A", 20, 100, &[VIP_A]) + &instance("B", 21, 100, &[VIP_B])))?;
    let conf = |a_script: &str, a_weight: i32| {
        script("chk_a", a_script, a_weight)
            + &script("chk_b", "/bin/true", 5)
            + &instance_with("A", 20, 200, VIP_A, "  track_script {\n    chk_a\n  }\n")
            + &instance_with("B", 21, 200, VIP_B, "  track_script {\n    chk_b\n  }\n")
    };
    let path = seg.file("reload.conf", &conf("/bin/true", 10))?;
    let mut agent = agent(&seg, &path)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    seg.wait_holders(VIP_B, &[0], Duration::from_secs(10))?;
    wait_count(&agent, "(A) Changing effective priority from 200 to 210", 1)?;
    wait_count(&agent, "(B) Changing effective priority from 200 to 205", 1)?;
    let b_entered = count(&agent, "(B) Entering");

    let cap = Capture::start(&seg.lan, "p0")?;
    let watch_a = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_A)?;
    let watch_b = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_B)?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // (1) chk_a's weight changed: its verdict (good) is carried over, as
    // keepalived does, so A advertises 230 at once, without waiting for a
    // run of the new definition.
    let mark = agent.lines().len();
    std::fs::write(&path, conf("/bin/true", 30))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    let log = agent.lines()[mark..].join("\n");
    assert!(log.contains("VRRP_Script(chk_a) considered successful on reload"), "{log}");
    assert!(
        log.contains("(A) Changing effective priority from 210 to 230"),
        "the new weight at once:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(3 * INTERVAL_MS));

    // (2) chk_a's command changed: the loop is replaced; the new command
    // fails, A goes back to its base. The old loop (/bin/true) would turn
    // it good again within a second: it must be gone.
    std::fs::write(&path, conf("/bin/false", 30))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 2)?;
    wait_count(&agent, "(A) Changing effective priority from 230 to 200", 1)?;
    wait_count(&agent, "VRRP_Script(chk_a) failed", 1)?;
    // Three more runs of the script's interval.
    std::thread::sleep(Duration::from_millis(3_000));
    let log = agent.lines().join("\n");
    assert_eq!(count(&agent, "VRRP_Script(chk_a) succeeded"), 1, "the replaced loop still reports:\n{log}");

    let seen_a = watch_a.finish()?;
    let seen_b = watch_b.finish()?;
    let frames = cap.stop();
    seen_a.assert_single_holder()?;
    seen_b.assert_single_holder()?;
    assert!(seen_a.spans[1].is_empty() && seen_b.spans[1].is_empty(), "keepalived never took over");
    let a = adverts(&frames, 20);
    assert!(a.iter().any(|(_, p)| *p == 230), "A's new weight on the wire");
    assert_eq!(a.last().map(|(_, p)| *p), Some(200), "A at its base once chk_a fails");
    // B, whose script did not change: its loop and state went on, no
    // transition, no log of its script, the same priority throughout.
    assert_eq!(count(&agent, "(B) Entering"), b_entered, "B transitioned:\n{log}");
    assert_eq!(count_after(&agent, mark, "VRRP_Script(chk_b)"), 0, "chk_b was touched:\n{log}");
    let b = adverts(&frames, 21);
    assert!(b.len() > 20, "B's adverts captured: {}", b.len());
    assert!(b.iter().all(|(_, p)| *p == 205), "B's priority moved: {b:?}");
    let gap = max_gap_ms(&b);
    eprintln!("B: {} adverts, max gap {gap} ms (interval {INTERVAL_MS} ms)", b.len());
    assert!(gap <= INTERVAL_MS * 3 / 2, "B's adverts paused {gap} ms");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// Whether node 0 has the route to `dst` / the rule `from SRC`.
fn has(seg: &Segment, args: &[&str], needle: &str) -> Result<bool> {
    let out = seg.nodes[0].ns.ip(args)?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(needle))
}

#[test]
fn reload_tracks_routes_and_rules_it_configures_first() -> Result<()> {
    let test = "reload_tracks_routes_and_rules_it_configures_first";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    // Nothing routed at start: the agent subscribes to no route or rule
    // events then.
    let path = seg.file("reload.conf", &instance("A", 30, 200, &[VIP_A]))?;
    let mut agent = agent(&seg, &path)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    let a_entered = count(&agent, "(A) Entering");
    let routed = "  virtual_routes {\n    203.0.113.0/24 dev eth0\n  }\n  virtual_rules {\n    from 203.0.113.5 table 100\n  }\n";
    std::fs::write(&path, instance_with("A", 30, 200, VIP_A, routed))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    let route = ["route", "show", "203.0.113.0/24"];
    let rule = ["rule", "show"];
    wait_until(Duration::from_secs(5), || has(&seg, &route, "203.0.113.0/24"))?;
    wait_until(Duration::from_secs(5), || has(&seg, &rule, "from 203.0.113.5 lookup 100"))?;
    // Deleted by hand: put back, as one configured at start would be.
    seg.nodes[0].ns.ip(&["route", "del", "203.0.113.0/24", "dev", "eth0"])?;
    wait_until(Duration::from_secs(5), || has(&seg, &route, "203.0.113.0/24"))
        .with_context(|| format!("the route is not put back:\n{}", agent.lines().join("\n")))?;
    seg.nodes[0].ns.ip(&["rule", "del", "from", "203.0.113.5", "table", "100"])?;
    wait_until(Duration::from_secs(5), || has(&seg, &rule, "from 203.0.113.5 lookup 100"))
        .with_context(|| format!("the rule is not put back:\n{}", agent.lines().join("\n")))?;
    let log = agent.lines().join("\n");
    assert!(log.contains("203.0.113.0/24 (table 254) was removed: putting it back"), "{log}");
    assert!(log.contains("rule preference") && log.contains("was removed: putting it back"), "{log}");
    assert_eq!(count(&agent, "(A) Entering"), a_entered, "A transitioned:\n{log}");
    assert_eq!(seg.holders(VIP_A)?, vec![0]);
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn reload_refuses_adverts_of_a_removed_unicast_peer() -> Result<()> {
    let test = "reload_refuses_adverts_of_a_removed_unicast_peer";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    // The agent, keepalived (its backup) and a third node whose adverts
    // are crafted.
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"])?;
    let v2 = |name: &str, prio: u8, src: &str, peers: &[&str]| {
        let peers: String = peers.iter().map(|p| format!("    {p}\n")).collect();
        format!(
            "vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 40\n  priority {prio}\n  \
             advert_int 1\n  unicast_src_ip {src}\n  unicast_peer {{\n{peers}  }}\n  virtual_ipaddress {{\n    {VIP_A}/24\n  }}\n}}\n"
        )
    };
    let _ka = seg.keepalived(1, &v2("A", 100, "192.0.2.2", &["192.0.2.1"]))?;
    let path = seg.file("reload.conf", &v2("A", 200, "192.0.2.1", &["192.0.2.2", "192.0.2.3"]))?;
    let name = netns::unique("rl");
    let mut agent = agent_as(&seg, &path, &name)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns, &seg.nodes[2].ns], VIP_A)?;
    // A lower priority than the master's: the agent stays master either way.
    let send = |n: usize| -> Result<()> {
        seg.nodes[2].ns.run_in(move || {
            let vip: std::net::Ipv4Addr = VIP_A.parse()?;
            let msg = vrrp_tests::advert::v2(
                40,
                50,
                1,
                &[vip],
                None,
                [192, 0, 2, 3].into(),
                [192, 0, 2, 1].into(),
            )?;
            let sock = vrrp_tests::advert::socket_v4("eth0", 255)?;
            for _ in 0..n {
                vrrp_tests::advert::send(&sock, &msg, [192, 0, 2, 1].into())?;
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
    };
    send(3)?;
    wait_until(Duration::from_secs(5), || Ok(seg.verdict_count(0, &name, "accepted")? >= 3))?;
    assert_eq!(seg.verdict_count(0, &name, "not_a_peer")?, 0, "a configured peer's adverts are accepted");

    std::fs::write(&path, v2("A", 200, "192.0.2.1", &["192.0.2.2"]))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    let accepted = seg.verdict_count(0, &name, "accepted")?;
    send(3)?;
    wait_until(Duration::from_secs(5), || Ok(seg.verdict_count(0, &name, "not_a_peer")? >= 3))
        .with_context(|| format!("192.0.2.3's adverts are not refused:\n{}", agent.lines().join("\n")))?;
    assert_eq!(
        seg.verdict_count(0, &name, "accepted")?,
        accepted,
        "the removed peer's adverts were accepted"
    );
    let seen = watch.finish()?;
    seen.assert_single_holder()?;
    assert!(seen.spans[1].is_empty(), "keepalived never took over: {:?}", seen.spans[1]);
    assert_eq!(count(&agent, "(A) Entering"), 2, "BACKUP (init) then MASTER, nothing since");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// A process killed when the test ends, however it ends.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn reload_applies_track_file_and_track_process_in_place() -> Result<()> {
    let test = "reload_applies_track_file_and_track_process_in_place";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _ka = seg.keepalived(1, &(instance("A", 50, 100, &[VIP_A]) + &instance("B", 51, 100, &[VIP_B])))?;
    let file = seg.file("tf", "3\n")?;
    // `sleep` with an argument no other process has.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
    let tag = format!("3600.{}{nanos}", std::process::id());
    let mut sleeper = Sleeper(Command::new("sleep").arg(&tag).spawn().context("starting sleep")?);
    let trackers = |file_weight: i32| {
        format!(
            "vrrp_track_file tf {{\n  file {}\n  weight {file_weight}\n}}\n\
             vrrp_track_process tp {{\n  process sleep {tag}\n  weight 7\n}}\n",
            file.display()
        )
    };
    let b = instance("B", 51, 200, &[VIP_B]);
    let path = seg.file("reload.conf", &(trackers(5) + &instance("A", 50, 200, &[VIP_A]) + &b))?;
    let mut agent = agent(&seg, &path)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    seg.wait_holders(VIP_B, &[0], Duration::from_secs(10))?;
    let b_entered = count(&agent, "(B) Entering");
    let cap = Capture::start(&seg.lan, "p0")?;
    let watch_a = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_A)?;
    let watch_b = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_B)?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // (1) A tracks the file now: 3 x 5 at once.
    let tracked = |extra: &str| instance_with("A", 50, 200, VIP_A, extra);
    std::fs::write(&path, trackers(5) + &tracked("  track_file {\n    tf\n  }\n") + &b)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    let log = agent.lines().join("\n");
    assert!(!log.contains("cannot apply that in place"), "{log}");
    wait_count(&agent, "(A) Changing effective priority from 200 to 215", 1)?;

    // (2) The file's weight changed: 3 x -10; the new watcher follows
    // the file (0: no offset).
    std::fs::write(&path, trackers(-10) + &tracked("  track_file {\n    tf\n  }\n") + &b)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 2)?;
    wait_count(&agent, "(A) Changing effective priority from 215 to 170", 1)?;
    std::fs::write(&file, "0\n")?;
    wait_count(&agent, "(A) Changing effective priority from 170 to 200", 1)?;
    assert_eq!(std::fs::read_to_string(&file)?, "0\n", "a reload does not write the file");

    // (3) A tracks the process too (running: +7), scanned at once.
    std::fs::write(
        &path,
        trackers(-10) + &tracked("  track_file {\n    tf\n  }\n  track_process {\n    tp\n  }\n") + &b,
    )?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 3)?;
    wait_count(&agent, "(A) Changing effective priority from 200 to 207", 1)?;
    // Its watcher follows the process: gone, +7 goes.
    sleeper.0.kill()?;
    sleeper.0.wait()?;
    wait_count(&agent, "(A) Changing effective priority from 207 to 200", 1)?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    let seen_a = watch_a.finish()?;
    let seen_b = watch_b.finish()?;
    let frames = cap.stop();
    seen_a.assert_single_holder()?;
    seen_b.assert_single_holder()?;
    assert!(seen_a.spans[1].is_empty() && seen_b.spans[1].is_empty(), "keepalived never took over");
    // B, unchanged: no transition, its priority and pace throughout.
    let log = agent.lines().join("\n");
    assert_eq!(count(&agent, "(B) Entering"), b_entered, "B transitioned:\n{log}");
    assert_eq!(count(&agent, "(B) Changing effective priority"), 0, "{log}");
    let bs = adverts(&frames, 51);
    assert!(bs.len() >= 10, "B's adverts captured: {}", bs.len());
    assert!(bs.iter().all(|(_, p)| *p == 200), "B's priority moved: {bs:?}");
    let gap = max_gap_ms(&bs);
    eprintln!("B: {} adverts, max gap {gap} ms (interval {INTERVAL_MS} ms)", bs.len());
    assert!(gap <= INTERVAL_MS * 3 / 2, "B's adverts paused {gap} ms");
    let a = adverts(&frames, 50);
    assert!(a.iter().all(|(_, p)| *p != 0), "A sent priority 0");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn reload_changes_a_sync_group_and_leaves_the_other_alone() -> Result<()> {
    let test = "reload_changes_a_sync_group_and_leaves_the_other_alone";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let four = |prio: u8| {
        instance("A", 70, prio, &[VIP_A])
            + &instance("B", 71, prio, &[VIP_B])
            + &instance("C", 72, prio, &[VIP_C])
            + &instance("D", 73, prio, &[VIP_D])
    };
    let _ka = seg.keepalived(1, &four(100))?;
    let group = |name: &str, members: &[&str]| {
        let m: String = members.iter().map(|n| format!("    {n}\n")).collect();
        format!("vrrp_sync_group {name} {{\n  group {{\n{m}  }}\n}}\n")
    };
    let path = seg.file("reload.conf", &(group("G", &["A", "B"]) + &group("H", &["C", "D"]) + &four(200)))?;
    let (mut agent, name) = {
        let name = netns::unique("rl");
        (agent_as(&seg, &path, &name)?, name)
    };
    for v in [VIP_A, VIP_B, VIP_C, VIP_D] {
        seg.wait_holders(v, &[0], Duration::from_secs(10))?;
    }
    let entered = |p: &Process| (count(p, "(A) Entering"), count(p, "(B) Entering"));
    let before = entered(&agent);
    let cap = Capture::start(&seg.lan, "p0")?;
    let watch_a = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_A)?;
    let watch_b = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_B)?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // H loses D: C and D stop and start anew (C in H, D alone); G and its
    // members are not touched.
    std::fs::write(&path, group("G", &["A", "B"]) + &group("H", &["C"]) + &four(200))?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    let log = agent.lines().join("\n");
    assert!(!log.contains("cannot apply that in place"), "{log}");
    for i in ["C", "D"] {
        assert!(log.contains(&format!("({i}) Reload: its sync group changed")), "{i} restarted:\n{log}");
    }
    for i in ["A", "B"] {
        assert!(!log.contains(&format!("({i}) Reload:")), "{i} was touched:\n{log}");
    }
    seg.wait_holders(VIP_C, &[0], Duration::from_secs(10))?;
    seg.wait_holders(VIP_D, &[0], Duration::from_secs(10))?;
    let status = format!("/run/vrrp-agent/{name}.json");
    wait_until(Duration::from_secs(5), || {
        let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&status)?)?;
        Ok(st["sync_groups"]
            == serde_json::json!([
                {"gname": "G", "state": "MASTER", "instances": ["A", "B"]},
                {"gname": "H", "state": "MASTER", "instances": ["C"]}
            ]))
    })
    .with_context(|| format!("{status}: {:?}", std::fs::read_to_string(&status)))?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    let seen_a = watch_a.finish()?;
    let seen_b = watch_b.finish()?;
    let frames = cap.stop();
    seen_a.assert_single_holder()?;
    seen_b.assert_single_holder()?;
    assert_eq!(seen_a.spans[0].len(), 1, "A's VIP stayed: {:?}", seen_a.spans[0]);
    assert_eq!(seen_b.spans[0].len(), 1, "B's VIP stayed: {:?}", seen_b.spans[0]);
    assert_eq!(entered(&agent), before, "A or B transitioned:\n{}", agent.lines().join("\n"));
    for vrid in [70, 71] {
        let ads = adverts(&frames, vrid);
        assert!(ads.len() >= 10, "VRID {vrid}: {} adverts", ads.len());
        assert!(ads.iter().all(|(_, p)| *p == 200), "VRID {vrid}'s priority moved: {ads:?}");
        let gap = max_gap_ms(&ads);
        eprintln!("VRID {vrid}: {} adverts, max gap {gap} ms", ads.len());
        assert!(gap <= INTERVAL_MS * 3 / 2, "VRID {vrid}'s adverts paused {gap} ms");
    }
    // C and D resigned once each (stopped as at shutdown).
    for vrid in [72, 73] {
        let ads = adverts(&frames, vrid);
        assert_eq!(ads.iter().filter(|(_, p)| *p == 0).count(), 1, "VRID {vrid}: {ads:?}");
    }
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// Whether node 0 has link `name`, and `addr` on it.
fn link_with(seg: &Segment, name: &str, addr: &str) -> Result<(bool, bool)> {
    // `ip` fails when there is no such link.
    let Ok(out) = seg.nodes[0].ns.ip(&["-o", "addr", "show", "dev", name]) else { return Ok((false, false)) };
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((true, text.split_whitespace().any(|w| w.split('/').next() == Some(addr))))
}

#[test]
fn reload_adds_moves_and_removes_a_vmac_by_restarting_that_instance() -> Result<()> {
    let test = "reload_adds_moves_and_removes_a_vmac_by_restarting_that_instance";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let _ka = seg.keepalived(1, &instance("B", 81, 100, &[VIP_B]))?;
    let vmac = |vrid: u8| instance_with("A", vrid, 200, VIP_A, "  use_vmac\n");
    let b = instance("B", 81, 200, &[VIP_B]);
    let path = seg.file("reload.conf", &(instance("A", 80, 200, &[VIP_A]) + &b))?;
    let mut agent = agent(&seg, &path)?;
    seg.wait_holders(VIP_A, &[0], Duration::from_secs(10))?;
    seg.wait_holders(VIP_B, &[0], Duration::from_secs(10))?;
    let b_entered = count(&agent, "(B) Entering");
    let cap = Capture::start(&seg.lan, "p0")?;
    let watch_b = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP_B)?;
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    // (1) A uses a VMAC now: it restarts on vrrp.80, its VIP there.
    std::fs::write(&path, vmac(80) + &b)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 1)?;
    wait_until(Duration::from_secs(10), || Ok(link_with(&seg, "vrrp.80", VIP_A)? == (true, true)))
        .with_context(|| format!("VIP_A on vrrp.80:\n{}", agent.lines().join("\n")))?;
    // (2) Its VRID (so its virtual MAC) changed: vrrp.80 goes, vrrp.82 comes.
    std::fs::write(&path, vmac(82) + &b)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 2)?;
    wait_until(Duration::from_secs(10), || Ok(link_with(&seg, "vrrp.82", VIP_A)? == (true, true)))
        .with_context(|| format!("VIP_A on vrrp.82:\n{}", agent.lines().join("\n")))?;
    assert!(!link_with(&seg, "vrrp.80", VIP_A)?.0, "vrrp.80 deleted");
    // (3) No VMAC any more: the VIP on eth0 again, vrrp.82 gone.
    std::fs::write(&path, instance("A", 82, 200, &[VIP_A]) + &b)?;
    agent.signal(Signal::SIGHUP)?;
    wait_count(&agent, "Reload: done", 3)?;
    wait_until(Duration::from_secs(10), || Ok(link_with(&seg, "eth0", VIP_A)? == (true, true)))?;
    assert!(!link_with(&seg, "vrrp.82", VIP_A)?.0, "vrrp.82 deleted");
    let log = agent.lines().join("\n");
    assert!(!log.contains("cannot apply that in place"), "{log}");
    assert_eq!(count(&agent, "(A) Reload: use_vmac changed"), 2, "{log}");
    std::thread::sleep(Duration::from_millis(5 * INTERVAL_MS));

    let seen_b = watch_b.finish()?;
    let frames = cap.stop();
    seen_b.assert_single_holder()?;
    assert!(seen_b.spans[1].is_empty(), "keepalived never took B over: {:?}", seen_b.spans[1]);
    assert_eq!(count(&agent, "(B) Entering"), b_entered, "B transitioned:\n{log}");
    let bs = adverts(&frames, 81);
    assert!(bs.len() >= 10, "B's adverts captured: {}", bs.len());
    assert!(bs.iter().all(|(_, p)| *p == 200), "B's priority moved: {bs:?}");
    let gap = max_gap_ms(&bs);
    eprintln!("B: {} adverts, max gap {gap} ms (interval {INTERVAL_MS} ms)", bs.len());
    assert!(gap <= INTERVAL_MS * 3 / 2, "B's adverts paused {gap} ms");
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}
