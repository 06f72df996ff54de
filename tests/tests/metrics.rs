//! Prometheus metrics (`vrrp-agent run --metrics ADDR`) across a
//! preemption and a failover: each node's endpoint is scraped in its
//! namespace and the text parsed; the keepalived exporter's names and
//! labels are checked, states flip, counters only grow.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::Segment;
use vrrp_tests::netns::Netns;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::wait_until;

const VIP: &str = "192.0.2.170";
const ADDR: &str = "127.0.0.1:9650";

fn conf(priority: u8) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 71\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// One sample: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse the exposition text (no escapes in our label values).
fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').with_context(|| format!("no value: {line:?}"))?;
        let value: f64 = value.parse().with_context(|| format!("value of {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').with_context(|| format!("labels of {line:?}"))?;
                let mut m = BTreeMap::new();
                for kv in body.split("\",").filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once("=\"").with_context(|| format!("label {kv:?}"))?;
                    m.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (n, m)
            }
            None => (series, BTreeMap::new()),
        };
        out.push(Sample { name: name.to_owned(), labels, value });
    }
    Ok(out)
}

/// GET /metrics from inside `ns`.
fn scrape(ns: &Netns) -> Result<Vec<Sample>> {
    let text = ns.run_in(|| {
        let mut s = TcpStream::connect(ADDR).context("connecting to the metrics address")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        Ok(r)
    })?;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    if !head.starts_with("HTTP/1.0 200") {
        bail!("scrape answered {head:?}");
    }
    if !head.contains("application/openmetrics-text") {
        bail!("content type: {head:?}");
    }
    parse(body)
}

/// The value of `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Result<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .with_context(|| {
            format!("no {name}{want:?} among {:#?}", samples.iter().map(|s| &s.name).collect::<Vec<_>>())
        })
}

const INST: [(&str, &str); 3] = [("iname", "VI_1"), ("intf", "eth0"), ("vrid", "71")];

fn state(samples: &[Sample]) -> Result<f64> {
    value(
        samples,
        "keepalived_vrrp_state",
        &[("iname", "VI_1"), ("intf", "eth0"), ("vrid", "71"), ("ip_address", VIP)],
    )
}

#[test]
fn metrics_follow_a_preemption_and_a_failover() -> Result<()> {
    if !require_root("metrics_follow_a_preemption_and_a_failover") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.71/24", "192.0.2.72/24"])?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    // Node 1 (priority 100) first: alone, it becomes MASTER.
    let mut low = seg.agent(1, &conf(100), &["--metrics", ADDR])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(10))?;
    let m = scrape(&seg.nodes[1].ns)?;
    assert_eq!(state(&m)?, 2.0, "node 1 MASTER");
    assert_eq!(value(&m, "keepalived_up", &[])?, 1.0);
    assert_eq!(value(&m, "keepalived_become_master_total", &INST)?, 1.0);
    assert_eq!(value(&m, "vrrp_agent_base_priority", &INST)?, 100.0);
    assert_eq!(value(&m, "vrrp_agent_effective_priority", &INST)?, 100.0);
    let sent0 = value(&m, "keepalived_advertisements_sent_total", &INST)?;
    assert!(sent0 >= 1.0);

    // Node 0 (priority 150) preempts: node 1 flips to BACKUP (1).
    let mut high = seg.agent(0, &conf(150), &["--metrics", ADDR])?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(10))?;
    wait_until(Duration::from_secs(5), || Ok(state(&scrape(&seg.nodes[1].ns)?)? == 1.0))?;
    let m1 = scrape(&seg.nodes[1].ns)?;
    let m0 = scrape(&seg.nodes[0].ns)?;
    assert_eq!(state(&m0)?, 2.0, "node 0 MASTER");
    assert_eq!(value(&m1, "keepalived_release_master_total", &INST)?, 1.0);
    assert!(value(&m1, "keepalived_advertisements_sent_total", &INST)? >= sent0, "a counter went down");
    assert_eq!(
        value(&m1, "vrrp_agent_transitions_total", &[("iname", "VI_1"), ("state", "BACKUP")])?,
        2.0,
        "node 1: BACKUP at start and after the preemption"
    );
    // Node 1 hears node 0's adverts; its peer table has node 0 at 150.
    let heard = value(&m1, "keepalived_advertisements_received_total", &INST)?;
    assert!(heard >= 1.0, "node 1 heard no advert");
    assert_eq!(value(&m1, "vrrp_agent_peer_priority", &[("peer", "192.0.2.71")])?, 150.0);
    assert!(value(&m1, "vrrp_agent_peer_last_advert_age_seconds", &[("peer", "192.0.2.71")])? < 3.0);
    // The XDP program's counters, by verdict.
    assert!(
        value(&m1, "vrrp_agent_xdp_packets_total", &[("intf", "eth0"), ("verdict", "accepted")])? >= heard
    );
    // Adverts keep coming: the counter grows.
    wait_until(Duration::from_secs(5), || {
        Ok(value(&scrape(&seg.nodes[1].ns)?, "keepalived_advertisements_received_total", &INST)? > heard)
    })?;

    // Node 0 stops (resigns with priority 0): node 1 takes over at once.
    high.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(10))?;
    wait_until(Duration::from_secs(5), || Ok(state(&scrape(&seg.nodes[1].ns)?)? == 2.0))?;
    let m = scrape(&seg.nodes[1].ns)?;
    assert_eq!(value(&m, "keepalived_become_master_total", &INST)?, 2.0);
    assert!(value(&m, "keepalived_priority_zero_received_total", &INST)? >= 1.0);
    let takeover = value(&m, "vrrp_agent_last_takeover_seconds", &INST)?;
    println!("node 1's last takeover: {takeover} s");
    // A resignation is followed within Skew_Time (< 1 s here).
    assert!((0.0..2.0).contains(&takeover), "takeover {takeover} s after a priority-0 advert");
    low.stop(Duration::from_secs(10))?;
    watch.finish()?.assert_single_holder_but_handovers(Duration::from_millis(200))?;
    Ok(())
}

