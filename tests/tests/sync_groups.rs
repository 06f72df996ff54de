//! `vrrp_sync_group` in namespaces: two nodes on two segments (eth0 on
//! one bridge, eth1 on another), one instance on each, both in one group.
//! The master's eth1 goes down: its group goes to FAULT and both VIPs move
//! to the other node together; when the link is back they come back
//! together. Each VIP is watched in both namespaces the whole time
//! (`HolderWatch`): never two holders beyond a preemption's handover, and
//! never the two VIPs on different nodes beyond it. Agent pairs, mixed
//! pairs with keepalived 2.2.7 both ways, and keepalived's own sample.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, exec};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const ETH0: [&str; 2] = ["192.0.2.31/24", "192.0.2.32/24"];
const ETH1: [&str; 2] = ["198.51.100.31/24", "198.51.100.32/24"];
const VIP1: &str = "192.0.2.161";
const VIP2: &str = "198.51.100.162";
/// Master_Down_Interval at advert_int 0.1 s and priority 100:
/// 3 × 100 ms + (256 - 100) / 256 × 100 ms.
const MDI: Duration = Duration::from_micros(360_938);
/// Allowance for netlink, scheduling and polling on a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// The longest overlap a preemption may show: one advert's delivery and
/// processing (see tests/tests/faults.rs).
const HANDOVER: Duration = Duration::from_millis(20);

/// A notify script in `seg`'s directory that appends its arguments to
/// `<name>.log`; returns (script, log).
fn notify_script(seg: &Segment, name: &str) -> Result<(PathBuf, PathBuf)> {
    let log = seg.file(&format!("{name}.log"), "")?;
    let script =
        seg.file(&format!("{name}.sh"), &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok((script, log))
}

/// One node's keepalived.conf: group G of VI_1 (eth0) and VI_2 (eth1),
/// VRRPv3 multicast at 100 ms, with the group's notify scripts.
fn conf(priority: u8, notify: &Path) -> String {
    let n = notify.display();
    let inst = |name: &str, iface: &str, vrid: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n  state BACKUP\n  interface {iface}\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 0.1\n  version 3\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
        )
    };
    format!(
        "vrrp_sync_group G {{\n  group {{\n    VI_1\n    VI_2\n  }}\n  notify_master \"{n} master-only\"\n  notify_stop \"{n} stop-only\"\n  notify {n}\n}}\n{}{}",
        inst("VI_1", "eth0", 61, VIP1),
        inst("VI_2", "eth1", 62, VIP2)
    )
}

