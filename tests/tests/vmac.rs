//! `use_vmac` (keepalived's VMACs, RFC 5798 7.3): the VIPs live on a
//! macvlan whose MAC address is the virtual router's, so the hosts on the
//! segment keep one neighbour entry across failovers. The agent creates
//! the macvlan (mode private, keepalived's name and MAC), removes it at
//! stop, takes over one a killed agent left, and interoperates with
//! keepalived 2.2.7's `use_vmac`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::Netns;
use vrrp_tests::capture::{self, Capture};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, exec, signal_worker};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.55";
const VIP6: &str = "2001:db8::55";
const MAC4: &str = "00:00:5e:00:01:05";
const MAC6: &str = "00:00:5e:00:02:05";
/// Master_Down_Interval at 1 s adverts (3.61 s at priority 100) plus a
/// generous margin for a loaded CI machine.
const ELECTION: Duration = Duration::from_secs(10);

/// An IPv4 instance with use_vmac (VRID 5), and optionally extra lines.
fn conf4(priority: u8, extra: &str) -> String {
    format!(
        "vrrp_instance VI_5 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 5\n  priority {priority}\n  \
         advert_int 1\n  version 3\n  use_vmac\n{extra}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// An IPv6 instance with use_vmac (VRID 5 too).
fn conf6(priority: u8) -> String {
    format!(
        "vrrp_instance VI_6 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 5\n  priority {priority}\n  \
         advert_int 1\n  version 3\n  use_vmac\n  virtual_ipaddress {{\n    {VIP6}/64\n  }}\n}}\n"
    )
}

/// `ip -d -o link show dev NAME` in `ns`, None when there is no such link.
fn link(ns: &Netns, name: &str) -> Option<String> {
    ns.ip(&["-d", "-o", "link", "show", "dev", name])
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether `name` in `ns` is a private-mode macvlan of eth0 with `mac`.
fn is_vmac(ns: &Netns, name: &str, mac: &str) -> Result<()> {
    let l = link(ns, name).with_context(|| format!("no link {name}"))?;
    for want in [&format!("{name}@eth0"), &format!("link/ether {mac}"), &"macvlan mode private".to_owned()] {
        if !l.contains(want.as_str()) {
            bail!("{name} is not a private macvlan of eth0 with {mac}: {l}");
        }
    }
    Ok(())
}

/// Whether `addr` is on interface `name` in `ns`.
fn on(ns: &Netns, name: &str, addr: &str) -> Result<bool> {
    let out = ns.ip(&["-o", "addr", "show", "dev", name])?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().any(|w| w.split('/').next() == Some(addr)))
}

/// Whether `addr` answers from `ns`: a TCP connection to a closed port
/// is refused by whoever holds the address (no ping needed).
fn answers(ns: &Netns, addr: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "timeout", "2", "bash", "-c", &format!("</dev/tcp/{addr}/9")])
        .output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("Connection refused"))
}

/// The MAC address `ns` has for `addr` once `addr` answers it.
fn neigh_after_ping(ns: &Netns, addr: &str) -> Result<String> {
    wait_until(Duration::from_secs(10), || Ok(answers(ns, addr)))
        .with_context(|| format!("{addr} does not answer"))?;
    let out = ns.ip(&["neigh", "show", addr])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("no neighbour entry for {addr}: {text:?}"))
}

fn sysctl(ns: &Netns, key: &str) -> Result<String> {
    Ok(exec(ns, &["sysctl", "-n", key])?.trim().to_owned())
}

