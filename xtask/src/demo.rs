//! `cargo xtask demo`: two nodes on a bridge in network namespaces, the
//! agent on each with its XDP fast path, crafted adverts between them, and
//! what the kernel recorded, read back through bpftool.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vrrp_tests::process::Process;
use vrrp_tests::{Netns, advert, netns};

use crate::{prereqs, sh};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VRID: u8 = 51;
const ADVERTS: usize = 5;
const BAD_TTL: usize = 3;

struct Node {
    label: &'static str,
    ns: Netns,
    addr: &'static str,
    priority: u8,
}

pub fn run() -> Result<()> {
    crate::build(true)?;
    prereqs::ensure(&prereqs::Need::all())?;
    if !prereqs::is_root() {
        bail!("the demo creates network namespaces and attaches XDP: run it as root");
    }
    let agent = sh::root().join("target/release/vrrp-agent");
    sh::step("lab: namespaces node-a and node-b on a bridge in a third one (lan)");
    let lan = Netns::new("vdl")?;
    lan.bridge("br0")?;
    let nodes = [
        Node { label: "node-a", ns: Netns::new("vda")?, addr: "192.0.2.1/24", priority: 150 },
        Node { label: "node-b", ns: Netns::new("vdb")?, addr: "192.0.2.2/24", priority: 100 },
    ];
    for (i, n) in nodes.iter().enumerate() {
        lan.plug("br0", &format!("p{i}"), &n.ns, "eth0")?;
        n.ns.ip(&["addr", "add", n.addr, "dev", "eth0"])?;
        println!("{}: eth0 {} (namespace {})", n.label, n.addr, n.ns.name());
    }

    sh::step("starting vrrp-agent on each node (XDP on eth0, maps pinned)");
    let pin_root = PathBuf::from("/sys/fs/bpf/vrrp-agent");
    let names: Vec<String> = nodes.iter().map(|n| netns::unique(&format!("demo-{}-", n.label))).collect();
    let mut agents = Vec::new();
    for (n, name) in nodes.iter().zip(&names) {
        let mut cmd = n.ns.command(agent.to_str().context("agent path")?);
        cmd.args(["watch", "-i", "eth0", "--name", name, "--report-interval", "0.2"]);
        cmd.args(["--vrid", &VRID.to_string(), "--auth-pass", "secret", "--advert-int", "1"]);
        let mut p = Process::spawn(n.label, &mut cmd, true)?;
        p.wait_for_line("maps pinned", Duration::from_secs(15))?;
        agents.push(p);
    }

    sh::step(&format!(
        "each node sends {ADVERTS} VRRPv2 adverts (VRID {VRID}, VIP {VIP}, PASS auth); node-b also {BAD_TTL} with TTL 64"
    ));
    for n in &nodes {
        let src: Ipv4Addr = n.addr.split('/').next().unwrap_or_default().parse().context("node address")?;
        let msg = advert::v2(VRID, n.priority, 1, &[VIP], Some("secret"), src, advert::VRRP_GROUP_V4)?;
        let bad = msg.clone();
        let with_bad = n.label == "node-b";
        n.ns.run_in(move || {
            let good = advert::socket_v4("eth0", 255)?;
            let ttl64 = advert::socket_v4("eth0", 64)?;
            for _ in 0..ADVERTS {
                advert::send(&good, &msg, advert::VRRP_GROUP_V4)?;
            }
            if with_bad {
                for _ in 0..BAD_TTL {
                    advert::send(&ttl64, &bad, advert::VRRP_GROUP_V4)?;
                }
            }
            Ok(())
        })?;
    }
    // Each agent reports the adverts of the other node.
    agents[0].wait_for_line(&format!("accepted: {ADVERTS} "), Duration::from_secs(10))?;
    agents[0].wait_for_line(&format!("bad_ttl: {BAD_TTL} "), Duration::from_secs(10))?;
    agents[1].wait_for_line(&format!("accepted: {ADVERTS} "), Duration::from_secs(10))?;

    for (n, name) in nodes.iter().zip(&names) {
        let dir = pin_root.join(name);
        sh::step(&format!("{}: bpftool map dump pinned {}/VRRP_PEERS", n.label, dir.display()));
        sh::run(Command::new("bpftool").args(["map", "dump", "pinned"]).arg(dir.join("VRRP_PEERS")))?;
    }
    let dir = pin_root.join(&names[0]);
    sh::step(&format!("node-a: bpftool map dump pinned {}/VRRP_COUNTERS", dir.display()));
    sh::run(Command::new("bpftool").args(["map", "dump", "pinned"]).arg(dir.join("VRRP_COUNTERS")))?;

    sh::step("stopping the agents (SIGTERM): XDP detached, pins removed");
    for (mut p, name) in agents.into_iter().zip(&names) {
        let status = p.stop(Duration::from_secs(10))?;
        if !status.success() {
            bail!("agent {name} exited with {status}");
        }
        let dir = pin_root.join(name);
        if Path::new(&dir).exists() {
            bail!("{} still exists after the agent stopped", dir.display());
        }
    }
    println!(
        "\ndemo done: both agents attached XDP, recorded each other as VRRP peers in the kernel \
         and dropped the TTL-64 adverts.\nThe state machine, VIP handling and failover are not in \
         this build yet; `vrrp-agent watch` is the fast path on its own."
    );
    Ok(())
}
