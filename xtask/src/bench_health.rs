//! Health failover for `cargo xtask bench`: the master's vrrp_script starts
//! failing (its file is removed), its effective priority drops below the
//! backup's, and the backup takes the VIP. Timed from the removal to the
//! VIP on the backup (polled every 0.5 ms), against interval × fall plus
//! one advert (the reference) and plus Master_Down_Interval (the
//! protocol's bound: RFC 5798 6.4.2 has a preempting backup discard the
//! lower-priority advert and wait for its Master_Down_Timer, as keepalived
//! 2.x does).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vrrp_tests::lab::Segment;
use vrrp_tests::netns;

use crate::bench_failover::{self, Arm};

const VIP: &str = "192.0.2.130";
/// vrrp_script interval (s) and fall.
const INTERVAL_S: u16 = 1;
const FALL: u16 = 2;
/// Advert interval, centiseconds (v3).
const ADVERT_CS: u16 = 10;

pub struct Health {
    /// interval × fall + one advert, ms.
    pub reference_ms: f64,
    /// interval × fall + the backup's Master_Down_Interval, ms.
    pub bound_ms: f64,
    /// Removal → VIP on the backup, per run, ms.
    pub to_vip_ms: Vec<f64>,
}

fn conf(priority: u8, me: &str, peer: &str, flag: Option<&Path>) -> String {
    let (script, track) = match flag {
        Some(f) => (
            format!(
                "vrrp_script chk_service {{\n  script \"/usr/bin/test -f {}\"\n  interval {INTERVAL_S}\n  fall {FALL}\n  rise 1\n  weight 60\n}}\n",
                f.display()
            ),
            "  track_script {\n    chk_service\n  }\n".to_owned(),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "{script}vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 55\n  priority {priority}\n  advert_int 0.{ADVERT_CS:02}\n  version 3\n  unicast_src_ip {me}\n  unicast_peer {{\n    {peer}\n  }}\n{track}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

pub fn series(arm: Arm, runs: usize, agent: &Path) -> Result<Health> {
    println!("{}: health failover, {runs} runs", arm.name());
    let seg = Segment::new(&["192.0.2.20/24", "192.0.2.52/24"])?;
    let _pins = crate::bench_failover::PinCleanup::new(&seg);
    let flag = std::env::temp_dir().join(netns::unique("bench-health-"));
    std::fs::write(&flag, "up")?;
    let _cleanup = RemoveOnDrop(flag.clone());
    // Node 0: 100 + 60 while healthy = 160; node 1: 120.
    let _master =
        bench_failover::start(&seg, arm, 0, &conf(100, "192.0.2.20", "192.0.2.52", Some(&flag)), agent, &[])?;
    let _backup =
        bench_failover::start(&seg, arm, 1, &conf(120, "192.0.2.52", "192.0.2.20", None), agent, &[])?;
    let settle = Duration::from_secs(15);
    bench_failover::wait_for(settle, || Ok(seg.holders(VIP)? == [0]))
        .context("the healthy node never became the only master")?;
    let (_, mdi) = bench_failover::limits(120, ADVERT_CS);
    let detect = f64::from(INTERVAL_S) * 1000.0 * f64::from(FALL);
    let mut out = Health {
        reference_ms: detect + f64::from(ADVERT_CS) * 10.0,
        bound_ms: detect + mdi,
        to_vip_ms: Vec::new(),
    };
    for run in 0..runs {
        // Start each run at a random phase of the script's interval.
        std::thread::sleep(Duration::from_millis(300 + (run as u64 * 173) % 700));
        std::fs::remove_file(&flag)?;
        let t = Instant::now();
        bench_failover::wait_for(settle, || Ok(seg.holders(VIP)? == [1]))
            .with_context(|| format!("run {run}: the VIP never moved to the backup alone"))?;
        out.to_vip_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::fs::write(&flag, "up")?;
        bench_failover::wait_for(settle, || Ok(seg.holders(VIP)? == [0]))
            .with_context(|| format!("run {run}: the VIP never came back"))?;
    }
    let s = bench_failover::summary(&out.to_vip_ms);
    println!(
        "  removal → VIP on the backup, ms: min {:.1} median {:.1} p95 {:.1} max {:.1} (reference {:.0}, bound {:.1})",
        s[0], s[1], s[2], s[3], out.reference_ms, out.bound_ms
    );
    Ok(out)
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
