//! The daemon: one task owns every instance's state machine and reacts to
//! peer events, timer deadlines and shutdown; actions go out as adverts,
//! address changes and announcements.
//!
//! Adverts come in through the XDP fast path (or the raw-socket fallback):
//! the kernel keeps each peer's last-seen time and raises an event only on
//! change. So a backup does not wake per advert: when its Master_Down_Timer
//! comes due, it first reads the peer table and feeds the state machine the
//! adverts the kernel saw (at the times it saw them). A master that kept
//! advertising resets the timer; a late wake-up (a stalled or SIGSTOPped
//! agent) therefore never turns into a false takeover.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rtnetlink::Handle;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use vrrp_common::maps::{ALIVE_REFRESH_NS, EVENT_SILENT, PeerEvent, PeerKey, PeerState};
use vrrp_common::rx::Expect;
use vrrp_common::wire::{Auth, Family};

use super::announce::Announcer;
use super::link::{self, LinkEvents};
use super::status::{self, AgentStatus, InstanceStatus, Stats};
use super::timer::{self, Deadline};
use super::tx::{AdvertSpec, Sender};
use super::vips::ManagedVip;
use crate::config::model::AuthConf;
use crate::config::{self, Config};
use crate::datapath::{AttachMode, Datapath, DatapathError, Events};
use crate::fallback::{self, Receiver};
use crate::health::runner::{self, CheckSpec, RunAs};
use crate::health::{self, Health, Status, Tracked, user};
use crate::instance_lock;
use crate::machine::{Action, Input, Machine, Micros, Params, State};

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
    /// The XDP path failed (and no fallback was allowed).
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// Another agent has this name.
    #[error(transparent)]
    Lock(#[from] instance_lock::LockError),
}

/// One running instance.
struct Inst {
    conf: config::Instance,
    machine: Machine,
    ifindex: u32,
    family: Family,
    sender: Sender,
    vips: Vec<ManagedVip>,
    announcer: Announcer,
    /// Per peer address: the last-seen time already fed to the machine.
    fed: HashMap<[u8; 16], u64>,
    /// Remaining announcement batches and when the next one is due.
    announce_at: Option<Micros>,
    announce_batches: u32,
    refresh_at: Option<Micros>,
    /// Own addresses of the family on the interface.
    own: Vec<IpAddr>,
    /// Tracked scripts: index in the script table, weight, reverse.
    tracks: Vec<(usize, i32, bool)>,
    /// Who notify scripts run as.
    notify_as: Option<RunAs>,
    /// Tracked interfaces: index, name, weight (0: FAULT when down). The
    /// instance's own interface is always among them.
    track_ifs: Vec<(u32, String, i32)>,
    /// Counters for the status file.
    stats: Stats,
    /// Unix time of the last transition.
    last_transition: f64,
    /// The kernel's master-down watch as last written (watch priority,
    /// our priority) and when (monotonic µs); None before the first write
    /// and on the raw-socket path, which has no watch.
    watch: Option<(u8, u8)>,
    watch_since: Micros,
    /// Whether the kernel's watch has been armed by an advert since it was
    /// last configured: then the agent's own Master_Down_Timer is only a
    /// backstop (`WATCH_BACKSTOP` later), and the kernel wakes us.
    watch_armed: bool,
}

/// With the kernel's master-down watch armed, the agent's own
/// Master_Down_Timer fires this much later, as a backstop should the
/// kernel's timer ever fail to fire: a backup then wakes about once a
/// second, not once per Master_Down_Interval.
const WATCH_BACKSTOP: Micros = Micros(1_000_000);

/// The XDP receive path's handles.
struct XdpSource {
    dp: Datapath,
    events: AsyncFd<Events>,
    /// When the `ALIVE_MAP` deadline was last moved.
    alive_at: Micros,
}

enum Source {
    Xdp(Box<XdpSource>),
    Sockets { rxs: Vec<AsyncFd<Receiver>> },
}

