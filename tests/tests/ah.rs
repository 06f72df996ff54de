//! `auth_type AH` (IPsec Authentication Header, HMAC-MD5-96) as keepalived
//! 2.2.7 speaks it: two agents elect one master and fail over; the agent
//! and keepalived authenticate each other's adverts in both roles; a wrong
//! `auth_pass` is refused on both sides (both become master, as keepalived
//! does) and counted; tshark dissects the agent's AH adverts.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::capture::Capture;
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::Segment;
use vrrp_tests::privilege::{require_root, require_tool};

const VIP: &str = "192.0.2.140";
const MARGIN: Duration = Duration::from_millis(600);

/// keepalived.conf for one node: VRID 14, 1 s adverts, AH with `pass`,
/// multicast, no preemption delay.
fn conf(priority: u8, pass: &str) -> String {
    format!(
        "vrrp_instance VI_AH {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 14\n  priority {priority}\n  \
         advert_int 1\n  authentication {{\n    auth_type AH\n    auth_pass {pass}\n  }}\n  \
         virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// As `conf`, unicast from `me` to `peer` (keepalived then zeroes the TTL
/// in the ICV).
fn unicast_conf(priority: u8, pass: &str, me: &str, peer: &str) -> String {
    conf(priority, pass).replace(
        "  advert_int 1\n",
        &format!("  advert_int 1\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n"),
    )
}

/// Master_Down_Interval of a v2 backup of `priority` at 1 s adverts.
fn mdi(priority: u64) -> Duration {
    Duration::from_secs(3) + Duration::from_micros((256 - priority) * 1_000_000 / 256)
}

fn pair() -> Result<Segment> {
    Segment::new(&["192.0.2.1/24", "192.0.2.2/24"])
}

/// Node `held` keeps the VIP, alone, for longer than the other's
/// Master_Down_Interval: the other authenticates its adverts.
fn stays(seg: &Segment, held: usize, for_: Duration, what: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < for_ {
        let h = seg.holders(VIP)?;
        if h != [held] {
            bail!("{what}: after {:?} the VIP is held by {h:?}", start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn two_agents_with_ah_elect_one_master_and_fail_over() -> Result<()> {
    let name = "two_agents_with_ah_elect_one_master_and_fail_over";
    if !require_root(name) {
        return Ok(());
    }
    agent_pair(&[])
}

/// The same on the raw-socket receive path (no XDP program).
#[test]
fn two_agents_with_ah_on_raw_sockets() -> Result<()> {
    let name = "two_agents_with_ah_on_raw_sockets";
    if !require_root(name) {
        return Ok(());
    }
    agent_pair(&["--receive", "socket"])
}

fn agent_pair(extra: &[&str]) -> Result<()> {
    let seg = pair()?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    let mut a = seg.agent(0, &conf(150, "s3cr3t"), extra)?;
    let (b, b_name) = seg.agent_named(1, &conf(100, "s3cr3t"), extra)?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    stays(&seg, 0, mdi(100) + MARGIN, "agent backup with the right key")?;
    let status = std::fs::read_to_string(format!("/run/vrrp-agent/{b_name}.json"))?;
    let v: serde_json::Value = serde_json::from_str(&status)?;
    assert_eq!(v["instances"][0]["stats"]["auth_failure"].as_u64(), Some(0), "{status}");
    a.signal(Signal::SIGTERM)?;
    // Priority 0 on the way out: the backup takes over after Skew_Time.
    let took = seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    eprintln!("AH failover on priority 0: {took:?}");
    a.stop(Duration::from_secs(5))?;
    watch.finish()?.assert_single_holder()?;
    drop(b);
    Ok(())
}

#[test]
fn keepalived_and_agent_authenticate_each_other_in_both_roles() -> Result<()> {
    let name = "keepalived_and_agent_authenticate_each_other_in_both_roles";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    // keepalived master, agent backup.
    let seg = pair()?;
    let mut ka = seg.keepalived(0, &conf(150, "s3cr3t"))?;
    let (agent, agent_name) = seg.agent_named(1, &conf(100, "s3cr3t"), &[])?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    stays(&seg, 0, mdi(100) + MARGIN, "agent backup behind keepalived")?;
    assert!(!agent.lines().iter().any(|l| l.contains("IPSEC-AH")), "{:#?}", agent.lines());
    // The XDP program handed keepalived's adverts to the agent, visibly.
    let handed = seg.verdict_count(1, &agent_name, "ah_to_agent")?;
    assert!(handed >= 3, "ah_to_agent counted {handed}");
    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    drop((ka, agent, seg));

    // Agent master, keepalived backup.
    let seg = pair()?;
    let mut agent = seg.agent(0, &conf(150, "s3cr3t"), &[])?;
    let ka = seg.keepalived(1, &conf(100, "s3cr3t"))?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    stays(&seg, 0, mdi(100) + MARGIN, "keepalived backup behind the agent")?;
    assert!(
        !ka.lines().iter().any(|l| l.contains("Entering MASTER") || l.contains("IPSEC-AH")),
        "keepalived refused the agent's adverts: {:#?}",
        ka.lines()
    );
    agent.signal(Signal::SIGTERM)?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

/// keepalived has been master for a while (its sequence numbers are up
/// to ~8) when the agent, with a higher priority, starts: it learns the
/// number from keepalived's adverts as a backup, preempts, and continues
/// above it, so keepalived accepts its first advert and steps down at once.
/// An agent counting from 1 would be refused as a replay ("already
/// processed") and both would hold the VIP for seconds.
#[test]
fn the_agent_preempts_keepalived_continuing_its_sequence_numbers() -> Result<()> {
    let name = "the_agent_preempts_keepalived_continuing_its_sequence_numbers";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let seg = pair()?;
    let ka = seg.keepalived(1, &conf(100, "s3cr3t"))?;
    seg.wait_holders(VIP, &[1], mdi(100) + MARGIN)?;
    std::thread::sleep(Duration::from_secs(8));
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    let agent = seg.agent(0, &conf(150, "s3cr3t"), &[])?;
    let took = seg.wait_holders(VIP, &[0], mdi(150) + Duration::from_secs(3))?;
    eprintln!("agent preempted keepalived after {took:?}");
    stays(&seg, 0, Duration::from_secs(2), "after the preemption")?;
    watch.finish()?.assert_single_holder_but_handovers(Duration::from_millis(500))?;
    assert!(
        !ka.lines().iter().any(|l| l.contains("already processed") || l.contains("IPSEC-AH : invalid")),
        "keepalived refused the agent's adverts: {:#?}",
        ka.lines()
    );
    drop(agent);
    Ok(())
}

/// An AH advert of VRID 14 from 192.0.2.1 to the group, as an Ethernet
/// frame, keyed with `pass`, with sequence number `seq`.
fn forged(priority: u8, pass: &[u8], seq: u32) -> Vec<u8> {
    use vrrp_common::Centis;
    use vrrp_common::wire::ah;
    use vrrp_common::wire::vrrp::{GROUP_V4, TxIp};
    use vrrp_common::wire::{AddrList, Auth, Repr, Version};
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let vips = [VIP.parse::<Ipv4Addr>().expect("VIP")];
    let r = Repr {
        version: Version::V2,
        vrid: 14,
        priority,
        interval: Centis(100),
        auth: Auth::Ah,
        addrs: AddrList::V4(&vips),
    };
    let tx = TxIp { src: src.into(), dst: GROUP_V4.into(), v3_checksum_as_v2: false };
    let mut pkt = vec![0u8; 128];
    let n = ah::emit_ipv4(&mut pkt, src, GROUP_V4, seq as u16, seq, &ah::key(pass), false, |b| {
        r.emit(b, &tx).ok()
    })
    .expect("fits");
    let mut f = vec![0x01, 0, 0x5e, 0, 0, 0x12, 2, 0, 0, 0, 0, 0x99, 0x08, 0x00];
    f.extend_from_slice(&pkt[..n]);
    f
}

/// The master is gone and a stranger floods adverts in its name, priority
/// 255, with the wrong key: they pass the kernel's structural checks but
/// not the agent's ICV, so they neither hold the backup down nor count as
/// a master; it takes over after Master_Down_Interval as if the link were
/// silent, and counts the forgeries. The same stranger replaying a real
/// advert (the right key, an old sequence number) is refused too.
#[test]
fn forged_and_replayed_ah_adverts_do_not_hold_a_backup_down() -> Result<()> {
    let name = "forged_and_replayed_ah_adverts_do_not_hold_a_backup_down";
    if !require_root(name) {
        return Ok(());
    }
    let seg = pair()?;
    let (agent, agent_name) = seg.agent_named(1, &conf(100, "s3cr3t"), &[])?;
    // One authentic advert with sequence number 1000 first: the replays
    // below (1..) are all under it.
    let tx = seg.nodes[0].ns.run_in(|| vrrp_tests::frame::FrameSocket::open("eth0"))?;
    tx.send(&forged(200, b"s3cr3t", 1000))?;
    let start = Instant::now();
    let mut seq = 1;
    while start.elapsed() < mdi(100) + MARGIN && !seg.holds(1, VIP)? {
        tx.send(&forged(255, b"wrong", 5000 + seq))?;
        tx.send(&forged(255, b"s3cr3t", seq))?;
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = start.elapsed();
    assert!(seg.holds(1, VIP)?, "the forged or replayed adverts held the backup down: {:#?}", agent.lines());
    eprintln!("took over after {took:?} under forged adverts");
    let status = std::fs::read_to_string(format!("/run/vrrp-agent/{agent_name}.json"))?;
    let v: serde_json::Value = serde_json::from_str(&status)?;
    let failures = v["instances"][0]["stats"]["auth_failure"].as_u64().context("auth_failure")?;
    assert!(
        failures >= 2 * (u64::from(seq) - 1) - 2,
        "auth_failure {failures} after {} forged adverts",
        2 * (seq - 1)
    );
    assert!(agent.lines().iter().any(|l| l.contains("already processed")), "{:#?}", agent.lines());
    Ok(())
}

/// Unicast AH beside keepalived, both ways: the ICV then leaves the TTL
/// out, on both sides.
#[test]
fn keepalived_and_agent_unicast_ah_in_both_roles() -> Result<()> {
    let name = "keepalived_and_agent_unicast_ah_in_both_roles";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let (a1, a2) = ("192.0.2.1", "192.0.2.2");
    let seg = pair()?;
    let mut ka = seg.keepalived(0, &unicast_conf(150, "s3cr3t", a1, a2))?;
    let agent = seg.agent(1, &unicast_conf(100, "s3cr3t", a2, a1), &[])?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    stays(&seg, 0, mdi(100) + MARGIN, "unicast: agent backup behind keepalived")?;
    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    drop((ka, agent, seg));

    let seg = pair()?;
    let mut agent = seg.agent(0, &unicast_conf(150, "s3cr3t", a1, a2), &[])?;
    let ka = seg.keepalived(1, &unicast_conf(100, "s3cr3t", a2, a1))?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    stays(&seg, 0, mdi(100) + MARGIN, "unicast: keepalived backup behind the agent")?;
    assert!(!ka.lines().iter().any(|l| l.contains("IPSEC-AH")), "{:#?}", ka.lines());
    agent.signal(Signal::SIGTERM)?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    agent.stop(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn a_wrong_auth_pass_is_refused_on_both_sides() -> Result<()> {
    let name = "a_wrong_auth_pass_is_refused_on_both_sides";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let seg = pair()?;
    let ka = seg.keepalived(0, &conf(150, "s3cr3t"))?;
    let (agent, agent_name) = seg.agent_named(1, &conf(100, "other"), &[])?;
    // Neither authenticates the other: both become master, as two
    // keepalived with different passwords do.
    seg.wait_holders(VIP, &[0, 1], mdi(100) + MARGIN)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let failures = loop {
        let status = std::fs::read_to_string(format!("/run/vrrp-agent/{agent_name}.json"))?;
        let v: serde_json::Value = serde_json::from_str(&status)?;
        let n = v["instances"][0]["stats"]["auth_failure"].as_u64().context("auth_failure")?;
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(failures > 0, "the agent counted no authentication failure");
    assert!(
        agent.lines().iter().any(|l| l.contains("IPSEC-AH : invalid")),
        "the agent did not log the failure: {:#?}",
        agent.lines()
    );
    assert!(
        ka.lines().iter().any(|l| l.contains("IPSEC-AH : invalid")),
        "keepalived accepted the agent's adverts with another key: {:#?}",
        ka.lines()
    );
    Ok(())
}

/// A pcap file of Ethernet `frames`.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    // Magic, version 2.4, zone, accuracy, snap length, Ethernet.
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for f in frames {
        for w in [0u32, 0, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn tshark_dissects_the_agents_ah_adverts() -> Result<()> {
    let name = "tshark_dissects_the_agents_ah_adverts";
    if !require_root(name) || !require_tool(name, "tshark") {
        return Ok(());
    }
    let seg = pair()?;
    let cap = Capture::start(&seg.nodes[1].ns, "eth0")?;
    let _agent = seg.agent(0, &conf(150, "s3cr3t"), &[])?;
    seg.wait_holders(VIP, &[0], mdi(150) + MARGIN)?;
    let src = Ipv4Addr::new(192, 0, 2, 1).octets();
    // A master sends one advert a second: three more after it took over.
    let mut waited = 0;
    let frames = loop {
        std::thread::sleep(Duration::from_millis(500));
        waited += 1;
        if waited == 7 {
            break cap.stop();
        }
    };
    let ah: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| {
            f.data.len() >= 34 && f.data[12..14] == [8, 0] && f.data[23] == 51 && f.data[26..30] == src
        })
        .map(|f| f.data.clone())
        .collect();
    assert!(ah.len() >= 2, "no AH adverts captured ({} frames)", frames.len());
    let path = seg.file("ah.pcap", "")?;
    std::fs::write(&path, pcap(&ah))?;
    let out = Command::new("tshark")
        .args(["-r", path.to_str().context("path")?, "-T", "fields", "-E", "separator=|"])
        .args(["-e", "ah.spi", "-e", "ah.sequence", "-e", "vrrp.virt_rtr_id", "-e", "vrrp.prio"])
        .args(["-e", "vrrp.auth_type", "-e", "vrrp.ip_addr", "-e", "vrrp.checksum.status"])
        .output()
        .context("running tshark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), ah.len(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut last_seq = 0u64;
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f.len(), 7, "{l}");
        // SPI = the source address, 192.0.2.1.
        assert_eq!(u64::from_str_radix(f[0].trim_start_matches("0x"), 16)?, 0xc000_0201, "{l}");
        let seq: u64 = f[1].parse()?;
        assert!(seq > last_seq, "sequence numbers rise: {text}");
        last_seq = seq;
        assert_eq!(&f[2..], ["14", "150", "2", VIP, "1"], "{l}");
    }
    Ok(())
}
