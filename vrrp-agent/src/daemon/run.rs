//! Starting the daemon: the lock, the instances, the receive path, the
//! health checks; then `Agent` (agent.rs) owns them until the stop.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use vrrp_common::wire::Family;

use super::agent::Agent;
use super::instance::{Inst, build};
use super::link::{self, NetEvents};
use super::no_accept::NoAcceptRows;
use super::reconcile::{AddrKey, Reconciler};
use super::signals::Signals;
use super::source::{Source, XdpSource};
use super::timer::{self, Deadline};
use crate::config::Config;
use crate::datapath::{AttachMode, Datapath, DatapathError};
use crate::fallback::Receiver;
use crate::health::runner;
use crate::health::trackers::{TrackEvent, Trackers};
use crate::health::{Health, track_file, track_process, user};
use crate::instance_lock;
use crate::machine::Micros;
use crate::notify_fifo::Fifos;
use crate::sync_group::SyncGroup;
use tokio::sync::mpsc::UnboundedReceiver;

/// How adverts come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReceiveMode {
    /// XDP, falling back to raw sockets (with a warning) where it cannot attach.
    Auto,
    /// XDP only.
    Xdp,
    /// Raw sockets only.
    Socket,
}

/// Daemon options besides the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Receive path.
    pub receive: ReceiveMode,
    /// Agent name: pin directory and lock.
    pub name: String,
    /// Where pin directories go.
    pub pin_root: PathBuf,
    /// Skip pinning.
    pub no_pin: bool,
    /// XDP object to load instead of the embedded one.
    pub ebpf_object: Option<PathBuf>,
    /// Pass valid adverts up the stack (tcpdump) instead of consuming them.
    pub pass_up: bool,
    /// The configuration file, read again on SIGHUP (None: the default).
    pub config_path: Option<PathBuf>,
    /// Run as a supervisor's worker: the instance lock it took and handed
    /// over as descriptors ("FILE,SOCKET"), adopted instead of taken.
    pub supervised: Option<String>,
    /// Serve Prometheus metrics on this address (`--metrics`).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A configured interface does not exist.
    #[error("instance {instance}: interface {iface} not found: {source}")]
    NoInterface {
        /// Instance.
        instance: String,
        /// Interface.
        iface: String,
        /// errno.
        source: nix::Error,
    },
    /// No address to send from.
    #[error("instance {instance}: {iface} has no {family} address to send adverts from (set unicast_src_ip)")]
    NoSource {
        /// Instance.
        instance: String,
        /// Interface.
        iface: String,
        /// "IPv4" or "IPv6 link-local".
        family: &'static str,
    },
    /// The interface's MTU is too small for the instance's adverts (it
    /// was re-created with a smaller one after the configuration check).
    #[error(
        "instance {instance}: {vips} virtual addresses do not fit in an advert on {iface} (MTU {mtu}: at most {max}); the instance stays in FAULT"
    )]
    AdvertTooBig {
        /// Instance.
        instance: String,
        /// Interface.
        iface: String,
        /// Its MTU.
        mtu: u32,
        /// Addresses configured.
        vips: usize,
        /// Addresses that fit.
        max: usize,
    },
    /// A socket could not be opened.
    #[error("instance {instance}: {what}: {source}")]
    Io {
        /// Instance.
        instance: String,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A non-accept instance without the XDP path, which does the dropping.
    #[error(
        "instance {instance}: no_accept{} needs the XDP receive path, which drops packets addressed to the VIPs of a MASTER, but {why}\n  hint: run with --receive xdp on an interface that takes XDP, or add `accept` to the instance{}",
        if *strict { " (implied by vrrp_strict)" } else { "" },
        if *strict { " with `version 3` (strict mode refuses accept for VRRPv2), or set `strict_mode off` in it" } else { "" }
    )]
    NoAcceptNeedsXdp {
        /// Instance.
        instance: String,
        /// Why raw sockets are in use.
        why: String,
        /// Whether strict mode made it non-accept.
        strict: bool,
    },
    /// The XDP path failed (and no fallback was allowed).
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// Another agent has this name.
    #[error(transparent)]
    Lock(#[from] instance_lock::LockError),
}

