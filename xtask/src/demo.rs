//! `cargo xtask demo`: the reference tutorial's two nodes in network
//! namespaces on a bridge, vrrp-agent on each with the tutorial's
//! keepalived.conf (addresses moved to 192.0.2.0/24), and the failovers
//! the tutorial walks through, timed against the protocol's own limits.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_tests::lab::Segment;

use crate::{prereqs, sh};

const VIP: &str = "192.0.2.130";

fn conf(state: &str, priority: u8, me: &str, peer: &str) -> String {
    format!(
        "vrrp_instance VI_1 {{ # as in the tutorial\n  state {state}\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 1\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  authentication {{\n    auth_type PASS\n    auth_pass e^Ho6HWa\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn holders(seg: &Segment) -> Result<String> {
    let h = seg.holders(VIP)?;
    Ok(if h.is_empty() {
        "nobody".into()
    } else {
        h.iter().map(|i| format!("node-{}", i + 1)).collect::<Vec<_>>().join(" and ")
    })
}

/// Skew_Time and Master_Down_Interval (VRRPv2, 1 s) for `priority`.
fn times(priority: u64) -> (Duration, Duration) {
    let skew = Duration::from_micros((256 - priority) * 1_000_000 / 256);
    (skew, Duration::from_secs(3) + skew)
}

pub fn run() -> Result<()> {
    crate::build(true)?;
    prereqs::ensure(&prereqs::Need::all())?;
    if !prereqs::is_root() {
        bail!("the demo creates network namespaces and attaches XDP: run it as root");
    }
    // The lab starts the binary next to the test binaries; point it here.
    // SAFETY: single-threaded at this point; nothing else reads the env.
    unsafe { std::env::set_var("VRRP_AGENT_BIN", sh::root().join("target/release/vrrp-agent")) };
    unsafe { std::env::set_var("VRRP_TEST_ECHO", "1") };

    sh::step("two nodes on a bridge: node-1 192.0.2.20 (priority 150), node-2 192.0.2.52 (priority 100)");
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let node1 = conf("MASTER", 150, "192.0.2.20", "192.0.2.52");
    let node2 = conf("BACKUP", 100, "192.0.2.52", "192.0.2.20");
    println!("node-1's keepalived.conf:\n{node1}");
    let (_, mdi1) = times(150);
    let (skew2, mdi2) = times(100);
    let slack = Duration::from_secs(2);
    let mut rows = Vec::new();

    sh::step("starting vrrp-agent run -f keepalived.conf on both nodes");
    let start = Instant::now();
    let mut a = seg.agent(0, &node1, &[])?;
    let b = seg.agent(1, &node2, &[])?;
    seg.wait_holders(VIP, &[0], mdi1 + slack)?;
    let elected = start.elapsed();
    println!(
        "\n{VIP} is on {} ({:.3} s after start; Master_Down_Interval of node-1 is {:.3} s)",
        holders(&seg)?,
        elected.as_secs_f64(),
        mdi1.as_secs_f64()
    );
    rows.push(("election at start", elected, mdi1, "Master_Down_Interval (node-1)"));

    sh::step("stopping node-1's agent (SIGTERM): it resigns with priority 0");
    let sigterm = Instant::now();
    a.signal(nix::sys::signal::Signal::SIGTERM)?;
    seg.wait_holders(VIP, &[1], skew2 + slack)?;
    let t = sigterm.elapsed();
    // It lingers one advert interval before it detaches and exits.
    a.stop(Duration::from_secs(5))?;
    println!(
        "\n{VIP} is on {} {:.3} s later (node-2's Skew_Time: {:.3} s)",
        holders(&seg)?,
        t.as_secs_f64(),
        skew2.as_secs_f64()
    );
    rows.push(("graceful stop of the master", t, skew2, "Skew_Time (node-2)"));

    sh::step("starting node-1 again: it has the higher priority and preempts");
    let start = Instant::now();
    let a = seg.agent(0, &node1, &[])?;
    seg.wait_holders(VIP, &[0], mdi1 + slack)?;
    let t = start.elapsed();
    println!("\n{VIP} is back on {} {:.3} s after node-1 started", holders(&seg)?, t.as_secs_f64());
    rows.push(("node-1 back, preempting", t, mdi1, "Master_Down_Interval (node-1)"));

    sh::step("killing node-1's agent (SIGKILL of its worker): no goodbye, node-2 must notice the silence");
    let kill = Instant::now();
    vrrp_tests::lab::signal_worker(&a, nix::sys::signal::Signal::SIGKILL)?;
    // The dead worker cannot take its VIP down; its supervisor does, 2 x
    // advert_int after the death, before node-2 may take over.
    let mut gone = None;
    let t = loop {
        if gone.is_none() && !seg.holds(0, VIP)? {
            gone = Some(kill.elapsed());
        }
        if seg.holds(1, VIP)? {
            break kill.elapsed();
        }
        if kill.elapsed() > mdi2 + slack {
            bail!("node-2 did not take over within {:?}", mdi2 + slack);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    println!(
        "\nnode-2 holds {VIP} {:.3} s after the kill (its Master_Down_Interval: {:.3} s)",
        t.as_secs_f64(),
        mdi2.as_secs_f64()
    );
    if let Some(g) = gone {
        println!("node-1's supervisor removed {VIP} {:.3} s after the kill", g.as_secs_f64());
    }
    rows.push(("master killed", t, mdi2, "Master_Down_Interval (node-2)"));
    drop(b);

    sh::step("summary");
    println!("| event | VIP moved after | protocol's time |");
    println!("|---|---|---|");
    for (what, took, limit, name) in &rows {
        println!("| {what} | {:.3} s | {:.3} s, {name} |", took.as_secs_f64(), limit.as_secs_f64());
    }
    println!(
        "\nTimes are from the event to the VIP seen on the new master, polled every 5 ms; the election at\n\
         start includes the agents' start-up."
    );
    Ok(())
}