impl Source {
    /// Keep the XDP program's `ALIVE_MAP` deadline ahead; returns when to
    /// do it next (None on the raw-socket path).
    fn keep_alive(&mut self, now: Micros) -> Option<Micros> {
        let Source::Xdp(x) = self else { return None };
        let every = Micros(ALIVE_REFRESH_NS / 1000);
        if now.0 >= x.alive_at.0 + every.0 {
            match x.dp.set_alive() {
                Ok(()) => x.alive_at = now,
                Err(e) => log::warn!("moving the XDP program's alive deadline: {e}"),
            }
        }
        Some(x.alive_at.after(every))
    }

    /// Bring the kernel's watch of `inst` in line with its state; a map
    /// write only on change.
    fn sync_watch(&mut self, inst: &mut Inst, now: Micros) {
        let Source::Xdp(x) = self else { return };
        let want = inst.wanted_watch();
        if inst.watch == Some(want) {
            return;
        }
        match x.dp.set_watch(inst.ifindex, inst.family, inst.conf.vrid, want.0, want.1) {
            Ok(()) => {
                inst.watch = Some(want);
                inst.watch_since = now;
                inst.watch_armed = false;
            }
            Err(e) => {
                log::warn!("({}) configuring the kernel's master-down watch: {e}", inst.conf.name);
                inst.watch = None;
                inst.watch_armed = false;
            }
        }
    }

    fn peers(&self) -> Vec<(PeerKey, PeerState)> {
        match self {
            Source::Xdp(x) => match x.dp.peers() {
                Ok(rows) => rows.into_iter().map(|r| (r.key, r.state)).collect(),
                Err(e) => {
                    log::warn!("reading the peer table: {e}");
                    Vec::new()
                }
            },
            Source::Sockets { rxs } => {
                rxs.iter().flat_map(|r| r.get_ref().peers().iter().map(|(k, v)| (*k, *v))).collect()
            }
        }
    }
}

