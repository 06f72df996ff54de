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
    let bin = agent_bin()?;
    let mut cmd = seg.nodes[0].ns.command(&bin.to_string_lossy());
    cmd.arg("run").arg("-f").arg(path).args(["--name", &netns::unique("rl")]);
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
