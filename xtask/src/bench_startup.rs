//! Start-up time for `cargo xtask bench --only startup`: from spawning a
//! daemon in a namespace until every instance has logged BACKUP, both arms
//! in one run, the arms alternating run by run so that both see the same
//! machine load.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vrrp_tests::lab::Segment;

use crate::bench_failover::{self, Arm, PinCleanup};
use crate::bench_steady;

/// One arm's start-up times.
pub struct Startup {
    pub arm: Arm,
    pub instances: u16,
    /// Spawn → all instances in BACKUP, one entry per run (ms).
    pub ms: Vec<f64>,
}

/// `runs` starts of each arm with `n` instances (1 s adverts), stopped
/// with SIGTERM (and waited for) between runs, alternating the arms.
pub fn series(n: u16, runs: usize, agent: &Path) -> Result<Vec<Startup>> {
    println!("start-up to BACKUP: {n} instance(s), {runs} runs per arm, arms alternating");
    // The peer's address does not exist: no master answers, every
    // instance stays in BACKUP for Master_Down_Interval (RFC 5798 6.4.1),
    // which is longer than any start measured here.
    let seg = Segment::new(&["192.0.2.52/24"])?;
    let _pins = PinCleanup::new(&seg);
    let text = bench_steady::conf(n, 100, "192.0.2.52", "192.0.2.20", 100);
    let mut out: Vec<Startup> = [Arm::Agent, Arm::Keepalived]
        .into_iter()
        .map(|arm| Startup { arm, instances: n, ms: Vec::new() })
        .collect();
    let want = usize::from(n);
    for run in 0..runs {
        for s in &mut out {
            let t0 = Instant::now();
            let mut p = bench_failover::spawn(&seg, s.arm, 0, &text, agent, &[])?;
            bench_failover::wait_for(Duration::from_secs(30), || {
                Ok(p.lines().iter().filter(|l| l.contains("Entering BACKUP")).count() >= want)
            })
            .with_context(|| format!("{}: run {run}: not every instance entered BACKUP", s.arm.name()))?;
            s.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            p.stop(Duration::from_secs(20))
                .with_context(|| format!("{}: run {run}: stopping", s.arm.name()))?;
        }
    }
    for s in &out {
        let v = bench_failover::summary(&s.ms);
        println!(
            "  {}: min {:.1} / median {:.1} / p95 {:.1} / max {:.1} ms",
            s.arm.name(),
            v[0],
            v[1],
            v[2],
            v[3]
        );
    }
    Ok(out)
}