/// One agent with an IPv4 and an IPv6 instance of VRID 5, both with
/// use_vmac: keepalived's names (`vrrp.5`, and `vrrp6.5` for the IPv6
/// one, since `vrrp.5` is taken), MACs 00:00:5e:00:01:05 and
/// 00:00:5e:00:02:05, mode private; the VIPs on them, and a third node
/// reaching each VIP at its virtual MAC; keepalived's ARP settings on the
/// base while it runs and back after; both links removed at stop.
#[test]
fn the_vmacs_carry_the_vips_and_go_at_stop() -> Result<()> {
    let test = "the_vmacs_carry_the_vips_and_go_at_stop";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.3/24"])?;
    seg.nodes[1].ns.ip(&["addr", "add", "2001:db8::3/64", "dev", "eth0"])?;
    seg.wait_ipv6_ready()?;
    let (n0, client) = (&seg.nodes[0].ns, &seg.nodes[1].ns);
    let arp = || -> Result<Vec<String>> {
        ["arp_ignore", "arp_filter", "arp_announce"]
            .iter()
            .map(|k| sysctl(n0, &format!("net.ipv4.conf.eth0.{k}")))
            .collect()
    };
    let before = arp()?;
    let mut agent = seg.agent(0, &(conf4(150, "") + &conf6(150)), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    seg.wait_holders(VIP6, &[0], ELECTION)?;
    is_vmac(n0, "vrrp.5", MAC4)?;
    is_vmac(n0, "vrrp6.5", MAC6)?;
    assert!(on(n0, "vrrp.5", VIP)?, "{VIP} is not on vrrp.5");
    assert!(on(n0, "vrrp6.5", VIP6)?, "{VIP6} is not on vrrp6.5");
    // The base never answers ARP for the VIP with its own MAC.
    assert_eq!(sysctl(n0, "net.ipv4.conf.eth0.arp_ignore")?, "1");
    assert_eq!(sysctl(n0, "net.ipv4.conf.eth0.arp_filter")?, "1");
    assert_eq!(sysctl(n0, "net.ipv4.conf.vrrp/5.arp_ignore")?, "1");
    assert_eq!(neigh_after_ping(client, VIP)?, MAC4);
    assert_eq!(neigh_after_ping(client, VIP6)?, MAC6);

    agent.stop(Duration::from_secs(10))?;
    assert!(link(n0, "vrrp.5").is_none(), "vrrp.5 left after a clean stop");
    assert!(link(n0, "vrrp6.5").is_none(), "vrrp6.5 left after a clean stop");
    let after = arp()?;
    assert_eq!(after, before, "eth0's ARP settings not put back");
    Ok(())
}

/// Two agents with use_vmac and a third node: the third node reaches the
/// VIP at 00:00:5e:00:01:05 before and after a failover (its neighbour
/// entry never changes), the adverts and gratuitous ARPs it sees all come
/// from that MAC, and one node holds the VIP at a time throughout.
#[test]
fn the_vips_mac_does_not_change_across_a_failover() -> Result<()> {
    let test = "the_vips_mac_does_not_change_across_a_failover";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"])?;
    let client = &seg.nodes[2].ns;
    let cap = Capture::start(client, "eth0")?;
    // XDP only (no fallback): the program on the base interface hears
    // the other node's adverts, which a private macvlan would take.
    let mut master = seg.agent(0, &conf4(150, ""), &["--receive", "xdp"])?;
    let backup = seg.agent(1, &conf4(100, ""), &["--receive", "xdp"])?;
    for a in [&master, &backup] {
        assert!(a.lines().iter().any(|l| l.contains("XDP program attached to eth0")), "{:#?}", a.lines());
    }
    seg.wait_holders(VIP, &[0], ELECTION)?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    // The backup hears the master through XDP on eth0: it stays backup.
    stays_master(&seg, 0)?;
    assert_eq!(neigh_after_ping(client, VIP)?, MAC4, "before the failover");
    master.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], ELECTION)?;
    // The client's entry is reused (it may be probed, never relearnt to
    // another MAC): the ping goes to the virtual MAC, now the backup's.
    assert_eq!(neigh_after_ping(client, VIP)?, MAC4, "after the failover");
    is_vmac(&seg.nodes[1].ns, "vrrp.5", MAC4)?;
    watch.finish()?.assert_single_holder()?;
    let frames = cap.stop();
    let vmac = [0, 0, 0x5e, 0, 1, 5];
    let adverts: Vec<_> = frames
        .iter()
        .filter(|f| f.data.len() > 23 && f.data[12..14] == [8, 0] && f.data[23] == 112)
        .collect();
    assert!(adverts.len() >= 2, "too few adverts seen: {}", adverts.len());
    for f in &adverts {
        assert_eq!(f.data[6..12], vmac, "an advert from another MAC than the virtual router's");
    }
    assert!(
        adverts.iter().any(|f| capture::is_advert_from(f, [192, 0, 2, 1]))
            && adverts.iter().any(|f| capture::is_advert_from(f, [192, 0, 2, 2])),
        "adverts from both masters, from their own addresses"
    );
    let garps = frames.iter().filter(|f| capture::is_garp(f, vmac, [192, 0, 2, 55])).count();
    assert!(garps >= 2, "gratuitous ARPs from the virtual MAC: {garps}");
    Ok(())
}