fn build(conf: &config::Instance) -> Result<Inst, DaemonError> {
    let name = conf.name.clone();
    let ifindex = nix::net::if_::if_nametoindex(conf.interface.as_str()).map_err(|source| {
        DaemonError::NoInterface { instance: name.clone(), iface: conf.interface.clone(), source }
    })?;
    let own = link::addresses(&conf.interface, conf.family);
    // RFC 5798 5.1.2.1: IPv6 adverts come from the link-local address.
    let src = match (conf.unicast_src_ip, conf.family) {
        (Some(a), _) => a,
        (None, Family::V4) => *own.first().ok_or(DaemonError::NoSource {
            instance: name.clone(),
            iface: conf.interface.clone(),
            family: "IPv4",
        })?,
        (None, Family::V6) => {
            *own.iter().find(|a| vrrp_common::rx::is_link_local_v6(a)).ok_or(DaemonError::NoSource {
                instance: name.clone(),
                iface: conf.interface.clone(),
                family: "IPv6 link-local",
            })?
        }
    };
    let auth = match &conf.auth {
        Some(AuthConf::Pass(p)) => Auth::simple(p.as_bytes()),
        None => Auth::None,
    };
    let spec = AdvertSpec {
        version: conf.version,
        vrid: conf.vrid,
        interval: conf.advert_int,
        auth,
        v4: conf
            .vips
            .iter()
            .filter_map(|v| if let IpAddr::V4(a) = v.addr { Some(a) } else { None })
            .collect(),
        v6: conf
            .vips
            .iter()
            .filter_map(|v| if let IpAddr::V6(a) = v.addr { Some(a) } else { None })
            .collect(),
        v3_checksum_as_v2: conf.v3_checksum_as_v2,
    };
    let io = |what: &'static str| {
        let instance = name.clone();
        move |source| DaemonError::Io { instance, what, source }
    };
    let sender = Sender::open(&conf.interface, ifindex, src, &conf.unicast_peers, spec)
        .map_err(io("advert socket"))?;
    let mut vips = Vec::new();
    for v in conf.vips.iter().chain(&conf.vips_excluded) {
        let idx = match &v.dev {
            Some(d) => nix::net::if_::if_nametoindex(d.as_str()).map_err(|source| {
                DaemonError::NoInterface { instance: conf.name.clone(), iface: d.clone(), source }
            })?,
            None => ifindex,
        };
        vips.push(ManagedVip::new(v.clone(), idx));
    }
    let mut track_ifs = vec![(ifindex, conf.interface.clone(), 0)];
    for t in &conf.track_interface {
        let idx = nix::net::if_::if_nametoindex(t.name.as_str()).map_err(|source| {
            DaemonError::NoInterface { instance: conf.name.clone(), iface: t.name.clone(), source }
        })?;
        track_ifs.push((idx, t.name.clone(), t.weight.unwrap_or(0)));
    }
    let announcer = Announcer::new(&conf.interface, ifindex).map_err(io("announcement sockets"))?;
    let mut own_all = own.clone();
    if !own_all.contains(&src) {
        own_all.push(src);
    }
    let params = Params {
        name: conf.name.clone(),
        version: conf.version,
        priority: conf.priority,
        advert_int: conf.advert_int,
        primary: src,
        preempt: conf.preempt,
        preempt_delay: Micros::from_centis(conf.preempt_delay),
    };
    Ok(Inst {
        conf: conf.clone(),
        machine: Machine::new(params),
        ifindex,
        family: conf.family,
        sender,
        vips,
        announcer,
        fed: HashMap::new(),
        watch: None,
        watch_since: Micros(0),
        watch_armed: false,
        announce_at: None,
        announce_batches: 0,
        refresh_at: None,
        own: own_all,
        tracks: Vec::new(),
        notify_as: None,
        track_ifs,
        stats: Stats::default(),
        last_transition: unix_now(),
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Inst {
    fn expect(&self) -> Expect<'_> {
        Expect {
            version: self.conf.version,
            auth: match &self.conf.auth {
                Some(AuthConf::Pass(p)) => Auth::simple(p.as_bytes()),
                None => Auth::None,
            },
            interval: self.conf.advert_int,
            own: &self.own,
            peers: &self.conf.unicast_peers,
        }
    }

    fn fallback_instance(&self) -> fallback::Instance {
        let e = self.expect();
        fallback::Instance {
            version: e.version,
            auth: e.auth,
            interval: e.interval,
            own: self.own.clone(),
            peers: self.conf.unicast_peers.clone(),
        }
    }

    fn owns(&self, key: &PeerKey) -> bool {
        key.ifindex == self.ifindex && key.family == self.family.code() && key.vrid == self.conf.vrid
    }

    /// Feed the machine one advert the receive path recorded, at the time
    /// it arrived; once per distinct last-seen time.
    fn feed(&mut self, key: &PeerKey, state: &PeerState, out: &mut Vec<Action>) {
        let seen = self.fed.entry(key.addr).or_insert(0);
        if state.last_seen_ns <= *seen {
            return;
        }
        *seen = state.last_seen_ns;
        let src = if key.family == vrrp_common::maps::FAMILY_IPV4 {
            IpAddr::V4(std::net::Ipv4Addr::new(key.addr[0], key.addr[1], key.addr[2], key.addr[3]))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(key.addr))
        };
        let input =
            Input::Advert { src, priority: state.priority, interval: vrrp_common::Centis(state.interval_cs) };
        // The XDP program armed the watch for this advert if it arrived
        // after the watch was configured and holds a backup down.
        if let Some((wp, _)) = self.watch
            && wp != 0
            && state.priority >= wp
            && state.last_seen_ns / 1000 > self.watch_since.0
        {
            self.watch_armed = true;
        }
        // A resignation sets our timer to Skew_Time, which the kernel's
        // watch (armed for Master_Down_Interval) does not cover.
        if state.priority == 0 {
            self.watch_armed = false;
        }
        self.machine.handle(Micros(state.last_seen_ns / 1000), input, out);
    }

    /// What the kernel's watch should be now: (watch priority, our
    /// priority). Only a backup watches; with preempt_delay the agent
    /// keeps its own timer (it must see the tolerated adverts).
    fn wanted_watch(&self) -> (u8, u8) {
        let p = self.machine.priority();
        if self.machine.state() != State::Backup || self.conf.preempt_delay.0 != 0 {
            return (0, p);
        }
        (if self.conf.preempt { p } else { 1 }, p)
    }

    /// keepalived's notify scripts for a new state: the state's own
    /// (`notify_master`, ...) as written, and `notify` with
    /// `INSTANCE NAME STATE PRIORITY` appended.
    fn notify(&self, to: State) {
        let n = &self.conf.notify;
        let (own, word) = match to {
            State::Master => (&n.master, "MASTER"),
            State::Backup => (&n.backup, "BACKUP"),
            State::Fault => (&n.fault, "FAULT"),
            State::Init => (&n.stop, "STOP"),
        };
        if let Some(cmd) = own {
            runner::spawn_notify(runner::argv(cmd), self.notify_as);
        }
        if let Some(cmd) = &n.any {
            let mut argv = runner::argv(cmd);
            argv.extend([
                "INSTANCE".to_owned(),
                self.conf.name.clone(),
                word.to_owned(),
                self.machine.priority().to_string(),
            ]);
            runner::spawn_notify(argv, self.notify_as);
        }
    }

    /// The effective priority and fault the tracked scripts and
    /// interfaces give.
    fn health_input(&self, statuses: &[(String, Status)], links: &HashMap<u32, bool>) -> (u8, bool) {
        let scripts = self.tracks.iter().filter_map(|(i, weight, reverse)| {
            statuses.get(*i).map(|(_, s)| Tracked { weight: *weight, reverse: *reverse, health: s.health() })
        });
        let ifs = self.track_ifs.iter().map(|(idx, _, weight)| Tracked {
            weight: *weight,
            reverse: false,
            health: if links.get(idx).copied().unwrap_or(true) { Health::Good } else { Health::Bad },
        });
        let tracked: Vec<Tracked> = scripts.chain(ifs).collect();
        health::effective(self.conf.priority, &tracked)
    }

    fn status(&self) -> InstanceStatus {
        InstanceStatus {
            iname: self.conf.name.clone(),
            state: self.machine.state().to_string(),
            interface: self.conf.interface.clone(),
            vrid: self.conf.vrid,
            base_priority: self.conf.priority,
            effective_priority: self.machine.priority(),
            adver_int: self.conf.advert_int.0,
            master_adver_int: self.machine.master_adver_int().0,
            vips: self.conf.vips.iter().map(|v| format!("{}/{}", v.addr, v.prefix)).collect(),
            last_transition: self.last_transition,
            stats: self.stats.clone(),
        }
    }

    fn next_deadline(&self) -> Option<Micros> {
        let mut machine = self.machine.poll_timeout();
        if self.watch_armed
            && self.watch.is_some_and(|(wp, _)| wp != 0)
            && machine == self.machine.master_down_deadline()
        {
            // The kernel wakes us when the master goes quiet; our own
            // timer is the backstop. Other timers of the machine (none
            // run in Backup today) keep their time.
            machine = machine.map(|d| d.after(WATCH_BACKSTOP));
        }
        [machine, self.announce_at, self.refresh_at].into_iter().flatten().min()
    }

    fn announce_now(&mut self) {
        for v in &self.vips {
            for _ in 0..self.conf.garp_master_repeat.max(1) {
                if let Err(e) = self.announcer.announce(v.vip.addr) {
                    log::warn!("({}) announcing {}: {e}", self.conf.name, v.vip.addr);
                }
            }
        }
        let what = if self.family == Family::V4 {
            "gratuitous ARPs"
        } else {
            "unsolicited neighbour advertisements"
        };
        for v in &self.vips {
            log::info!(
                "({}) Sending/queueing {what} on {} for {}",
                self.conf.name,
                self.conf.interface,
                v.vip.addr
            );
        }
    }
}

