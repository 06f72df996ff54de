//! The `vrrp-agent` command.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::io::unix::AsyncFd;
use vrrp_agent::datapath::{AttachMode, Datapath, Pinned};
use vrrp_agent::{bpffs, instance_lock, object};
use vrrp_common::maps::{
    EVENT_INTERVAL, EVENT_NEW_PEER, EVENT_PRIORITY, EVENT_RESIGN, FAMILY_IPV4, PeerEvent, PeerKey,
};
use vrrp_common::rx::Expect;
use vrrp_common::wire::{Auth, Family, Version};
use vrrp_common::{Centis, Verdict};

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
    /// Print the verdict counters and peers a running `watch` pinned, one
    /// `key=value` record per line.
    Stats(StatsArgs),
    /// Say whether this binary carries its XDP program.
    Info,
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    /// Name of the agent instance (its `--name`).
    #[arg(long, default_value = "default")]
    name: String,
    /// bpffs directory the per-instance pin directories are under.
    #[arg(long, default_value = "/sys/fs/bpf/vrrp-agent")]
    pin_root: PathBuf,
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
    /// Seconds between counter reports.
    #[arg(long, default_value_t = 1.0)]
    report_interval: f64,
    /// Virtual router ID to accept adverts for (repeatable, 1-255).
    #[arg(long = "vrid", required = true, value_parser = clap::value_parser!(u8).range(1..))]
    vrids: Vec<u8>,
    /// VRRP version of those instances.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    version: u8,
    /// IPv6 instances (VRRPv3 only); IPv4 otherwise.
    #[arg(long)]
    ipv6: bool,
    /// v2 simple password (auth_type PASS); first 8 bytes, as keepalived.
    #[arg(long)]
    auth_pass: Option<String>,
    /// Advertisement interval in seconds (v2 checks it; fractional for v3).
    #[arg(long, default_value_t = 1.0)]
    advert_int: f64,
    /// Unicast peer (repeatable): accept adverts only from these.
    #[arg(long = "peer")]
    peers: Vec<std::net::IpAddr>,
    /// Let valid adverts continue up the stack (to see them in tcpdump).
    #[arg(long)]
    pass_up: bool,
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
        Command::Stats(args) => stats(&args),
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

/// Our own addresses on `iface` in `family`, from getifaddrs(3).
fn own_addresses(iface: &str, ipv6: bool) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().context("getifaddrs")? {
        if ifa.interface_name != iface {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let (false, Some(a)) = (ipv6, addr.as_sockaddr_in()) {
            out.push(IpAddr::V4(a.ip()));
        } else if let (true, Some(a)) = (ipv6, addr.as_sockaddr_in6()) {
            out.push(IpAddr::V6(a.ip()));
        }
    }
    Ok(out)
}

async fn watch(args: WatchArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    if !(0.05..=3600.0).contains(&args.report_interval) {
        bail!("--report-interval must be between 0.05 and 3600 seconds");
    }
    if !args.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || args.name.starts_with('.')
    {
        bail!("--name may hold letters, digits, '-', '_' and '.' only (it names a directory)");
    }
    let version = if args.version == 2 { Version::V2 } else { Version::V3 };
    let centis = (args.advert_int * 100.0).round();
    if !(1.0..=4095.0).contains(&centis) || (version == Version::V2 && centis % 100.0 != 0.0) {
        bail!("--advert-int: v2 takes whole seconds 1-40, v3 0.01-40.95 seconds");
    }
    if args.ipv6 && version == Version::V2 {
        bail!("--ipv6 needs --version 3 (VRRPv2 is IPv4 only)");
    }
    if args.auth_pass.is_some() && version == Version::V3 {
        bail!("--auth-pass is VRRPv2 only (RFC 5798 removed authentication)");
    }
    if let Some(p) = args.peers.iter().find(|p| p.is_ipv6() != args.ipv6) {
        bail!("--peer {p} is not of the instances' address family");
    }
    let auth = args.auth_pass.as_deref().map_or(Auth::None, |p| Auth::simple(p.as_bytes()));
    let family = if args.ipv6 { Family::V6 } else { Family::V4 };

    let _lock = instance_lock::acquire(&args.name)?;
    let mut dp = Datapath::load(args.ebpf_object.as_deref()).context("loading the XDP program")?;
    let mode = match args.xdp_mode {
        Mode::Auto => AttachMode::Auto,
        Mode::Generic => AttachMode::Generic,
        Mode::Native => AttachMode::Native,
    };
    for iface in &args.interfaces {
        let own = own_addresses(iface, args.ipv6)?;
        let ifindex = dp.attach(iface, mode).with_context(|| format!("attaching to {iface}"))?;
        let expect = Expect { version, auth, interval: Centis(centis as u16), own: &own, peers: &args.peers };
        for vrid in &args.vrids {
            dp.configure(ifindex, family, *vrid, &expect, args.pass_up)?;
        }
        log::info!(
            "XDP program attached to {iface} (ifindex {ifindex}), accepting VRID {:?} v{} from {}",
            args.vrids,
            args.version,
            if args.peers.is_empty() { "any sender".to_owned() } else { format!("{:?}", args.peers) }
        );
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
    // SAFETY: `Events` owns the ring buffer's fd, and the AsyncFd owns the
    // `Events`, so the fd stays open and the same for the AsyncFd's life.
    let mut events =
        unsafe { AsyncFd::register_with_interest(dp.take_events()?, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the event ring")?;
    let mut last_counts: BTreeMap<(u32, Verdict), u64> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.report_interval));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ready = events.readable_mut() => {
                let mut guard = ready.context("event ring")?;
                while let Some(ev) = guard.get_inner_mut().next() {
                    println!("{}", describe(&ev, &names));
                }
                guard.clear_ready();
            }
            _ = tick.tick() => {
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
    drop(events);
    drop(dp);
    Ok(())
}

fn stats(args: &StatsArgs) -> Result<()> {
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

fn describe(ev: &PeerEvent, names: &BTreeMap<u32, String>) -> String {
    let mut what = Vec::new();
    if ev.kind & EVENT_NEW_PEER != 0 {
        what.push("new peer".to_owned());
    }
    if ev.kind & EVENT_PRIORITY != 0 {
        what.push(format!("priority {} -> {}", ev.old_priority, ev.state.priority));
    }
    if ev.kind & EVENT_RESIGN != 0 {
        what.push("resigning (priority 0)".to_owned());
    }
    if ev.kind & EVENT_INTERVAL != 0 {
        what.push("interval changed".to_owned());
    }
    format!(
        "peer {} on {} vrid {}: {} (version {}, priority {}, interval {} cs)",
        addr_string(&ev.key),
        iface_name(names, ev.key.ifindex),
        ev.key.vrid,
        what.join(", "),
        ev.state.version,
        ev.state.priority,
        ev.state.interval_cs
    )
}

fn iface_name(names: &BTreeMap<u32, String>, ifindex: u32) -> String {
    names.get(&ifindex).cloned().unwrap_or_else(|| format!("ifindex {ifindex}"))
}

fn addr_string(key: &PeerKey) -> String {
    let a = key.addr;
    if key.family == FAMILY_IPV4 {
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(a).to_string()
    }
}