/// Run the instances of `cfg` until `shutdown` resolves (or a stop
/// signal arrives).
pub async fn run(cfg: Config, opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let io = |what: &'static str| move |source| DaemonError::Io { instance: "-".into(), what, source };
    // First, so that no signal finds its default (fatal) action in place.
    let signals = Signals::install().map_err(io("signal handlers"))?;
    let _lock = match &opts.supervised {
        Some(fds) => instance_lock::adopt(&opts.name, fds)?,
        None => instance_lock::acquire(&opts.name)?,
    };
    log::debug!("start-up: lock taken");
    // A hitless restart: the instances that resume as MASTER keep what
    // the previous process held; otherwise what it left is removed.
    // After a crash: the dead worker's live record, claimed or fenced.
    let (resumed, live) = super::resume_start::resumable(&cfg, &opts.name);
    raise_file_limit(cfg.instances.len());
    let (conn, nl, _) = rtnetlink::new_connection().map_err(io("netlink"))?;
    tokio::spawn(conn);
    if resumed.is_empty() {
        super::vips::cleanup_stale(&opts.name, &nl).await;
    }
    log::debug!("start-up: stale VIPs checked");
    // Another agent's live program serving one of our VRIDs (issue 12,
    // case 9) is refused below; with use_vmac, refuse before touching
    // the macvlans, which would be that agent's (a killed agent of our
    // own name is not another agent: its program goes first).
    if cfg.instances.iter().any(|i| i.vmac.is_some()) {
        if opts.receive != ReceiveMode::Socket {
            Datapath::clear_stale(&opts.pin_root, &opts.name);
        }
        let wanted: Vec<(&str, u32, Family, u8)> = cfg
            .instances
            .iter()
            .filter_map(|i| {
                let idx = nix::net::if_::if_nametoindex(i.interface.as_str()).ok()?;
                Some((i.interface.as_str(), idx, i.family, i.vrid))
            })
            .collect();
        crate::datapath::refuse_taken(&wanted)?;
    }
    // The macvlans of use_vmac before the instances, which open on them.
    let (vmacs, vmac_names) = super::vmac::Manager::start(&cfg, &nl, &opts.name).await;
    log::debug!("start-up: macvlans");
    // One dump of the interfaces for every instance (not one each).
    let ifs = link::Ifaddrs::now();
    let mut insts = cfg
        .instances
        .iter()
        .zip(vmac_names)
        .map(|(c, v)| build(c, v, &ifs))
        .collect::<Result<Vec<_>, _>>()?;
    log::debug!("start-up: instances opened");
    // Advertise at once, before the XDP program loads: the backups'
    // Master_Down_Timer runs since the previous process's last advert.
    let bridge = super::resume_start::Bridge::start(&insts, &resumed, live.clone());
    // The XDP attach may run beside the instances' start (`early`): they
    // enter BACKUP deaf (`Machine::set_deaf`) and their Master_Down_Timers
    // run from when it is done (`Agent::on_attached`). Not for instances
    // without Accept Mode: the program drops the packets to a master's
    // VIPs, so an address owner must not hold them before it is attached.
    let early = !insts.iter().any(|i| i.conf.drops_to_vips());
    let (source, attach) = match opts.receive {
        ReceiveMode::Socket => {
            refuse_no_accept(&insts, "raw sockets were asked for (--receive socket)")?;
            (sockets(&insts)?, None)
        }
        ReceiveMode::Xdp => xdp(&insts, &opts, early)?,
        ReceiveMode::Auto => match xdp(&insts, &opts, early) {
            Ok(s) => s,
            // Another agent serves our VRID there: no fallback (issue 12, case 9).
            Err(e @ DaemonError::Datapath(DatapathError::Taken { .. })) => return Err(e),
            Err(e) => {
                refuse_no_accept(&insts, &format!("XDP is unavailable ({e})"))?;
                log::warn!("XDP unavailable ({e}); receiving on raw sockets instead (more CPU per packet)");
                (sockets(&insts)?, None)
            }
        },
    };
    if attach.is_some() {
        for inst in &mut insts {
            inst.machine.set_deaf();
        }
    }
    match attach {
        Some(_) => log::debug!("start-up: receive path attaching"),
        None => log::info!("receive path up ({})", source.kind()),
    }
    let deadline = Deadline::new().map_err(io("timerfd"))?;
    // Bound before the instances start, so that a taken port is an error
    // at start, not a silent absence of metrics.
    let scrapes = match opts.metrics {
        Some(addr) => {
            let listener = super::metrics::bind(addr).await.map_err(io("binding the metrics address"))?;
            log::info!("Serving Prometheus metrics on http://{addr}/metrics");
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::spawn(super::metrics::serve(listener, tx));
            Some(rx)
        }
        None => None,
    };
    let (checks, health_rx) = start_health(&cfg, &mut insts);
    let groups = sync_groups(&cfg, &mut insts);
    let group_notify_as =
        user::resolve(None, cfg.global.script_user.as_ref(), cfg.global.enable_script_security).ok();
    let (trackers, track_rx, track_tasks) = start_trackers(&cfg, false);
    for inst in &mut insts {
        resolve_trackers(&cfg, inst);
    }
    let fifos = Fifos::open(
        &cfg.global.fifos,
        user::resolve(None, cfg.global.script_user.as_ref(), cfg.global.enable_script_security)
            .ok()
            .flatten(),
    );
    // The links' state now (one dump), just before subscribing below.
    let ifs = link::Ifaddrs::now();
    let mut links: HashMap<u32, bool> = HashMap::new();
    for inst in &insts {
        for (idx, name, _) in inst.track_ifs.iter().filter(|(idx, _, _)| *idx != 0) {
            links.entry(*idx).or_insert_with(|| ifs.is_up(name));
        }
    }
    // Subscribe before the dump, so that no change falls between them.
    let route_keys: std::collections::BTreeSet<_> = insts
        .iter()
        .flat_map(|i| &i.conf.routes)
        .chain(&cfg.static_routes)
        .map(super::routes::route_key)
        .collect();
    let rule_keys: std::collections::BTreeSet<_> = insts
        .iter()
        .flat_map(|i| &i.conf.rules)
        .chain(&cfg.static_rules)
        .map(super::routes::rule_key)
        .collect();
    // What one takeover (or release) can report at once: each VIP (and
    // its local route), each virtual route and rule, each instance's
    // links (see `link::event_buffer_size`).
    let notifications = insts
        .iter()
        .map(|i| {
            2 * (i.conf.vips.len() + i.conf.vips_excluded.len())
                + i.conf.routes.len()
                + i.conf.rules.len()
                + 2
        })
        .sum::<usize>()
        + 2 * cfg.static_addresses.len()
        + cfg.static_routes.len()
        + cfg.static_rules.len();
    let mut net = NetEvents::subscribe(
        !route_keys.is_empty(),
        !rule_keys.is_empty(),
        link::event_buffer_size(notifications),
    )
    .map_err(io("netlink events"))?;
    let mut addrs = Reconciler::new();
    match link::dump_addresses(&nl).await {
        Ok(list) => {
            for (ifindex, addr, prefix) in list {
                addrs.observed(AddrKey { ifindex, addr }, prefix, true);
            }
        }
        Err(e) => log::error!("reading the interfaces' addresses: {e}"),
    }
    log::debug!("start-up: addresses dumped");
    // Only what we add is ever removed: routes and rules found at start
    // are someone else's (a crashed run's are removed from its record).
    let mut routes = super::reconcile::Reconciler::only_own();
    if !route_keys.is_empty() {
        match super::routes::dump_routes(&nl).await {
            Ok(list) => routes.resync(list.into_iter().filter(|k| route_keys.contains(k)).map(|k| (k, ()))),
            Err(e) => log::error!("reading the kernel's routes: {e}"),
        }
    }
    let mut rules = super::reconcile::Reconciler::only_own();
    if !rule_keys.is_empty() {
        match super::routes::dump_rules(&nl).await {
            Ok(list) => rules.resync(list.into_iter().filter(|k| rule_keys.contains(k)).map(|k| (k, ()))),
            Err(e) => log::error!("reading the kernel's rules: {e}"),
        }
    }
    let status_writer = super::status::Writer::start(&opts.name);
    let held_record = super::vips::Record::open(&opts.name);
    let tx_thread = match super::tx_thread::TxThread::start(live.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("starting the advert thread: {e}; the event loop sends the adverts");
            None
        }
    };
    let mut agent = Agent {
        tx_thread,
        cfg_path: opts.config_path.clone(),
        opts,
        cfg,
        insts,
        source,
        attach: None,
        deadline,
        checks,
        net_groups: net.groups(),
        adverts: super::tx::Batch::default(),
        links,
        nl,
        addrs,
        routes,
        rules,
        route_keys,
        rule_keys,
        stopping: false,
        starting: false,
        batch: None,
        vmacs,
        vmac_names: HashMap::new(),
        retry_at: None,
        written: None,
        written_at: Micros(0),
        untrimmed_masters: 0,
        status_writer,
        held_record,
        direct: super::vips::Direct::open()
            .map_err(|e| log::warn!("a netlink socket for address changes: {e}; using rtnetlink's"))
            .ok(),
        groups,
        group_notify_as,
        no_accept: NoAcceptRows::default(),
        sd: super::sd::Notifier::from_env(),
        counters: super::metrics::Counters::default(),
        scrapes,
        trackers,
        track_rx,
        track_tasks,
        fifos,
        retired: Default::default(),
        resumed,
        live,
        woke_ns: 0,
        due_ns: None,
        sched: super::timer::SchedStat::open(),
    };
    if let Some(targets) = attach {
        begin_attach(&mut agent, targets)?;
    }
    log::debug!("start-up: serving");
    // Stopped just before the agent's own first advert (`Agent::start`).
    agent.serve(net, health_rx, signals, shutdown, bridge).await
}

