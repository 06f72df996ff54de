//! `vrrp-agent stats`: read a running agent's pinned maps.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vrrp_agent::datapath::Pinned;

use super::addr_string;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Name of the agent instance (its `--name`).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// bpffs directory the per-instance pin directories are under.
    #[arg(long, default_value = "/sys/fs/bpf/vrrp-agent")]
    pub pin_root: PathBuf,
}

/// `vrrp-agent stats`.
pub fn run(args: &StatsArgs) -> Result<()> {
    let dir = args.pin_root.join(&args.name);
    let pinned = Pinned::open(&dir).with_context(|| {
        format!(
            "opening the maps pinned under {} (is `vrrp-agent watch --name {}` running?)",
            dir.display(),
            args.name
        )
    })?;
    let name_of = |ifindex: u32| {
        let mut buf = [0u8; libc::IF_NAMESIZE];
        // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
        let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
        if p.is_null() {
            "?".to_owned()
        } else {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        }
    };
    for ((ifindex, verdict), n) in pinned.counters()? {
        println!(
            "counter interface={} ifindex={ifindex} verdict={} packets={n}",
            name_of(ifindex),
            verdict.name()
        );
    }
    // Accept Mode: packets to a non-accept master's VIPs (keepalived's
    // no_accept / vrrp_strict), per reason.
    for ((ifindex, verdict), n) in pinned.no_accept_counters()? {
        println!(
            "no_accept interface={} ifindex={ifindex} verdict={} packets={n}",
            name_of(ifindex),
            verdict.name()
        );
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).context("clock_gettime")?;
    let now_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    for row in pinned.peers()? {
        println!(
            "peer interface={} ifindex={} vrid={} address={} version={} priority={} interval_cs={} adverts={} last_seen_ms_ago={}",
            name_of(row.key.ifindex),
            row.key.ifindex,
            row.key.vrid,
            addr_string(&row.key),
            row.state.version,
            row.state.priority,
            row.state.interval_cs,
            row.state.adverts,
            now_ns.saturating_sub(row.state.last_seen_ns) / 1_000_000
        );
    }
    Ok(())
}
