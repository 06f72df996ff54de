//! Everyday faults against a running pair: signals, VIPs deleted or added
//! by hand, link flaps, a stalled master, restarts. Each test watches the
//! VIP in every namespace for its whole length (`HolderWatch`) and asserts
//! the single-holder rule: never two nodes at once, and when a node can
//! hold it, one does.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, signal_worker};
use vrrp_tests::privilege::require_root;
use vrrp_tests::process::{Process, wait_until};

const VIP: &str = "192.0.2.140";
const ADDRS: [&str; 2] = ["192.0.2.21/24", "192.0.2.53/24"];
/// Master_Down_Interval at advert_int 0.1 s and priority 100:
/// 3 × 100 ms + (256 - 100) / 256 × 100 ms.
const MDI: Duration = Duration::from_micros(360_938);
/// Allowance for netlink, scheduling and polling on a busy machine.
const MARGIN: Duration = Duration::from_millis(700);
/// The longest overlap a preemption may show (`assert_single_holder_but_handovers`):
/// one advert's delivery and processing on a busy machine; measured
/// overlaps here were 0.05-0.4 ms.
const HANDOVER: Duration = Duration::from_millis(20);

/// keepalived.conf of node `i` (0: backup, priority 100; 1: master, 150).
fn conf(i: usize) -> String {
    let (priority, me, peer) =
        if i == 1 { (150, "192.0.2.53", "192.0.2.21") } else { (100, "192.0.2.21", "192.0.2.53") };
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 57\n  priority {priority}\n  advert_int 0.1\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// A pair with node 1 master; returns the agents (backup, master) and the
/// master's `--name`.
fn pair(seg: &Segment) -> Result<(Process, Process, String)> {
    let (master, name) = seg.agent_named(1, &conf(1), &[])?;
    let backup = seg.agent(0, &conf(0), &[])?;
    seg.wait_holders(VIP, &[1], MDI * 10 + MARGIN)?;
    Ok((backup, master, name))
}

fn watch(seg: &Segment) -> Result<HolderWatch> {
    HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)
}

/// The configuration file an agent runs (from its command line).
fn config_of(p: &Process) -> Result<std::path::PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid()))?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let i = args.iter().position(|a| *a == b"-f").context("-f in the agent's command line")?;
    let f = args.get(i + 1).context("the file after -f")?;
    Ok(std::path::PathBuf::from(String::from_utf8_lossy(f).into_owned()))
}

fn running(p: &Process) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid() as i32), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{}/stat", p.pid())).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn signals_an_operator_sends_are_not_fatal() -> Result<()> {
    if !require_root("signals_an_operator_sends_are_not_fatal") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, mut master, name) = pair(&seg)?;
    let w = watch(&seg)?;

    // SIGHUP: reload; the same file is "unchanged".
    master.signal(Signal::SIGHUP)?;
    master.wait_for_line("Reload: ", Duration::from_secs(5))?;
    assert!(master.lines().iter().any(|l| l.contains("unchanged")), "an unchanged file is said so");
    // An invalid file is refused and the running configuration stays.
    let path = config_of(&master)?;
    let good = std::fs::read_to_string(&path)?;
    std::fs::write(&path, "vrrp_instance VI_1 {\n  priority 300\n")?;
    master.signal(Signal::SIGHUP)?;
    master.wait_for_line("Reload refused", Duration::from_secs(5))?;
    std::fs::write(&path, good)?;

    // SIGUSR1 / SIGUSR2: the state and the statistics, written to files.
    let data = std::path::PathBuf::from(format!("/run/vrrp-agent/{name}.data"));
    let stats = std::path::PathBuf::from(format!("/run/vrrp-agent/{name}.stats"));
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&stats);
    master.signal(Signal::SIGUSR1)?;
    master.signal(Signal::SIGUSR2)?;
    wait_until(Duration::from_secs(5), || Ok(data.exists() && stats.exists()))?;
    let dump: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&data)?)?;
    assert_eq!(dump["instances"][0]["state"], "MASTER", "{dump}");
    // SIGPIPE: ignored.
    master.signal(Signal::SIGPIPE)?;

    // None of them moved the VIP or stopped the agent.
    std::thread::sleep(MDI * 2);
    assert!(running(&master), "the master survived SIGHUP, SIGUSR1, SIGUSR2 and SIGPIPE");
    assert_eq!(seg.holders(VIP)?, vec![1]);

    // SIGQUIT stops it gracefully: it resigns and the backup takes over.
    master.signal(Signal::SIGQUIT)?;
    master.wait_for_line("Stopped", Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2))?;
    let status = master.stop(Duration::from_secs(5))?;
    assert!(status.success(), "SIGQUIT exits cleanly: {status}");
    assert!(master.lines().iter().any(|l| l.contains("sent 0 priority")), "it resigned");
    let seen = w.finish()?;
    seen.assert_single_holder()?;
    let _ = std::fs::remove_file(&data);
    let _ = std::fs::remove_file(&stats);
    Ok(())
}

