//! `vrrp-agent watch`: the receive path on its own. Attaches the XDP
//! program (or, where it cannot attach, raw sockets running the same
//! checks) and reports each peer change and the verdict counters.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use vrrp_agent::daemon::ReceiveMode;
use vrrp_agent::daemon::{link, timer};
use vrrp_agent::datapath::{AttachMode, Datapath, Events};
use vrrp_agent::fallback::{self, Instance, Receiver};
use vrrp_agent::instance_lock;
use vrrp_common::rx::Expect;
use vrrp_common::wire::{Auth, Family, Version};
use vrrp_common::{Centis, Verdict};

use super::{AgentArgs, describe, iface_name};

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Interface to listen on (repeatable).
    #[arg(short, long = "interface", required = true)]
    interfaces: Vec<String>,
    #[command(flatten)]
    agent: AgentArgs,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    xdp_mode: Mode,
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
    peers: Vec<IpAddr>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Auto,
    Generic,
    Native,
}

/// The validated instance options.
struct Options {
    family: Family,
    instance: Instance,
}

fn options(args: &WatchArgs) -> Result<Options> {
    if !(0.05..=3600.0).contains(&args.report_interval) {
        bail!("--report-interval must be between 0.05 and 3600 seconds");
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
    Ok(Options {
        family: if args.ipv6 { Family::V6 } else { Family::V4 },
        instance: Instance {
            version,
            auth,
            interval: Centis(centis as u16),
            own: Vec::new(),
            peers: args.peers.clone(),
            ah: None,
        },
    })
}

/// `vrrp-agent watch`, until `shutdown` resolves.
pub async fn run(args: WatchArgs, shutdown: impl Future<Output = ()>) -> Result<()> {
    let opts = options(&args)?;
    let _lock = instance_lock::acquire(&args.agent.name)?;
    let xdp = match args.agent.receive {
        ReceiveMode::Socket => None,
        ReceiveMode::Xdp => Some(start_xdp(&args, &opts)?),
        ReceiveMode::Auto => match start_xdp(&args, &opts) {
            Ok(dp) => Some(dp),
            Err(e) => {
                log::warn!("XDP unavailable ({e:#}); receiving on raw sockets instead (more CPU per packet)");
                None
            }
        },
    };
    match xdp {
        Some(dp) => run_xdp(dp, &args, shutdown).await,
        None => run_sockets(&args, &opts, shutdown).await,
    }
}

fn start_xdp(args: &WatchArgs, opts: &Options) -> Result<Datapath> {
    Datapath::clear_stale(&args.agent.pin_root, &args.agent.name);
    let mut dp = Datapath::load(args.agent.ebpf_object.as_deref()).context("loading the XDP program")?;
    let mode = match args.xdp_mode {
        Mode::Auto => AttachMode::Auto,
        Mode::Generic => AttachMode::Generic,
        Mode::Native => AttachMode::Native,
    };
    for iface in &args.interfaces {
        let own = link::addresses(iface, opts.family);
        let ifindex =
            nix::net::if_::if_nametoindex(iface.as_str()).with_context(|| format!("no interface {iface}"))?;
        let i = &opts.instance;
        let expect =
            Expect { version: i.version, auth: i.auth, interval: i.interval, own: &own, peers: &i.peers };
        // The map entries before the attach, as the agent does: an advert
        // in between would be passed up as another daemon's.
        for vrid in &args.vrids {
            dp.configure(ifindex, opts.family, *vrid, &expect, args.agent.pass_up)?;
        }
        dp.attach(iface, mode).with_context(|| format!("attaching to {iface}"))?;
        let used = if dp.modes().last() == Some(&AttachMode::Generic) { "generic" } else { "native" };
        log::info!(
            "XDP program attached to {iface} (ifindex {ifindex}, {used} mode), accepting VRID {:?} v{} from {}",
            args.vrids,
            args.version,
            if i.peers.is_empty() { "any sender".to_owned() } else { format!("{:?}", i.peers) }
        );
    }
    if !args.agent.no_pin {
        dp.pin_for(&args.agent.pin_root, &args.agent.name)?;
    }
    Ok(dp)
}

/// Print the counters that moved since `last`.
fn report(
    counts: &BTreeMap<(u32, Verdict), u64>,
    last: &mut BTreeMap<(u32, Verdict), u64>,
    names: &BTreeMap<u32, String>,
) {
    for ((ifindex, verdict), n) in counts {
        let before = last.get(&(*ifindex, *verdict)).copied().unwrap_or(0);
        if *n != before {
            println!("counter {} {}: {} (+{})", iface_name(names, *ifindex), verdict.name(), n, n - before);
        }
    }
    *last = counts.clone();
}

async fn run_xdp(mut dp: Datapath, args: &WatchArgs, shutdown: impl Future<Output = ()>) -> Result<()> {
    let names: BTreeMap<u32, String> = dp.attached().iter().map(|(n, i)| (*i, n.clone())).collect();
    // SAFETY: `Events` owns the ring buffer's fd, and the AsyncFd owns the
    // `Events`, so the fd stays open and the same for the AsyncFd's life.
    let mut events: AsyncFd<Events> =
        unsafe { AsyncFd::register_with_interest(dp.take_events()?, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("polling the event ring")?;
    let mut last = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.report_interval));
    // The program fails open unless we keep its alive deadline ahead.
    let mut alive = tokio::time::interval(Duration::from_nanos(vrrp_common::maps::ALIVE_REFRESH_NS));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = alive.tick() => dp.set_alive()?,
            ready = events.readable_mut() => {
                let mut guard = ready.context("event ring")?;
                while let Some(ev) = guard.get_inner_mut().next() {
                    println!("{}", describe(&ev, &names));
                }
                guard.clear_ready();
            }
            _ = tick.tick() => report(&dp.counters()?, &mut last, &names),
        }
    }
    // A last report, so the totals are on record.
    report(&dp.counters()?, &mut last, &names);
    log::info!("shutting down: detaching XDP and removing pins");
    drop(events);
    drop(dp);
    Ok(())
}