async fn netlink<T>(what: &str, f: impl Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(Duration::from_secs(2), f).await {
        Ok(v) => Some(v),
        Err(_) => {
            log::error!("netlink call hung ({what}); going on without it");
            None
        }
    }
}

async fn execute(inst: &mut Inst, now: Micros, actions: Vec<Action>, nl: &Handle) {
    let name = inst.conf.name.clone();
    for a in actions {
        match a {
            Action::Log(note) => log::info!("({name}) {note}"),
            Action::SendAdvert { priority } => {
                inst.stats.advert_sent += 1;
                if priority == 0 {
                    inst.stats.pri_zero_sent += 1;
                }
                for (dst, r) in inst.sender.send(priority) {
                    if let Err(e) = r {
                        log::warn!("({name}) cannot send advert to {dst}: {e}");
                    }
                }
            }
            Action::AddVips => {
                for v in &mut inst.vips {
                    match netlink("adding a VIP", v.add(nl)).await {
                        Some(Ok(true)) => {}
                        Some(Ok(false)) => {
                            log::warn!("({name}) {} was already on the interface: left alone", v.vip.addr)
                        }
                        Some(Err(e)) => log::error!("({name}) {e}"),
                        None => {}
                    }
                }
            }
            Action::RemoveVips => {
                for v in &mut inst.vips {
                    if let Some(Err(e)) = netlink("removing a VIP", v.remove(nl)).await {
                        log::error!("({name}) {e}");
                    }
                }
                inst.announce_at = None;
                inst.refresh_at = None;
            }
            Action::Announce => {
                inst.announce_now();
                let c = &inst.conf;
                // keepalived: a second batch after garp_master_delay, then
                // a refresh every garp_master_refresh.
                inst.announce_batches = u32::from(c.garp_master_delay > 0);
                inst.announce_at = (c.garp_master_delay > 0)
                    .then(|| now.after(Micros(u64::from(c.garp_master_delay) * 1_000_000)));
                inst.refresh_at = (c.garp_master_refresh > 0)
                    .then(|| now.after(Micros(u64::from(c.garp_master_refresh) * 1_000_000)));
            }
            Action::Transition { from, to } => {
                log::debug!("({name}) {from} -> {to}");
                inst.last_transition = unix_now();
                if to == State::Master {
                    inst.stats.become_master += 1;
                } else if from == State::Master {
                    inst.stats.release_master += 1;
                }
                if to != State::Master {
                    inst.announce_at = None;
                    inst.refresh_at = None;
                }
                inst.notify(to);
            }
        }
    }
}