#[test]
fn a_vip_deleted_under_the_master_is_put_back() -> Result<()> {
    if !require_root("a_vip_deleted_under_the_master_is_put_back") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, mut master, _) = pair(&seg)?;
    let w = watch(&seg)?;
    let node = &seg.nodes[1].ns;

    // `ip addr del` of the VIP.
    let t = Instant::now();
    node.ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1))?;
    let back_after = t.elapsed();
    master.wait_for_line("putting it back", Duration::from_secs(1))?;

    // A tool that flushes the interface and adds its address again (the
    // VIP, a same-subnet secondary, goes with the primary).
    node.ip(&["addr", "flush", "dev", "eth0"])?;
    node.ip(&["addr", "add", ADDRS[1], "dev", "eth0"])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1))?;

    // The backup never took over: the master kept advertising.
    std::thread::sleep(MDI * 2);
    assert_eq!(seg.holders(VIP)?, vec![1]);
    let seen = w.finish()?;
    seen.assert_single_holder()?;
    println!("VIP back {back_after:?} after `ip addr del`");
    Ok(())
}

#[test]
fn a_vip_on_a_backup_is_removed() -> Result<()> {
    if !require_root("a_vip_on_a_backup_is_removed") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    // Left there before the agent starts (keepalived during a migration).
    seg.nodes[0].ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"])?;
    let (mut backup, _master, _) = pair(&seg)?;
    backup.wait_for_line("removing it", Duration::from_secs(1))?;
    let w = watch(&seg)?;
    // Added by hand while it runs.
    seg.nodes[0].ns.ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1))?;
    let seen = w.finish()?;
    // It was there for a moment (the hand edit); never for longer than
    // the agent needs to see the event and remove it.
    let both = seen.spans[0].iter().map(|(a, b)| *b - *a).max().unwrap_or_default();
    assert!(both < Duration::from_millis(300), "the backup held the VIP for {both:?}");
    Ok(())
}

#[test]
fn a_vip_already_on_the_master_is_adopted_and_released() -> Result<()> {
    if !require_root("a_vip_already_on_the_master_is_adopted_and_released") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    seg.nodes[1].ns.ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
    let (_backup, mut master, _) = pair(&seg)?;
    let w = watch(&seg)?;
    // Stopping the master hands the VIP over: the one it found is its own.
    master.stop(Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2))?;
    w.finish()?.assert_single_holder()?;
    Ok(())
}

#[test]
fn the_status_counters_are_current() -> Result<()> {
    if !require_root("the_status_counters_are_current") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, _master, name) = pair(&seg)?;
    let read = || -> Result<u64> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("/run/vrrp-agent/{name}.json"))?)?;
        v["instances"][0]["stats"]["advert_sent"].as_u64().context("advert_sent")
    };
    let first = read()?;
    std::thread::sleep(Duration::from_millis(2_500));
    let later = read()?;
    // 10 adverts a second; the file is at most a second old.
    assert!(later >= first + 10, "advert_sent went from {first} to {later} in 2.5 s");
    Ok(())
}

