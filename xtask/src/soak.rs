//! `cargo xtask soak`: a pair of agents with many instances whose health
//! scripts flap for a long time, to find leaks. The master's instances
//! track scripts that fail and recover every few seconds (some of them
//! time out and are killed), so instances move back and forth between the
//! nodes, VIPs are added and removed, and notify scripts run, all the
//! time. At the start (after a warm-up) and at the end it counts, for each
//! agent: open file descriptors, threads, resident memory, live child
//! processes and zombies; and it checks that every VIP has exactly one
//! holder at the end. Written to bench-results/soak.md.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use vrrp_tests::lab::Segment;
use vrrp_tests::process::Process;

use crate::bench_failover::{self, Arm, PinCleanup};
use crate::bench_proc::process_tree;

/// Options.
pub struct Opts {
    pub minutes: u64,
    pub instances: u16,
    pub scripts: u16,
}

/// What a process tree looks like at one moment.
#[derive(Clone, Debug, Default)]
struct Census {
    /// vrrp-agent processes (a supervisor and its worker).
    agents: usize,
    fds: usize,
    threads: usize,
    rss_kib: u64,
    /// Other live descendants (scripts running right now).
    children: usize,
    zombies: usize,
}

fn census(pid: u32) -> Result<Census> {
    let mut c = Census::default();
    for p in process_tree(pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else { continue };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if zombie {
            c.zombies += 1;
        } else if comm.trim() == "vrrp-agent" {
            c.agents += 1;
            c.fds += std::fs::read_dir(format!("/proc/{p}/fd")).map(|d| d.count()).unwrap_or(0);
            c.threads += field("Threads:").unwrap_or(0) as usize;
            c.rss_kib += field("VmRSS:").unwrap_or(0);
        } else {
            c.children += 1;
        }
    }
    Ok(c)
}

fn vip(vrid: u16) -> String {
    format!("198.51.100.{vrid}")
}

/// keepalived.conf of one node: `n` unicast instances at 1 s adverts,
/// each tracking one of `scripts` scripts (the master only).
fn conf(n: u16, scripts: u16, priority: u8, me: &str, peer: &str, dir: &Path, track: bool) -> String {
    let mut s = String::from("global_defs {\n  script_user root\n}\n");
    if track {
        for k in 0..scripts {
            // Fails for `period` seconds, then succeeds for as long; every
            // fourth script hangs past its timeout when it fails, so its
            // process group is killed.
            let period = 5 + k % 7;
            let hang = if k % 4 == 0 { "sleep 5; " } else { "" };
            let script = dir.join(format!("flap{k}.sh"));
            let text = format!(
                "#!/bin/sh\nif [ $(( $(date +%s) / {period} % 2 )) -eq 0 ]; then exit 0; fi\n{hang}exit 1\n"
            );
            if let Err(e) = std::fs::write(&script, text) {
                eprintln!("writing {}: {e}", script.display());
            }
            let _ = std::process::Command::new("chmod").arg("755").arg(&script).status();
            let _ = writeln!(
                s,
                "vrrp_script flap{k} {{\n  script \"{}\"\n  interval 1\n  timeout 2\n  fall 1\n  rise 1\n  weight -60\n}}",
                script.display()
            );
        }
    }
    let notify = dir.join("notify.sh");
    let _ = std::fs::write(&notify, "#!/bin/sh\nexit 0\n");
    let _ = std::process::Command::new("chmod").arg("755").arg(&notify).status();
    for vrid in 1..=n {
        let _ = write!(
            s,
            "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 1\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {}/32\n  }}\n  notify \"{}\"\n",
            vip(vrid),
            notify.display()
        );
        if track {
            let _ = write!(s, "  track_script {{\n    flap{}\n  }}\n", (vrid - 1) % scripts);
        }
        s += "}\n";
    }
    s
}

/// Which of the `n` VIPs node `i` holds now.
fn held_by(seg: &Segment, i: usize, n: u16) -> Result<Vec<bool>> {
    let text = String::from_utf8_lossy(&seg.nodes[i].ns.ip(&["-o", "addr", "show"])?.stdout).into_owned();
    let words: std::collections::HashSet<&str> =
        text.split_whitespace().filter_map(|w| w.split('/').next()).collect();
    Ok((1..=n).map(|v| words.contains(vip(v).as_str())).collect())
}

fn holders(seg: &Segment, n: u16) -> Result<Vec<[bool; 2]>> {
    let (a, b) = (held_by(seg, 0, n)?, held_by(seg, 1, n)?);
    Ok(a.into_iter().zip(b).map(|(x, y)| [x, y]).collect())
}

