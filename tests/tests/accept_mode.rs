//! Accept Mode (RFC 5798 6.1, 6.4.3; keepalived's `accept` / `no_accept`)
//! and keepalived's `vrrp_strict`, with real agents (and keepalived 2.2.7)
//! in namespaces: a third namespace pings and sends UDP to the VIP, which
//! the master answers under `accept` and drops (counted) under
//! `no_accept`, while the VIP stays resolvable and the adverts flow.

use std::net::UdpSocket;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use vrrp_tests::capture::{self, Capture, Frame};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::{Segment, agent_bin};
use vrrp_tests::netns::{Netns, unique};
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.100";
const MARGIN: Duration = Duration::from_millis(1000);
const UDP_PORT: u16 = 7000;

/// Two VRRP nodes (192.0.2.1, .2) and a client (.3) on one segment.
fn three() -> Result<Segment> {
    Segment::new(&["192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"])
}

/// A v3 instance at 0.5 s adverts; `mode` is `accept`, `no_accept` or "".
fn conf(priority: u8, mode: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority {priority}
  version 3
  advert_int 0.5
  {mode}
  virtual_ipaddress {{
    {VIP}/24
  }}
}}
"
    )
}

/// One ping from `ns` to `addr`: answered or not (within ping's 1 s).
fn ping(ns: &Netns, addr: &str) -> Result<bool> {
    let st = ns
        .command("ping")
        .args(["-c", "1", "-W", "1", "-n", "-q", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("ping")?;
    Ok(st.success())
}

/// `vrrp-agent stats --name NAME` in `ns`: the no_accept count of `verdict`.
fn no_accept_count(ns: &Netns, name: &str, verdict: &str) -> Result<u64> {
    let bin = agent_bin()?;
    let out = ns.command(bin.to_str().context("agent path")?).args(["stats", "--name", name]).output()?;
    if !out.status.success() {
        bail!("vrrp-agent stats: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("no_accept ") && l.contains(&format!(" verdict={verdict} ")))
        .filter_map(|l| l.rsplit("packets=").next()?.parse::<u64>().ok())
        .sum())
}

/// `vrrp-agent status --name NAME --json` in `ns`.
fn status_json(ns: &Netns, name: &str) -> Result<String> {
    let bin = agent_bin()?;
    let out = ns
        .command(bin.to_str().context("agent path")?)
        .args(["status", "--name", name, "--json"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The MAC `ns` has for `addr` on eth0, if resolved (ARP answered).
fn neighbour(ns: &Netns, addr: &str) -> Result<Option<[u8; 6]>> {
    let out = ns.ip(&["neigh", "show", addr, "dev", "eth0"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(m) = text.split_whitespace().skip_while(|w| *w != "lladdr").nth(1) else { return Ok(None) };
    let mut mac = [0u8; 6];
    for (i, p) in m.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(p, 16).context("mac")?;
    }
    Ok(Some(mac))
}

/// A UDP socket in `ns` (sockets keep their namespace on any thread).
fn udp(ns: &Netns, port: u16) -> Result<UdpSocket> {
    let s = ns.run_in(move || Ok(UdpSocket::bind(("0.0.0.0", port))?))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Send datagrams from `client` to the VIP until `server` gets one or
/// `limit` passes; whether it did.
fn udp_reaches(client: &UdpSocket, server: &UdpSocket, limit: Duration) -> Result<bool> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    while start.elapsed() < limit {
        client.send_to(b"hello", (VIP, UDP_PORT))?;
        std::thread::sleep(Duration::from_millis(20));
        if server.recv_from(&mut buf).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[test]
fn accept_mode_lets_a_master_answer_for_its_vip() -> Result<()> {
    let name = "accept_mode_lets_a_master_answer_for_its_vip";
    if !require_root(name) || !require_tool(name, "ping") {
        return Ok(());
    }
    let seg = three()?;
    let (mut a0, name0) = seg.agent_named(0, &conf(150, "accept"), &[])?;
    let mut a1 = seg.agent(1, &conf(100, "accept"), &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2) + MARGIN)?;
    let server = udp(&seg.nodes[0].ns, UDP_PORT)?;
    let client = udp(&seg.nodes[2].ns, 0)?;
    assert!(ping(&seg.nodes[2].ns, VIP)?, "the master answers a ping to its VIP under accept");
    assert!(udp_reaches(&client, &server, Duration::from_secs(2))?, "UDP to the VIP reaches the master");
    assert_eq!(no_accept_count(&seg.nodes[0].ns, &name0, "dropped_icmp")?, 0);
    let st = status_json(&seg.nodes[0].ns, &name0)?;
    assert!(st.contains("\"accept\": 1"), "{st}");
    a0.stop(Duration::from_secs(5))?;
    a1.stop(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn no_accept_drops_and_counts_packets_to_the_vip_on_the_master_only() -> Result<()> {
    let name = "no_accept_drops_and_counts_packets_to_the_vip_on_the_master_only";
    if !require_root(name) || !require_tool(name, "ping") {
        return Ok(());
    }
    let seg = three()?;
    let (mut a0, name0) = seg.agent_named(0, &conf(150, "no_accept"), &[])?;
    let (mut a1, name1) = seg.agent_named(1, &conf(100, "no_accept"), &[])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(2) + MARGIN)?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    let client_ns = &seg.nodes[2].ns;
    let server = udp(&seg.nodes[0].ns, UDP_PORT)?;
    let client = udp(client_ns, 0)?;

    assert!(!ping(client_ns, VIP)?, "the master must not answer a ping to its VIP under no_accept");
    assert!(no_accept_count(&seg.nodes[0].ns, &name0, "dropped_icmp")? >= 1, "the drop is counted");
    let st = status_json(&seg.nodes[0].ns, &name0)?;
    assert!(st.contains("\"accept\": 0") && st.contains("\"strict_mode\": 0"), "{st}");
    // The master's own address is not a VIP: answered.
    assert!(ping(client_ns, "192.0.2.1")?, "the master's own address still answers");
    // The VIP stays resolvable: ARP is not IP, the master answers it.
    let mac0 = capture::mac(&seg.nodes[0].ns, "eth0")?;
    assert_eq!(neighbour(client_ns, VIP)?, Some(mac0), "the VIP resolves to the master");
    // UDP: wait for the drop counter (the condition), then nothing arrived.
    client.send_to(b"hello", (VIP, UDP_PORT))?;
    wait_until(
        Duration::from_secs(2),
        || Ok(no_accept_count(&seg.nodes[0].ns, &name0, "dropped_udp")? >= 1),
    )?;
    let mut buf = [0u8; 64];
    assert!(server.recv_from(&mut buf).is_err(), "a datagram to the VIP reached the master under no_accept");

    // The adverts still flow: the backup never took over.
    assert!(!a1.lines().iter().any(|l| l.contains("Entering MASTER")), "{:#?}", a1.lines());
    assert_eq!(no_accept_count(&seg.nodes[1].ns, &name1, "dropped_icmp")?, 0, "the backup drops nothing");

    // Failover: the new master drops, the old one's rows go with it.
    a0.signal(Signal::SIGTERM)?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(1) + MARGIN)?;
    a0.stop(Duration::from_secs(5))?;
    assert!(!ping(client_ns, VIP)?, "the new master must not answer either");
    assert!(no_accept_count(&seg.nodes[1].ns, &name1, "dropped_icmp")? >= 1);
    watch.finish()?.assert_single_holder()?;
    a1.stop(Duration::from_secs(5))?;
    Ok(())
}

/// IPv6: the master drops a ping to its VIP, while neighbour discovery
/// (to the solicited-node group, or unicast to the VIP, which keepalived's
/// rules let through and the program passes) still resolves it.
#[test]
fn no_accept_on_ipv6_drops_pings_and_keeps_the_vip_resolvable() -> Result<()> {
    let name = "no_accept_on_ipv6_drops_pings_and_keeps_the_vip_resolvable";
    if !require_root(name) || !require_tool(name, "ping") {
        return Ok(());
    }
    const VIP6: &str = "2001:db8::100";
    let seg = Segment::new(&["2001:db8::1/64", "2001:db8::2/64", "2001:db8::3/64"])?;
    seg.wait_ipv6_ready()?;
    let conf6 = format!(
        "vrrp_instance VI_6 {{
  interface eth0
  virtual_router_id 66
  priority 150
  advert_int 0.1
  version 3
  no_accept
  virtual_ipaddress {{
    {VIP6}/64
  }}
}}
"
    );
    let (mut a0, name0) = seg.agent_named(0, &conf6, &[])?;
    seg.wait_holders(VIP6, &[0], Duration::from_secs(1) + MARGIN)?;
    seg.wait_ipv6_ready()?;
    let client_ns = &seg.nodes[2].ns;
    assert!(ping(client_ns, "2001:db8::1")?, "the master's own address answers");
    assert!(!ping(client_ns, VIP6)?, "the master must not answer a ping to its IPv6 VIP under no_accept");
    assert!(no_accept_count(&seg.nodes[0].ns, &name0, "dropped_icmp")? >= 1, "the drop is counted");
    let mac0 = capture::mac(&seg.nodes[0].ns, "eth0")?;
    assert_eq!(neighbour(client_ns, VIP6)?, Some(mac0), "the IPv6 VIP resolves to the master");
    a0.stop(Duration::from_secs(5))?;
    Ok(())
}

/// Raw sockets have nothing to drop packets with: the agent refuses a
/// non-accept instance there with an error and exit status 1 instead of
/// running something other than what the file says.
#[test]
fn no_accept_is_refused_on_raw_sockets() -> Result<()> {
    if !require_root("no_accept_is_refused_on_raw_sockets") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.1/24"])?;
    let path = seg.file("na.conf", &conf(100, "no_accept"))?;
    let bin = agent_bin()?;
    let out = seg.nodes[0]
        .ns
        .command(bin.to_str().context("agent path")?)
        .args(["run", "--receive", "socket", "--name", &unique("na"), "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("instance VI_1: no_accept needs the XDP receive path"), "{text}");
    assert!(text.contains("--receive socket"), "{text}");
    assert!(!seg.holds(0, VIP)?);
    // The same with `accept` runs on raw sockets.
    let mut a = seg.agent(0, &conf(100, "accept"), &["--receive", "socket"])?;
    a.stop(Duration::from_secs(5))?;
    Ok(())
}

/// keepalived's default keepalived.conf (VRRP part, documentation
/// addresses; tests/fixtures/strict): `vrrp_strict` drops its PASS
/// authentication and its `state MASTER`, and implies no_accept.
const DEFAULT_CONF: &str = include_str!("../fixtures/strict/keepalived.conf");
const STRICT_VIP: &str = "192.0.2.16";

/// The VRRP messages (IP payload) of IPv4 adverts from `src` with a
/// non-zero priority, with their TTL and destination.
fn adverts(frames: &[Frame], src: [u8; 4]) -> Vec<(u8, [u8; 4], Vec<u8>)> {
    frames
        .iter()
        .filter(|f| capture::is_advert_from(f, src))
        .filter_map(|f| {
            let d = &f.data;
            let ihl = usize::from(d[14] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([d[16], d[17]]));
            let msg = d.get(14 + ihl..14 + total)?.to_vec();
            let dst: [u8; 4] = d[30..34].try_into().ok()?;
            (msg.get(2) != Some(&0)).then_some((d[22], dst, msg))
        })
        .collect()
}

#[test]
fn keepalived_default_config_under_vrrp_strict_mixed_pair() -> Result<()> {
    let name = "keepalived_default_config_under_vrrp_strict_mixed_pair";
    if !require_root(name) || !require_tool(name, "keepalived") || !require_tool(name, "ping") {
        return Ok(());
    }
    // Priority 100 both, v2 at 1 s: Master_Down_Interval 3 + 156/256 s.
    let mdi = Duration::from_millis(3610);
    let skew = Duration::from_millis(610);
    let seg = three()?;
    let client_ns = &seg.nodes[2].ns;
    let cap = Capture::start(client_ns, "eth0")?;

    // keepalived first: both start BACKUP (strict mode dropped `state
    // MASTER`), keepalived becomes master, the agent (equal priority, no
    // preemption at equal priority) stays backup.
    let mut ka = seg.keepalived(0, DEFAULT_CONF)?;
    seg.wait_holders(STRICT_VIP, &[0], mdi + MARGIN)?;
    let (mut agent, agent_name) = seg.agent_named(1, DEFAULT_CONF, &[])?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], STRICT_VIP)?;
    std::thread::sleep(mdi + MARGIN);
    assert_eq!(seg.holders(STRICT_VIP)?, vec![0]);
    assert!(!agent.lines().iter().any(|l| l.contains("Entering MASTER")), "{:#?}", agent.lines());
    // keepalived's no_accept (its nftables rule): no answer, still resolvable.
    assert!(!ping(client_ns, STRICT_VIP)?, "keepalived answered for its VIP under vrrp_strict");
    assert_eq!(neighbour(client_ns, STRICT_VIP)?, Some(capture::mac(&seg.nodes[0].ns, "eth0")?));

    // keepalived resigns: the agent takes over after its Skew_Time.
    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(STRICT_VIP, &[1], skew + MARGIN)?;
    assert!(!ping(client_ns, STRICT_VIP)?, "the agent answered for its VIP under vrrp_strict");
    assert!(no_accept_count(&seg.nodes[1].ns, &agent_name, "dropped_icmp")? >= 1);
    let mac1 = capture::mac(&seg.nodes[1].ns, "eth0")?;
    wait_until(Duration::from_secs(5), || Ok(neighbour(client_ns, STRICT_VIP)? == Some(mac1)))
        .context("the VIP resolves to the agent")?;

    // keepalived back: it stays backup beside the agent's adverts.
    let ka = seg.keepalived(0, DEFAULT_CONF)?;
    std::thread::sleep(mdi + MARGIN);
    assert_eq!(seg.holders(STRICT_VIP)?, vec![1]);
    let ka_lines = ka.lines();
    assert!(!ka_lines.iter().any(|l| l.contains("Entering MASTER")), "{ka_lines:#?}");
    // The agent resigns: keepalived takes over.
    agent.signal(Signal::SIGTERM)?;
    seg.wait_holders(STRICT_VIP, &[0], skew + MARGIN)?;
    agent.stop(Duration::from_secs(5))?;
    watch.finish()?.assert_single_holder()?;
    drop(ka);

    // On the wire: keepalived's adverts and ours are the same bytes (v2,
    // no authentication, the three VIPs, the same checksum), TTL 255 to
    // 224.0.0.18.
    let frames = cap.stop();
    let theirs = adverts(&frames, [192, 0, 2, 1]);
    let ours = adverts(&frames, [192, 0, 2, 2]);
    assert!(!theirs.is_empty() && !ours.is_empty(), "adverts from both: {} and {}", theirs.len(), ours.len());
    let first = &theirs[0];
    assert_eq!(first.2[0], 0x21, "VRRPv2 advertisement");
    assert_eq!(first.2[4], 0, "strict mode sends no authentication");
    for a in theirs.iter().chain(&ours) {
        assert_eq!(a, first, "keepalived's {first:02x?} against {a:02x?}");
    }
    assert_eq!((first.0, first.1), (255, [224, 0, 0, 18]));
    Ok(())
}