/// 10 link flaps on the master in 5 s; with `restart`, that node's agent
/// is restarted after the fifth.
fn link_flaps(restart: Option<usize>) -> Result<()> {
    let seg = Segment::new(&ADDRS)?;
    let (backup, master, _) = pair(&seg)?;
    let mut agents = [Some(backup), Some(master)];
    let w = watch(&seg)?;
    for k in 0..10 {
        seg.nodes[1].ns.ip(&["link", "set", "eth0", "down"])?;
        std::thread::sleep(Duration::from_millis(250));
        seg.nodes[1].ns.ip(&["link", "set", "eth0", "up"])?;
        if k == 4
            && let Some(i) = restart
        {
            if let Some(mut a) = agents[i].take() {
                a.stop(Duration::from_secs(5))?;
            }
            agents[i] = Some(seg.agent(i, &conf(i), &[])?);
        } else {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // Then the master takes it back by preemption.
    seg.wait_holders(VIP, &[1], MDI * 2 + MARGIN)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    Ok(())
}

#[test]
fn link_flaps_on_the_master_keep_one_holder() -> Result<()> {
    if !require_root("link_flaps_on_the_master_keep_one_holder") {
        return Ok(());
    }
    link_flaps(None)
}

#[test]
fn link_flaps_with_an_agent_restart_keep_one_holder() -> Result<()> {
    if !require_root("link_flaps_with_an_agent_restart_keep_one_holder") {
        return Ok(());
    }
    link_flaps(Some(1))?;
    link_flaps(Some(0))
}

#[test]
fn a_stalled_master_hands_over_and_takes_back_without_two_holders() -> Result<()> {
    if !require_root("a_stalled_master_hands_over_and_takes_back_without_two_holders") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (_backup, master, _) = pair(&seg)?;
    let w = watch(&seg)?;
    // The worker: a stopped supervisor would stop nothing that answers.
    signal_worker(&master, Signal::SIGSTOP)?;
    // The backup takes over after Master_Down_Interval; the stalled node
    // may not answer for the VIP meanwhile (its supervisor removes it).
    let r = seg.wait_holders(VIP, &[0], MDI + MARGIN);
    signal_worker(&master, Signal::SIGCONT)?;
    r?;
    seg.wait_holders(VIP, &[1], MDI * 2 + MARGIN)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    Ok(())
}

#[test]
fn an_agent_restart_on_either_node_keeps_one_holder() -> Result<()> {
    if !require_root("an_agent_restart_on_either_node_keeps_one_holder") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (mut backup, mut master, _) = pair(&seg)?;
    let w = watch(&seg)?;
    // The backup restarts: nothing moves.
    backup.stop(Duration::from_secs(5))?;
    let _backup = seg.agent(0, &conf(0), &[])?;
    std::thread::sleep(MDI * 2);
    assert_eq!(seg.holders(VIP)?, vec![1]);
    // The master restarts: it resigns, the backup takes over, and the new
    // master preempts it back.
    master.stop(Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2))?;
    let _master = seg.agent(1, &conf(1), &[])?;
    seg.wait_holders(VIP, &[1], MDI * 2 + MARGIN)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    if seen.longest_gap(Duration::ZERO, seen.stopped - seen.started) > MDI + MARGIN {
        bail!("no node held the VIP for longer than Master_Down_Interval");
    }
    Ok(())
}

/// As `conf`, to the VRRP group instead of unicast.
fn conf_multicast(i: usize) -> String {
    let c = conf(i);
    let a = c.find("  unicast_src_ip").unwrap_or(c.len());
    let b = c.find("  virtual_ipaddress").unwrap_or(c.len());
    format!("{}{}", &c[..a], &c[b..])
}

/// Delete node `i`'s eth0 and create it again on the bridge, with its
/// address.
fn recreate(seg: &Segment, i: usize) -> Result<()> {
    let node = &seg.nodes[i];
    node.ns.ip(&["link", "del", "eth0"])?;
    seg.lan.plug("br0", &format!("p{i}"), &node.ns, "eth0")?;
    node.ns.ip(&["addr", "add", &node.addr, "dev", "eth0"])?;
    Ok(())
}

fn recreated_interface_case(multicast: bool, extra: &[&str]) -> Result<()> {
    let seg = Segment::new(&ADDRS)?;
    let text = |i| if multicast { conf_multicast(i) } else { conf(i) };
    let mut master = seg.agent(1, &text(1), extra)?;
    let _backup = seg.agent(0, &text(0), extra)?;
    seg.wait_holders(VIP, &[1], MDI * 10 + MARGIN)?;
    let w = watch(&seg)?;
    // The master's interface is deleted: it goes to FAULT, the backup
    // takes over.
    seg.nodes[1].ns.ip(&["link", "del", "eth0"])?;
    seg.wait_holders(VIP, &[0], MDI + MARGIN)?;
    master.wait_for_line("was deleted", Duration::from_secs(2))?;
    // Created again (a new index): the master follows it by name and
    // preempts back within Master_Down_Interval of the link coming up.
    let node = &seg.nodes[1];
    seg.lan.plug("br0", "p1", &node.ns, "eth0")?;
    node.ns.ip(&["addr", "add", &node.addr, "dev", "eth0"])?;
    let t = Instant::now();
    seg.wait_holders(VIP, &[1], MDI + MARGIN)?;
    let back = t.elapsed();
    master.wait_for_line("listening and advertising on it again", Duration::from_secs(1))?;
    // The same for the backup's interface: it comes back as backup.
    recreate(&seg, 0)?;
    std::thread::sleep(MDI * 2);
    assert_eq!(seg.holders(VIP)?, vec![1]);
    // And it still serves: the master stops, the backup takes over.
    master.stop(Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2))?;
    w.finish()?.assert_single_holder_but_handovers(HANDOVER)?;
    println!("master back {back:?} after its interface was created again");
    Ok(())
}