/// Open files an agent with `instances` instances may need: an advert
/// socket each, a packet socket for announcements once it has been MASTER
/// and an ICMPv6 one for IPv6, plus a margin for the rest.
pub(super) fn files_needed(instances: usize) -> u64 {
    (instances as u64).saturating_mul(3).saturating_add(64)
}

/// keepalived raises its open-file limit to what its instances need
/// (vrrp_daemon.c, `set_max_file_limit`); so does the agent: under
/// systemd the soft limit is 1,024, which 4,000 instances exceed.
fn raise_file_limit(instances: usize) {
    let want = files_needed(instances);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    // Root may raise the hard limit too (CAP_SYS_RESOURCE); else up to it.
    let raised = libc::rlimit { rlim_cur: want, rlim_max: lim.rlim_max.max(want) };
    let capped = libc::rlimit { rlim_cur: want.min(lim.rlim_max), rlim_max: lim.rlim_max };
    // SAFETY: setrlimit reads the struct it is given.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0
        || unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 && capped.rlim_cur >= want;
    if !ok {
        log::warn!(
            "{instances} instances may need {want} open files, and the limit stays at {}: raise LimitNOFILE",
            lim.rlim_cur
        );
    }
}

/// Accept Mode off (`no_accept`, or implied by `vrrp_strict`) is the XDP
/// program's job (vrrp-common `accept`): on raw sockets nothing would drop
/// the packets to the VIPs, and a master would answer them in breach of
/// RFC 5798 6.4.3 while its configuration says it does not. Refuse,
/// rather than run something other than what the file says.
fn refuse_no_accept(insts: &[Inst], why: &str) -> Result<(), DaemonError> {
    match insts.iter().find(|i| i.conf.drops_to_vips()) {
        Some(i) => Err(DaemonError::NoAcceptNeedsXdp {
            instance: i.conf.name.clone(),
            why: why.to_string(),
            strict: i.conf.strict,
        }),
        None => Ok(()),
    }
}

