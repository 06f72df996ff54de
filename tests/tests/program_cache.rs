//! The verified-program cache (vrrp-agent/src/datapath/cache.rs): a
//! restarted agent reuses the XDP program and maps it verified before,
//! emptied, and a cache entry whose maps are not that program's own is
//! refused and replaced by a fresh load.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vrrp_tests::holders::HolderWatch;
use vrrp_tests::lab::Segment;
use vrrp_tests::netns;
use vrrp_tests::privilege::{require_root, require_tool};
use vrrp_tests::process::Process;

const VIP: &str = "192.0.2.131";
const REUSED: &str = "reused the verified XDP program";

fn conf(priority: u8, me: &str, peer: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 56\n  priority {priority}\n  advert_int 0.1\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn has_xdp(seg: &Segment, i: usize) -> Result<bool> {
    let out = seg.nodes[i].ns.ip(&["link", "show", "dev", "eth0"])?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("prog/xdp"))
}

/// The cache entries (one directory per key) under an agent's pins.
fn entries(pins: &Path) -> Result<Vec<PathBuf>> {
    let dir = pins.join("cache");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        out.push(e?.path());
    }
    Ok(out)
}

fn bpftool(args: &[&str]) -> Result<std::process::Output> {
    Command::new("bpftool").args(args).output().context("running bpftool")
}

/// `n` bytes of `b`, as bpftool's `hex` arguments.
fn hex(b: u8, n: usize) -> Vec<String> {
    (0..n).map(|_| format!("{b:02x}")).collect()
}