/// Run the instances of `cfg` until `shutdown` resolves.
pub async fn run(cfg: Config, opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let _lock = instance_lock::acquire(&opts.name)?;
    let (conn, nl, _) = rtnetlink::new_connection().map_err(|source| DaemonError::Io {
        instance: "-".into(),
        what: "netlink",
        source,
    })?;
    tokio::spawn(conn);
    super::vips::cleanup_stale(&opts.name, &nl).await;
    let mut insts = cfg.instances.iter().map(build).collect::<Result<Vec<_>, _>>()?;
    let mut source = match opts.receive {
        ReceiveMode::Socket => sockets(&insts)?,
        ReceiveMode::Xdp => xdp(&insts, &opts)?,
        ReceiveMode::Auto => match xdp(&insts, &opts) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("XDP unavailable ({e}); receiving on raw sockets instead (more CPU per packet)");
                sockets(&insts)?
            }
        },
    };
    let mut deadline = Deadline::new().map_err(|source| DaemonError::Io {
        instance: "-".into(),
        what: "timerfd",
        source,
    })?;
    let (mut statuses, mut health_rx, _checks) = start_health(&cfg, &mut insts);
    let mut links: HashMap<u32, bool> = HashMap::new();
    for inst in &insts {
        for (idx, name, _) in &inst.track_ifs {
            links.insert(*idx, link::is_up(name));
        }
    }
    let mut link_events = LinkEvents::subscribe().map_err(|source| DaemonError::Io {
        instance: "-".into(),
        what: "netlink link events",
        source,
    })?;
    let now = timer::now();
    for inst in &mut insts {
        let mut out = Vec::new();
        // Scripts with init_fail count from the start.
        let (p, fault) = inst.health_input(&statuses, &links);
        if fault {
            log::info!("({}) a tracked interface or script is down: starting in FAULT", inst.conf.name);
        }
        inst.machine.handle(now, Input::Priority(p), &mut out);
        inst.machine.handle(now, Input::Fault(fault), &mut out);
        inst.machine.start(now, &mut out);
        execute(inst, now, out, &nl).await;
    }
    let receive = if matches!(source, Source::Xdp(_)) { "xdp" } else { "socket" };
    let mut written: Option<Vec<(State, u8)>> = None;
    let mut held_written: Vec<(u32, IpAddr, u8)> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        // The status file follows every change of state or priority;
        // checked without allocating, since a master passes here once per
        // advert.
        let changed = written.as_deref().is_none_or(|w: &[(State, u8)]| {
            !w.iter().copied().eq(insts.iter().map(|i| (i.machine.state(), i.machine.priority())))
        });
        if changed {
            let st = AgentStatus {
                pid: std::process::id(),
                receive: receive.into(),
                instances: insts.iter().map(Inst::status).collect(),
            };
            if let Err(e) = status::write(&opts.name, &st) {
                log::warn!("writing {}: {e}", status::path(&opts.name).display());
            }
            written = Some(insts.iter().map(|i| (i.machine.state(), i.machine.priority())).collect());
        }
        let held = || {
            insts.iter().flat_map(|i| {
                i.vips.iter().filter(|v| v.held()).map(|v| (v.ifindex, v.vip.addr, v.vip.prefix))
            })
        };
        if !held().eq(held_written.iter().copied()) {
            let now_held: Vec<(u32, IpAddr, u8)> = held().collect();
            if let Err(e) = super::vips::save_held(&opts.name, &now_held) {
                log::warn!("recording the VIPs held: {e}");
            }
            held_written = now_held;
        }
        let now = timer::now();
        for inst in &mut insts {
            source.sync_watch(inst, now);
        }
        let alive = source.keep_alive(now);
        let next = insts.iter().filter_map(Inst::next_deadline).chain(alive).min();
        if let Err(e) = deadline.set(next) {
            log::error!("arming the timer: {e}");
        }
        let mut events: Vec<PeerEvent> = Vec::new();
        let mut due = false;
        tokio::select! {
            _ = &mut shutdown => break,
            r = deadline.fired() => {
                if let Err(e) = r {
                    log::error!("timer: {e}");
                }
                due = true;
            }
            ev = next_events(&mut source) => events = ev,
            Some((ifindex, up)) = link_events.next() => {
                if links.get(&ifindex).is_none_or(|was| *was == up) {
                    continue;
                }
                links.insert(ifindex, up);
                let now = timer::now();
                for inst in insts.iter_mut().filter(|i| i.track_ifs.iter().any(|(t, _, _)| *t == ifindex)) {
                    if let Some((_, name, _)) = inst.track_ifs.iter().find(|(t, _, _)| *t == ifindex) {
                        log::info!("Netlink reports {name} {}", if up { "up" } else { "down" });
                    }
                    let (p, fault) = inst.health_input(&statuses, &links);
                    let mut out = Vec::new();
                    inst.machine.handle(now, Input::Fault(fault), &mut out);
                    inst.machine.handle(now, Input::Priority(p), &mut out);
                    execute(inst, now, out, &nl).await;
                }
            }
            Some((idx, ok)) = health_rx.recv() => {
                let Some((name, status)) = statuses.get_mut(idx) else { continue };
                let Some(h) = status.record(ok) else { continue };
                log::info!("VRRP_Script({name}) {}", if h == Health::Good { "succeeded" } else { "failed" });
                let now = timer::now();
                for inst in insts.iter_mut().filter(|i| i.tracks.iter().any(|(t, _, _)| *t == idx)) {
                    let (p, fault) = inst.health_input(&statuses, &links);
                    let mut out = Vec::new();
                    inst.machine.handle(now, Input::Fault(fault), &mut out);
                    inst.machine.handle(now, Input::Priority(p), &mut out);
                    execute(inst, now, out, &nl).await;
                }
            }
        }
        // The kernel's watch expired for an instance: its master went
        // quiet. Decide as for our own timer (the late-agent rule first).
        if events.iter().any(|e| e.kind & EVENT_SILENT != 0) {
            due = true;
        }
        if due {
            let now = timer::now();
            // The late-agent rule: before a backup gives up on its
            // master, read what the kernel saw meanwhile.
            if insts.iter().any(|i| i.machine.master_down_deadline().is_some_and(|d| d <= now)) {
                let peers = source.peers();
                for inst in &mut insts {
                    if inst.machine.master_down_deadline().is_none_or(|d| d > now) {
                        continue;
                    }
                    let mut fresh: Vec<&(PeerKey, PeerState)> =
                        peers.iter().filter(|(k, _)| inst.owns(k)).collect();
                    fresh.sort_by_key(|(_, s)| s.last_seen_ns);
                    let mut out = Vec::new();
                    for (k, s) in fresh {
                        inst.feed(k, s, &mut out);
                    }
                    execute(inst, now, out, &nl).await;
                }
            }
            for inst in &mut insts {
                let mut out = Vec::new();
                inst.machine.handle_timeout(now, &mut out);
                execute(inst, now, out, &nl).await;
                if inst.machine.state() == State::Master {
                    if inst.announce_at.is_some_and(|t| t <= now) {
                        inst.announce_now();
                        inst.announce_batches = inst.announce_batches.saturating_sub(1);
                        inst.announce_at = None;
                    }
                    if inst.refresh_at.is_some_and(|t| t <= now) {
                        inst.announce_now();
                        inst.refresh_at =
                            Some(now.after(Micros(u64::from(inst.conf.garp_master_refresh) * 1_000_000)));
                    }
                }
            }
        }
        for ev in events.iter().filter(|e| e.kind & EVENT_SILENT == 0) {
            for inst in insts.iter_mut().filter(|i| i.owns(&ev.key)) {
                let mut out = Vec::new();
                inst.feed(&ev.key, &ev.state, &mut out);
                execute(inst, timer::now(), out, &nl).await;
            }
        }
    }
    // Shutdown: resign first (the backups' Skew_Time starts with our
    // priority-0 advert), drop the VIPs, then detach.
    let now = timer::now();
    for inst in &mut insts {
        let mut out = Vec::new();
        inst.machine.handle(now, Input::Shutdown, &mut out);
        execute(inst, now, out, &nl).await;
        // Anything still held (an earlier removal that failed) goes too.
        for v in &mut inst.vips {
            if v.held() {
                if let Some(Err(e)) = netlink("removing a VIP", v.remove(&nl)).await {
                    log::error!("({}) {e}", inst.conf.name);
                }
            }
        }
    }
    // The XDP teardown holds the kernel's RTNL lock for 10-20 ms. A backup
    // on the same kernel (namespaces, containers) needs that lock to add
    // the VIP within its Skew_Time (< one advert interval), so linger one
    // interval, at most 1 s, before detaching (measured: 10 ms adverts,
    // graceful failover 21 ms to VIP without, see bench-results/report.md).
    let linger =
        insts.iter().map(|i| Micros::from_centis(i.conf.advert_int).0).max().unwrap_or(0).min(1_000_000);
    if insts.iter().any(|i| i.stats.pri_zero_sent > 0) {
        tokio::time::sleep(Duration::from_micros(linger)).await;
    }
    status::remove(&opts.name);
    if insts.iter().all(|i| i.vips.iter().all(|v| !v.held())) {
        let _ = std::fs::remove_file(super::vips::held_file(&opts.name));
    }
    drop(source);
    log::info!("Stopped");
    Ok(())
}