/// Refuse to start when another agent's live program serves one of our
/// VRIDs on an interface (issue 12, case 9); notes about other occupants.
fn refuse_taken(insts: &[Inst]) -> Result<Vec<String>, DaemonError> {
    let wanted: Vec<_> = insts
        .iter()
        .filter(|i| i.bound())
        .map(|i| (i.conf.interface.as_str(), i.ifindex, i.family, i.conf.vrid))
        .collect();
    Ok(crate::datapath::refuse_taken(&wanted)?)
}

/// The map sizes for these instances (`MapSizes::for_config`).
fn map_sizes<'a>(
    confs: impl Iterator<Item = &'a crate::config::Instance> + Clone,
) -> crate::datapath::MapSizes {
    let vips = confs.clone().map(|c| c.vips.len() + c.vips_excluded.len()).sum();
    crate::datapath::MapSizes::for_config(confs.count(), vips)
}

/// An XDP attach running on its thread (`Datapath::attach_in_background`)
/// while the instances start; `Agent::on_attached` takes its result.
pub(super) struct PendingAttach {
    pub(super) job: crate::datapath::attach::AttachJob,
    /// What a failure does: `Auto` falls back to raw sockets, `Xdp` stops.
    pub(super) mode: ReceiveMode,
}

/// Interfaces (name, index) the program is to be attached to.
type Targets = Vec<(String, u32)>;

