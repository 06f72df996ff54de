//! Routes, rules and addresses that follow the master (issue 11):
//! `virtual_routes` and `virtual_rules` present on the MASTER only,
//! `virtual_ipaddress_excluded` added with the VIPs but never advertised,
//! `static_ipaddress`, `static_routes` and `static_rules` present in every
//! state and gone at stop. A tracked route or rule deleted by hand is put
//! back, a `no_track` one is not; only what the agent added is removed.
//! Everything is read back with `ip route`, `ip -6 route` and `ip rule` in
//! each namespace. A mixed pair runs keepalived 2.2.7 beside an agent on
//! the same `virtual_routes`, and keepalived's own routes sample runs on
//! two nodes.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vrrp_tests::capture::Capture;
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns::{Netns, run};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.100";
/// Master_Down_Interval for advert_int 1 (3 s and the skew), with room for
/// a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(8);
/// Netlink round trips and our polling.
const SETTLE: Duration = Duration::from_secs(3);

/// One instance with every kind of virtual route and rule the task names.
fn conf(priority: u8) -> String {
    format!(
        "vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority {priority}
  advert_int 1
  virtual_ipaddress {{
    {VIP}/24
  }}
  virtual_ipaddress_excluded {{
    203.0.113.100/32
    2001:db8:61::100/64
    198.51.100.200/32 no_track
  }}
  virtual_routes {{
    198.51.100.0/24 via 192.0.2.254 dev eth0 table 100
    src {VIP} 203.0.113.0/25 via 192.0.2.254 table 100 metric 5 protocol static
    blackhole 203.0.113.128/25 table 101
    unreachable 198.51.100.128/25 table 101 no_track
    prohibit 198.51.100.64/26 table 101 scope host
    2001:db8:99::/48 dev eth0 table 100
    blackhole 2001:db8:98::/48 table 101 metric 7
  }}
  virtual_rules {{
    from 198.51.100.0/24 iif eth0 table 100 priority 1000
    to 203.0.113.0/24 fwmark 0x10 table 101 preference 1001
    from 2001:db8:99::/48 table 100 priority 1002
    to 198.51.100.128/25 table 101 priority 1003 no_track
  }}
}}
"
    )
}