fn two_links() -> Result<Segment> {
    let seg = Segment::new(&ETH0)?;
    seg.second_link(&ETH1)?;
    Ok(seg)
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The `GROUP ...` lines of `log`, once it has `want` of them.
fn group_lines(log: &Path, want: usize) -> Result<Vec<String>> {
    let group = || lines(log).into_iter().filter(|l| l.starts_with("GROUP")).collect::<Vec<_>>();
    wait_until(Duration::from_secs(5), || Ok(group().len() >= want))
        .with_context(|| format!("{} has {:?}", log.display(), lines(log)))?;
    Ok(group())
}

/// Node 1 holds both VIPs; its eth1 goes down, then up again. Both VIPs
/// move to node 0 and back, together. Returns how long each move took.
fn fail_over_and_back(seg: &Segment) -> Result<(Duration, Duration)> {
    seg.wait_holders(VIP1, &[1], MDI * 10 + MARGIN)?;
    seg.wait_holders(VIP2, &[1], MDI * 10 + MARGIN)?;
    let nodes = [&seg.nodes[0].ns, &seg.nodes[1].ns];
    let (w1, w2) = (HolderWatch::start(&nodes, VIP1)?, HolderWatch::start(&nodes, VIP2)?);

    let down = Instant::now();
    seg.nodes[1].ns.ip(&["link", "set", "eth1", "down"])?;
    // Node 0's VI_1 hears the resignation on eth0 and wants MASTER after
    // its Skew_Time; its VI_2 must wait for Master_Down_Interval from the
    // last advert on eth1; the group takes both then.
    seg.wait_holders(VIP2, &[0], MDI + MARGIN)?;
    seg.wait_holders(VIP1, &[0], MARGIN)?;
    let over = down.elapsed();

    let up = Instant::now();
    seg.nodes[1].ns.ip(&["link", "set", "eth1", "up"])?;
    // Node 1's group leaves FAULT for BACKUP, and preempts on both links
    // one Master_Down_Interval later.
    seg.wait_holders(VIP1, &[1], MDI * 2 + MARGIN)?;
    seg.wait_holders(VIP2, &[1], MARGIN)?;
    let back = up.elapsed();

    let (s1, s2) = (w1.finish()?, w2.finish()?);
    s1.assert_single_holder_but_handovers(HANDOVER)?;
    s2.assert_single_holder_but_handovers(HANDOVER)?;
    s1.assert_not_split_from(&s2, HANDOVER)?;
    s2.assert_not_split_from(&s1, HANDOVER)?;
    eprintln!("both VIPs moved over in {over:?} and back in {back:?}");
    Ok((over, back))
}

#[test]
fn agents_move_the_group_as_one_when_the_master_s_outside_link_fails() -> Result<()> {
    if !require_root("agents_move_the_group_as_one_when_the_master_s_outside_link_fails") {
        return Ok(());
    }
    let seg = two_links()?;
    let (s1, log1) = notify_script(&seg, "notify1")?;
    let (s0, log0) = notify_script(&seg, "notify0")?;
    let (mut master, name1) = seg.agent_named(1, &conf(150, &s1), &[])?;
    let (mut backup, name0) = seg.agent_named(0, &conf(100, &s0), &[])?;
    let (over, _) = fail_over_and_back(&seg)?;
    // The status file shows the groups.
    for (name, state) in [(&name1, "MASTER"), (&name0, "BACKUP")] {
        let path = format!("/run/vrrp-agent/{name}.json");
        wait_until(Duration::from_secs(2), || {
            let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            Ok(st["sync_groups"]
                == serde_json::json!([{"gname": "G", "state": state, "instances": ["VI_1", "VI_2"]}]))
        })
        .with_context(|| format!("{path}: {:?}", std::fs::read_to_string(&path)))?;
    }
    assert!(
        over >= MDI.saturating_sub(Duration::from_millis(110)),
        "not before VI_2's Master_Down_Interval: {over:?}"
    );
    master.wait_for_line("VRRP_Group(G) Syncing instances to FAULT state", Duration::from_secs(1))?;
    assert!(master.lines().iter().any(|l| l.contains("(VI_1) Entering FAULT STATE")), "VI_1 followed VI_2");

    // keepalived's arguments: GROUP NAME STATE 0; notify_master as written.
    let g1 = group_lines(&log1, 5)?;
    assert_eq!(
        g1,
        ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G FAULT 0", "GROUP G BACKUP 0", "GROUP G MASTER 0"]
    );
    assert_eq!(lines(&log1).iter().filter(|l| *l == "master-only").count(), 2, "{:?}", lines(&log1));
    let g0 = group_lines(&log0, 3)?;
    assert_eq!(g0, ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"]);

    // A stop runs the group's notify_stop and `notify ... STOP 0` before
    // the agent exits: a backup's stop, which has nothing to resign and
    // exits at once, too.
    backup.stop(Duration::from_secs(5))?;
    let g0 = group_lines(&log0, 4)?;
    assert_eq!(g0.last().map(String::as_str), Some("GROUP G STOP 0"));
    assert!(lines(&log0).iter().any(|l| l == "stop-only"), "{:?}", lines(&log0));
    master.stop(Duration::from_secs(5))?;
    let g1 = group_lines(&log1, 6)?;
    assert_eq!(g1.last().map(String::as_str), Some("GROUP G STOP 0"));
    assert!(lines(&log1).iter().any(|l| l == "stop-only"), "{:?}", lines(&log1));
    Ok(())
}

#[test]
fn keepalived_takes_over_an_agent_s_group_as_one_and_gives_it_back() -> Result<()> {
    let test = "keepalived_takes_over_an_agent_s_group_as_one_and_gives_it_back";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = two_links()?;
    let (s1, _) = notify_script(&seg, "notify1")?;
    let (s0, log0) = notify_script(&seg, "notify0")?;
    let _master = seg.agent(1, &conf(150, &s1), &[])?;
    let _keepalived = seg.keepalived(0, &conf(100, &s0))?;
    fail_over_and_back(&seg)?;
    // keepalived's own group notifies, for comparison with ours above.
    let g0 = group_lines(&log0, 3)?;
    assert_eq!(g0, ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"]);
    Ok(())
}

#[test]
fn an_agent_takes_over_keepalived_s_group_as_one_and_gives_it_back() -> Result<()> {
    let test = "an_agent_takes_over_keepalived_s_group_as_one_and_gives_it_back";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = two_links()?;
    let (s1, _) = notify_script(&seg, "notify1")?;
    let (s0, log0) = notify_script(&seg, "notify0")?;
    let _keepalived = seg.keepalived(1, &conf(150, &s1))?;
    let mut agent = seg.agent(0, &conf(100, &s0), &[])?;
    fail_over_and_back(&seg)?;
    agent.wait_for_line("VRRP_Group(G) Syncing instances to BACKUP state", Duration::from_secs(1))?;
    let g0 = group_lines(&log0, 3)?;
    assert_eq!(g0, ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"]);
    Ok(())
}

/// keepalived's sample, for node `i`: its notify scripts in `dir/n<i>/`,
/// each appending `$0 $@` to `dir/n<i>/notify.log`.
fn sample(seg: &Segment, i: usize) -> Result<(String, PathBuf)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keepalived-samples/keepalived.conf.vrrp.sync"),
    )?;
    let log = seg.file(&format!("sample{i}.log"), "")?;
    let dir = log.with_file_name(format!("n{i}"));
    std::fs::create_dir_all(&dir)?;
    for s in ["vrrp.back", "vrrp.mast", "vrrp.fault"] {
        let f = dir.join(s);
        std::fs::write(&f, format!("#!/bin/sh\necho \"$(basename $0) $@\" >> {}\n", log.display()))?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok((text.replace("/usr/local/bin/", &format!("{}/", dir.display())), log))
}

/// The sample's VIPs: G1's on eth0 and eth1, G2's on eth0 and eth1.
const G1: [&str; 7] =
    ["192.0.2.18", "198.51.100.18", "192.0.2.20", "192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24"];
const G2: [&str; 2] = ["192.0.2.19", "198.51.100.19"];

#[test]
fn keepalived_s_sync_sample_runs_on_two_nodes() -> Result<()> {
    if !require_root("keepalived_s_sync_sample_runs_on_two_nodes") {
        return Ok(());
    }
    let seg = two_links()?;
    let (c1, log1) = sample(&seg, 1)?;
    let (c0, log0) = sample(&seg, 0)?;
    // Equal priorities (the sample's 100): the node that starts first
    // becomes master and the other, hearing an equal priority, stays
    // backup (RFC 5798 6.4.2).
    let mut first = seg.agent(1, &c1, &[])?;
    let mdi = Duration::from_micros(3_609_375);
    for v in G1.iter().chain(&G2) {
        seg.wait_holders(v, &[1], mdi * 2 + MARGIN)?;
    }
    let _second = seg.agent(0, &c0, &[])?;
    let nodes = [&seg.nodes[0].ns, &seg.nodes[1].ns];
    let watched = [G1[0], G1[1], G2[0], G2[1]];
    let watches = watched.iter().map(|v| HolderWatch::start(&nodes, v)).collect::<Result<Vec<_>>>()?;
    // Node 0 comes up as backup of both groups.
    std::thread::sleep(mdi + Duration::from_secs(1));
    for v in G1.iter().chain(&G2) {
        assert_eq!(seg.holders(v)?, vec![1], "{v}");
    }

    // Node 1's eth1 goes down: VI_2 (G1) and VI_4 (G2) are in FAULT, and
    // each takes its whole group with it, eth0's instances too.
    seg.nodes[1].ns.ip(&["link", "set", "eth1", "down"])?;
    for v in G1.iter().chain(&G2) {
        seg.wait_holders(v, &[0], mdi + MARGIN)?;
    }
    first.wait_for_line("VRRP_Group(G1) Syncing instances to FAULT state", Duration::from_secs(1))?;
    first.wait_for_line("VRRP_Group(G2) Syncing instances to FAULT state", Duration::from_secs(1))?;
    // Back up: node 1's groups return to BACKUP; at equal priority node 0
    // keeps them.
    seg.nodes[1].ns.ip(&["link", "set", "eth1", "up"])?;
    first.wait_for_line("VRRP_Group(G1) Syncing instances to BACKUP state", Duration::from_secs(2))?;
    std::thread::sleep(mdi + Duration::from_secs(1));
    for v in G1.iter().chain(&G2) {
        assert_eq!(seg.holders(v)?, vec![0], "{v}");
    }

    let seen = watches.into_iter().map(HolderWatch::finish).collect::<Result<Vec<_>>>()?;
    for s in &seen {
        s.assert_single_holder()?;
    }
    seen[0].assert_not_split_from(&seen[1], HANDOVER)?;
    seen[1].assert_not_split_from(&seen[0], HANDOVER)?;
    seen[2].assert_not_split_from(&seen[3], HANDOVER)?;
    seen[3].assert_not_split_from(&seen[2], HANDOVER)?;
    // The sample's group scripts, with their own arguments.
    wait_until(Duration::from_secs(5), || Ok(lines(&log1).iter().any(|l| l == "vrrp.fault arg1 arg2")))?;
    let l1 = lines(&log1);
    assert!(l1.iter().any(|l| l == "vrrp.mast arg1 arg2"), "{l1:?}");
    assert!(l1.iter().any(|l| l == "vrrp.back arg1 arg2"), "{l1:?}");
    wait_until(Duration::from_secs(5), || Ok(lines(&log0).iter().any(|l| l == "vrrp.mast arg1 arg2")))?;
    Ok(())
}

#[test]
fn without_the_group_the_same_fault_splits_the_vips_and_the_watch_says_so() {
    // The control for the tests above: the same two instances without
    // `vrrp_sync_group` fail over one by one, and `assert_not_split_from`
    // catches the split.
    if !require_root("without_the_group_the_same_fault_splits_the_vips_and_the_watch_says_so") {
        return;
    }
    let run = || -> Result<String> {
        let seg = two_links()?;
        let (s1, _) = notify_script(&seg, "notify1")?;
        let (s0, _) = notify_script(&seg, "notify0")?;
        let ungrouped =
            |c: String| c.split_once("vrrp_instance").map(|(_, i)| format!("vrrp_instance{i}")).unwrap_or(c);
        let _master = seg.agent(1, &ungrouped(conf(150, &s1)), &[])?;
        let _backup = seg.agent(0, &ungrouped(conf(100, &s0)), &[])?;
        seg.wait_holders(VIP1, &[1], MDI * 10 + MARGIN)?;
        seg.wait_holders(VIP2, &[1], MDI * 10 + MARGIN)?;
        let nodes = [&seg.nodes[0].ns, &seg.nodes[1].ns];
        let (w1, w2) = (HolderWatch::start(&nodes, VIP1)?, HolderWatch::start(&nodes, VIP2)?);
        seg.nodes[1].ns.ip(&["link", "set", "eth1", "down"])?;
        seg.wait_holders(VIP2, &[0], MDI + MARGIN)?;
        std::thread::sleep(MDI * 2);
        assert_eq!(seg.holders(VIP1)?, vec![1], "VI_1 stayed on node 1");
        let (s1, s2) = (w1.finish()?, w2.finish()?);
        Ok(s2.assert_not_split_from(&s1, HANDOVER).expect_err("a split").to_string())
    };
    let e = run().expect("the control ran");
    assert!(e.starts_with("split: node 0 held the first address while node 1 held the second"), "{e}");
}

#[test]
fn a_partition_of_one_link_does_not_take_the_group() -> Result<()> {
    // Node 1's adverts on the eth1 segment are dropped in the bridge: node
    // 0's VI_2 hears nothing and wants MASTER, but its VI_1 still hears
    // node 1's, so node 0's group stays BACKUP and node 1 keeps both VIPs
    // (keepalived: "prefer backup state to avoid thrashing"). Without the
    // group, node 0 would take VIP2 beside node 1.
    let test = "a_partition_of_one_link_does_not_take_the_group";
    if !require_root(test) || !require_tool(test, "nft") {
        return Ok(());
    }
    let seg = two_links()?;
    let (s1, _) = notify_script(&seg, "notify1")?;
    let (s0, log0) = notify_script(&seg, "notify0")?;
    let _master = seg.agent(1, &conf(150, &s1), &[])?;
    let _backup = seg.agent(0, &conf(100, &s0), &[])?;
    seg.wait_holders(VIP1, &[1], MDI * 10 + MARGIN)?;
    seg.wait_holders(VIP2, &[1], MDI * 10 + MARGIN)?;
    let nodes = [&seg.nodes[0].ns, &seg.nodes[1].ns];
    let (w1, w2) = (HolderWatch::start(&nodes, VIP1)?, HolderWatch::start(&nodes, VIP2)?);
    let lan = &seg.lan;
    exec(lan, &["nft", "add", "table", "bridge", "cut"])?;
    exec(lan, &["nft", "add", "chain", "bridge", "cut", "c", "{ type filter hook forward priority 0; }"])?;
    exec(
        lan,
        &["nft", "add", "rule", "bridge", "cut", "c", "iifname", "q1", "ip", "protocol", "112", "drop"],
    )?;
    // Many Master_Down_Intervals of node 0's VI_2 wanting MASTER.
    std::thread::sleep(MDI * 8);
    exec(lan, &["nft", "delete", "table", "bridge", "cut"])?;
    std::thread::sleep(MDI * 3);
    let (v1, v2) = (w1.finish()?, w2.finish()?);
    assert!(v1.spans[0].is_empty(), "node 0 never held VIP1: {:?}", v1.spans[0]);
    assert!(v2.spans[0].is_empty(), "node 0 never held VIP2: {:?}", v2.spans[0]);
    assert_eq!((seg.holders(VIP1)?, seg.holders(VIP2)?), (vec![1], vec![1]));
    assert_eq!(group_lines(&log0, 1)?, ["GROUP G BACKUP 0"]);
    Ok(())
}

/// Node 1 (priority 150) runs `tracked`, its group carrying a tracker;
/// node 0 (100) the plain group. `fail` makes the tracker bad on node 1,
/// `heal` good again: both VIPs move to node 0 together within `limit`,
/// and come back together, never split beyond a handover; the group's
/// notify says FAULT.
fn a_group_tracker_moves_the_whole_group(
    seg: &Segment,
    prelude: &str,
    tracker: &str,
    fail: impl FnOnce() -> Result<()>,
    heal: impl FnOnce() -> Result<()>,
    limit: Duration,
) -> Result<()> {
    let (s1, log1) = notify_script(seg, "notify1")?;
    let (s0, _) = notify_script(seg, "notify0")?;
    let tracked = conf(150, &s1).replacen("  notify_master", &format!("{tracker}  notify_master"), 1);
    let _master = seg.agent(1, &format!("{prelude}{tracked}"), &[])?;
    let _backup = seg.agent(0, &conf(100, &s0), &[])?;
    seg.wait_holders(VIP1, &[1], MDI * 10 + MARGIN)?;
    seg.wait_holders(VIP2, &[1], MDI * 10 + MARGIN)?;
    let nodes = [&seg.nodes[0].ns, &seg.nodes[1].ns];
    let (w1, w2) = (HolderWatch::start(&nodes, VIP1)?, HolderWatch::start(&nodes, VIP2)?);
    fail()?;
    seg.wait_holders(VIP1, &[0], limit)?;
    seg.wait_holders(VIP2, &[0], MARGIN)?;
    heal()?;
    seg.wait_holders(VIP1, &[1], limit + MDI)?;
    seg.wait_holders(VIP2, &[1], MARGIN)?;
    let (v1, v2) = (w1.finish()?, w2.finish()?);
    v1.assert_single_holder_but_handovers(HANDOVER)?;
    v2.assert_single_holder_but_handovers(HANDOVER)?;
    v1.assert_not_split_from(&v2, HANDOVER)?;
    v2.assert_not_split_from(&v1, HANDOVER)?;
    let g1 = group_lines(&log1, 5)?;
    assert_eq!(g1[2], "GROUP G FAULT 0", "{g1:?}");
    Ok(())
}

#[test]
fn the_group_s_track_script_moves_the_whole_group() -> Result<()> {
    // The group's `track_script` applies to every member: the check
    // failing on node 1 puts its group in FAULT, and both VIPs move.
    if !require_root("the_group_s_track_script_moves_the_whole_group") {
        return Ok(());
    }
    let seg = two_links()?;
    let healthy = seg.file("healthy", "")?;
    let script =
        format!("vrrp_script chk {{\n  script \"test -f {}\"\n  interval 1\n}}\n", healthy.display());
    // One check interval, then Skew_Time (both members resign).
    a_group_tracker_moves_the_whole_group(
        &seg,
        &script,
        "  track_script {\n    chk\n  }\n",
        || Ok(std::fs::remove_file(&healthy)?),
        || Ok(std::fs::write(&healthy, "")?),
        Duration::from_secs(1) + MDI + MARGIN,
    )
}

#[test]
fn the_group_s_track_file_moves_the_whole_group() -> Result<()> {
    // The group's `track_file` applies to every member (keepalived's
    // sync_group_tracking_init): a maintenance value written on node 1
    // (weight 0: a non-zero value is FAULT) takes its group to FAULT, and
    // both VIPs move; 0 written back brings them home.
    if !require_root("the_group_s_track_file_moves_the_whole_group") {
        return Ok(());
    }
    let seg = two_links()?;
    let maint = seg.file("maintenance", "0\n")?;
    let file = format!("vrrp_track_file maint {{\n  file {}\n}}\n", maint.display());
    // inotify, then Skew_Time (both members resign with priority 0).
    a_group_tracker_moves_the_whole_group(
        &seg,
        &file,
        "  track_file {\n    maint weight 0\n  }\n",
        || Ok(std::fs::write(&maint, "1\n")?),
        || Ok(std::fs::write(&maint, "0\n")?),
        MDI + MARGIN,
    )
}