#[test]
fn a_recreated_interface_is_followed_unicast_xdp() -> Result<()> {
    if !require_root("a_recreated_interface_is_followed_unicast_xdp") {
        return Ok(());
    }
    recreated_interface_case(false, &[])
}

#[test]
fn a_recreated_interface_is_followed_multicast_xdp() -> Result<()> {
    if !require_root("a_recreated_interface_is_followed_multicast_xdp") {
        return Ok(());
    }
    recreated_interface_case(true, &[])
}

#[test]
fn a_recreated_interface_is_followed_unicast_sockets() -> Result<()> {
    if !require_root("a_recreated_interface_is_followed_unicast_sockets") {
        return Ok(());
    }
    recreated_interface_case(false, &["--receive", "socket"])
}

#[test]
fn a_recreated_interface_is_followed_multicast_sockets() -> Result<()> {
    if !require_root("a_recreated_interface_is_followed_multicast_sockets") {
        return Ok(());
    }
    recreated_interface_case(true, &["--receive", "socket"])
}

#[test]
fn an_interface_that_appears_later_is_used() -> Result<()> {
    if !require_root("an_interface_that_appears_later_is_used") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let _backup = seg.agent(0, &conf(0), &[])?;
    // Node 1's interface does not exist when its agent starts.
    seg.nodes[1].ns.ip(&["link", "del", "eth0"])?;
    let mut master = seg.agent(1, &conf(1), &[])?;
    master.wait_for_line("Entering FAULT STATE", Duration::from_secs(5))?;
    seg.wait_holders(VIP, &[0], MDI * 10 + MARGIN)?;
    let node = &seg.nodes[1];
    seg.lan.plug("br0", "p1", &node.ns, "eth0")?;
    node.ns.ip(&["addr", "add", &node.addr, "dev", "eth0"])?;
    seg.wait_holders(VIP, &[1], MDI + MARGIN)?;
    Ok(())
}

#[test]
fn ipv6_vips_are_put_back_on_the_master_and_removed_from_the_backup() -> Result<()> {
    if !require_root("ipv6_vips_are_put_back_on_the_master_and_removed_from_the_backup") {
        return Ok(());
    }
    const VIP6: &str = "2001:db8::140";
    let seg = Segment::new(&["2001:db8::21/64", "2001:db8::53/64"])?;
    seg.wait_ipv6_ready()?;
    let conf = |priority: u8| {
        format!(
            "vrrp_instance VI_6 {{\n  interface eth0\n  virtual_router_id 67\n  priority {priority}\n  advert_int 0.1\n  version 3\n  virtual_ipaddress {{\n    {VIP6}/64\n  }}\n}}\n"
        )
    };
    let mut master = seg.agent(1, &conf(150), &[])?;
    let mut backup = seg.agent(0, &conf(100), &[])?;
    seg.wait_holders(VIP6, &[1], MDI * 10 + MARGIN)?;
    let w = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP6)?;
    seg.nodes[1].ns.ip(&["addr", "del", &format!("{VIP6}/64"), "dev", "eth0"])?;
    seg.wait_holders(VIP6, &[1], Duration::from_secs(1))?;
    master.wait_for_line("putting it back", Duration::from_secs(1))?;
    seg.nodes[0].ns.ip(&["addr", "add", &format!("{VIP6}/64"), "dev", "eth0", "nodad"])?;
    seg.wait_holders(VIP6, &[1], Duration::from_secs(1))?;
    backup.wait_for_line("removing it", Duration::from_secs(1))?;
    let seen = w.finish()?;
    let hand = seen.spans[0].iter().map(|(a, b)| *b - *a).max().unwrap_or_default();
    assert!(hand < Duration::from_millis(300), "the backup held the VIP for {hand:?}");
    Ok(())
}