/// What `ip ARGS` prints in `ns`. `ip route show table N` fails while
/// table N is empty ("FIB table does not exist"): that is no route.
fn ip(ns: &Netns, args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(["-n", ns.name()]).args(args).output().context("ip")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !err.contains("FIB table does not exist") {
        bail!("ip {args:?}: {err}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every route and rule of the configuration above, as `ip` shows them.
fn virtual_state(ns: &Netns) -> Result<Vec<(&'static str, bool)>> {
    let t100 = ip(ns, &["route", "show", "table", "100"])?;
    let t101 = ip(ns, &["route", "show", "table", "101"])?;
    let t100v6 = ip(ns, &["-6", "route", "show", "table", "100"])?;
    let t101v6 = ip(ns, &["-6", "route", "show", "table", "101"])?;
    let rules = ip(ns, &["rule", "show"])?;
    let rules6 = ip(ns, &["-6", "rule", "show"])?;
    let addrs = ip(ns, &["addr", "show"])?;
    Ok(vec![
        ("via route", t100.contains("198.51.100.0/24 via 192.0.2.254 dev eth0 proto keepalived")),
        (
            "src route",
            // `protocol static` of a tracked route is reset to keepalived's.
            t100.contains(
                "203.0.113.0/25 via 192.0.2.254 dev eth0 proto keepalived src 192.0.2.100 metric 5",
            ),
        ),
        ("blackhole", t101.contains("blackhole 203.0.113.128/25 proto keepalived")),
        ("unreachable no_track", t101.contains("unreachable 198.51.100.128/25 proto keepalived")),
        ("prohibit scope host", t101.contains("prohibit 198.51.100.64/26 proto keepalived scope host")),
        ("IPv6 route", t100v6.contains("2001:db8:99::/48 dev eth0 proto keepalived metric 1024")),
        ("IPv6 blackhole", t101v6.contains("blackhole 2001:db8:98::/48 dev lo proto keepalived metric 7")),
        ("rule from", rules.contains("1000:\tfrom 198.51.100.0/24 iif eth0 lookup 100 proto keepalived")),
        (
            "rule fwmark",
            rules.contains("1001:\tfrom all to 203.0.113.0/24 fwmark 0x10 lookup 101 proto keepalived"),
        ),
        ("IPv6 rule", rules6.contains("1002:\tfrom 2001:db8:99::/48 lookup 100 proto keepalived")),
        ("rule no_track", rules.contains("1003:\tfrom all to 198.51.100.128/25 lookup 101")),
        ("excluded v4", addrs.contains("inet 203.0.113.100/32")),
        ("excluded v6", addrs.contains("inet6 2001:db8:61::100/64")),
        ("excluded no_track", addrs.contains("inet 198.51.100.200/32")),
    ])
}

/// Wait until node `ns` has all (`present`) or none of the virtual state.
fn wait_virtual(ns: &Netns, present: bool, what: &str) -> Result<()> {
    let mut last = Vec::new();
    let r = wait_until(SETTLE, || {
        last = virtual_state(ns)?;
        Ok(last.iter().all(|(_, p)| *p == present))
    });
    if r.is_err() {
        let wrong: Vec<_> = last.iter().filter(|(_, p)| *p != present).map(|(n, _)| *n).collect();
        bail!(
            "{what}: expected every virtual route/rule/address {}; wrong: {wrong:?}\n{}\n{}\n{}",
            if present { "present" } else { "absent" },
            ip(ns, &["route", "show", "table", "all"])?,
            ip(ns, &["rule", "show"])?,
            ip(ns, &["-6", "rule", "show"])?,
        );
    }
    Ok(())
}

fn has(ns: &Netns, args: &[&str], needle: &str) -> Result<bool> {
    Ok(ip(ns, args)?.contains(needle))
}

fn pair() -> Result<Segment> {
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    seg.wait_ipv6_ready()?;
    Ok(seg)
}

/// BACKUP has none of it, MASTER all of it; a deleted tracked route and
/// rule come back, `no_track` ones do not; after a failover the new master
/// has all of it, the stopped one nothing; excluded addresses are never in
/// an advert.
#[test]
fn virtual_routes_rules_and_excluded_addresses_follow_the_master() -> Result<()> {
    if !require_root("virtual_routes_rules_and_excluded_addresses_follow_the_master") {
        return Ok(());
    }
    let seg = pair()?;
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let w = HolderWatch::start(&[n0, n1], VIP)?;
    let mut master = seg.agent(0, &conf(200), &[])?;
    seg.wait_holders(VIP, &[0], TAKEOVER)?;
    let mut backup = seg.agent(1, &conf(100), &[])?;
    backup.wait_for_line("Entering BACKUP STATE", Duration::from_secs(5))?;
    // On the bridge's port toward node 0: node 1's XDP program takes the
    // adverts before a capture on its eth0 would see them.
    let cap = Capture::start(&seg.lan, "p0")?;
    wait_virtual(n0, true, "MASTER")?;
    wait_virtual(n1, false, "BACKUP")?;

    // Deleted by hand: the no_track ones first, then the tracked ones.
    // Events are handled in order, so once the tracked ones are back, the
    // agent has already decided about the no_track ones.
    n0.ip(&["route", "del", "unreachable", "198.51.100.128/25", "table", "101"])?;
    n0.ip(&["rule", "del", "priority", "1003"])?;
    n0.ip(&["addr", "del", "198.51.100.200/32", "dev", "eth0"])?;
    n0.ip(&["route", "del", "198.51.100.0/24", "table", "100"])?;
    let deleted = std::time::Instant::now();
    wait_until(SETTLE, || has(n0, &["route", "show", "table", "100"], "198.51.100.0/24 via 192.0.2.254"))
        .context("tracked route put back")?;
    println!("route put back {:?} after `ip route del` returned", deleted.elapsed());
    n0.ip(&["-6", "route", "del", "2001:db8:99::/48", "table", "100"])?;
    n0.ip(&["rule", "del", "priority", "1000"])?;
    n0.ip(&["-6", "rule", "del", "priority", "1002"])?;
    wait_until(SETTLE, || {
        Ok(has(n0, &["route", "show", "table", "100"], "198.51.100.0/24 via 192.0.2.254")?
            && has(n0, &["-6", "route", "show", "table", "100"], "2001:db8:99::/48")?
            && has(n0, &["rule", "show"], "1000:")?
            && has(n0, &["-6", "rule", "show"], "1002:")?)
    })
    .context("tracked routes and rules put back")?;
    assert!(
        !has(n0, &["route", "show", "table", "101"], "198.51.100.128/25")?,
        "the no_track route was put back"
    );
    assert!(!has(n0, &["rule", "show"], "1003:")?, "the no_track rule was put back");
    assert!(!seg.holds(0, "198.51.100.200")?, "the no_track address was put back");
    assert!(
        master.lines().iter().any(|l| l.contains("was removed: putting it back")),
        "{:#?}",
        master.lines()
    );
    // The VIP deleted: the kernel drops the route that has it as its source
    // without an event; both come back.
    n0.ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"])?;
    wait_until(SETTLE, || {
        Ok(seg.holds(0, VIP)?
            && has(
                n0,
                &["route", "show", "table", "100"],
                "203.0.113.0/25 via 192.0.2.254 dev eth0 proto keepalived src 192.0.2.100",
            )?)
    })
    .context("the VIP and the route using it as its source put back")?;

    // Failover: the master stops; the backup takes everything over, and
    // the stopped node keeps nothing.
    master.stop(Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[1], TAKEOVER)?;
    wait_virtual(n1, true, "new MASTER")?;
    wait_virtual(n0, false, "stopped former MASTER")?;

    // The adverts node 0 sent carried the VIP only.
    let frames = cap.stop();
    let adverts: Vec<_> =
        frames.iter().filter(|f| vrrp_tests::capture::is_advert_from(f, [192, 0, 2, 1])).collect();
    assert!(!adverts.is_empty(), "no advert from node 0 captured");
    for f in adverts {
        // Ethernet 14 + IPv4 20; VRRPv2: count at +3, addresses at +8.
        let d = &f.data;
        assert_eq!(d[37], 1, "advert carries {} addresses", d[37]);
        assert_eq!(d[42..46], [192, 0, 2, 100], "advert carries {:?}", &d[42..46]);
    }

    backup.stop(Duration::from_secs(5))?;
    wait_virtual(n1, false, "stopped")?;
    w.finish()?.assert_single_holder()?;
    Ok(())
}

/// The static ones are there in BACKUP, put back when deleted, and gone at
/// stop; a route someone else added in the same table stays.
#[test]
fn static_addresses_routes_and_rules_are_there_in_every_state_and_gone_at_stop() -> Result<()> {
    if !require_root("static_addresses_routes_and_rules_are_there_in_every_state_and_gone_at_stop") {
        return Ok(());
    }
    let seg = pair()?;
    let n0 = &seg.nodes[0].ns;
    let statics = "static_ipaddress {
  203.0.113.50/32 dev eth0 scope link
  2001:db8:50::1/64 dev eth0
}
static_routes {
  198.51.100.0/24 via 192.0.2.254 dev eth0 table 200
  2001:db8:51::/48 dev eth0 table 200
  unreachable 203.0.113.64/26 table 200 no_track
}
static_rules {
  from 203.0.113.0/24 table 200 preference 2000
  to 2001:db8:51::/48 table 200 preference 2001
}
";
    let _master = seg.agent(1, &conf(200), &[])?;
    seg.wait_holders(VIP, &[1], TAKEOVER)?;
    // Someone else's route in the agent's static table.
    n0.ip(&["route", "add", "203.0.113.192/26", "dev", "eth0", "table", "200"])?;
    let mut backup = seg.agent(0, &format!("{statics}{}", conf(100)), &[])?;
    backup.wait_for_line("Entering BACKUP STATE", Duration::from_secs(5))?;
    let state = || -> Result<Vec<bool>> {
        let t200 = ip(n0, &["route", "show", "table", "200"])?;
        let t200v6 = ip(n0, &["-6", "route", "show", "table", "200"])?;
        let addrs = ip(n0, &["addr", "show", "dev", "eth0"])?;
        let rules = ip(n0, &["rule", "show"])?;
        let rules6 = ip(n0, &["-6", "rule", "show"])?;
        Ok(vec![
            addrs.contains("inet 203.0.113.50/32 scope link"),
            addrs.contains("inet6 2001:db8:50::1/64"),
            t200.contains("198.51.100.0/24 via 192.0.2.254 dev eth0 proto keepalived"),
            t200v6.contains("2001:db8:51::/48 dev eth0 proto keepalived"),
            t200.contains("unreachable 203.0.113.64/26 proto keepalived"),
            rules.contains("2000:\tfrom 203.0.113.0/24 lookup 200 proto keepalived"),
            rules6.contains("2001:\tfrom all to 2001:db8:51::/48 lookup 200 proto keepalived"),
        ])
    };
    wait_until(SETTLE, || Ok(state()?.iter().all(|p| *p))).with_context(|| format!("{:?}", state()))?;
    assert!(!seg.holds(0, VIP)?, "node 0 is BACKUP");
    wait_virtual(n0, false, "BACKUP with statics")?;
    // keepalived reinstates a deleted static address, route or rule.
    n0.ip(&["route", "del", "unreachable", "203.0.113.64/26", "table", "200"])?;
    n0.ip(&["addr", "del", "203.0.113.50/32", "dev", "eth0"])?;
    n0.ip(&["route", "del", "198.51.100.0/24", "table", "200"])?;
    n0.ip(&["rule", "del", "preference", "2000"])?;
    wait_until(SETTLE, || {
        let s = state()?;
        Ok(s[0] && s[2] && s[5])
    })
    .with_context(|| format!("static ones put back: {:?}", state()))?;
    assert!(!state()?[4], "a no_track static route was put back");
    // The link down and up: the kernel drops the routes through it; they
    // come back when it is up.
    n0.ip(&["link", "set", "eth0", "down"])?;
    wait_until(SETTLE, || Ok(!state()?[2])).context("the kernel dropped the route with the link")?;
    assert!(
        !has(n0, &["route", "show", "table", "200"], "203.0.113.192/26")?,
        "the kernel keeps routes through a down link here: the test proves nothing"
    );
    n0.ip(&["link", "set", "eth0", "up"])?;
    wait_until(TAKEOVER, || {
        let s = state()?;
        Ok(s[0] && s[2] && s[3] && s[5] && s[6])
    })
    .with_context(|| format!("static ones back with the link: {:?}", state()))?;
    // The flap took someone else's route too; theirs to put back.
    n0.ip(&["route", "add", "203.0.113.192/26", "dev", "eth0", "table", "200"])?;

    backup.stop(Duration::from_secs(5))?;
    assert_eq!(state()?, vec![false; 7], "the statics are gone at stop");
    assert!(
        has(n0, &["route", "show", "table", "200"], "203.0.113.192/26 dev eth0")?,
        "someone else's route in table 200 was removed"
    );
    Ok(())
}

/// keepalived 2.2.7 on node 0 and the agent on node 1 with the same
/// virtual routes and rules: they are on whichever is MASTER, and move
/// both ways.
#[test]
fn mixed_pair_with_keepalived_moves_the_virtual_routes() -> Result<()> {
    if !require_root("mixed_pair_with_keepalived_moves_the_virtual_routes")
        || !require_tool("mixed_pair_with_keepalived_moves_the_virtual_routes", "keepalived")
    {
        return Ok(());
    }
    let seg = pair()?;
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let w = HolderWatch::start(&[n0, n1], VIP)?;
    let mut ka = seg.keepalived(0, &conf(200))?;
    seg.wait_holders(VIP, &[0], TAKEOVER)?;
    let agent = seg.agent(1, &conf(100), &[])?;
    wait_virtual(n0, true, "keepalived MASTER")?;
    wait_virtual(n1, false, "agent BACKUP")?;
    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], TAKEOVER)?;
    wait_virtual(n1, true, "agent MASTER")?;
    wait_virtual(n0, false, "keepalived stopped")?;
    // keepalived back, priority 200: it preempts, the agent gives all up.
    let _ka = seg.keepalived(0, &conf(200))?;
    seg.wait_holders(VIP, &[0], TAKEOVER)?;
    wait_virtual(n0, true, "keepalived MASTER again")?;
    wait_virtual(n1, false, "agent BACKUP again")?;
    w.finish()?.assert_single_holder_but_handovers(Duration::from_millis(20))?;
    drop(agent);
    Ok(())
}

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keepalived-samples").join(name)
}