/// A killed worker: its supervisor removes the VIP from the macvlan (which
/// stays); the next start of the same agent takes the macvlan over (same
/// index, logged) instead of creating another, and holds the VIP on it;
/// its stop puts back the base's settings from before the killed run.
#[test]
fn a_killed_agents_vmac_is_taken_over_at_the_next_start() -> Result<()> {
    let test = "a_killed_agents_vmac_is_taken_over_at_the_next_start";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let n0 = &seg.nodes[0].ns;
    let arp = || -> Result<Vec<String>> {
        ["arp_ignore", "arp_filter", "arp_announce"]
            .iter()
            .map(|k| sysctl(n0, &format!("net.ipv4.conf.eth0.{k}")))
            .collect()
    };
    let before = arp()?;
    // Not started again (--respawn-limit 0): the next start takes over.
    let (mut agent, name) = seg.agent_named(0, &conf4(150, ""), &["--respawn-limit", "0"])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    let index = n0.ifindex("vrrp.5")?;
    signal_worker(&agent, Signal::SIGKILL)?;
    // The supervisor removes it 2 x advert_int after the death.
    wait_until(Duration::from_secs(10), || Ok(!on(n0, "vrrp.5", VIP)?))
        .context("the supervisor did not remove the VIP from vrrp.5")?;
    agent.wait_for_line("removed 192.0.2.55/24", Duration::from_secs(5))?;
    drop(agent);
    is_vmac(n0, "vrrp.5", MAC4).context("the killed worker's macvlan")?;

    let mut again = seg.agent_as(0, &conf4(150, ""), &name, &[])?;
    again.wait_for_line("taking over VMAC interface vrrp.5", Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    assert_eq!(n0.ifindex("vrrp.5")?, index, "vrrp.5 was created anew, not taken over");
    assert!(on(n0, "vrrp.5", VIP)?);
    again.stop(Duration::from_secs(10))?;
    assert!(link(n0, "vrrp.5").is_none(), "a taken-over macvlan is ours: removed at stop");
    // The killed run's record: eth0's settings from before it, not the
    // ones it left.
    assert_eq!(arp()?, before, "eth0's ARP settings not put back after a killed run");
    Ok(())
}

/// A macvlan deleted under a running master is created again and the VIP
/// put back on it; one set down is set up again.
#[test]
fn a_deleted_vmac_is_put_back() -> Result<()> {
    let test = "a_deleted_vmac_is_put_back";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let n0 = &seg.nodes[0].ns;
    let mut agent = seg.agent(0, &conf4(150, ""), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    n0.ip(&["link", "del", "vrrp.5"])?;
    wait_until(ELECTION, || Ok(link(n0, "vrrp.5").is_some() && on(n0, "vrrp.5", VIP)?))
        .with_context(|| format!("vrrp.5 and its VIP not put back: {:#?}", agent.lines()))?;
    is_vmac(n0, "vrrp.5", MAC4)?;
    // Set down: set up again, and the instance (in FAULT meanwhile)
    // becomes master again.
    n0.ip(&["link", "set", "vrrp.5", "down"])?;
    agent.wait_for_line("VMAC interface vrrp.5 was set down: setting it up", Duration::from_secs(5))?;
    wait_until(ELECTION, || {
        Ok(link(n0, "vrrp.5").is_some_and(|l| l.contains("state UP")) && on(n0, "vrrp.5", VIP)?)
    })
    .with_context(|| format!("vrrp.5 not up with its VIP again: {:#?}", agent.lines()))?;
    Ok(())
}

/// keepalived.conf for keepalived 2.2.7 with use_vmac.
fn keepalived_conf(priority: u8) -> String {
    conf4(priority, "")
}

/// Twice Master_Down_Interval at 1 s adverts: a backup that hears its
/// master never takes over within it.
const HEARS: Duration = Duration::from_secs(8);

/// Node `i` stays the only holder of `VIP` for `HEARS`: the other node,
/// a backup of lower priority, hears its adverts.
fn stays_master(seg: &Segment, i: usize) -> Result<()> {
    stays_master_of(seg, i, VIP)
}

/// As `stays_master`, for `vip`.
fn stays_master_of(seg: &Segment, i: usize, vip: &str) -> Result<()> {
    let start = std::time::Instant::now();
    while start.elapsed() < HEARS {
        let h = seg.holders(vip)?;
        if h != [i] {
            bail!(
                "after {:?}, {vip} is held by {h:?}, not only node {i}: its backup does not hear it",
                start.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A mixed pair: the agent and keepalived 2.2.7, both with use_vmac on
/// the same configuration (adverts from the virtual MAC both ways, which
/// a private macvlan takes from its base). Each side is master in turn,
/// and each, as a lower-priority backup, stays backup beside the other's
/// master (it hears it); a third node reaches the VIP at the virtual MAC
/// throughout, and one node holds it at a time.
#[test]
fn mixed_pair_with_keepalived_use_vmac() -> Result<()> {
    let test = "mixed_pair_with_keepalived_use_vmac";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"])?;
    // keepalived 2.2.7 leaves the base's arp_announce alone, so the ARP
    // request its base sends to answer the client carries the VIP with
    // the base's MAC, and the client takes it (seen here: the client's
    // entry for the VIP was keepalived's eth0 MAC). The agent sets 2 on
    // its base; set it for keepalived, as an operator would, so the
    // client's entry says what the VMACs do.
    exec(&seg.nodes[1].ns, &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"])?;
    each_side_master_in_turn(&seg, VIP, MAC4, &keepalived_conf)
}

/// The mixed pair on node 0 (the agent) and node 1 (keepalived), both
/// configured by `conf(priority)`: keepalived master, the agent at a lower
/// priority beside it, keepalived stops and the agent takes over,
/// keepalived back at a lower priority beside it, the agent stops and
/// keepalived takes over. Node 2 reaches `vip` at `mac` under each
/// master; one holder throughout.
fn each_side_master_in_turn(seg: &Segment, vip: &str, mac: &str, conf: &dyn Fn(u8) -> String) -> Result<()> {
    let client = &seg.nodes[2].ns;
    let mut ka = seg.keepalived(1, &conf(100))?;
    seg.wait_holders(vip, &[1], ELECTION)?;
    is_vmac(&seg.nodes[1].ns, "vrrp.5", mac).context("keepalived's VMAC")?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], vip)?;
    assert_eq!(neigh_after_ping(client, vip)?, mac, "keepalived master");

    // The agent at a lower priority hears keepalived's master.
    let mut agent = seg.agent(0, &conf(50), &[])?;
    stays_master_of(seg, 1, vip).context("the agent beside keepalived's master")?;
    // Alone on VRID 5 (IPv4 or IPv6), keepalived's name is vrrp.5.
    is_vmac(&seg.nodes[0].ns, "vrrp.5", mac)?;
    // keepalived stops: the agent takes over.
    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(vip, &[0], ELECTION)?;
    assert_eq!(neigh_after_ping(client, vip)?, mac, "agent master");
    // keepalived at a lower priority hears the agent's master.
    let _ka = seg.keepalived(1, &conf(20))?;
    stays_master_of(seg, 0, vip).context("keepalived beside the agent's master")?;
    // The agent stops: keepalived takes over.
    agent.stop(Duration::from_secs(10))?;
    seg.wait_holders(vip, &[1], ELECTION)?;
    assert_eq!(neigh_after_ping(client, vip)?, mac, "keepalived master again");
    watch.finish()?.assert_single_holder()?;
    Ok(())
}

/// On raw sockets (`--receive socket`) the agents hear each other through
/// their macvlans: a private macvlan takes the other node's adverts, whose
/// source MAC is its own, away from the base (keepalived receives there
/// too). The lower-priority agent stays backup beside the master, then
/// takes over when it stops.
#[test]
fn agents_on_raw_sockets_hear_each_other_through_their_vmacs() -> Result<()> {
    let test = "agents_on_raw_sockets_hear_each_other_through_their_vmacs";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let mut master = seg.agent(0, &conf4(150, ""), &["--receive", "socket"])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    let backup = seg.agent(1, &conf4(100, ""), &["--receive", "socket"])?;
    stays_master(&seg, 0).with_context(|| format!("the backup on raw sockets: {:#?}", backup.lines()))?;
    master.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], ELECTION)?;
    watch.finish()?.assert_single_holder()?;
    Ok(())
}

/// `vmac_xmit_base`: the adverts go out on the base interface (its own
/// MAC address), the gratuitous ARPs still from the virtual MAC, and the
/// VIP lives on the macvlan.
#[test]
fn vmac_xmit_base_sends_adverts_from_the_base() -> Result<()> {
    let test = "vmac_xmit_base_sends_adverts_from_the_base";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.3/24"])?;
    let cap = Capture::start(&seg.nodes[1].ns, "eth0")?;
    let _agent = seg.agent(0, &conf4(150, "  vmac_xmit_base\n"), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    assert!(on(&seg.nodes[0].ns, "vrrp.5", VIP)?, "{VIP} is not on vrrp.5");
    assert_eq!(neigh_after_ping(&seg.nodes[1].ns, VIP)?, MAC4);
    let base = capture::mac(&seg.nodes[0].ns, "eth0")?;
    // Adverts go out every second (RFC 5798 6.4.3): two more at least.
    std::thread::sleep(Duration::from_millis(2100));
    let frames = cap.stop();
    let adverts: Vec<_> = frames.iter().filter(|f| capture::is_advert_from(f, [192, 0, 2, 1])).collect();
    assert!(adverts.len() >= 2, "adverts seen: {}", adverts.len());
    assert!(adverts.iter().all(|f| f.data[6..12] == base), "an advert not from eth0's MAC");
    assert!(
        frames.iter().any(|f| capture::is_garp(f, [0, 0, 0x5e, 0, 1, 5], [192, 0, 2, 55])),
        "no GARP from the VMAC"
    );
    Ok(())
}

/// The base interface deleted (the kernel deletes its macvlan with it)
/// and created again: the master goes to FAULT, the backup takes over;
/// the agent creates the macvlan again on the new interface and preempts
/// back with the VIP on it; one holder throughout.
#[test]
fn a_recreated_base_gets_its_vmac_back() -> Result<()> {
    let test = "a_recreated_base_gets_its_vmac_back";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])?;
    let n0 = &seg.nodes[0].ns;
    let master = seg.agent(0, &conf4(150, ""), &[])?;
    let _backup = seg.agent(1, &conf4(100, ""), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    n0.ip(&["link", "del", "eth0"])?;
    seg.wait_holders(VIP, &[1], ELECTION)?;
    assert!(link(n0, "vrrp.5").is_none(), "the kernel deletes a macvlan with its base");
    seg.lan.plug("br0", "p0", n0, "eth0")?;
    n0.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"])?;
    seg.wait_holders(VIP, &[0], ELECTION).with_context(|| format!("{:#?}", master.lines()))?;
    is_vmac(n0, "vrrp.5", MAC4)?;
    assert!(on(n0, "vrrp.5", VIP)?, "{VIP} is not on the new vrrp.5");
    watch.finish()?.assert_single_holder_but_handovers(Duration::from_millis(20))?;
    Ok(())
}

/// With strict reverse-path filtering (`net.ipv4.conf.all.rp_filter=1`,
/// which wins over the macvlan's 0), traffic to the VIP arriving on the
/// macvlan from a host whose route goes by the base would be dropped.
/// keepalived's `clear_rp_filter`: every interface (and `default`) gets
/// at least `all`'s value, then `all` is set to 0, so only the macvlan
/// runs without it; all put back at stop.
#[test]
fn strict_rp_filter_is_moved_off_all_as_keepalived_does() -> Result<()> {
    let test = "strict_rp_filter_is_moved_off_all_as_keepalived_does";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.3/24"])?;
    let n0 = &seg.nodes[0].ns;
    exec(n0, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=0"])?;
    let rp = |k: &str| sysctl(n0, &format!("net.ipv4.conf.{k}.rp_filter"));
    let before = (rp("eth0")?, rp("lo")?);
    let mut agent = seg.agent(0, &conf4(150, ""), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    assert_eq!(neigh_after_ping(&seg.nodes[1].ns, VIP)?, MAC4);
    assert_eq!(
        (rp("all")?, rp("default")?, rp("eth0")?, rp("vrrp/5")?),
        ("0".into(), "1".into(), "1".into(), "0".into())
    );
    agent.stop(Duration::from_secs(10))?;
    assert_eq!((rp("all")?, rp("default")?), ("1".into(), "0".into()), "all and default put back");
    assert_eq!((rp("eth0")?, rp("lo")?), before, "the interfaces put back");
    Ok(())
}

/// The mixed pair over IPv6: the agent and keepalived 2.2.7, both with
/// use_vmac on an IPv6 instance (VRRPv3, adverts from the base's
/// link-local address on the macvlans, 00:00:5e:00:02:05). Each side
/// master in turn and hearing the other's master; a third node reaches
/// the VIP at the virtual MAC; one holder at a time.
#[test]
fn mixed_pair_with_keepalived_use_vmac_ipv6() -> Result<()> {
    let test = "mixed_pair_with_keepalived_use_vmac_ipv6";
    if !require_root(test) || !require_tool(test, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"])?;
    seg.nodes[2].ns.ip(&["addr", "add", "2001:db8::3/64", "dev", "eth0"])?;
    seg.wait_ipv6_ready()?;
    each_side_master_in_turn(&seg, VIP6, MAC6, &conf6)
}

/// A second agent (another `--name`) for the same VRID on the interface
/// is refused (two agents would both be MASTER) before it touches the
/// first one's macvlan, even one it would replace (another MAC).
#[test]
fn a_second_agent_for_the_vrid_leaves_the_first_ones_vmac_alone() -> Result<()> {
    let test = "a_second_agent_for_the_vrid_leaves_the_first_ones_vmac_alone";
    if !require_root(test) {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let n0 = &seg.nodes[0].ns;
    let first = seg.agent(0, &conf4(150, ""), &[])?;
    seg.wait_holders(VIP, &[0], ELECTION)?;
    let index = n0.ifindex("vrrp.5")?;
    let text = conf4(150, "").replace("  use_vmac\n", "  use_vmac vrrp.5 02:00:00:00:00:09\n");
    let path = seg.file("second.conf", &text)?;
    let bin = vrrp_tests::lab::agent_bin()?;
    let mut cmd = n0.command(&bin.to_string_lossy());
    cmd.arg("run").arg("-f").arg(&path).args(["--name", &vrrp_tests::netns::unique("t2")]);
    let mut second = vrrp_tests::process::Process::spawn("second", &mut cmd, false)?;
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = second.try_wait()?;
        Ok(status.is_some())
    })
    .with_context(|| format!("the second agent runs beside the first: {:#?}", second.lines()))?;
    assert!(status.is_some_and(|s| !s.success()), "exit status {status:?}");
    assert!(second.lines().iter().any(|l| l.contains("eth0 is taken")), "{:#?}", second.lines());
    assert_eq!(n0.ifindex("vrrp.5")?, index, "the first agent's vrrp.5 was replaced");
    is_vmac(n0, "vrrp.5", MAC4)?;
    assert!(on(n0, "vrrp.5", VIP)?);
    drop(first);
    Ok(())
}