/// VIPs certainly on both nodes at once: on node 0 in two reads and on
/// node 1 in a read between them (a VIP moving between two reads of one
/// snapshot is not counted).
fn certainly_both(seg: &Segment, n: u16) -> Result<usize> {
    let first = held_by(seg, 0, n)?;
    let mid = held_by(seg, 1, n)?;
    let last = held_by(seg, 0, n)?;
    Ok((0..usize::from(n)).filter(|&k| first[k] && mid[k] && last[k]).count())
}

fn transitions(p: &Process) -> usize {
    p.lines().iter().filter(|l| l.contains("Entering MASTER STATE")).count()
}

pub fn run(opts: &Opts, agent: &Path) -> Result<()> {
    let (n, scripts) = (opts.instances, opts.scripts.max(1));
    if n == 0 || n > 254 {
        bail!("--instances must be 1-254 (one VIP each in 198.51.100.0/24)");
    }
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let _pins = PinCleanup::new(&seg);
    let dir = std::env::temp_dir().join(vrrp_tests::netns::unique("soak"));
    std::fs::create_dir_all(&dir)?;
    let master_text = conf(n, scripts, 150, "192.0.2.20", "192.0.2.52", &dir, true);
    let backup_text = conf(n, scripts, 100, "192.0.2.52", "192.0.2.20", &dir, false);
    let master = bench_failover::start(&seg, Arm::Agent, 0, &master_text, agent, &[])?;
    let backup = bench_failover::start(&seg, Arm::Agent, 1, &backup_text, agent, &[])?;
    println!("soak: {n} instances, {scripts} flapping scripts, {} min", opts.minutes);
    // Warm-up: every script has run and the flapping has started.
    std::thread::sleep(Duration::from_secs(30));
    let (m0, b0) = (census(master.pid())?, census(backup.pid())?);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(opts.minutes * 60);
    let mut two_holders_seen = 0usize;
    let mut samples = 0usize;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(10));
        // Sampled: a handover takes a few ms (the preempted master drops
        // the VIP when the new master's first advert arrives).
        two_holders_seen += certainly_both(&seg, n)?;
        samples += 1;
        println!(
            "soak: {:>4} s, master entered MASTER {} times, backup {} times",
            t0.elapsed().as_secs(),
            transitions(&master),
            transitions(&backup)
        );
    }
    let (m1, b1) = (census(master.pid())?, census(backup.pid())?);
    // Let every script settle to success and the master take all back.
    for f in std::fs::read_dir(&dir)?.flatten() {
        if f.file_name().to_string_lossy().starts_with("flap") {
            std::fs::write(f.path(), "#!/bin/sh\nexit 0\n")?;
        }
    }
    let settled = bench_failover::wait_for(Duration::from_secs(60), || {
        Ok(holders(&seg, n)?.iter().all(|h| h[0] && !h[1]))
    });
    let mut report = String::from("# Soak\n\n");
    let _ = writeln!(
        report,
        "{n} instances per node at 1 s adverts, VRRPv3 unicast; the master's instances track {scripts} scripts that fail and recover every 5-11 s (every fourth hangs past its 2 s timeout when failing, so its process group is killed), weight -60; notify scripts on every transition. {} minutes, after a 30 s warm-up.\n",
        opts.minutes
    );
    let _ = writeln!(
        report,
        "| | agents | fds | threads | RSS KiB | script children | zombies |\n|---|---|---|---|---|---|---|"
    );
    for (name, c) in [("master start", &m0), ("master end", &m1), ("backup start", &b0), ("backup end", &b1)]
    {
        let _ = writeln!(
            report,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            c.agents, c.fds, c.threads, c.rss_kib, c.children, c.zombies
        );
    }
    let _ = writeln!(
        report,
        "\nTransitions into MASTER: master {}, backup {}. VIPs certainly on both nodes at once (node 0 read, node 1 read, node 0 read again; {samples} samples 10 s apart): {two_holders_seen}. Settled to one holder per VIP after the scripts recovered: {}.",
        transitions(&master),
        transitions(&backup),
        match &settled {
            Ok(d) => format!("yes, in {:.1} s", d.as_secs_f64()),
            Err(e) => format!("NO ({e})"),
        }
    );
    let out = Path::new("bench-results");
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("soak.md"), &report)?;
    println!("{report}");
    let _ = std::fs::remove_dir_all(&dir);
    let leak = |a: &Census, b: &Census| b.fds > a.fds || b.threads > a.threads || b.zombies > 0;
    if leak(&m0, &m1) || leak(&b0, &b1) || settled.is_err() {
        bail!(
            "soak failed: file descriptors, threads or zombies grew, or the pair did not settle (see above)"
        );
    }
    Ok(())
}