/// Wait for the next batch of peer events from the receive path.
async fn next_events(source: &mut Source) -> Vec<PeerEvent> {
    match source {
        Source::Xdp(x) => {
            let mut out = Vec::new();
            if let Ok(mut guard) = x.events.readable_mut().await {
                while let Some(ev) = guard.get_inner_mut().next() {
                    out.push(ev);
                }
                guard.clear_ready();
            }
            out
        }
        Source::Sockets { rxs } => match fallback::next_events(rxs, || timer::now().0 * 1000).await {
            Ok(events) => events,
            Err(e) => {
                log::warn!("receive error: {e}");
                Vec::new()
            }
        },
    }
}

fn xdp(insts: &[Inst], opts: &Options) -> Result<Source, DaemonError> {
    // A killed agent of this name left its XDP link pinned: remove it (the
    // kernel refuses a second program on the interface).
    Datapath::clear_stale(&opts.pin_root, &opts.name);
    let mut dp = Datapath::load(opts.ebpf_object.as_deref())?;
    let mut attached: HashMap<u32, ()> = HashMap::new();
    for inst in insts {
        if attached.insert(inst.ifindex, ()).is_none() {
            dp.attach(&inst.conf.interface, AttachMode::Auto)?;
            let mode = match dp.modes().last() {
                Some(AttachMode::Generic) => "generic mode: the driver has no native XDP",
                _ => "native mode",
            };
            log::info!("XDP program attached to {} ({mode})", inst.conf.interface);
        }
        dp.configure(inst.ifindex, inst.family, inst.conf.vrid, &inst.expect(), opts.pass_up)?;
    }
    if !opts.no_pin {
        dp.pin_for(&opts.pin_root, &opts.name)?;
    }
    // SAFETY: `Events` owns the ring buffer's fd, and the AsyncFd owns the
    // `Events`, so the fd stays open and the same for the AsyncFd's life.
    let events = unsafe { AsyncFd::register_with_interest(dp.take_events()?, Interest::READABLE) }
        .map_err(|e| DaemonError::Io { instance: "-".into(), what: "event ring", source: e.into() })?;
    Ok(Source::Xdp(Box::new(XdpSource { dp, events, alive_at: timer::now() })))
}

