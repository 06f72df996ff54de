//! Firewall rules against VRRP (issue 12, case 10). The XDP program runs
//! before netfilter and consumes the adverts it accepts, so an nftables
//! rule that drops protocol 112 never sees them; raw sockets
//! (`--receive socket`) are delivered after netfilter's input hook, so the
//! rule applies there. These tests keep the README's "Firewalls" section
//! true, and run the fault matrix's partition: a 5 s nftables drop of
//! protocol 112 in one namespace, with the firewall-honouring mode.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_tests::Netns;
use vrrp_tests::lab::{Segment, exec};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::Process;

const VIP: &str = "192.0.2.77";
/// Master_Down_Interval of the priority-100 backup at 1 s adverts:
/// 3 s + (256 - 100) / 256 s.
const MDI_BACKUP: Duration = Duration::from_millis(3609);
/// Polling, netlink and a loaded CI machine, on top of the protocol's time.
const MARGIN: Duration = Duration::from_millis(800);

fn conf(priority: u8) -> String {
    format!(
        "vrrp_instance VI_7 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 7\n  priority {priority}\n  \
         advert_int 1\n  version 3\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// Drop protocol 112 both ways in `ns` (an `inet` table of its own).
fn partition(ns: &Netns) -> Result<()> {
    exec(ns, &["nft", "add", "table", "inet", "vrrp_fw"])?;
    for hook in ["input", "output"] {
        let chain = format!("{{ type filter hook {hook} priority 0; policy accept; }}");
        exec(ns, &["nft", "add", "chain", "inet", "vrrp_fw", hook, &chain])?;
        exec(ns, &["nft", "add", "rule", "inet", "vrrp_fw", hook, "meta", "l4proto", "112", "drop"])?;
    }
    Ok(())
}

fn heal(ns: &Netns) -> Result<()> {
    exec(ns, &["nft", "delete", "table", "inet", "vrrp_fw"])?;
    Ok(())
}

/// Hold for `d` while exactly `want` hold the VIP; fail at the first poll
/// that says otherwise.
fn holds_for(seg: &Segment, want: &[usize], d: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < d {
        let h = seg.holders(VIP)?;
        if h != want {
            bail!("after {:?}, {VIP} is held by {h:?}, not {want:?}", start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Which receive modes honour an nftables drop of protocol 112 on the
/// backup's input: with `--receive socket` the backup stops hearing its
/// master and takes over after Master_Down_Interval; with XDP (the
/// default), with or without `--pass-up`, the program has already read
/// the adverts into its maps and the rule changes nothing.
#[test]
fn only_raw_sockets_honour_an_nftables_drop() -> Result<()> {
    let name = "only_raw_sockets_honour_an_nftables_drop";
    if !require_root(name) || !require_tool(name, "nft") {
        return Ok(());
    }
    for (mode, extra, honoured) in [
        ("--receive socket", &["--receive", "socket"][..], true),
        ("XDP", &[][..], false),
        ("XDP --pass-up", &["--pass-up"][..], false),
    ] {
        let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
        let _master = seg.agent(0, &conf(200), extra)?;
        seg.wait_holders(VIP, &[0], MDI_BACKUP + MARGIN + Duration::from_secs(1))?;
        let _backup = seg.agent(1, &conf(100), extra)?;
        // Only the backup's input is filtered: it no longer hears the
        // master, the master still hears nothing from a backup.
        exec(&seg.nodes[1].ns, &["nft", "add", "table", "inet", "vrrp_fw"])?;
        exec(
            &seg.nodes[1].ns,
            &["nft", "add", "chain", "inet", "vrrp_fw", "input", "{ type filter hook input priority 0; }"],
        )?;
        exec(
            &seg.nodes[1].ns,
            &["nft", "add", "rule", "inet", "vrrp_fw", "input", "meta", "l4proto", "112", "drop"],
        )?;
        if honoured {
            seg.wait_holders(VIP, &[0, 1], MDI_BACKUP + MARGIN)
                .map_err(|e| e.context(format!("{mode}: the drop rule was not honoured")))?;
        } else {
            holds_for(&seg, &[0], MDI_BACKUP + MARGIN)
                .map_err(|e| e.context(format!("{mode}: the drop rule applied")))?;
        }
    }
    Ok(())
}

/// A pair on raw sockets (the firewall-honouring mode): node 0 MASTER
/// (priority 200), node 1 BACKUP (100), settled.
fn firewalled_pair() -> Result<(Segment, Process, Process)> {
    let socket = ["--receive", "socket"];
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let master = seg.agent(0, &conf(200), &socket)?;
    seg.wait_holders(VIP, &[0], MDI_BACKUP + MARGIN + Duration::from_secs(1))?;
    let backup = seg.agent(1, &conf(100), &socket)?;
    holds_for(&seg, &[0], Duration::from_secs(2))?;
    Ok((seg, master, backup))
}

/// The fault matrix's partition, with the firewall-honouring mode
/// (`--receive socket` on both nodes): node 0 MASTER (priority 200), node
/// 1 BACKUP (100); protocol 112 dropped both ways in node 1 for 5 s. VRRP
/// cannot tell a partition from a dead master: node 1 takes over after its
/// Master_Down_Interval while node 0, which hears nothing either, stays
/// MASTER, so both hold the VIP for the rest of the partition (RFC 5798's
/// split brain, the expected behaviour). Healed, node 1 hears the higher
/// priority at node 0's next advert and steps down: exactly one holder,
/// node 0, within Master_Down_Interval plus margin, and it stays so.
#[test]
fn a_five_second_nftables_partition_splits_then_converges() -> Result<()> {
    let name = "a_five_second_nftables_partition_splits_then_converges";
    if !require_root(name) || !require_tool(name, "nft") {
        return Ok(());
    }
    let (seg, _master, backup) = firewalled_pair()?;

    let cut = Instant::now();
    partition(&seg.nodes[1].ns)?;
    // Until node 1's Master_Down_Interval has run out, node 0 alone (node
    // 1 heard an advert at most one interval before the cut).
    let took = seg.wait_holders(VIP, &[0, 1], MDI_BACKUP + MARGIN)?;
    eprintln!("partition: node 1 took the VIP after {took:?} (Master_Down_Interval {MDI_BACKUP:?})");
    assert!(
        took + Duration::from_millis(1000) >= MDI_BACKUP - MARGIN,
        "node 1 took over too early: {took:?}"
    );
    // Both hold it for the rest of the 5 s.
    let rest = Duration::from_secs(5).saturating_sub(cut.elapsed());
    holds_for(&seg, &[0, 1], rest)?;

    heal(&seg.nodes[1].ns)?;
    let healed = seg.wait_holders(VIP, &[0], MDI_BACKUP + MARGIN)?;
    eprintln!("healed: one holder again after {healed:?}");
    holds_for(&seg, &[0], Duration::from_secs(3))?;
    // Once at start, once stepping down after the partition.
    assert!(
        backup.lines().iter().filter(|l| l.contains("Entering BACKUP STATE")).count() >= 2,
        "node 1 did not step down: {:#?}",
        backup.lines()
    );
    Ok(())
}

#[test]
fn an_agent_restarted_during_a_partition_converges_after_it() -> Result<()> {
    let name = "an_agent_restarted_during_a_partition_converges_after_it";
    if !require_root(name) || !require_tool(name, "nft") {
        return Ok(());
    }
    let socket = ["--receive", "socket"];
    let (seg, _master, mut backup) = firewalled_pair()?;
    partition(&seg.nodes[1].ns)?;
    seg.wait_holders(VIP, &[0, 1], MDI_BACKUP + MARGIN)?;
    // Node 1, master of its side, is restarted while cut off: it resigns
    // (nobody hears it), starts again as backup and, hearing nobody,
    // becomes master of its side again.
    backup.stop(Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2))?;
    let _backup = seg.agent(1, &conf(100), &socket)?;
    seg.wait_holders(VIP, &[0, 1], MDI_BACKUP + MARGIN)?;
    heal(&seg.nodes[1].ns)?;
    seg.wait_holders(VIP, &[0], MDI_BACKUP + MARGIN)?;
    holds_for(&seg, &[0], Duration::from_secs(3))?;
    Ok(())
}