/// Mixed pair: keepalived 2.2.7 is the master, the agent its backup. The
/// agent's metrics describe keepalived as a peer, and its takeover when
/// keepalived stops (keepalived resigns with priority 0 too).
#[test]
fn metrics_of_a_backup_beside_keepalived() -> Result<()> {
    let name = "metrics_of_a_backup_beside_keepalived";
    if !require_root(name) || !require_tool(name, "keepalived") {
        return Ok(());
    }
    let seg = Segment::new(&["192.0.2.73/24", "192.0.2.74/24"])?;
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    let mut ka = seg.keepalived(0, &conf(150))?;
    seg.wait_holders(VIP, &[0], Duration::from_secs(10))?;
    let mut agent = seg.agent(1, &conf(100), &["--metrics", ADDR])?;
    wait_until(Duration::from_secs(5), || {
        Ok(value(&scrape(&seg.nodes[1].ns)?, "keepalived_advertisements_received_total", &INST)? >= 2.0)
    })?;
    let m = scrape(&seg.nodes[1].ns)?;
    assert_eq!(state(&m)?, 1.0, "the agent is BACKUP");
    assert_eq!(value(&m, "vrrp_agent_peer_priority", &[("peer", "192.0.2.73")])?, 150.0);
    assert_eq!(value(&m, "keepalived_become_master_total", &INST)?, 0.0);

    ka.stop(Duration::from_secs(10))?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(10))?;
    wait_until(Duration::from_secs(5), || Ok(state(&scrape(&seg.nodes[1].ns)?)? == 2.0))?;
    let m = scrape(&seg.nodes[1].ns)?;
    assert_eq!(value(&m, "keepalived_become_master_total", &INST)?, 1.0);
    assert_eq!(value(&m, "vrrp_agent_peer_priority", &[("peer", "192.0.2.73")])?, 0.0, "keepalived resigned");
    let takeover = value(&m, "vrrp_agent_last_takeover_seconds", &INST)?;
    println!("takeover after keepalived resigned: {takeover} s");
    assert!((0.0..2.0).contains(&takeover), "takeover {takeover} s after a priority-0 advert");
    agent.stop(Duration::from_secs(10))?;
    watch.finish()?.assert_single_holder()?;
    Ok(())
}