fn sockets(insts: &[Inst]) -> Result<Source, DaemonError> {
    let mut by_key: HashMap<(u32, bool), Receiver> = HashMap::new();
    for inst in insts {
        let key = (inst.ifindex, inst.family == Family::V6);
        let rx = match by_key.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let rx = Receiver::open(&inst.conf.interface, inst.family).map_err(|source| {
                    DaemonError::Io { instance: inst.conf.name.clone(), what: "raw receive socket", source }
                })?;
                log::info!("receiving on a raw socket on {}", inst.conf.interface);
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
    Ok(Source::Sockets { rxs })
}

/// Script states, the channel their results come in on, and the tasks.
type HealthParts = (
    Vec<(String, Status)>,
    tokio::sync::mpsc::UnboundedReceiver<runner::CheckResult>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Resolve who tracks which script, then start each tracked script's
/// check loop (untracked scripts do not run, as in keepalived).
fn start_health(cfg: &Config, insts: &mut [Inst]) -> HealthParts {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let statuses: Vec<(String, Status)> =
        cfg.scripts.iter().map(|s| (s.name.clone(), Status::new(s.rise, s.fall, s.init_fail))).collect();
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
    if notify_as == Some(None) && insts.iter().any(|i| i.conf.notify.scripts().next().is_some()) {
        log::warn!(
            "WARNING - default user '{}' for script execution does not exist - please create.",
            user::DEFAULT_SCRIPT_USER
        );
    }
    let mut used = vec![false; cfg.scripts.len()];
    for inst in insts.iter_mut() {
        match notify_as {
            Some(r) => inst.notify_as = r,
            None => inst.conf.notify = config::model::Notify::default(),
        }
        for t in &inst.conf.track_script {
            if let Some(i) = cfg.scripts.iter().position(|s| s.name == t.name) {
                let sc = &cfg.scripts[i];
                inst.tracks.push((i, t.weight.unwrap_or(sc.weight), t.reverse || sc.reverse));
                used[i] = true;
            }
        }
    }
    let mut tasks = Vec::new();
    let mut warned = false;
    let mut warned_default = notify_as == Some(None);
    for (i, sc) in cfg.scripts.iter().enumerate() {
        if !used[i] {
            continue;
        }
        let argv = runner::argv(&sc.script);
        let run_as = match user::resolve(sc.user.as_ref(), cfg.global.script_user.as_ref(), security) {
            Ok(None) if !warned_default && sc.user.is_none() => {
                log::warn!(
                    "WARNING - default user '{}' for script execution does not exist - please create.",
                    user::DEFAULT_SCRIPT_USER
                );
                warned_default = true;
                None
            }
            Ok(r) => r,
            Err(e) => {
                log::error!("VRRP_Script({}) disabled: {e}", sc.name);
                continue;
            }
        };
        if cfg.global.enable_script_security {
            if let Some(why) = argv.first().and_then(|p| user::unsafe_reason(p)) {
                log::error!("Unsafe permissions found for script '{}' - disabling ({why})", sc.script);
                continue;
            }
        } else if run_as.is_none() && !warned {
            log::warn!("SECURITY VIOLATION - scripts are being executed but script_security not enabled.");
            warned = true;
        }
        let interval = std::time::Duration::from_secs(u64::from(sc.interval));
        let timeout = std::time::Duration::from_secs(u64::from(sc.timeout.unwrap_or(sc.interval)));
        tasks.push(runner::spawn_check(CheckSpec { index: i, argv, interval, timeout, run_as }, tx.clone()));
    }
    (statuses, rx, tasks)
}