/// The interfaces keepalived's samples name, on node `ns` (eth0 is the
/// segment's): eth1-eth3 as veths, the samples' gateways reachable, and
/// the samples' route source 198.51.100.1 one of the node's addresses.
fn sample_interfaces(ns: &Netns, i: usize) -> Result<()> {
    for n in 1..=3 {
        ns.ip(&["link", "add", &format!("eth{n}"), "type", "veth", "peer", "name", &format!("sp{n}")])?;
        ns.ip(&["link", "set", &format!("eth{n}"), "up"])?;
        ns.ip(&["link", "set", &format!("sp{n}"), "up"])?;
    }
    // An address of its own on eth1 keeps its routes when the VIP there
    // goes (the kernel flushes an interface's routes with its last IPv4
    // address).
    ns.ip(&["addr", "add", &format!("203.0.113.24{i}/32"), "dev", "eth1"])?;
    ns.ip(&["route", "add", "192.0.2.254/32", "dev", "eth1"])?;
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "eth2"])?;
    Ok(())
}

/// `vrrp-agent check-config` accepts keepalived's samples with no warning
/// about a keyword it does not implement.
#[test]
fn keepalived_samples_pass_check_config() -> Result<()> {
    if !require_root("keepalived_samples_pass_check_config") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    sample_interfaces(&seg.nodes[0].ns, 0)?;
    let bin = agent_bin()?;
    for f in
        ["keepalived.conf.vrrp.routes", "keepalived.conf.vrrp.rules", "keepalived.conf.vrrp.static_ipaddress"]
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", seg.nodes[0].ns.name()])
            .arg(&bin)
            .arg("check-config")
            .arg("-f")
            .arg(sample(f));
        let out = cmd.output().context("check-config")?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{f}: refused:\n{text}");
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("warning:"))
            .filter(|l| l.contains("not supported") || l.contains("ignored") || l.contains("unknown"))
            .collect();
        assert!(bad.is_empty(), "{f}: {bad:#?}");
    }
    // The rules sample as keepalived ships it has `to 192.168.100./24`,
    // not an address: refused with its place.
    let text = std::fs::read_to_string(sample("keepalived.conf.vrrp.rules"))?
        .replace("to 198.51.100.0/24 table 1", "to 198.51.100./24 table 1");
    let bad = seg.file("typo.conf", &text)?;
    let out = run(Command::new(&bin).arg("check-config").arg("-f").arg(&bad)).err();
    let msg = format!("{out:?}");
    assert!(msg.contains("typo.conf:18:") && msg.contains("198.51.100./24"), "{msg}");
    Ok(())
}