/// Start the XDP attach on its thread (`Datapath::attach_in_background`),
/// as late as can be: the attach holds the kernel's RTNL lock while it
/// waits for an RCU grace period, and the start-up's netlink dumps (the
/// interfaces, the addresses) would wait for it, so it starts after them,
/// just before the instances enter their first state (measured: started
/// before the dumps, the event loop waited 20 ms for them, the whole attach).
fn begin_attach(agent: &mut Agent, targets: Targets) -> Result<(), DaemonError> {
    let Source::Xdp(x) = &agent.source else { return Ok(()) };
    agent.attach = Some(PendingAttach { job: x.dp.attach_in_background(targets)?, mode: agent.opts.receive });
    log::debug!("start-up: attaching on a thread");
    Ok(())
}

/// How the log names an attach mode.
pub(super) fn mode_words(mode: Option<&AttachMode>) -> &'static str {
    match mode {
        Some(AttachMode::Generic) => "generic mode: the driver has no native XDP",
        _ => "native mode",
    }
}

/// Load (or reuse) the program and configure its maps; attach it now, or,
/// if `early`, on a thread (the `PendingAttach` returned).
fn xdp(insts: &[Inst], opts: &Options, early: bool) -> Result<(Source, Option<Targets>), DaemonError> {
    // A killed agent of this name left its XDP link pinned: remove it (the
    // kernel refuses a second program on the interface).
    Datapath::clear_stale(&opts.pin_root, &opts.name);
    // Another agent's live program serving one of our VRIDs here: refuse
    // (issue 12, case 9). Other occupants make the attach below fail, and
    // `--receive auto` falls back to sockets(), which warns about them.
    for note in refuse_taken(insts)? {
        log::debug!("{note}");
    }
    log::debug!("start-up: stale pins cleared, occupants checked");
    let sizes = map_sizes(insts.iter().map(|i| &i.conf));
    // The program this agent name verified at an earlier start, if it is
    // of this object and these map sizes (datapath/cache.rs); `--no-pin`
    // pins nothing, so it neither uses nor leaves a cache.
    let mut dp = if opts.no_pin {
        Datapath::load_sized(opts.ebpf_object.as_deref(), &sizes)?
    } else {
        let agent_dir = crate::bpffs::persistent_root(&opts.pin_root).join(&opts.name);
        Datapath::load_cached(opts.ebpf_object.as_deref(), &sizes, &agent_dir)?
    };
    log::debug!("start-up: XDP object loaded");
    // Every instance's map entries before the first attach: an advert that
    // arrived in between would be taken for another daemon's (unknown_vrid).
    for inst in insts.iter().filter(|i| i.bound()) {
        dp.configure(inst.ifindex, inst.family, inst.conf.vrid, &inst.expect(), opts.pass_up)?;
    }
    log::debug!("start-up: maps configured");
    // An instance whose interface does not exist yet attaches when it appears.
    let mut targets: Vec<(String, u32)> = Vec::new();
    for inst in insts.iter().filter(|i| i.bound()) {
        if !targets.iter().any(|(_, idx)| *idx == inst.ifindex) {
            targets.push((inst.conf.interface.clone(), inst.ifindex));
        }
    }
    let mut pending = None;
    let mut pin_dir = None;
    if early && !targets.is_empty() {
        // Started by `begin_attach`, just before the instances start.
        pending = Some(targets);
        // A freshly verified program goes into the cache now (it needs
        // every map, the event ring too, which `take_events` takes out
        // below): a stop before the attach is done keeps it for the next
        // start (`pin_for` would do it only after the attach).
        if !opts.no_pin {
            dp.cache_now();
        }
    } else {
        for (iface, _) in &targets {
            dp.attach(iface, AttachMode::Auto)?;
            log::info!("XDP program attached to {iface} ({})", mode_words(dp.modes().last()));
        }
        pin_dir = if opts.no_pin { None } else { Some(dp.pin_for(&opts.pin_root, &opts.name)?) };
        log::debug!("start-up: pinned");
    }
    // SAFETY: `Events` owns the ring buffer's fd, and the AsyncFd owns the
    // `Events`, so the fd stays open and the same for the AsyncFd's life.
    let events = unsafe { AsyncFd::register_with_interest(dp.take_events()?, Interest::READABLE) }
        .map_err(|e| DaemonError::Io { instance: "-".into(), what: "event ring", source: e.into() })?;
    let source = Source::Xdp(Box::new(XdpSource {
        dp,
        events,
        alive_at: timer::now(),
        pin_dir,
        pass_up: opts.pass_up,
        ah_rxs: ah_receivers(insts)?,
    }));
    Ok((source, pending))
}