#[test]
fn a_backup_restarted_while_the_master_is_stalled_keeps_one_holder() -> Result<()> {
    if !require_root("a_backup_restarted_while_the_master_is_stalled_keeps_one_holder") {
        return Ok(());
    }
    let seg = Segment::new(&ADDRS)?;
    let (mut backup, master, _) = pair(&seg)?;
    let w = watch(&seg)?;
    signal_worker(&master, Signal::SIGSTOP)?;
    let r = (|| -> Result<()> {
        seg.wait_holders(VIP, &[0], MDI + MARGIN)?;
        // The only live node restarts: it resigns (nobody holds the VIP
        // until it is master again), then takes it back.
        backup.stop(Duration::from_secs(5))?;
        let again = seg.agent(0, &conf(0), &[])?;
        seg.wait_holders(VIP, &[0], MDI + MARGIN)?;
        backup = again;
        Ok(())
    })();
    signal_worker(&master, Signal::SIGCONT)?;
    r?;
    // Resumed, the master preempts back.
    seg.wait_holders(VIP, &[1], MDI * 2 + MARGIN)?;
    let seen = w.finish()?;
    seen.assert_single_holder_but_handovers(HANDOVER)?;
    drop(backup);
    Ok(())
}

#[test]
fn a_recreated_interface_too_small_for_the_adverts_keeps_the_instance_in_fault() -> Result<()> {
    if !require_root("a_recreated_interface_too_small_for_the_adverts_keeps_the_instance_in_fault") {
        return Ok(());
    }
    // 12 VIPs: an IPv4 packet of 20 + 8 + 48 = 76 bytes, more than the
    // smallest IPv4 MTU, 68, can carry (keepalived's rule, which also
    // counts the Ethernet header, fits 6 there).
    let twelve = |i: usize| {
        let mut c = conf(i);
        let extra: String = (141..152).map(|k| format!("    192.0.2.{k}/24\n")).collect();
        c = c.replace(&format!("    {VIP}/24\n"), &format!("    {VIP}/24\n{extra}"));
        c
    };
    let seg = Segment::new(&ADDRS)?;
    let mut master = seg.agent(1, &twelve(1), &[])?;
    let _backup = seg.agent(0, &twelve(0), &[])?;
    seg.wait_holders(VIP, &[1], MDI * 10 + MARGIN)?;
    let node = &seg.nodes[1];
    node.ns.ip(&["link", "del", "eth0"])?;
    seg.wait_holders(VIP, &[0], MDI + MARGIN)?;
    // Created again with an MTU too small for the adverts: refused, the
    // backup keeps the VIPs.
    node.ns.ip(&[
        "link",
        "add",
        "eth0",
        "mtu",
        "68",
        "type",
        "veth",
        "peer",
        "name",
        "p1",
        "netns",
        seg.lan.name(),
    ])?;
    seg.lan.ip(&["link", "set", "p1", "master", "br0", "up"])?;
    node.ns.ip(&["link", "set", "eth0", "up"])?;
    node.ns.ip(&["addr", "add", &node.addr, "dev", "eth0"])?;
    master.wait_for_line(
        "12 virtual addresses do not fit in an advert on eth0 (MTU 68: at most 6)",
        Duration::from_secs(2),
    )?;
    std::thread::sleep(MDI * 2);
    assert_eq!(seg.holders(VIP)?, vec![0]);
    // The MTU raised: the instance comes up and preempts.
    node.ns.ip(&["link", "set", "eth0", "mtu", "1500"])?;
    seg.wait_holders(VIP, &[1], MDI + MARGIN)?;
    Ok(())
}