async fn run_sockets(args: &WatchArgs, opts: &Options, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut rxs: Vec<AsyncFd<Receiver>> = Vec::new();
    let mut names = BTreeMap::new();
    for iface in &args.interfaces {
        let mut rx = Receiver::open(iface, opts.family).with_context(|| format!("raw socket on {iface}"))?;
        let inst = Instance { own: link::addresses(iface, opts.family), ..opts.instance.clone() };
        for vrid in &args.vrids {
            rx.add_instance(*vrid, inst.clone());
        }
        names.insert(rx.ifindex(), iface.clone());
        log::info!("receiving on a raw socket on {iface}, accepting VRID {:?} v{}", args.vrids, args.version);
        // SAFETY: the Receiver owns its socket, and the AsyncFd owns the
        // Receiver, so the fd stays open and the same for the AsyncFd's life.
        let rx = unsafe { AsyncFd::register_with_interest(rx, Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("registering the socket")?;
        rxs.push(rx);
    }
    let mut last = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.report_interval));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            events = fallback::next_events(&mut rxs, || timer::now().0 * 1000) => {
                match events {
                    Ok(events) => {
                        for ev in events {
                            println!("{}", describe(&ev, &names));
                        }
                    }
                    Err(e) => log::warn!("receive error: {e}"),
                }
            }
            _ = tick.tick() => {
                let mut counts = BTreeMap::new();
                for rx in &rxs {
                    counts.extend(rx.get_ref().counters().iter().map(|(k, v)| (*k, *v)));
                }
                report(&counts, &mut last, &names);
            }
        }
    }
    let mut counts = BTreeMap::new();
    for rx in &rxs {
        counts.extend(rx.get_ref().counters().iter().map(|(k, v)| (*k, *v)));
    }
    report(&counts, &mut last, &names);
    log::info!("shutting down");
    Ok(())
}
