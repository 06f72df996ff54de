//! The `vrrp-agent` command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use vrrp_agent::datapath::{AttachMode, Datapath, PeerRow};
use vrrp_agent::{bpffs, instance_lock, object};
use vrrp_common::Verdict;
use vrrp_common::maps::FAMILY_IPV4;

/// eBPF-accelerated VRRP agent, compatible with keepalived's VRRP side.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the XDP fast path to interfaces and report the VRRP speakers
    /// and verdicts it sees, until interrupted.
    Watch(WatchArgs),
    /// Say whether this binary carries its XDP program.
    Info,
}

#[derive(clap::Args, Debug)]
struct WatchArgs {
    /// Interface to attach to (repeatable).
    #[arg(short, long = "interface", required = true)]
    interfaces: Vec<String>,
    /// Name of this agent instance: its pin directory and lock file.
    #[arg(long, default_value = "default")]
    name: String,
    /// bpffs directory the per-instance pin directories go under.
    #[arg(long, default_value = "/sys/fs/bpf/vrrp-agent")]
    pin_root: PathBuf,
    /// Do not pin the maps (bpftool can then only find them by id).
    #[arg(long)]
    no_pin: bool,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    xdp_mode: Mode,
    /// Load the XDP object from this file instead of the embedded one.
    #[arg(long)]
    ebpf_object: Option<PathBuf>,
    /// Seconds between reports.
    #[arg(long, default_value_t = 1.0)]
    report_interval: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Auto,
    Generic,
    Native,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            println!("vrrp-agent {}", env!("CARGO_PKG_VERSION"));
            println!("XDP object embedded: {}", if object::embedded() { "yes" } else { "no" });
            Ok(())
        }
        Command::Watch(args) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(watch(args, shutdown_signal()))
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        log::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn watch(args: WatchArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    if !(0.05..=3600.0).contains(&args.report_interval) {
        bail!("--report-interval must be between 0.05 and 3600 seconds");
    }
    let _lock = instance_lock::acquire(&args.name)?;
    let mut dp = Datapath::load(args.ebpf_object.as_deref()).context("loading the XDP program")?;
    let mode = match args.xdp_mode {
        Mode::Auto => AttachMode::Auto,
        Mode::Generic => AttachMode::Generic,
        Mode::Native => AttachMode::Native,
    };
    for iface in &args.interfaces {
        let ifindex = dp.attach(iface, mode).with_context(|| format!("attaching to {iface}"))?;
        log::info!("XDP program attached to {iface} (ifindex {ifindex})");
    }
    if !args.no_pin {
        let fs_root = args.pin_root.parent().unwrap_or(&args.pin_root);
        if bpffs::ensure(fs_root)? {
            log::warn!(
                "{} was not a BPF filesystem (ip netns exec hides the host's): mounted one",
                fs_root.display()
            );
        }
        let dir = args.pin_root.join(&args.name);
        dp.pin_maps(&dir)?;
        log::info!(
            "maps pinned under {} (bpftool map dump pinned {}/VRRP_PEERS)",
            dir.display(),
            dir.display()
        );
    }
    let names: BTreeMap<u32, String> = dp.attached().iter().map(|(n, i)| (*i, n.clone())).collect();
    let mut seen: BTreeMap<_, PeerRow> = BTreeMap::new();
    let mut last_counts: BTreeMap<(u32, Verdict), u64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.report_interval));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                for row in dp.peers()? {
                    let k = (row.key.ifindex, row.key.family, row.key.vrid, row.key.addr);
                    let changed = seen.get(&k).is_none_or(|old| {
                        old.state.priority != row.state.priority || old.state.interval_cs != row.state.interval_cs
                    });
                    if changed {
                        println!(
                            "peer {} on {}: vrid {} version {} priority {} interval {} cs",
                            addr_string(&row), iface_name(&names, row.key.ifindex), row.key.vrid,
                            row.state.version, row.state.priority, row.state.interval_cs
                        );
                    }
                    seen.insert(k, row);
                }
                let counts = dp.counters()?;
                for ((ifindex, verdict), n) in &counts {
                    let before = last_counts.get(&(*ifindex, *verdict)).copied().unwrap_or(0);
                    if *n != before {
                        println!("counter {} {}: {} (+{})", iface_name(&names, *ifindex), verdict.name(), n, n - before);
                    }
                }
                last_counts = counts;
            }
        }
    }
    log::info!("shutting down: detaching XDP and removing pins");
    drop(dp);
    Ok(())
}

fn iface_name(names: &BTreeMap<u32, String>, ifindex: u32) -> String {
    names.get(&ifindex).cloned().unwrap_or_else(|| format!("ifindex {ifindex}"))
}

fn addr_string(row: &PeerRow) -> String {
    let a = row.key.addr;
    if row.key.family == FAMILY_IPV4 {
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(a).to_string()
    }
}