pub(super) fn sockets(insts: &[Inst]) -> Result<Source, DaemonError> {
    // Raw sockets would hear adverts beside another agent's live program
    // for the same VRID just as well: refuse here too (issue 12, case 9).
    for note in refuse_taken(insts)? {
        log::warn!("{note}");
    }
    let mut by_key: HashMap<(u32, bool), Receiver> = HashMap::new();
    for inst in insts.iter().filter(|i| i.bound()) {
        let key = (inst.ifindex, inst.family == Family::V6);
        let rx = match by_key.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let rx = Receiver::open_as(inst.rx_iface(), inst.family, inst.ifindex).map_err(|source| {
                    DaemonError::Io { instance: inst.conf.name.clone(), what: "raw receive socket", source }
                })?;
                log::info!("receiving on a raw socket on {}", inst.rx_iface());
                v.insert(rx)
            }
        };
        rx.add_instance(inst.conf.vrid, inst.fallback_instance());
    }
    let mut rxs = Vec::new();
    for (_, rx) in by_key {
        // SAFETY: the Receiver owns its socket and the AsyncFd owns the
        // Receiver, so the fd stays open and the same for the AsyncFd's life.
        let fd = unsafe { AsyncFd::register_with_interest(rx, Interest::READABLE) }.map_err(|e| {
            DaemonError::Io { instance: "-".into(), what: "registering a socket", source: e.into() }
        })?;
        rxs.push(fd);
    }
    rxs.extend(ah_receivers(insts)?);
    Ok(Source::Sockets { rxs })
}

/// The sync groups of `cfg`, one per `cfg.sync_groups` entry, their
/// members' machines made to wait for their group.
fn sync_groups(cfg: &Config, insts: &mut [Inst]) -> Vec<SyncGroup> {
    cfg.sync_groups
        .iter()
        .map(|g| {
            let members: Vec<usize> =
                g.members.iter().filter_map(|name| insts.iter().position(|i| &i.conf.name == name)).collect();
            for &m in &members {
                insts[m].machine.set_synced();
            }
            SyncGroup::new(g.name.clone(), members)
        })
        .collect()
}

/// One raw protocol-51 socket per interface with an AH instance: on both
/// receive paths, AH adverts are authenticated here (the XDP program
/// passes them up unauthenticated).
fn ah_receivers(insts: &[Inst]) -> Result<Vec<AsyncFd<Receiver>>, DaemonError> {
    let mut out: Vec<AsyncFd<Receiver>> = Vec::new();
    for inst in insts.iter().filter(|i| i.bound() && i.ah.is_some()) {
        if out.iter().any(|r| r.get_ref().ifindex() == inst.ifindex) {
            continue;
        }
        let rx = super::source::open_ah(insts, inst.ifindex, &inst.conf.interface).map_err(|source| {
            DaemonError::Io { instance: inst.conf.name.clone(), what: "raw AH receive socket", source }
        })?;
        log::info!("receiving AH adverts on a raw socket on {}", inst.conf.interface);
        out.push(rx);
    }
    Ok(out)
}

/// Instance `inst`'s track file and track process entries in `cfg`'s
/// tables (index, weight, reverse), replacing any it had.
pub(super) fn resolve_trackers(cfg: &Config, inst: &mut Inst) {
    inst.track_files.clear();
    inst.track_procs.clear();
    for t in &inst.conf.track_file {
        if let Some(i) = cfg.track_files.iter().position(|f| f.name == t.name) {
            let f = &cfg.track_files[i];
            inst.track_files.push((i, t.weight.unwrap_or(f.weight), t.reverse.unwrap_or(f.reverse)));
        }
    }
    for t in &inst.conf.track_process {
        if let Some(i) = cfg.track_processes.iter().position(|p| p.name == t.name) {
            let p = &cfg.track_processes[i];
            inst.track_procs.push((i, t.weight.unwrap_or(p.weight), t.reverse.unwrap_or(p.reverse)));
        }
    }
}