/// keepalived's routes sample, unchanged but for addresses, on two nodes:
/// the virtual routes are on the MASTER only and move with it; the static
/// ones are on both.
#[test]
fn keepalived_routes_sample_runs_on_two_nodes() -> Result<()> {
    if !require_root("keepalived_routes_sample_runs_on_two_nodes") {
        return Ok(());
    }
    let seg = pair()?;
    let (n0, n1) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    sample_interfaces(n0, 0)?;
    sample_interfaces(n1, 1)?;
    let text = std::fs::read_to_string(sample("keepalived.conf.vrrp.routes"))?;
    let vroutes = |ns: &Netns| -> Result<Vec<bool>> {
        let main = ip(ns, &["route", "show"])?;
        let t100 = ip(ns, &["route", "show", "table", "100"])?;
        Ok(vec![
            main.contains("203.0.113.0/28 via 192.0.2.254 dev eth1 proto keepalived src 198.51.100.1"),
            main.contains("203.0.113.16/28 via 192.0.2.254 dev eth1 proto keepalived"),
            main.contains("203.0.113.32/28 dev eth2 proto keepalived"),
            main.contains("203.0.113.48/28 via 198.51.100.254 dev eth2 proto keepalived"),
            main.contains("203.0.113.64/28 proto keepalived \n\tnexthop via 198.51.100.252 dev eth2 weight 1 \n\tnexthop via 198.51.100.253 dev eth2 weight 1"),
            main.contains("blackhole 203.0.113.65 proto keepalived"),
            t100.contains("default via 192.0.2.253 dev eth0 proto keepalived"),
        ])
    };
    let statics = |ns: &Netns| -> Result<bool> {
        let main = ip(ns, &["route", "show"])?;
        Ok(main.contains("203.0.113.128/28 via 192.0.2.254 dev eth0 proto keepalived src 198.51.100.1")
            && main.contains("203.0.113.144/28 via 192.0.2.254 dev eth0 proto keepalived")
            && main.contains("203.0.113.160/28 via 192.0.2.254 dev eth0 proto keepalived")
            && main.contains("203.0.113.176/28 dev eth3 proto keepalived scope site")
            && main.contains("203.0.113.192/28 dev eth1 proto keepalived scope link"))
    };
    let w = HolderWatch::start(&[n0, n1], "192.0.2.16")?;
    // Same priority: the first one up is MASTER, and the other one, with
    // an equal priority, does not preempt it (RFC 5798 6.4.2).
    let mut a1 = seg.agent(1, &text, &[])?;
    seg.wait_holders("192.0.2.16", &[1], TAKEOVER)?;
    wait_until(SETTLE, || Ok(vroutes(n1)?.iter().all(|p| *p)))
        .with_context(|| format!("{:?}", vroutes(n1)))?;
    let _a0 = seg.agent(0, &text, &[])?;
    wait_until(SETTLE, || Ok(statics(n0)? && statics(n1)?)).context("static routes on both nodes")?;
    assert!(vroutes(n0)?.iter().all(|p| !*p), "BACKUP has virtual routes: {:?}", vroutes(n0));
    // The MASTER stops: the routes move to the other node.
    a1.stop(Duration::from_secs(5))?;
    seg.wait_holders("192.0.2.16", &[0], TAKEOVER)?;
    wait_until(SETTLE, || Ok(vroutes(n0)?.iter().all(|p| *p) && vroutes(n1)?.iter().all(|p| !*p)))
        .with_context(|| format!("node 0 {:?}, node 1 {:?}", vroutes(n0), vroutes(n1)))?;
    assert!(!statics(n1)?, "node 1's static routes are gone with it");
    w.finish()?.assert_single_holder_but_handovers(Duration::from_millis(20))?;
    Ok(())
}

/// A worker killed while MASTER: its supervisor removes the virtual routes
/// and rules it held, with its VIPs (the crash record names them).
#[test]
fn a_killed_workers_routes_and_rules_are_removed_by_its_supervisor() -> Result<()> {
    if !require_root("a_killed_workers_routes_and_rules_are_removed_by_its_supervisor") {
        return Ok(());
    }
    let seg = pair()?;
    let n0 = &seg.nodes[0].ns;
    // Not started again (--respawn-limit 0): what it held goes.
    let mut p = seg.agent(0, &conf(200), &["--respawn-limit", "0"])?;
    seg.wait_holders(VIP, &[0], TAKEOVER)?;
    wait_virtual(n0, true, "MASTER")?;
    vrrp_tests::lab::signal_worker(&p, nix::sys::signal::Signal::SIGKILL)?;
    p.wait_for_line("removed route 198.51.100.0/24 (table 100)", TAKEOVER)?;
    // The no_track ones too: they are the agent's all the same.
    wait_virtual(n0, false, "after the worker was killed")?;
    assert!(!seg.holds(0, VIP)?);
    Ok(())
}