fn update(map: &Path, key: &[String], value: &[String]) -> Result<()> {
    let path = map.to_str().context("path")?;
    let mut args = vec!["map", "update", "pinned", path, "key", "hex"];
    args.extend(key.iter().map(String::as_str));
    args.extend(["value", "hex"]);
    args.extend(value.iter().map(String::as_str));
    let out = bpftool(&args)?;
    if !out.status.success() {
        bail!("bpftool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn has_key(map: &Path, key: &[String]) -> Result<bool> {
    let path = map.to_str().context("path")?;
    let mut args = vec!["map", "lookup", "pinned", path, "key", "hex"];
    args.extend(key.iter().map(String::as_str));
    Ok(bpftool(&args)?.status.success())
}

/// Holders of the VIP stay exactly `want` for `span`.
fn holds_for(seg: &Segment, want: &[usize], span: Duration) -> Result<()> {
    let until = Instant::now() + span;
    while Instant::now() < until {
        let h = seg.holders(VIP)?;
        if h != want {
            bail!("holders {h:?}, want {want:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A master on node 1 and, on node 0, the first start of a backup agent
/// with a name of its own (so its cache starts empty), once the master
/// holds the VIP.
struct FirstStart {
    seg: Segment,
    name: String,
    pins: PinDir,
    master: Process,
    backup_conf: String,
    first: Process,
}

fn first_start() -> Result<FirstStart> {
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let name = netns::unique("pc");
    let pins = PinDir(PathBuf::from("/sys/fs/bpf/vrrp-agent").join(&name));
    let master = seg.agent(1, &conf(150, "192.0.2.52", "192.0.2.20"), &[])?;
    let backup_conf = conf(100, "192.0.2.20", "192.0.2.52");
    let first = seg.agent_as(0, &backup_conf, &name, &["-l", "debug"])?;
    seg.wait_holders(VIP, &[1], Duration::from_secs(5))?;
    Ok(FirstStart { seg, name, pins, master, backup_conf, first })
}

#[test]
fn a_restarted_agent_reuses_its_verified_program_with_its_maps_emptied() -> Result<()> {
    let t = "a_restarted_agent_reuses_its_verified_program_with_its_maps_emptied";
    if !require_root(t) || !require_tool(t, "bpftool") {
        return Ok(());
    }
    let FirstStart { seg, name, pins, master: _master, backup_conf, mut first } = first_start()?;
    assert!(!first.lines().iter().any(|l| l.contains(REUSED)), "nothing to reuse at the first start");
    let status = first.stop(Duration::from_secs(10))?;
    assert!(status.success(), "clean stop: {status}");
    // A clean stop detaches; only the cache stays, with the program.
    assert!(!has_xdp(&seg, 0)?, "the program stayed attached after a clean stop");
    assert!(!pins.0.join("link_eth0").exists(), "the link stayed pinned after a clean stop");
    let cached = entries(&pins.0)?;
    assert_eq!(cached.len(), 1, "one cache entry: {cached:?}");
    let entry = cached[0].clone();
    assert!(entry.join("prog").exists(), "the program is cached");

    // What a previous run could have left in the maps: a peer record
    // (24-byte key and value) and an instance's configuration (8-byte
    // key, 20-byte value) that this configuration does not have.
    let stale_peer = hex(0xee, 24);
    let stale_inst = hex(0xee, 8);
    update(&entry.join("VRRP_PEERS"), &stale_peer, &hex(0x11, 24))?;
    update(&entry.join("VRRP_INSTANCES"), &stale_inst, &hex(0x11, 20))?;
    assert!(has_key(&entry.join("VRRP_PEERS"), &stale_peer)?, "the stale row was written");

    let mut again = seg.agent_as(0, &backup_conf, &name, &["-l", "debug"])?;
    assert!(
        again.lines().iter().any(|l| l.contains(REUSED)),
        "the restart did not reuse the program: {:#?}",
        again.lines()
    );
    assert!(!has_key(&entry.join("VRRP_PEERS"), &stale_peer)?, "a stale peer record survived the reuse");
    assert!(!has_key(&entry.join("VRRP_INSTANCES"), &stale_inst)?, "a stale instance survived the reuse");
    assert!(has_xdp(&seg, 0)?, "the reused program is not attached");
    // The reused program hears the master: the backup stays backup for
    // many Master_Down_Intervals (3 x 100 ms + skew, RFC 5798 6.1).
    holds_for(&seg, &[1], Duration::from_millis(1500))?;
    // And its events reach the agent: the master stops, the backup takes
    // over, one holder throughout.
    let watch = HolderWatch::start(&[&seg.nodes[0].ns, &seg.nodes[1].ns], VIP)?;
    drop(_master);
    seg.wait_holders(VIP, &[0], Duration::from_secs(5))?;
    watch.finish()?;
    let status = again.stop(Duration::from_secs(10))?;
    assert!(status.success(), "clean stop: {status}");
    assert!(!has_xdp(&seg, 0)?, "the reused program stayed attached after a clean stop");
    assert_eq!(entries(&pins.0)?, vec![entry], "the same entry stays cached");
    Ok(())
}

#[test]
fn a_cached_map_that_is_not_the_programs_own_is_refused() -> Result<()> {
    let t = "a_cached_map_that_is_not_the_programs_own_is_refused";
    if !require_root(t) || !require_tool(t, "bpftool") {
        return Ok(());
    }
    let FirstStart { seg, name, pins, master: _master, backup_conf, mut first } = first_start()?;
    first.stop(Duration::from_secs(10))?;
    let cached = entries(&pins.0)?;
    assert_eq!(cached.len(), 1, "one cache entry: {cached:?}");
    let peers = cached[0].join("VRRP_PEERS");
    // A map of the same name, type and sizes, but not the program's.
    std::fs::remove_file(&peers)?;
    let out = bpftool(&[
        "map",
        "create",
        peers.to_str().context("path")?,
        "type",
        "hash",
        "key",
        "24",
        "value",
        "24",
        "entries",
        "4096",
        "name",
        "VRRP_PEERS",
    ])?;
    assert!(out.status.success(), "bpftool map create: {}", String::from_utf8_lossy(&out.stderr));

    let mut again = seg.agent_as(0, &backup_conf, &name, &["-l", "debug"])?;
    let lines = again.lines();
    assert!(!lines.iter().any(|l| l.contains(REUSED)), "a foreign map was reused: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("not reusing the cached XDP program") && l.contains("not one of")),
        "no reason given: {lines:#?}"
    );
    // Loaded afresh, it works (hears the master) and is cached anew.
    holds_for(&seg, &[1], Duration::from_millis(1000))?;
    let cached = entries(&pins.0)?;
    assert_eq!(cached.len(), 1, "one cache entry: {cached:?}");
    let out = bpftool(&["map", "show", "pinned", cached[0].join("VRRP_PEERS").to_str().context("path")?])?;
    let prog = bpftool(&["prog", "show", "pinned", cached[0].join("prog").to_str().context("path")?])?;
    let map_id = String::from_utf8_lossy(&out.stdout).split(':').next().unwrap_or("").trim().to_owned();
    let prog_text = String::from_utf8_lossy(&prog.stdout).into_owned();
    let ids: Vec<&str> = prog_text
        .split_whitespace()
        .skip_while(|w| *w != "map_ids")
        .nth(1)
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&map_id.as_str()),
        "the new entry's VRRP_PEERS (id {map_id}) is the program's: {}",
        String::from_utf8_lossy(&prog.stdout)
    );
    again.stop(Duration::from_secs(10))?;
    Ok(())
}

/// Removes what a run left in bpffs (unpinning detaches and unloads).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