/// The track file and track process watchers: their state, the channel
/// their changes come in on, their tasks.
pub(super) type TrackerParts = (Trackers, UnboundedReceiver<TrackEvent>, Vec<tokio::task::AbortHandle>);

/// Resolve who tracks which track file and track process, read the files
/// and scan the processes (so that the instances start with their
/// verdicts, as keepalived reads them before it starts the instances),
/// then watch both; changes come in on the channel returned. A reload
/// that changes them runs this again (`reload`; the old tasks aborted).
/// The instances' entries come from `resolve_trackers`.
pub(super) fn start_trackers(cfg: &Config, reload: bool) -> TrackerParts {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut files_used = vec![false; cfg.track_files.len()];
    let mut procs_used = vec![false; cfg.track_processes.len()];
    for inst in &cfg.instances {
        for t in &inst.track_file {
            if let Some(i) = cfg.track_files.iter().position(|f| f.name == t.name) {
                files_used[i] = true;
            }
        }
        for t in &inst.track_process {
            if let Some(i) = cfg.track_processes.iter().position(|p| p.name == t.name) {
                procs_used[i] = true;
            }
        }
    }
    let mut tasks = Vec::new();
    let watch = track_file::start(&cfg.track_files, &files_used, tx.clone(), reload);
    tasks.extend(watch.task);
    let mut trackers =
        Trackers { files: watch.values, procs: vec![Health::Unknown; cfg.track_processes.len()] };
    // Untracked processes are not watched (keepalived drops them too).
    let wanted: Vec<_> =
        cfg.track_processes.iter().zip(&procs_used).filter(|(_, u)| **u).map(|(p, _)| p.clone()).collect();
    let index: Vec<usize> = procs_used.iter().enumerate().filter(|(_, u)| **u).map(|(i, _)| i).collect();
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel();
    match track_process::start(&wanted, ptx) {
        Ok(task) => {
            tasks.extend(task);
            // The scan's verdicts are there already: take them now.
            while let Ok(ev) = prx.try_recv() {
                if let TrackEvent::Process { index: j, up } = ev {
                    trackers.apply(TrackEvent::Process { index: index[j], up });
                }
            }
            let tx = tx.clone();
            // Ends with the watcher (its sender dropped).
            tokio::spawn(async move {
                while let Some(ev) = prx.recv().await {
                    let ev = match ev {
                        TrackEvent::Process { index: j, up } => TrackEvent::Process { index: index[j], up },
                        other => other,
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => log::error!(
            "track_process: cannot open the kernel's process connector ({e}): tracked processes stay unknown and weigh nothing"
        ),
    }
    // Anything the watchers reported meanwhile is newer than the start.
    while let Ok(ev) = rx.try_recv() {
        trackers.apply(ev);
    }
    (trackers, rx, tasks)
}

/// Resolve who tracks which script and who runs the notify scripts, then
/// start each tracked script's check loop (`Checks`).
fn start_health(
    cfg: &Config,
    insts: &mut [Inst],
) -> (super::checks::Checks, UnboundedReceiver<runner::CheckResult>) {
    let security = cfg.global.enable_script_security;
    // config::check refuses a missing script user before we get here; if it
    // vanished since, do as keepalived does (lib/notify.c): never fall back
    // to root, drop the notify scripts, loudly.
    let notify_as = match user::resolve(None, cfg.global.script_user.as_ref(), security) {
        Ok(r) => Some(r),
        Err(e) => {
            log::error!("{e}: notify scripts disabled (keepalived does not run them as root either)");
            None
        }
    };
    let warned_default =
        notify_as == Some(None) && insts.iter().any(|i| i.conf.notify.scripts().next().is_some());
    if warned_default {
        log::warn!(
            "WARNING - default user '{}' for script execution does not exist - please create.",
            user::DEFAULT_SCRIPT_USER
        );
    }
    let (checks, rx) = super::checks::Checks::start(cfg, notify_as == Some(None));
    let running = checks.running();
    for inst in insts.iter_mut() {
        match notify_as {
            Some(r) => inst.notify_as = r,
            None => inst.conf.notify = crate::config::model::Notify::default(),
        }
        super::instance::resolve_tracks(inst, &cfg.scripts, &running);
    }
    (checks, rx)
}
