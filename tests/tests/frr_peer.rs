//! FRR 8.4's vrrpd as the agent's peer: VRRPv3 over IPv4 and IPv6 (one
//! FRR virtual router, VRID 5, both families), the agent with use_vmac as
//! FRR requires macvlans. Each side is master in turn; each, as the
//! lower-priority backup, stays backup beside the other's master (it
//! hears its adverts); failover both ways; one holder at a time per VIP.
//!
//! FRR keeps a Backup's VIPs on its macvlan and sets the macvlan
//! protodown, so a node holds a VIP here where it is on a running
//! interface (`HolderWatch::start_running`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_tests::frr::{self, Frr};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, exec};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const VIP4: &str = "192.0.2.55";
const VIP6: &str = "2001:db8::55";
/// Master_Down_Interval at 1 s adverts plus a margin for a loaded machine.
const ELECTION: Duration = Duration::from_secs(12);
/// Twice Master_Down_Interval: a backup that hears its master never
/// takes over within it.
const HEARS: Duration = Duration::from_secs(8);

fn agent_conf(priority: u8) -> String {
    let inst = |name: &str, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 5\n  priority {priority}\n  \
             advert_int 1\n  version 3\n  use_vmac\n  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n"
        )
    };
    inst("VI_4", &format!("{VIP4}/24")) + &inst("VI_6", &format!("{VIP6}/64"))
}

/// Whether node `i` of `seg` has `addr` on a running interface.
fn holds_running(seg: &Segment, i: usize, addr: &str) -> Result<bool> {
    let out = seg.nodes[i].ns.ip(&["-o", "addr", "show", "up"])?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = line.split_whitespace();
        let dev = w.nth(1).unwrap_or("").to_owned();
        if !line.split_whitespace().any(|x| x.split('/').next() == Some(addr)) {
            continue;
        }
        let link = seg.nodes[i].ns.ip(&["-o", "link", "show", "dev", &dev])?;
        let text = String::from_utf8_lossy(&link.stdout);
        if !text.contains("NO-CARRIER") && text.contains("LOWER_UP") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Wait until exactly node `i` holds both VIPs (on a running interface).
fn wait_master(seg: &Segment, i: usize) -> Result<()> {
    wait_until(ELECTION, || {
        Ok([VIP4, VIP6].iter().all(|a| (0..2).all(|n| holds_running(seg, n, a).is_ok_and(|h| h == (n == i)))))
    })
    .with_context(|| format!("node {i} did not become the only holder of {VIP4} and {VIP6}"))
}

/// Node `i` stays the only holder of both VIPs for `HEARS`.
fn stays_master(seg: &Segment, i: usize) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < HEARS {
        for a in [VIP4, VIP6] {
            for n in 0..2 {
                if holds_running(seg, n, a)? != (n == i) {
                    bail!(
                        "after {:?}, node {n} {} {a}",
                        start.elapsed(),
                        if n == i { "lost" } else { "took" }
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[test]
fn frr_vrrpd_and_the_agent_fail_over_both_ways_v4_and_v6() -> Result<()> {
    let test = "frr_vrrpd_and_the_agent_fail_over_both_ways_v4_and_v6";
    if !require_root(test) || !require_tool(test, "vtysh") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    seg.wait_ipv6_ready()?;
    let fns = &seg.nodes[1].ns;
    // FRR's node: its macvlans, and no ARP answers for the VIP from eth0
    // (FRR leaves that to the operator).
    frr::macvlan(fns, "eth0", "vrrp4-2-5", 4, 5, &[&format!("{VIP4}/24")])?;
    frr::macvlan(fns, "eth0", "vrrp6-2-5", 6, 5, &[&format!("{VIP6}/64")])?;
    exec(fns, &["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"])?;
    // The random link-local FRR sends from, out of DAD.
    wait_until(Duration::from_secs(5), || {
        let out = fns.ip(&["-6", "addr", "show", "dev", "vrrp6-2-5", "scope", "link"])?;
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(t.contains("fe80") && !t.contains("tentative"))
    })?;
    let frr = Frr::start(fns)?;
    let setup = |priority: u8| {
        let p = format!("vrrp 5 priority {priority}");
        let v4 = format!("vrrp 5 ip {VIP4}");
        let v6 = format!("vrrp 5 ipv6 {VIP6}");
        frr.configure("eth0", &["vrrp 5 version 3", &p, "vrrp 5 advertisement-interval 1000", &v4, &v6])
    };
    setup(100)?;
    wait_master(&seg, 1).context("FRR alone")?;
    let w4 = HolderWatch::start_running(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP4)?;
    let w6 = HolderWatch::start_running(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP6)?;

    // The agent at a lower priority hears FRR's master, both families.
    let mut agent = seg.agent(0, &agent_conf(50), &[])?;
    stays_master(&seg, 1).context("the agent (50) beside FRR's master (100)")?;
    // FRR shuts its router down (priority 0): the agent takes over.
    frr.configure("eth0", &["vrrp 5 shutdown"])?;
    wait_master(&seg, 0).context("after FRR's shutdown")?;
    // FRR back at a lower priority hears the agent's master.
    frr.configure("eth0", &["vrrp 5 priority 20", "no vrrp 5 shutdown"])?;
    wait_until(ELECTION, || Ok(frr.status(5, "v4")?.0 == "Backup" && frr.status(5, "v6")?.0 == "Backup"))
        .context("FRR did not settle as Backup")?;
    let (_, t4, rx4) = frr.status(5, "v4")?;
    let (_, t6, rx6) = frr.status(5, "v6")?;
    stays_master(&seg, 0).context("FRR (20) beside the agent's master (50)")?;
    let ((s4, t4b, rx4b), (s6, t6b, rx6b)) = (frr.status(5, "v4")?, frr.status(5, "v6")?);
    assert_eq!((s4.as_str(), s6.as_str(), t4b, t6b), ("Backup", "Backup", t4, t6), "FRR left Backup");
    assert!(
        rx4b >= rx4 + 5 && rx6b >= rx6 + 5,
        "FRR counts the agent's adverts: v4 {rx4}->{rx4b}, v6 {rx6}->{rx6b}"
    );
    // The agent stops (resigns): FRR takes over.
    agent.stop(Duration::from_secs(10))?;
    wait_master(&seg, 1).context("after the agent's stop")?;
    w4.finish()?.assert_single_holder()?;
    w6.finish()?.assert_single_holder()?;
    Ok(())
}
