//! The XDP program on a real veth in namespaces: a crafted advert crosses
//! the link, and the maps show what the kernel saw.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_agent::datapath::{AttachMode, Datapath};
use vrrp_common::Verdict;
use vrrp_common::maps::PeerKey;
use vrrp_tests::netns::run;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::{Netns, advert};

/// Poll `f` until it returns Some or `limit` passes (no fixed sleeps).
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("condition not met within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn xdp_records_a_crossing_advert_and_drops_a_bad_ttl() -> Result<()> {
    if !require_root("xdp_records_a_crossing_advert_and_drops_a_bad_ttl") {
        return Ok(());
    }
    let a = Netns::new("vta")?;
    let b = Netns::new("vtb")?;
    a.veth_to("va0", &b, "vb0")?;
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "va0"])?;
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "vb0"])?;
    let ifindex = b.ifindex("vb0")?;

    let dp = b.run_in(|| {
        let mut dp = Datapath::load(None)?;
        dp.attach("vb0", AttachMode::Auto)?;
        Ok(dp)
    })?;

    let good = advert::v2(
        51,
        150,
        1,
        &[Ipv4Addr::new(192, 0, 2, 100)],
        Some("secret"),
        Ipv4Addr::new(192, 0, 2, 1),
        advert::VRRP_GROUP_V4,
    )?;
    a.run_in(move || {
        let s255 = advert::socket_v4("va0", 255)?;
        let s64 = advert::socket_v4("va0", 64)?;
        for _ in 0..3 {
            advert::send(&s255, &good, advert::VRRP_GROUP_V4)?;
        }
        for _ in 0..2 {
            advert::send(&s64, &good, advert::VRRP_GROUP_V4)?;
        }
        Ok(())
    })?;

    let counts = wait_for(Duration::from_secs(5), || {
        let c = dp.counters()?;
        let acc = c.get(&(ifindex, Verdict::Accepted)).copied().unwrap_or(0);
        let ttl = c.get(&(ifindex, Verdict::BadTtl)).copied().unwrap_or(0);
        Ok((acc >= 3 && ttl >= 2).then_some(c))
    })?;
    assert_eq!(counts.get(&(ifindex, Verdict::Accepted)), Some(&3), "{counts:?}");
    assert_eq!(counts.get(&(ifindex, Verdict::BadTtl)), Some(&2), "{counts:?}");
    assert_eq!(counts.len(), 2, "no other verdicts expected: {counts:?}");

    let peers = dp.peers()?;
    assert_eq!(peers.len(), 1, "{peers:?}");
    let p = peers[0];
    assert_eq!(p.key, PeerKey::v4(ifindex, 51, [192, 0, 2, 1]));
    assert_eq!(p.state.priority, 150);
    assert_eq!(p.state.version, 2);
    assert_eq!(p.state.interval_cs, 100);
    assert_eq!(p.state.adverts, 3);
    assert!(p.state.last_seen_ns > 0);
    Ok(())
}

#[test]
fn bpftool_prints_typed_peer_fields() -> Result<()> {
    let name = "bpftool_prints_typed_peer_fields";
    if !require_root(name) || !require_tool(name, "bpftool") {
        return Ok(());
    }
    let a = Netns::new("vta")?;
    let b = Netns::new("vtb")?;
    a.veth_to("va0", &b, "vb0")?;
    a.ip(&["addr", "add", "198.51.100.1/24", "dev", "va0"])?;
    let pin_dir =
        std::path::PathBuf::from(format!("/sys/fs/bpf/vrrp-agent-test-{}", vrrp_tests::netns::unique("p")));
    vrrp_agent::bpffs::ensure(std::path::Path::new("/sys/fs/bpf"))?;
    let dir = pin_dir.clone();
    let dp = b.run_in(move || {
        let mut dp = Datapath::load(None)?;
        dp.attach("vb0", AttachMode::Auto)?;
        dp.pin_maps(&dir)?;
        Ok(dp)
    })?;
    let good = advert::v2(
        7,
        200,
        1,
        &[Ipv4Addr::new(198, 51, 100, 10)],
        None,
        Ipv4Addr::new(198, 51, 100, 1),
        advert::VRRP_GROUP_V4,
    )?;
    a.run_in(move || advert::send(&advert::socket_v4("va0", 255)?, &good, advert::VRRP_GROUP_V4))?;
    wait_for(Duration::from_secs(5), || Ok((!dp.peers()?.is_empty()).then_some(())))?;

    let pinned = pin_dir.join("VRRP_PEERS");
    let out = run(Command::new("bpftool").args(["-j", "map", "dump", "pinned"]).arg(&pinned))?;
    let text = String::from_utf8(out.stdout).context("bpftool output")?;
    // With BTF, bpftool names the fields; without it, it prints hex bytes.
    for field in ["\"ifindex\"", "\"vrid\":7", "\"priority\":200", "\"interval_cs\":100", "\"adverts\":1"] {
        assert!(text.contains(field), "bpftool output lacks {field}: {text}");
    }
    drop(dp);
    assert!(!pinned.exists(), "pins must be removed when the datapath is dropped");
    Ok(())
}
