//! The daemon's owner: one task holds every instance's state machine and
//! the kernel state the agent installs, and each event source has its own
//! handler (`on_peer_events`, `on_timer`, `on_net`, `on_health`,
//! `on_signal`).
//!
//! Adverts come in through the XDP fast path (or the raw-socket fallback):
//! the kernel keeps each peer's last-seen time and raises an event only on
//! change. So a backup does not wake per advert: when its Master_Down_Timer
//! comes due, it first reads the peer table and feeds the state machine the
//! adverts the kernel saw (at the times it saw them). A master that kept
//! advertising resets the timer; a late wake-up (a stalled or SIGSTOPped
//! agent) therefore never turns into a false takeover.
//!
//! Addresses are reconciled, not fired and forgotten: the machines say
//! which VIPs they want (`Inst::wants`), the kernel's address events say
//! what is there, and `Reconciler` decides what to add or remove. A VIP
//! deleted under a master is put back; one found on a backup is removed.
//! Virtual routes and rules (`Inst::route_wants`, `Inst::rule_wants`) and
//! the static addresses, routes and rules go through the same model, with
//! route and rule events; of those only what the agent added is removed.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rtnetlink::Handle;
use vrrp_common::maps::{EVENT_SILENT, PeerEvent, PeerKey, PeerState};

use super::agent_reload::{RETIRED, Retired};
use super::instance::{Inst, unix_now};
use super::link::NetEvent;
use super::no_accept::{NoAcceptRows, RowOp};
use super::reconcile::{AddrKey, Op, Outcome, Reconciler, RouteKey, RuleKey, Want};
use super::routes;
use super::run::{DaemonError, Options};
use super::signals::Sig;
use super::source::{Source, next_events};
use super::status::{self, AgentStatus, Stats};
use super::timer::{self, Deadline};
use super::vips::{self, ManagedVip};
use crate::config::Config;
use crate::health::Health;
use crate::health::runner::{self, RunAs};
use crate::health::trackers::{TrackEvent, Trackers};
use crate::machine::{Action, Input, Machine, Micros, State};
use crate::notify_fifo::Fifos;
use crate::sync_group::{self, Members, SyncGroup};

/// A failed reconciliation is tried again this much later (a VIP's
/// interface may be coming back, or the kernel may be short of memory).
const RECONCILE_RETRY: Micros = Micros(1_000_000);

/// The status file's counters are at most this old.
const STATUS_REFRESH: Micros = Micros(1_000_000);

/// New masters since the last trim from which the heap is trimmed again
/// (`malloc_trim` walks the whole heap: not after every transition).
const TRIM_AFTER_TAKEOVER: usize = 64;

/// What woke the loop.
enum Wake {
    Shutdown,
    Timer,
    Peers(Vec<PeerEvent>),
    Net(NetEvent),
    NetClosed,
    Health(usize, bool),
    Track(TrackEvent),
    Signal(Sig),
    /// Time to ping systemd's watchdog.
    Watchdog,
    /// A metrics scrape wants a snapshot.
    Scrape(super::metrics::Scrape),
    /// The XDP attach running beside the start finished.
    Attached(crate::datapath::attach::AttachResult),
}

/// The running daemon.
pub(super) struct Agent {
    /// Periodic adverts due together, sent at the end of the tick.
    pub(super) adverts: super::tx::Batch,
    /// The masters' periodic adverts, sent by a thread of their own
    /// (`tx_thread.rs`); None: by the loop (the thread could not start).
    pub(super) tx_thread: Option<super::tx_thread::TxThread>,
    pub(super) opts: Options,
    /// The configuration running, and the file it came from (for reloads).
    pub(super) cfg: Config,
    pub(super) cfg_path: Option<PathBuf>,
    pub(super) insts: Vec<Inst>,
    pub(super) source: Source,
    /// The XDP attach, while it runs on its thread (run.rs): the
    /// instances are deaf until it is done (`on_attached`).
    pub(super) attach: Option<super::run::PendingAttach>,
    pub(super) deadline: Deadline,
    /// The tracked scripts' check loops and states.
    pub(super) checks: super::checks::Checks,
    /// Tracked interfaces' link state, by ifindex.
    pub(super) links: HashMap<u32, bool>,
    pub(super) nl: Handle,
    /// The addresses the agent owns in the kernel.
    pub(super) addrs: Reconciler,
    /// The routes and rules it owns (only its own are ever removed).
    pub(super) routes: Reconciler<RouteKey>,
    pub(super) rules: Reconciler<RuleKey>,
    /// The keys of every configured route and rule: the kernel's routes
    /// and rules are followed for these only.
    pub(super) route_keys: std::collections::BTreeSet<RouteKey>,
    pub(super) rule_keys: std::collections::BTreeSet<RuleKey>,
    /// The event socket's route and rule subscriptions (a reload adds
    /// them when it configures the first routes or rules).
    pub(super) net_groups: Option<super::link::Groups>,
    /// Stopping: the static addresses, routes and rules go too.
    pub(super) stopping: bool,
    /// Starting: the instances take their first state one after the other,
    /// and a reconcile (every instance's wants, planned against the
    /// kernel's addresses) after each one's transition made start-up
    /// quadratic (4,000 instances: 4.3 s to all BACKUP). Until `start` is
    /// done, a transition or removal only marks the reconcile due; one
    /// that adds VIPs (a priority-255 owner) still reconciles at once, so
    /// its addresses are there before its gratuitous ARPs go out.
    pub(super) starting: bool,
    /// While one handler's events are carried out (a timer pass, a batch
    /// of peer events, the queued netlink events): the reconcile, the
    /// announcements and the notifies the transitions ask for, deferred to
    /// its end (`finish_batch`). 4,000 instances whose master died each
    /// reconciled every instance's wants and rewrote the crash record
    /// after its own transition: quadratic. Now one reconcile adds every
    /// VIP, its requests pipelined on the netlink socket, before any of
    /// the new masters' gratuitous ARPs go out.
    pub(super) batch: Option<Batch>,
    /// The macvlans of use_vmac the agent owns.
    pub(super) vmacs: super::vmac::Manager,
    /// The macvlan of each `use_vmac` instance a reload starts, by
    /// instance name (`vmac::Manager::reload`).
    pub(super) vmac_names: HashMap<String, String>,
    /// When to reconcile again after a failure.
    pub(super) retry_at: Option<Micros>,
    /// What the status file last said: states, priorities, counters.
    pub(super) written: Option<Vec<(State, u8, Stats)>>,
    pub(super) written_at: Micros,
    /// Instances that became MASTER since the heap was last trimmed.
    pub(super) untrimmed_masters: usize,
    /// Writes the status file off the loop.
    pub(super) status_writer: status::Writer,
    /// The crash record (`<name>.vips`) and what it last said.
    pub(super) held_record: vips::Record,
    /// The address changes' own netlink socket (None: it could not be
    /// opened, and they go through rtnetlink's connection).
    pub(super) direct: Option<vips::Direct>,
    /// The `vrrp_sync_group`s, in `cfg.sync_groups` order; every member
    /// transition goes through its group (`execute`).
    pub(super) groups: Vec<SyncGroup>,
    /// Who the groups' notify scripts run as (None: notify scripts are
    /// disabled, the script user being gone).
    pub(super) group_notify_as: Option<Option<RunAs>>,
    /// The Accept Mode rows the agent wrote into the XDP program's map.
    pub(super) no_accept: NoAcceptRows,
    /// systemd's readiness protocol and watchdog.
    pub(super) sd: super::sd::Notifier,
    /// Metrics the status file does not keep.
    pub(super) counters: super::metrics::Counters,
    /// Scrapes of the metrics endpoint (`--metrics`).
    pub(super) scrapes: Option<tokio::sync::mpsc::Receiver<super::metrics::Scrape>>,
    /// Track files' values and track processes' quorums.
    pub(super) trackers: Trackers,
    /// Their watchers' changes, and the watchers (a reload that changes
    /// the trackers replaces both).
    pub(super) track_rx: tokio::sync::mpsc::UnboundedReceiver<TrackEvent>,
    pub(super) track_tasks: Vec<tokio::task::AbortHandle>,
    /// keepalived's notify FIFOs.
    pub(super) fifos: Fifos,
    /// What a reload took out of the configuration, until it is gone.
    pub(super) retired: Retired,
    /// The instances that resume as MASTER at start (a hitless restart).
    pub(super) resumed: Vec<String>,
    /// The live record a crash recovery reads (`live.rs`): slot `i` is
    /// instance `i`, updated with memory stores after each advert.
    pub(super) live: Option<super::live::Writer>,
    /// When the loop last woke (CLOCK_MONOTONIC ns): a takeover's
    /// `woke_ns`.
    pub(super) woke_ns: u64,
    /// The deadline the loop last waited for on the CPU (`imminent`),
    /// CLOCK_MONOTONIC ns, for the takeover it leads to.
    pub(super) due_ns: Option<u64>,
    /// The loop thread's scheduler statistics, for a takeover's record.
    pub(super) sched: timer::SchedStat,
}

/// How far ahead of a warned backup's deadline the loop waits for it on
/// the CPU (`Agent::imminent`): the kernel watch's lead
/// (`classify::WATCH_LEAD_MAX_NS`) and half a millisecond for the
/// warning's own delivery.
const SPIN_MAX: Micros = Micros(vrrp_common::classify::WATCH_LEAD_MAX_NS / 1000 + 500);
// The watch warns at most its lead early: the loop must be willing to
// wait that long, or it would sleep on its timer after every warning.
const _: () = assert!(SPIN_MAX.0 * 1000 > vrrp_common::classify::WATCH_LEAD_MAX_NS);
/// At most this many warned backups at once for the loop to wait on the
/// CPU (`Agent::imminent`).
const SPIN_INSTANCES: usize = 8;

/// `Agent::imminent`'s rule, over the warned backups' Master_Down_Timer
/// deadlines: the earliest, if it ends within `SPIN_MAX` of `now` and no
/// more than `SPIN_INSTANCES` are warned.
fn imminent_of(warned: impl Iterator<Item = Option<Micros>>, now: Micros) -> Option<Micros> {
    let mut due: Option<Micros> = None;
    for (n, d) in warned.enumerate() {
        if n >= SPIN_INSTANCES {
            return None;
        }
        if let Some(d) = d {
            due = Some(due.map_or(d, |e| e.min(d)));
        }
    }
    due.filter(|d| d.0 <= now.0 + SPIN_MAX.0)
}

/// Wait on the CPU until the monotonic clock reaches `due` (at most
/// `SPIN_MAX` ahead, `Agent::imminent`); when it did, in ns.
fn spin_until(due: Micros) -> u64 {
    loop {
        let now = timer::now_ns();
        if now / 1000 >= due.0 {
            return now;
        }
        std::hint::spin_loop();
    }
}

/// A takeover's steps as µs after the previous one, for the debug log.
fn takeover_steps(t: &super::status::Takeover) -> String {
    let us = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}", b.saturating_sub(a) as f64 / 1000.0),
        _ => "-".to_owned(),
    };
    let (woke, state) = (Some(t.woke_ns), Some(t.state_ns));
    // How long the peers had been silent when the backup decided: at least
    // Master_Down_Interval for a takeover RFC 5798 6.4.2 allows ("-": it
    // never heard one since its start).
    let silent =
        t.heard_ns.map_or("-".to_owned(), |h| format!("{:.1}", t.state_ns.saturating_sub(h) as f64 / 1e6));
    format!(
        "last advert heard {silent} ms before / kernel watch {} (its last holding advert to its warning) / wake-up {} / waited for the deadline {} / decision {} / first advert {} / VIPs added {} / first announcement {} (µs after the step before)",
        us(t.watch_hold_ns, t.watch_fired_ns),
        us(t.watch_fired_ns, woke),
        us(woke, t.due_ns),
        us(t.due_ns.or(woke), state),
        us(state, t.advert_ns),
        us(t.advert_ns.or(state), t.vips_ns),
        us(t.vips_ns.or(state), t.announce_ns),
    )
}

/// What a batch of transitions deferred to its end (see `Agent::batch`).
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// A reconcile was asked for.
    reconcile: bool,
    /// New masters' announcements, with their handler's time.
    announce: Vec<(usize, Micros)>,
    /// Notify scripts and FIFO lines: (instance, state entered).
    notify: Vec<(usize, State)>,
}

/// One address request to the kernel, built before any is sent.
enum AddrRequest {
    Add { msg: rtnetlink::packet_route::address::AddressMessage, name: String, addr: IpAddr, prefix: u8 },
    Remove { ifindex: u32, addr: IpAddr, prefix: u8, name: String },
}

/// The instances' machines, for a sync group to move its members.
struct InstMachines<'a>(&'a mut [Inst]);

impl Members for InstMachines<'_> {
    fn machine(&mut self, idx: usize) -> &mut Machine {
        &mut self.0[idx].machine
    }
}

impl Agent {
    /// Start every instance, then serve events until `shutdown` resolves
    /// or a stop signal arrives; then stop gracefully.
    pub(super) async fn serve(
        mut self,
        mut net: super::link::NetEvents,
        mut health_rx: tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>,
        mut signals: super::signals::Signals,
        shutdown: impl Future<Output = ()>,
        bridge: super::resume_start::Bridge,
    ) -> Result<(), super::run::DaemonError> {
        bridge.stop();
        tokio::pin!(shutdown);
        // keepalived's vrrp_startup_delay: no instance starts before it
        // has passed (interfaces and routing may still be coming up); a
        // stop meanwhile stops at once, as keepalived's event loop does.
        let delay = self.cfg.global.startup_delay;
        if !delay.is_zero() {
            log::info!("Delaying startup for {} seconds", delay.as_secs_f64());
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            let stop = loop {
                tokio::select! {
                    () = &mut sleep => break false,
                    () = &mut shutdown => break true,
                    sig = signals.next() => match sig {
                        Sig::Stop => break true,
                        other => log::warn!("{other:?} ignored: the instances have not started yet (vrrp_startup_delay)"),
                    },
                }
            };
            if stop {
                self.stop().await;
                return Ok(());
            }
        }
        self.start().await;
        // keepalived sets the VRRP process's scheduling after its start-up
        // (vrrp_daemon.c, start_vrrp): a realtime loop with a CPU limit
        // would otherwise count the configuration's start against it.
        let senders: Vec<libc::pid_t> = self.tx_thread.as_ref().and_then(|t| t.tid()).into_iter().collect();
        super::sched::apply(super::sched::plan(&self.cfg.global), &senders);
        // Start-up's garbage (the configuration's parse, dumps) goes back.
        super::trim_heap();
        // Every instance is in its first state; the XDP attach may still
        // run (`attach`), which keeps the backups from taking over.
        self.sd.ready(self.insts.iter().map(|i| (i.conf.name.as_str(), i.machine.state())));
        // Pinged from this loop, between handlers: a handler that hangs
        // stops the pings, and systemd restarts the agent.
        let mut watchdog = self.sd.ping.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut net_open = true;
        let mut failed = None;
        loop {
            // A warned backup's Master_Down_Interval ends within a couple
            // of ms: wait for it here, awake (see `imminent`), before the
            // status and the other chores of a loop pass.
            self.due_ns = None;
            if let Some(due) = self.imminent(timer::now()) {
                self.due_ns = Some(spin_until(due));
                let _lines = crate::logbuf::hold();
                let b = self.begin_batch();
                self.on_timer().await;
                self.finish_batch(b).await;
                // A backup still waiting at a deadline that has passed (a
                // sync group holding it, say) goes back to the timer: the
                // loop must not wait on the CPU again for it.
                for inst in &mut self.insts {
                    if inst.machine.state() == State::Backup
                        && inst.machine.master_down_deadline().is_some_and(|d| d <= due)
                    {
                        inst.silence = None;
                    }
                }
                continue;
            }
            self.sd.states(self.insts.iter().map(|i| (i.conf.name.as_str(), i.machine.state())));
            for i in 0..self.insts.len() {
                self.tx_sync(i);
            }
            self.write_status();
            self.arm_timer();
            let wake = tokio::select! {
                _ = &mut shutdown => Wake::Shutdown,
                r = self.deadline.fired() => {
                    if let Err(e) = r {
                        log::error!("timer: {e}");
                    }
                    Wake::Timer
                }
                ev = next_events(&mut self.source) => Wake::Peers(ev),
                ev = net.next(), if net_open => ev.map_or(Wake::NetClosed, Wake::Net),
                Some((idx, ok)) = health_rx.recv() => Wake::Health(idx, ok),
                Some(ev) = self.track_rx.recv() => Wake::Track(ev),
                sig = signals.next() => Wake::Signal(sig),
                _ = super::sd::tick(&mut watchdog) => Wake::Watchdog,
                Some(reply) = super::metrics::next_scrape(&mut self.scrapes) => Wake::Scrape(reply),
                r = wait_attach(&mut self.attach), if self.attach.is_some() => Wake::Attached(r),
            };
            self.woke_ns = timer::now_ns();
            match wake {
                Wake::Shutdown | Wake::Signal(Sig::Stop) => break,
                Wake::Signal(Sig::Handover) => {
                    if self.handover() {
                        return Ok(());
                    }
                    break;
                }
                Wake::Timer => {
                    // A batch's log lines (a takeover's thousands) leave in
                    // one write when it is done, before the loop sleeps.
                    let _lines = crate::logbuf::hold();
                    let b = self.begin_batch();
                    self.on_timer().await;
                    self.finish_batch(b).await;
                }
                Wake::Peers(events) => {
                    let _lines = crate::logbuf::hold();
                    let b = self.begin_batch();
                    self.on_peer_events(events).await;
                    self.finish_batch(b).await;
                }
                Wake::Net(ev) => {
                    let _lines = crate::logbuf::hold();
                    // The events already queued behind it in the same
                    // batch: a failover's thousands of address events
                    // (our own adds) then cost one reconcile, not one each.
                    let b = self.begin_batch();
                    // Overruns in one batch cost one re-read, after the
                    // events queued with them (the dump is newer).
                    let mut overrun = false;
                    let mut ev = Some(ev);
                    while let Some(e) = ev {
                        match e {
                            NetEvent::Overrun => overrun = true,
                            e => self.on_net(e).await,
                        }
                        ev = futures_util::FutureExt::now_or_never(net.next()).flatten();
                    }
                    if overrun {
                        self.on_net(NetEvent::Overrun).await;
                    }
                    self.finish_batch(b).await;
                }
                Wake::NetClosed => {
                    log::error!(
                        "the kernel's netlink event socket closed: address and link changes are no longer followed"
                    );
                    net_open = false;
                }
                Wake::Health(idx, ok) => self.on_health(idx, ok).await,
                Wake::Track(ev) => self.on_track(ev).await,
                Wake::Signal(sig) => {
                    if sig == Sig::Reload && self.attach.is_some() {
                        // A reload's new instances would attach beside the
                        // thread (and hear nothing before it is done): the
                        // attach first, a few milliseconds.
                        let r = wait_attach(&mut self.attach).await;
                        if let Err(e) = self.on_attached(r) {
                            failed = Some(e);
                            break;
                        }
                    }
                    self.on_signal(sig).await
                }
                Wake::Watchdog => self.sd.ping(),
                Wake::Scrape(reply) => {
                    self.tx_counts();
                    let _ = reply.send(super::metrics::render(&super::metrics::view(&self)));
                }
                Wake::Attached(r) => {
                    if let Err(e) = self.on_attached(r) {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        self.stop().await;
        failed.map_or(Ok(()), Err)
    }

    /// The XDP attach that ran beside the start is done: adopt and pin its
    /// links, or (`--receive auto`) fall back to raw sockets, as a failed
    /// attach at start does; `--receive xdp` stops with the error. Either
    /// way the receive path is up from now, and every backup's
    /// Master_Down_Timer starts (`Machine::hearing`).
    fn on_attached(
        &mut self,
        r: crate::datapath::attach::AttachResult,
    ) -> Result<(), super::run::DaemonError> {
        let Some(pending) = self.attach.take() else { return Ok(()) };
        let adopted = match (&mut self.source, r) {
            (Source::Xdp(x), Ok(links)) => {
                for a in &links {
                    log::info!(
                        "XDP program attached to {} ({})",
                        a.iface,
                        super::run::mode_words(Some(&a.mode))
                    );
                }
                x.dp.adopt(links);
                if self.opts.no_pin {
                    Ok(())
                } else {
                    x.dp.pin_for(&self.opts.pin_root, &self.opts.name).map(|dir| x.pin_dir = Some(dir))
                }
            }
            (_, Ok(_)) => Ok(()),
            (_, Err(e)) => Err(e),
        };
        if let Err(e) = adopted {
            if pending.mode != super::run::ReceiveMode::Auto {
                log::error!("{e}");
                return Err(e.into());
            }
            log::warn!("XDP unavailable ({e}); receiving on raw sockets instead (more CPU per packet)");
            // The XDP source goes first: dropping it detaches what was attached.
            self.source = Source::Sockets { rxs: Vec::new() };
            self.source = super::run::sockets(&self.insts)?;
        }
        let now = timer::now();
        for inst in &mut self.insts {
            inst.machine.hearing(now);
        }
        log::info!("receive path up ({})", self.source.kind());
        Ok(())
    }

    /// Enter each instance's first state, with its tracking already
    /// counted (scripts with init_fail count from the start), and take the
    /// addresses to where the states want them.
    async fn start(&mut self) {
        let now = timer::now();
        // A sync group starts in FAULT if any member would (keepalived's
        // vrrp_sync_set_group), so every member's fault is known first.
        let health: Vec<(u8, bool)> = self
            .insts
            .iter()
            .map(|i| i.health_input(&self.checks.statuses, &self.links, &self.trackers))
            .collect();
        for g in &mut self.groups {
            let members = g.members().to_vec();
            for m in members {
                g.record_fault(m, health[m].1);
            }
        }
        self.starting = true;
        for (i, &(p, own)) in health.iter().enumerate() {
            let group = self.groups.iter().find(|g| g.contains(i));
            let fault = group.map_or(own, SyncGroup::faulted);
            let inst = &mut self.insts[i];
            let mut out = Vec::new();
            if own {
                log::info!("({}) a tracked interface or script is down: starting in FAULT", inst.conf.name);
            } else if fault {
                log::info!(
                    "({}) a member of its sync group {} is in FAULT: starting in FAULT",
                    inst.conf.name,
                    group.map_or("", SyncGroup::name)
                );
            }
            inst.machine.handle(now, Input::Priority(p), &mut out);
            inst.machine.handle(now, Input::Fault(fault), &mut out);
            if self.resumed.contains(&inst.conf.name) {
                inst.machine.resume_master(now, &mut out);
                // No gratuitous ARPs (the VIPs never moved), but the
                // refresh keepalived sends every garp_master_refresh goes on.
                let refresh = u64::from(inst.conf.garp_master_refresh);
                inst.refresh_at = (refresh > 0).then(|| now.after(Micros(refresh * 1_000_000)));
                self.adopt(i);
            } else {
                inst.machine.start(now, &mut out);
            }
            self.execute(i, now, out).await;
        }
        self.resumed.clear();
        self.starting = false;
        // A backup's VIPs found on its interfaces go now (keepalived
        // leaves them until the next transition), with every reconcile
        // the loop above left due.
        self.reconcile().await;
    }

    /// The peer table's events: feed each to the instances it concerns. A
    /// silence warning from the kernel's watch feeds the instance what the
    /// kernel saw last; the loop then waits for its deadline (`imminent`).
    async fn on_peer_events(&mut self, events: Vec<PeerEvent>) {
        // Sorted by instance key and searched: a mass failover warns
        // thousands of instances in one batch, and a scan of the warnings
        // per instance was O(instances × warnings) on the takeover's path.
        let mut silent: Vec<_> = events
            .iter()
            .filter_map(|e| Some(((e.key.ifindex, e.key.family, e.key.vrid), e.silent_times()?)))
            .collect();
        if !silent.is_empty() {
            silent.sort_unstable_by_key(|(k, _)| *k);
            let warned = |inst: &Inst| {
                let key = (inst.ifindex, inst.family.code(), inst.conf.vrid);
                silent.binary_search_by_key(&key, |(k, _)| *k).ok().map(|at| &silent[at])
            };
            let now = timer::now();
            // The late-agent rule first (what the kernel saw since), then
            // the warning: the kernel's timer has stopped, ours is exact.
            self.feed_from_table(now, |inst| warned(inst).is_some()).await;
            for inst in &mut self.insts {
                if let Some((_, times)) = warned(inst) {
                    inst.silence = Some(*times);
                    inst.watch_armed = false;
                }
            }
            self.on_timer().await;
        }
        for ev in events.iter().filter(|e| e.kind & EVENT_SILENT == 0) {
            for i in 0..self.insts.len() {
                if !self.insts[i].owns(&ev.key) {
                    continue;
                }
                let mut out = Vec::new();
                self.insts[i].feed(&ev.key, &ev.state, &mut out);
                self.execute(i, timer::now(), out).await;
            }
        }
    }

    /// A backup warned by the kernel's watch whose Master_Down_Interval
    /// ends within `SPIN_MAX`: that end, for the loop to wait for on the
    /// CPU rather than on a timer, whose wake-up on an idle CPU (a vCPU
    /// leaving its idle state, then the loop thread) is itself a few
    /// hundred µs late here. Only while few instances are warned: a mass
    /// failover's thousands keep the timer, which gathers them in
    /// batches.
    pub(super) fn imminent(&self, now: Micros) -> Option<Micros> {
        imminent_of(
            self.insts
                .iter()
                .filter(|i| i.silence.is_some() && i.machine.state() == State::Backup)
                .map(|i| i.machine.master_down_deadline()),
            now,
        )
    }

    /// Feed the instances `which` picks the kernel's peer table: what
    /// the kernel heard since the agent last looked.
    async fn feed_from_table(&mut self, now: Micros, which: impl Fn(&Inst) -> bool) {
        let mut peers = self.source.peers();
        // The peer rows sorted by the instance key they belong to
        // (`Inst::owns`), then by arrival: each instance finds its rows by
        // binary search. Filtering the whole table for each cost
        // O(expired × peers) per wake, about 4,000² at a 4,000-instance
        // takeover; grouping them in a map of vectors cost two allocations
        // per instance at every backstop wake of an idle backup (about
        // once a second).
        let group = |k: &PeerKey| (k.ifindex, k.family, k.vrid);
        peers.sort_unstable_by_key(|(k, s)| (group(k), s.last_seen_ns));
        for i in 0..self.insts.len() {
            let inst = &mut self.insts[i];
            if !which(inst) {
                continue;
            }
            let key = (inst.ifindex, inst.family.code(), inst.conf.vrid);
            let from = peers.partition_point(|(k, _)| group(k) < key);
            let mut out = Vec::new();
            for (k, s) in peers[from..].iter().take_while(|(k, _)| group(k) == key) {
                inst.feed(k, s, &mut out);
            }
            self.execute(i, now, out).await;
        }
    }

    /// A deadline came due (or the kernel's watch reported a silent
    /// master): the late-agent rule, then the machines' timers, the
    /// announcements, a pending reconciliation.
    async fn on_timer(&mut self) {
        let now = timer::now();
        // The late-agent rule: before a backup gives up on its master,
        // read what the kernel saw meanwhile.
        if self.insts.iter().any(|i| i.machine.master_down_deadline().is_some_and(|d| d <= now)) {
            self.feed_from_table(now, |inst| inst.machine.master_down_deadline().is_some_and(|d| d <= now))
                .await;
        }
        let mut out = Vec::new();
        for i in 0..self.insts.len() {
            // The advert thread follows a master's Adver_Timer: its
            // machine has nothing else due (no Master_Down_Timer runs in
            // MASTER).
            if self.insts[i].tx_plan.is_none() {
                self.insts[i].machine.handle_timeout_coalesced(now, &mut out);
            }
            // A master's periodic advert (its only action) joins the batch;
            // anything else is carried out at once, in order.
            if let [Action::SendAdvert { priority }] = out[..]
                && self.insts[i].machine.state() == State::Master
                && priority != 0
            {
                out.clear();
                let inst = &mut self.insts[i];
                inst.stats.advert_sent += 1;
                if let Some(sender) = &mut inst.sender {
                    let name = &inst.conf.name;
                    sender.queue(priority, i, &mut self.adverts, |dst, e| {
                        log::warn!("({name}) cannot send advert to {dst}: {e}")
                    });
                }
            } else if !out.is_empty() {
                // What is queued goes first: this may wait on netlink.
                self.flush_adverts();
                self.execute(i, now, std::mem::take(&mut out)).await;
            }
            let inst = &mut self.insts[i];
            if inst.machine.state() == State::Master {
                inst.send_paced(now);
                if inst.announce_at.is_some_and(|t| t <= now) {
                    inst.announce_now(now, inst.conf.garp_master_repeat);
                    inst.announce_batches = inst.announce_batches.saturating_sub(1);
                    inst.announce_at = None;
                }
                if inst.lower_prio_at.is_some_and(|t| t <= now) {
                    inst.lower_prio_at = None;
                    inst.announce_now(now, inst.conf.garp_lower_prio_repeat);
                }
                if inst.refresh_at.is_some_and(|t| t <= now) {
                    inst.announce_now(now, inst.conf.garp_master_refresh_repeat);
                    inst.refresh_at =
                        Some(now.after(Micros(u64::from(inst.conf.garp_master_refresh) * 1_000_000)));
                }
            }
        }
        self.flush_adverts();
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.reconcile().await;
        }
    }

    /// Send the batched adverts: one `sendmmsg` per socket key.
    fn flush_adverts(&mut self) {
        if self.adverts.is_empty() {
            return;
        }
        // Before the sends, as for a single advert (`execute`).
        let sent_at = timer::now();
        let insts = &self.insts;
        self.adverts.flush(
            |i| insts.get(i).and_then(|inst| inst.sender.as_ref()).map(super::tx::Sender::raw_fd),
            |i, dst, e| {
                let name = insts.get(i).map_or("?", |inst| inst.conf.name.as_str());
                log::warn!("({name}) cannot send advert to {dst}: {e}");
            },
        );
        if let Some(l) = &self.live {
            for &(i, priority) in self.adverts.sent() {
                if let Some(inst) = self.insts.get(i) {
                    live_after_advert(l, i, inst, priority, sent_at, true);
                }
            }
        }
    }

    /// A link or address changed.
    async fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Link { ifindex, name, up } => {
                // A macvlan of ours changed or a base came back: repair.
                if self.vmacs.concerns(&name) {
                    self.vmacs.reconcile(&self.nl).await;
                }
                self.follow(ifindex, &name).await;
                self.on_link(ifindex, up).await;
                self.routes_after_link(&name, up).await;
            }
            NetEvent::LinkGone { ifindex, name } => {
                self.on_link_gone(ifindex, &name).await;
                // One of our macvlans deleted: create it again.
                if self.vmacs.concerns(&name) {
                    self.vmacs.reconcile(&self.nl).await;
                }
                self.routes_after_link(&name, false).await;
            }
            NetEvent::Addr { ifindex, addr, prefix, up } => self.on_addr(ifindex, addr, prefix, up).await,
            NetEvent::Route { key, up } => self.on_route(key, up).await,
            NetEvent::Rule { key, up } => self.on_rule(key, up).await,
            NetEvent::Overrun => self.on_overrun().await,
        }
    }

    /// The kernel dropped notifications (the event socket's buffer was
    /// full): whatever changed in them is unknown, so the watch is lost
    /// and the kernel is read again, as at start (Kubernetes informers
    /// re-list, FRR's zebra re-reads; keepalived only logs it). Addresses,
    /// routes and rules replace the reconciler's observed state (what we
    /// installed stays ours: one gone is put back); tracked links take the
    /// same path as their events, so one that went down meanwhile still
    /// fails its instances over; then one reconcile.
    async fn on_overrun(&mut self) {
        log::warn!(
            "the kernel dropped netlink events (event socket buffer full): reading links, addresses, routes and rules again"
        );
        match super::link::dump_addresses(&self.nl).await {
            Ok(list) => self
                .addrs
                .resync(list.into_iter().map(|(ifindex, addr, prefix)| (AddrKey { ifindex, addr }, prefix))),
            Err(e) => log::error!("reading the interfaces' addresses: {e}"),
        }
        if !self.route_keys.is_empty() {
            self.resync_routes().await;
        }
        if !self.rule_keys.is_empty() {
            self.resync_rules().await;
        }
        // Links created or deleted meanwhile: every interface an instance
        // runs on or tracks is followed to its index now (a re-created one
        // is opened again), or, gone, treated as its deletion event would
        // be. Then our macvlans as they should be.
        let names: std::collections::BTreeSet<String> = self
            .insts
            .iter()
            .flat_map(|i| std::iter::once(&i.conf.interface).chain(i.track_ifs.iter().map(|(_, n, _)| n)))
            .cloned()
            .collect();
        for name in names {
            match nix::net::if_::if_nametoindex(name.as_str()) {
                Ok(ifindex) => self.follow(ifindex, &name).await,
                Err(_) => {
                    let known: std::collections::BTreeSet<u32> = self
                        .insts
                        .iter()
                        .flat_map(|i| {
                            let own = (i.bound() && i.conf.interface == name).then_some(i.ifindex);
                            own.into_iter().chain(
                                i.track_ifs
                                    .iter()
                                    .filter(|(t, n, _)| *t != 0 && *n == name)
                                    .map(|(t, _, _)| *t),
                            )
                        })
                        .collect();
                    for ifindex in known {
                        self.on_link_gone(ifindex, &name).await;
                    }
                }
            }
        }
        self.vmacs.reconcile(&self.nl).await;
        // Links up or down: every tracked interface (an instance's own
        // among them) as it is now; `on_link` acts only on a change.
        let ifs = super::link::Ifaddrs::now();
        let tracked: std::collections::BTreeMap<u32, String> = self
            .insts
            .iter()
            .flat_map(|i| &i.track_ifs)
            .filter(|(idx, _, _)| *idx != 0)
            .map(|(idx, name, _)| (*idx, name.clone()))
            .collect();
        for (ifindex, name) in tracked {
            let up = ifs.is_up(&name);
            self.on_link(ifindex, up).await;
            self.routes_after_link(&name, up).await;
        }
        self.reconcile().await;
    }

    /// Read the kernel's rules again (see `Reconciler::resync`).
    pub(super) async fn resync_rules(&mut self) {
        match routes::dump_rules(&self.nl).await {
            Ok(list) => {
                let keys = &self.rule_keys;
                self.rules.resync(list.into_iter().filter(|k| keys.contains(k)).map(|k| (k, ())));
            }
            Err(e) => log::error!("reading the kernel's rules: {e}"),
        }
    }

    /// A route of one of our keys appeared or went: someone deleted one we
    /// installed (put back while it is wanted, unless `no_track`), or the
    /// kernel reports our own add.
    async fn on_route(&mut self, key: RouteKey, up: bool) {
        if !self.route_keys.contains(&key) {
            return;
        }
        if self.routes.observed(key, (), up) {
            log::warn!("route {}/{} (table {}) was removed by someone else", key.dst, key.dst_len, key.table);
        }
        self.reconcile().await;
    }

    /// As `on_route`, for a rule.
    async fn on_rule(&mut self, key: RuleKey, up: bool) {
        if !self.rule_keys.contains(&key) {
            return;
        }
        if self.rules.observed(key.clone(), (), up) {
            log::warn!("rule preference {} ({:?}) was removed by someone else", key.priority, key.action);
        }
        self.reconcile().await;
    }

    /// A link changed: when it went down or away, the kernel dropped its
    /// routes without a word, so read them again; when it is there, a
    /// route or static address waiting for it can be added.
    async fn routes_after_link(&mut self, name: &str, up: bool) {
        let uses = |dev: Option<&String>| dev.is_some_and(|d| d == name);
        let routes_use =
            self.insts.iter().flat_map(|i| &i.conf.routes).chain(&self.cfg.static_routes).any(|r| {
                uses(r.dev.as_ref()) || r.nexthops.iter().any(|n| uses(n.dev.as_ref())) || r.dev.is_none()
            });
        let addrs_use = self.cfg.static_addresses.iter().any(|v| uses(v.dev.as_ref()));
        if !routes_use && !addrs_use {
            return;
        }
        if !up && !self.route_keys.is_empty() {
            self.resync_routes().await;
        }
        self.reconcile().await;
    }

    /// Read the kernel's routes again (see `Reconciler::resync`).
    pub(super) async fn resync_routes(&mut self) {
        match routes::dump_routes(&self.nl).await {
            Ok(list) => {
                let keys = &self.route_keys;
                self.routes.resync(list.into_iter().filter(|k| keys.contains(k)).map(|k| (k, ())));
            }
            Err(e) => log::error!("reading the kernel's routes: {e}"),
        }
    }

    /// Interface `name` exists with index `ifindex`, perhaps created anew
    /// (a container's veth, a VLAN rebuilt by network tooling): VIPs and
    /// tracked interfaces of that name follow it, and instances on it open
    /// their sockets there and attach the program again.
    async fn follow(&mut self, ifindex: u32, name: &str) {
        let mut ifs = None;
        for i in 0..self.insts.len() {
            self.insts[i].relink(name, ifindex);
            if self.insts[i].conf.interface == name
                || self.insts[i].vmac.as_ref().is_some_and(|m| m.name == name)
            {
                self.rebind(i, &mut ifs).await;
            }
        }
    }

    /// Open instance `i` on its interface if it is not yet open on the
    /// index the interface has now.
    /// `ifs`: the interfaces' dump, made by the first instance that needs
    /// one and shared by the rest of the event's.
    async fn rebind(&mut self, i: usize, ifs: &mut Option<super::link::Ifaddrs>) {
        // The dump only for an instance that needs it: a link event (the
        // kernel sends some for a veth whenever its peer's XDP program
        // changes) on an interface with 250 instances took 250 dumps of
        // every address, and a master of 1,000 instances stopped
        // advertising for over a second (issue 15: its backup took over).
        let bound = self.insts[i].unbound_indices();
        match bound.and_then(|b| match b {
            None => Ok(false),
            Some(_) => self.insts[i].bind(ifs.get_or_insert_with(super::link::Ifaddrs::now)),
        }) {
            Ok(false) => {}
            Ok(true) => {
                let inst = &self.insts[i];
                log::info!(
                    "({}) {} is there (ifindex {}): listening and advertising on it again",
                    inst.conf.name,
                    inst.conf.interface,
                    inst.ifindex
                );
                if let Err(e) = self.source.bind(&self.insts, i) {
                    log::error!(
                        "({}) receiving on {}: {e}",
                        self.insts[i].conf.name,
                        self.insts[i].conf.interface
                    );
                }
                // A new interface has a new MAC address, which unicast
                // peers' neighbour caches do not know yet: until they
                // learn it, their adverts do not reach our sockets (XDP,
                // which runs before the MAC filter, still sees them) and
                // we would take over beside a live master.
                self.insts[i].announce_self();
                self.retrack(i).await;
            }
            // No address on it yet, most often: an address event retries.
            Err(e @ (DaemonError::NoInterface { .. } | DaemonError::NoSource { .. })) => {
                log::debug!("({}) not on its interface yet: {e}", self.insts[i].conf.name)
            }
            Err(e) => log::error!("{e}"),
        }
    }

    /// A link was deleted: its addresses went with it; instances on it
    /// close their sockets and stay in FAULT until it is created again.
    async fn on_link_gone(&mut self, ifindex: u32, name: &str) {
        self.addrs.interface_gone(ifindex);
        self.links.remove(&ifindex);
        for i in 0..self.insts.len() {
            let inst = &mut self.insts[i];
            let on_it = inst.bound() && inst.ifindex == ifindex;
            let tracks = inst.track_ifs.iter().any(|(t, _, _)| *t == ifindex);
            if on_it {
                log::warn!("({}) {name} was deleted: FAULT until it is created again", inst.conf.name);
                inst.unbind();
            }
            inst.relink(name, 0);
            if on_it || tracks {
                self.retrack(i).await;
            }
        }
    }

    /// A tracked link went up or down: FAULT or back, or a weight.
    async fn on_link(&mut self, ifindex: u32, up: bool) {
        let tracked = self.insts.iter().any(|i| i.track_ifs.iter().any(|(t, _, _)| *t == ifindex));
        if !tracked || self.links.get(&ifindex) == Some(&up) {
            return;
        }
        self.links.insert(ifindex, up);
        for i in 0..self.insts.len() {
            let Some((_, name, _)) = self.insts[i].track_ifs.iter().find(|(t, _, _)| *t == ifindex) else {
                continue;
            };
            log::info!("Netlink reports {name} {}", if up { "up" } else { "down" });
            self.retrack(i).await;
        }
    }

    /// An address appeared or went. Only the ones an instance manages
    /// matter; the reconciler puts back a master's and removes a backup's.
    /// An instance waiting for an address on its (re-created) interface
    /// tries to open there.
    async fn on_addr(&mut self, ifindex: u32, addr: IpAddr, prefix: u8, up: bool) {
        let ours = self.addrs.observed(AddrKey { ifindex, addr }, prefix, up);
        let mut ifs = None;
        for i in 0..self.insts.len() {
            if up && !self.insts[i].bound() {
                self.rebind(i, &mut ifs).await;
            }
        }
        let managed = self.insts.iter().any(|i| i.manages(ifindex, addr))
            || self.static_addrs().any(|v| v.ifindex == ifindex && v.vip.addr == addr);
        if !managed {
            return;
        }
        if !up && ours {
            log::warn!("{addr}/{prefix} was removed from ifindex {ifindex} by someone else");
        }
        // The kernel drops the routes whose source was this address
        // without an event: read them again (only then: a failover removes
        // many addresses, and a router's table may be large).
        let a_src = self
            .insts
            .iter()
            .flat_map(|i| &i.conf.routes)
            .chain(&self.cfg.static_routes)
            .any(|r| r.src == Some(addr));
        if !up && a_src {
            self.resync_routes().await;
        }
        self.reconcile().await;
    }

    /// A tracked script's result, from the loop reporting under `slot`.
    async fn on_health(&mut self, slot: usize, ok: bool) {
        // A loop a reload replaced may still have had one on its way.
        let Some(idx) = self.checks.index_of(slot) else { return };
        let Some((name, status)) = self.checks.statuses.get_mut(idx) else { return };
        let Some(h) = status.record(ok) else { return };
        log::info!("VRRP_Script({name}) {}", if h == Health::Good { "succeeded" } else { "failed" });
        for i in 0..self.insts.len() {
            if self.insts[i].tracks.iter().any(|(t, _, _)| *t == idx) {
                self.retrack(i).await;
            }
        }
    }

    /// A track file or track process changed: the instances tracking it
    /// recompute their priority and fault.
    async fn on_track(&mut self, ev: TrackEvent) {
        if !self.trackers.apply(ev) {
            return;
        }
        let concerned = |i: &super::instance::Inst| match ev {
            TrackEvent::File { index, .. } => i.track_files.iter().any(|(t, _, _)| *t == index),
            TrackEvent::Process { index, .. } => i.track_procs.iter().any(|(t, _, _)| *t == index),
        };
        for i in 0..self.insts.len() {
            if concerned(&self.insts[i]) {
                self.retrack(i).await;
            }
        }
    }

    /// A signal other than a stop.
    async fn on_signal(&mut self, sig: Sig) {
        match sig {
            Sig::Reload => {
                self.sd.reloading();
                self.reload().await;
                self.sd.ready(self.insts.iter().map(|i| (i.conf.name.as_str(), i.machine.state())));
            }
            Sig::DumpData => self.dump(status::data_path(&self.opts.name), "state"),
            Sig::DumpStats => self.dump(status::stats_path(&self.opts.name), "statistics"),
            Sig::Stop | Sig::Handover => {}
        }
    }

    /// SIGHUP: read the configuration again. An invalid one is refused
    /// with its diagnostics and the running one stays, untouched; a valid
    /// one is applied per instance (`apply_reload`, agent_reload.rs).
    async fn reload(&mut self) {
        let path = crate::config::default_path(self.cfg_path.as_deref());
        log::info!("Reloading: reading {}", path.display());
        match crate::config::check(&path) {
            Err(crate::config::ConfigError::Invalid { diags }) => {
                for d in &diags {
                    if d.severity == crate::config::Severity::Error {
                        log::error!("{d}");
                    } else {
                        log::warn!("{d}");
                    }
                }
                log::error!("Reload refused: {} is invalid; the running configuration stays", path.display());
            }
            Err(e) => log::error!("Reload refused: {e}; the running configuration stays"),
            Ok((cfg, warnings)) => {
                for w in warnings {
                    log::warn!("{w}");
                }
                if cfg == self.cfg {
                    log::info!("Reload: {} is unchanged; nothing to do", path.display());
                } else {
                    self.apply_reload(cfg).await;
                }
            }
        }
    }

    /// SIGUSR1 / SIGUSR2: write the state (the status document) to `path`.
    fn dump(&mut self, path: PathBuf, what: &str) {
        self.tx_counts();
        match status::write_to(&path, &self.agent_status()) {
            Ok(()) => log::info!("Wrote the {what} to {}", path.display()),
            Err(e) => log::error!("writing the {what} to {}: {e}", path.display()),
        }
    }

    /// Health or link changed for instance `i`: recompute its effective
    /// priority and fault.
    pub(super) async fn retrack(&mut self, i: usize) {
        let now = timer::now();
        let (p, fault) = self.insts[i].health_input(&self.checks.statuses, &self.links, &self.trackers);
        // In a sync group, the group's fault (any member's) holds every
        // member; a change of it moves them all (keepalived's
        // vrrp_sync_fault, try_up_instance).
        let faults = match self.groups.iter_mut().find(|g| g.contains(i)) {
            Some(g) => g.fault_inputs(i, fault),
            None => vec![(i, Input::Fault(fault))],
        };
        for (j, input) in faults {
            let mut out = Vec::new();
            self.insts[j].machine.handle(now, input, &mut out);
            if j == i {
                self.insts[i].machine.handle(now, Input::Priority(p), &mut out);
            }
            self.execute(j, now, out).await;
        }
    }

    /// Carry out a machine's actions for instance `i`, and what its sync
    /// group, if any, makes of them: the other members' moves (after
    /// `i`'s own actions), the group's log lines and notify scripts.
    pub(super) async fn execute(&mut self, i: usize, now: Micros, actions: Vec<Action>) {
        let Some(g) = self.groups.iter().position(|g| g.contains(i)) else {
            self.carry_out(i, now, actions).await;
            return;
        };
        if actions.contains(&Action::WantMaster) {
            self.refresh_wishes(g, i, now).await;
        }
        let mut more = Vec::new();
        let mut events = Vec::new();
        self.groups[g].follow(now, i, &actions, &mut InstMachines(&mut self.insts), &mut more, &mut events);
        self.carry_out(i, now, actions).await;
        for e in &events {
            if let sync_group::Event::Syncing(to) = e {
                log::info!("{}", sync_group::Syncing(self.groups[g].name(), *to));
            }
        }
        for (j, a) in more {
            self.carry_out(j, now, a).await;
        }
        for e in events {
            if let sync_group::Event::Notify(to) = e {
                self.group_notify(g, to);
            }
        }
    }

    /// Before group `g` decides on member `i`'s wish for MASTER: the other
    /// members that want it too may have heard their master again since
    /// (the kernel records adverts without waking us), so feed them what
    /// the peer table saw; an advert they accept withdraws their wish.
    async fn refresh_wishes(&mut self, g: usize, i: usize, now: Micros) {
        let others: Vec<usize> = self.groups[g]
            .members()
            .iter()
            .copied()
            .filter(|m| *m != i && self.insts[*m].machine.state() == State::Backup)
            .filter(|m| self.insts[*m].machine.wants_master())
            .collect();
        if others.is_empty() {
            return;
        }
        let peers = self.source.peers();
        for m in others {
            let inst = &mut self.insts[m];
            let mut fresh: Vec<&(PeerKey, PeerState)> = peers.iter().filter(|(k, _)| inst.owns(k)).collect();
            fresh.sort_by_key(|(_, s)| s.last_seen_ns);
            let mut out = Vec::new();
            for (k, s) in fresh {
                inst.feed(k, s, &mut out);
            }
            // A backup fed adverts only logs and moves its timer.
            self.carry_out(m, now, out).await;
        }
    }

    /// keepalived's group notify scripts for group `g` entering `to`: the
    /// state's own as written, and `notify` with `GROUP NAME STATE 0`
    /// (vrrp_notify.c send_group_notifies: a group has no priority).
    pub(super) fn group_notify(&self, g: usize, to: State) {
        let Some(run_as) = self.group_notify_as else { return };
        for argv in self.group_notify_argv(g, to) {
            runner::spawn_notify(argv, run_as);
        }
    }

    /// The command lines of group `g`'s notify scripts for `to`.
    fn group_notify_argv(&self, g: usize, to: State) -> Vec<Vec<String>> {
        let Some(conf) = self.cfg.sync_groups.get(g) else { return Vec::new() };
        let n = &conf.notify;
        let (own, word) = match to {
            State::Master => (&n.master, "MASTER"),
            State::Backup => (&n.backup, "BACKUP"),
            State::Fault => (&n.fault, "FAULT"),
            State::Init => (&n.stop, "STOP"),
        };
        let mut out: Vec<Vec<String>> = own.iter().map(|cmd| runner::argv(cmd)).collect();
        if let Some(cmd) = &n.any {
            let mut argv = runner::argv(cmd);
            argv.extend(["GROUP".to_owned(), conf.name.clone(), word.to_owned(), "0".to_owned()]);
            out.push(argv);
        }
        out
    }

    /// Carry out a machine's actions for instance `i`, in order: the
    /// addresses are reconciled where the machine adds or removes them
    /// (before the first advert and the gratuitous ARPs of a new master),
    /// and once more after a transition that did neither (a backup's
    /// first state removes a VIP found on its interface).
    async fn carry_out(&mut self, i: usize, now: Micros, actions: Vec<Action>) {
        // The advert thread follows the machine first: a master that
        // resigns or steps down stops its periodic adverts before its
        // priority-0 advert or its VIPs' removal; a new priority is in
        // the next periodic advert.
        self.tx_sync(i);
        let mut transitioned = false;
        let mut entered_master = false;
        // Notify scripts start after the addresses are settled: spawning
        // one takes a fork, which would delay a handover.
        let mut notify = Vec::new();
        for a in actions {
            let inst = &mut self.insts[i];
            let name = &inst.conf.name;
            match a {
                Action::Log(note) => {
                    log::info!("({name}) {note}");
                    // keepalived (vrrp.c, vrrp_state_master_rx): a master
                    // hearing a lower priority also re-announces its VIPs,
                    // garp_lower_prio_repeat each, and again after
                    // garp_lower_prio_delay: the other may have taken
                    // them over meanwhile.
                    if matches!(note, crate::machine::Note::LowerPriorityElection { .. })
                        && inst.conf.garp_lower_prio_repeat > 0
                    {
                        let now = timer::now();
                        inst.announce_now(now, inst.conf.garp_lower_prio_repeat);
                        let d = u64::from(inst.conf.garp_lower_prio_delay);
                        inst.lower_prio_at = (d > 0).then(|| now.after(Micros(d * 1_000_000)));
                    }
                }
                Action::WantMaster => {
                    log::debug!("({name}) master down: waiting for the rest of its sync group")
                }
                Action::SendAdvert { priority } => {
                    inst.stats.advert_sent += 1;
                    if priority == 0 {
                        inst.stats.pri_zero_sent += 1;
                    }
                    let Some(sender) = &mut inst.sender else { continue };
                    // Before the send: the age the next worker computes
                    // from it is never short (vDSO, no syscall).
                    let sent_at = timer::now();
                    let went = sender
                        .send(priority, |dst, e| log::warn!("({name}) cannot send advert to {dst}: {e}"));
                    if let Some(l) = &self.live {
                        live_after_advert(l, i, inst, priority, sent_at, went > 0);
                    }
                    if let Some(t) = &mut inst.takeover
                        && t.advert_ns.is_none()
                    {
                        t.advert_ns = Some(timer::now_ns());
                    }
                }
                // The machine's state says which addresses it wants.
                Action::AddVips => {
                    transitioned = false;
                    // A takeover's `vips_ns` is marked by the reconcile
                    // that adds them (deferred to the end of a batch).
                    self.reconcile().await;
                }
                Action::RemoveVips => {
                    inst.announce_at = None;
                    inst.refresh_at = None;
                    transitioned = false;
                    // At stop, the reconcile after every instance's
                    // resignation removes them all (4,000 masters stopping
                    // reconciled 4,000 times); their priority-0 adverts
                    // still go out first (RFC 5798 6.4.3).
                    if !self.starting && !self.stopping {
                        self.reconcile().await;
                    }
                }
                Action::Announce => match &mut self.batch {
                    // After the batch's reconcile has added the addresses.
                    Some(b) => b.announce.push((i, now)),
                    None => self.announce_master(i, now),
                },
                Action::Transition { from, to } => {
                    log::debug!("({name}) {from} -> {to}");
                    inst.last_transition = unix_now();
                    // For the takeover time: the last advert heard, as fed
                    // to the machine (the late-agent rule fed it what the
                    // kernel saw just before). Not the kernel's peer table
                    // read again: that is a system call per peer, for each
                    // of thousands of instances taking over together.
                    let heard_ns = (to == State::Master).then(|| inst.fed.values().copied().max()).flatten();
                    self.counters.transition(&inst.conf.name, to, now, heard_ns.map(|ns| Micros(ns / 1000)));
                    if to == State::Master {
                        inst.stats.become_master += 1;
                        // The kernel's silence warning for this
                        // instance, if that is what led here.
                        let watch = inst.silence.take();
                        inst.takeover = Some(super::status::Takeover {
                            seq: inst.stats.become_master,
                            heard_ns,
                            watch_hold_ns: watch.map(|w| w.0),
                            watch_fired_ns: watch.map(|w| w.1),
                            woke_ns: self.woke_ns,
                            due_ns: self.due_ns,
                            state_ns: timer::now_ns(),
                            ..Default::default()
                        });
                        entered_master = true;
                        // keepalived: a counter that reached its end starts
                        // again when the instance becomes master.
                        if let Some(ah) = &inst.ah {
                            ah.with_counter(|c| c.on_master());
                        }
                    } else if from == State::Master {
                        inst.stats.release_master += 1;
                    }
                    if to != State::Master {
                        // A warning is about the Backup state it came in:
                        // FAULT or a new Backup start afresh.
                        inst.silence = None;
                        if let Some(l) = &self.live {
                            l.set_master(i, super::live::fingerprint(inst.conf.name.as_bytes()), false);
                        }
                        inst.announce_at = None;
                        inst.refresh_at = None;
                        inst.pacer.clear();
                        inst.lower_prio_at = None;
                    }
                    transitioned = true;
                    notify.push(to);
                }
            }
        }
        // At stop, a transition's reconcile waits for the end of the loop
        // in `stop` too (4,000 backups took 7.8 s to stop); a master's
        // removal of its VIPs (RemoveVips above) still happens at once.
        if transitioned && !self.starting && !self.stopping {
            self.reconcile().await;
        }
        if entered_master
            && let Some(t) = &self.insts[i].takeover
            && log::log_enabled!(log::Level::Debug)
        {
            // After the announcements: logging is no step of the takeover.
            log::debug!("({}) takeover: {}", self.insts[i].conf.name, takeover_steps(t));
        }
        for to in notify {
            match &mut self.batch {
                Some(b) => b.notify.push((i, to)),
                None => self.notify_entered(i, to),
            }
        }
    }

    /// A new master's first announcements (keepalived's
    /// vrrp_state_become_master, after the addresses are added).
    fn announce_master(&mut self, i: usize, now: Micros) {
        let inst = &mut self.insts[i];
        // The time of sending, not of the batch: the addresses were just
        // reconciled, and the pacing counts from here.
        inst.announce_now(timer::now(), inst.conf.garp_master_repeat);
        let c = &inst.conf;
        // keepalived: a second batch after garp_master_delay, then a
        // refresh every garp_master_refresh.
        inst.announce_batches = u32::from(c.garp_master_delay > 0);
        inst.announce_at =
            (c.garp_master_delay > 0).then(|| now.after(Micros(u64::from(c.garp_master_delay) * 1_000_000)));
        inst.refresh_at = (c.garp_master_refresh > 0)
            .then(|| now.after(Micros(u64::from(c.garp_master_refresh) * 1_000_000)));
    }

    /// Instance `i` entered `to`: its notify scripts and FIFO line.
    fn notify_entered(&mut self, i: usize, to: State) {
        self.insts[i].notify(to);
        let inst = &self.insts[i];
        let word = if to == State::Init { "STOP".to_owned() } else { to.to_string() };
        self.fifos.instance(&inst.conf.name, &word, inst.machine.priority());
    }

    /// Start deferring (see `batch`); false when a batch is already open
    /// (the outer one finishes it).
    fn begin_batch(&mut self) -> bool {
        if self.batch.is_some() {
            return false;
        }
        self.batch = Some(Batch::default());
        true
    }

    /// End the batch `begin_batch` opened: one reconcile, then the new
    /// masters' announcements (their addresses are there now), then the
    /// notifies, in the order the transitions came.
    async fn finish_batch(&mut self, opened: bool) {
        if !opened {
            return;
        }
        let Some(b) = self.batch.take() else { return };
        let takeover = b.announce.len();
        if b.reconcile {
            self.reconcile().await;
        }
        for (i, now) in b.announce {
            if self.insts.get(i).is_some_and(|inst| inst.machine.state() == State::Master) {
                self.announce_master(i, now);
            }
        }
        for (i, to) in b.notify {
            if i < self.insts.len() {
                self.notify_entered(i, to);
            }
        }
        // A mass takeover's transient garbage (the reconcile's plan and
        // netlink messages, the log lines, the advert thread's new plans)
        // goes back, as start-up's does: glibc keeps freed heap otherwise,
        // and a backup that became MASTER of 4,000 instances held it.
        // A takeover of thousands comes in many batches (each a timer pass
        // or a batch of events): counted across them, trimmed after the
        // first status write once it is over (`write_status`).
        self.untrimmed_masters += takeover;
    }

    /// The owner index of the static addresses, routes and rules: one past
    /// the instances'.
    fn static_owner(&self) -> usize {
        self.insts.len()
    }

    /// `static_ipaddress`, resolved to the interfaces as they are now.
    pub(super) fn static_addrs(&self) -> impl Iterator<Item = ManagedVip> + '_ {
        self.cfg.static_addresses.iter().filter_map(|v| {
            let dev = v.dev.as_deref()?;
            let ifindex = nix::net::if_::if_nametoindex(dev).ok()?;
            Some(ManagedVip::new(v.clone(), ifindex))
        })
    }

    /// What every instance wants of its addresses now, and the static
    /// addresses (present until the agent stops).
    fn wants(&self) -> Vec<Want> {
        let present = !self.stopping;
        let owner = self.static_owner();
        let statics = self.static_addrs().map(|v| Want {
            key: AddrKey { ifindex: v.ifindex, addr: v.vip.addr },
            detail: v.vip.prefix,
            present,
            track: !v.vip.no_track,
            owner,
        });
        let retired = self.retired.wants();
        self.insts
            .iter()
            .enumerate()
            .flat_map(|(i, inst)| inst.wants(i))
            .chain(statics)
            .chain(retired)
            .collect()
    }

    /// What every instance wants of its virtual routes, and the static
    /// routes.
    fn route_wants(&self) -> Vec<Want<RouteKey>> {
        let owner = self.static_owner();
        let statics = self.cfg.static_routes.iter().filter(|r| routes::missing_devs(r).is_empty()).map(|r| {
            Want { key: routes::route_key(r), detail: (), present: !self.stopping, track: !r.no_track, owner }
        });
        let retired = self.retired.route_wants();
        self.insts
            .iter()
            .enumerate()
            .flat_map(|(i, inst)| inst.route_wants(i))
            .chain(statics)
            .chain(retired)
            .collect()
    }

    /// What every instance wants of its virtual rules, and the static rules.
    fn rule_wants(&self) -> Vec<Want<RuleKey>> {
        let owner = self.static_owner();
        let statics = self.cfg.static_rules.iter().map(|r| Want {
            key: routes::rule_key(r),
            detail: (),
            present: !self.stopping,
            track: !r.no_track,
            owner,
        });
        let retired = self.retired.rule_wants();
        self.insts
            .iter()
            .enumerate()
            .flat_map(|(i, inst)| inst.rule_wants(i))
            .chain(statics)
            .chain(retired)
            .collect()
    }

    /// Bring the kernel's addresses, routes and rules to what the
    /// instances want; on a failure, try again `RECONCILE_RETRY` later.
    /// Routes and rules go before the addresses and come after them: a
    /// route may name a VIP as its source, which must exist while it does.
    pub(super) async fn reconcile(&mut self) {
        if let Some(b) = &mut self.batch {
            b.reconcile = true;
            return;
        }
        // A takeover waiting for its addresses: the thread's scheduler
        // statistics around the add, and its time once done. Marked here,
        // not where the machine asked for the add: in a batch the add
        // comes at the batch's end, and the mark there measured nothing.
        let taking = self.insts.iter().any(|i| {
            i.machine.state() == State::Master && i.takeover.as_ref().is_some_and(|t| t.vips_ns.is_none())
        });
        let sched_before = if taking { self.sched.read() } else { None };
        let wants = self.wants();
        let ops = self.addrs.plan(&wants);
        // Accept Mode's drop rows go in before the addresses and out after
        // them, as keepalived's firewall rules (no_accept.rs).
        let rows = self.insts.iter().flat_map(Inst::no_accept_rows).collect();
        let (row_adds, row_removes) = self.no_accept.plan(&rows);
        let mut failed = !self.apply_rows(&row_adds);
        let route_wants = self.route_wants();
        let route_ops = self.routes.plan(&route_wants);
        let rule_wants = self.rule_wants();
        let rule_ops = self.rules.plan(&rule_wants);
        self.record_intent(&ops, &route_ops, &rule_ops);
        for op in route_ops.iter().filter(|o| o.is_remove()) {
            let outcome = self.apply_route(op).await;
            failed |= outcome == Outcome::Failed;
            self.routes.applied(op, outcome);
        }
        for op in rule_ops.iter().filter(|o| o.is_remove()) {
            let outcome = self.apply_rule(op).await;
            failed |= outcome == Outcome::Failed;
            self.rules.applied(op, outcome);
        }
        failed |= !self.apply_addrs(&ops).await;
        if taking {
            let at = timer::now_ns();
            let after = self.sched.read();
            for inst in self.insts.iter_mut().filter(|i| i.machine.state() == State::Master) {
                if let Some(t) = &mut inst.takeover
                    && t.vips_ns.is_none()
                {
                    t.vips_ns = Some(at);
                    if let (Some(b), Some(a)) = (sched_before, after) {
                        t.vips_run_delay_ns = Some(a.0.saturating_sub(b.0));
                        t.vips_sleeps = Some(a.1.saturating_sub(b.1));
                    }
                }
            }
        }
        failed |= !self.apply_rows(&row_removes);
        for op in rule_ops.iter().filter(|o| !o.is_remove()) {
            let outcome = self.apply_rule(op).await;
            failed |= outcome == Outcome::Failed;
            self.rules.applied(op, outcome);
        }
        for op in route_ops.iter().filter(|o| !o.is_remove()) {
            let outcome = self.apply_route(op).await;
            failed |= outcome == Outcome::Failed;
            self.routes.applied(op, outcome);
        }
        if failed {
            self.retry_at = Some(timer::now().after(RECONCILE_RETRY));
        }
        self.prune_retired();
        self.record_held();
    }

    /// Write Accept Mode rows into the XDP program's map; false if one
    /// failed (it stays planned). The raw-socket path has no map: the
    /// start refuses non-accept instances there (run.rs).
    fn apply_rows(&mut self, ops: &[RowOp]) -> bool {
        let Source::Xdp(x) = &mut self.source else { return ops.is_empty() };
        let mut ok = true;
        for op in ops {
            let r = match op {
                RowOp::Add(k, o) => x.dp.add_no_accept(*k, *o),
                RowOp::Remove(k) => x.dp.remove_no_accept(k),
            };
            if let Err(e) = &r {
                log::error!("accept mode: {op:?}: {e}");
            }
            ok &= r.is_ok();
            self.no_accept.applied(op, r.is_ok());
        }
        ok
    }

    /// Who `owner` is, for logs.
    fn owner_name(&self, owner: usize) -> String {
        if owner == RETIRED {
            return "removed by a reload".to_owned();
        }
        self.insts.get(owner).map_or_else(|| "static".to_owned(), |i| i.conf.name.clone())
    }

    /// The configured route of `key` that `owner` wants.
    fn route_of(&self, owner: usize, key: &RouteKey) -> Option<&crate::config::routes::Route> {
        let list = if owner == RETIRED {
            &self.retired.routes
        } else {
            self.insts.get(owner).map_or(&self.cfg.static_routes, |i| &i.conf.routes)
        };
        list.iter().find(|r| routes::route_key(r) == *key)
    }

    /// The configured rule of `key` that `owner` wants.
    fn rule_of(&self, owner: usize, key: &RuleKey) -> Option<&crate::config::routes::Rule> {
        let list = if owner == RETIRED {
            &self.retired.rules
        } else {
            self.insts.get(owner).map_or(&self.cfg.static_rules, |i| &i.conf.rules)
        };
        list.iter().find(|r| routes::rule_key(r) == *key)
    }

    /// One route operation, logged.
    async fn apply_route(&mut self, op: &Op<RouteKey>) -> Outcome {
        let (key, owner, add) = match op {
            Op::Add { key, owner, restore, .. } => {
                if *restore {
                    log::warn!(
                        "({}) route {}/{} (table {}) was removed: putting it back",
                        self.owner_name(*owner),
                        key.dst,
                        key.dst_len,
                        key.table
                    );
                }
                (key, *owner, true)
            }
            Op::Remove { key, owner, .. } => (key, *owner, false),
        };
        let Some(route) = self.route_of(owner, key) else { return Outcome::Failed };
        let r = if add {
            routes::add_route(&self.nl, routes::route_message(route)).await
        } else {
            routes::del_route(&self.nl, routes::route_delete_message(key, route.protocol)).await
        };
        match r {
            Ok(o) => o,
            Err(e) => {
                log::error!(
                    "({}) {} route {}/{} (table {}): {e}",
                    self.owner_name(owner),
                    if add { "adding" } else { "removing" },
                    key.dst,
                    key.dst_len,
                    key.table
                );
                Outcome::Failed
            }
        }
    }

    /// One rule operation, logged.
    async fn apply_rule(&mut self, op: &Op<RuleKey>) -> Outcome {
        let (key, owner, add) = match op {
            Op::Add { key, owner, restore, .. } => {
                if *restore {
                    log::warn!(
                        "({}) rule preference {} was removed: putting it back",
                        self.owner_name(*owner),
                        key.priority
                    );
                }
                (key, *owner, true)
            }
            Op::Remove { key, owner, .. } => (key, *owner, false),
        };
        let Some(rule) = self.rule_of(owner, key) else { return Outcome::Failed };
        let msg = routes::rule_message(key, !rule.no_track);
        let r =
            if add { routes::add_rule(&self.nl, msg).await } else { routes::del_rule(&self.nl, msg).await };
        match r {
            Ok(o) => o,
            Err(e) => {
                log::error!(
                    "({}) {} rule preference {}: {e}",
                    self.owner_name(owner),
                    if add { "adding" } else { "removing" },
                    key.priority
                );
                Outcome::Failed
            }
        }
    }

    /// The address operations, logged as keepalived would, their netlink
    /// requests pipelined (up to `vips::IN_FLIGHT` at once, not one
    /// round trip each: a failover of 4,000 instances adds 4,000
    /// addresses); false if one failed.
    async fn apply_addrs(&mut self, ops: &[Op]) -> bool {
        use futures_util::StreamExt;
        let requests: Vec<Option<AddrRequest>> = ops.iter().map(|op| self.addr_request(op)).collect();
        if let Some(direct) = &mut self.direct {
            // From this thread, no task in between (`vips::Direct`).
            let (msgs, whats): (Vec<_>, Vec<_>) = requests
                .into_iter()
                .map(|r| match r {
                    None => (None, None),
                    Some(AddrRequest::Add { msg, name, addr, prefix }) => {
                        (Some(vips::AddrMsg::Add(msg)), Some(format!("({name}) adding {addr}/{prefix}")))
                    }
                    Some(AddrRequest::Remove { ifindex, addr, prefix, name }) => (
                        Some(vips::AddrMsg::Remove(vips::remove_message(ifindex, addr, prefix))),
                        Some(format!("({name}) removing {addr}/{prefix}")),
                    ),
                })
                .unzip();
            let results = direct.apply(msgs);
            let mut ok = true;
            for ((op, r), what) in ops.iter().zip(results).zip(whats) {
                let outcome = match (r, what) {
                    (Ok(o), Some(_)) => o,
                    (Err(e), Some(what)) => {
                        log::error!("{what}: {e}");
                        Outcome::Failed
                    }
                    // Nothing was sent for it.
                    (_, None) => Outcome::Failed,
                };
                ok &= outcome != Outcome::Failed;
                self.addrs.applied(op, outcome);
            }
            return ok;
        }
        let nl = self.nl.clone();
        let outcomes: Vec<Outcome> = futures_util::stream::iter(requests)
            .map(|r| {
                let nl = nl.clone();
                async move {
                    let Some(r) = r else { return Outcome::Failed };
                    let (result, what) = match r {
                        AddrRequest::Add { msg, name, addr, prefix } => {
                            (vips::add(&nl, msg).await, format!("({name}) adding {addr}/{prefix}"))
                        }
                        AddrRequest::Remove { ifindex, addr, prefix, name } => (
                            vips::remove(&nl, ifindex, addr, prefix).await,
                            format!("({name}) removing {addr}/{prefix}"),
                        ),
                    };
                    if let Err(e) = &result {
                        log::error!("{what}: {e}");
                    }
                    result.unwrap_or(Outcome::Failed)
                }
            })
            .buffered(vips::IN_FLIGHT)
            .collect()
            .await;
        let mut ok = true;
        for (op, outcome) in ops.iter().zip(outcomes) {
            ok &= outcome != Outcome::Failed;
            self.addrs.applied(op, outcome);
        }
        ok
    }

    /// The request for one address operation (None: nothing to send, it
    /// fails), with keepalived's log line for a restore or a foreign
    /// address.
    fn addr_request(&self, op: &Op) -> Option<AddrRequest> {
        match *op {
            Op::Add { key, detail: prefix, owner, restore } => {
                let statics: Vec<ManagedVip>;
                let (name, iface, list) = match self.insts.get(owner) {
                    Some(inst) => (inst.conf.name.clone(), inst.conf.interface.as_str(), &inst.vips),
                    None => {
                        statics = self.static_addrs().collect();
                        ("static".to_owned(), "", &statics)
                    }
                };
                let v = list.iter().find(|v| v.ifindex == key.ifindex && v.vip.addr == key.addr)?;
                let msg = v.message_with(prefix);
                if restore {
                    let when = if owner < self.insts.len() { " while MASTER" } else { "" };
                    log::warn!(
                        "({name}) {}/{prefix} was removed from {}{when}: putting it back",
                        key.addr,
                        if iface.is_empty() { v.vip.dev.as_deref().unwrap_or("?") } else { iface }
                    );
                }
                Some(AddrRequest::Add { msg, name, addr: key.addr, prefix })
            }
            Op::Remove { key, detail: prefix, owner, foreign } => {
                if foreign && let Some(inst) = self.insts.get(owner) {
                    log::warn!(
                        "({}) {}/{prefix} is on ifindex {} but the instance is {}: removing it (only a master may answer for it)",
                        inst.conf.name,
                        key.addr,
                        key.ifindex,
                        inst.machine.state()
                    );
                }
                Some(AddrRequest::Remove {
                    ifindex: key.ifindex,
                    addr: key.addr,
                    prefix,
                    name: self.owner_name(owner),
                })
            }
        }
    }

    /// The protocol a held route was added with (keepalived's when no
    /// configured route has that key any more).
    fn route_protocol(&self, key: &RouteKey) -> u8 {
        self.insts
            .iter()
            .flat_map(|i| &i.conf.routes)
            .chain(&self.cfg.static_routes)
            .find(|r| routes::route_key(r) == *key)
            .map_or(crate::config::routes::RTPROT_KEEPALIVED, |r| r.protocol)
    }

    /// Whether a held rule carries keepalived's protocol.
    fn rule_tracked(&self, key: &RuleKey) -> bool {
        self.insts
            .iter()
            .flat_map(|i| &i.conf.rules)
            .chain(&self.cfg.static_rules)
            .find(|r| routes::rule_key(r) == *key)
            .is_none_or(|r| !r.no_track)
    }

    /// What we hold now, as the crash record says it.
    fn held_now(&self) -> vips::Held {
        vips::Held {
            addrs: self.addrs.installed().collect(),
            routes: self.routes.held().map(|(k, _)| (*k, self.route_protocol(k))).collect(),
            rules: self.rules.held().map(|(k, _)| (k.clone(), self.rule_tracked(k))).collect(),
        }
    }

    /// Add what the operations are about to add to the crash record first.
    fn record_intent(&mut self, ops: &[Op], route_ops: &[Op<RouteKey>], rule_ops: &[Op<RuleKey>]) {
        // Recorded before the adds, not only after: a worker killed between
        // an add and the record would leave something its supervisor does
        // not know of. `record_held` drops what then failed.
        // What the record already says stays in it until `record_held`
        // (after the adds): the record only grows here, by an append, no
        // file created or renamed before the add (`vips::Record`).
        let mut intent = self.held_record.written.clone();
        let mut known: std::collections::HashSet<(u32, IpAddr, u8)> = intent.addrs.iter().copied().collect();
        let held = self.held_now();
        let adds = ops.iter().filter_map(|op| match *op {
            Op::Add { key, detail: prefix, .. } => Some((key.ifindex, key.addr, prefix)),
            Op::Remove { .. } => None,
        });
        for a in held.addrs.iter().copied().chain(adds) {
            if known.insert(a) {
                intent.addrs.push(a);
            }
        }
        let route_adds = route_ops.iter().filter_map(|op| match op {
            Op::Add { key, .. } => Some((*key, self.route_protocol(key))),
            Op::Remove { .. } => None,
        });
        for entry in held.routes.iter().copied().chain(route_adds) {
            if !intent.routes.contains(&entry) {
                intent.routes.push(entry);
            }
        }
        let rule_adds = rule_ops.iter().filter_map(|op| match op {
            Op::Add { key, .. } => Some((key.clone(), self.rule_tracked(key))),
            Op::Remove { .. } => None,
        });
        for entry in held.rules.iter().cloned().chain(rule_adds) {
            if !intent.rules.contains(&entry) {
                intent.rules.push(entry);
            }
        }
        if let Err(e) = self.held_record.set(&intent) {
            log::warn!("recording what is about to be added: {e}");
        }
    }

    /// Keep the crash record (`<name>.vips`) equal to what we hold, so a
    /// supervisor or the next start can remove what a dead agent held.
    fn record_held(&mut self) {
        let now_held = self.held_now();
        if let Err(e) = self.held_record.set(&now_held) {
            log::warn!("recording what is held: {e}");
        }
    }

    fn agent_status(&self) -> AgentStatus {
        AgentStatus {
            pid: std::process::id(),
            receive: self.source.kind().into(),
            attaching: self.attach.is_some(),
            instances: self.insts.iter().map(Inst::status).collect(),
            sync_groups: self
                .groups
                .iter()
                .map(|g| status::GroupStatus {
                    gname: g.name().to_owned(),
                    state: g.state().to_string(),
                    instances: g.members().iter().map(|m| self.insts[*m].conf.name.clone()).collect(),
                })
                .collect(),
        }
    }

    /// The status file follows every change of state or priority at once,
    /// and the counters at most `STATUS_REFRESH` later. Checked without
    /// allocating, since a master passes here once per advert.
    fn write_status(&mut self) {
        let now = timer::now();
        self.tx_counts();
        // The AH receive path counts its refusals where it checks them.
        for inst in &mut self.insts {
            if let Some(ah) = &inst.ah {
                inst.stats.auth_failure = ah.failures();
            }
        }
        let (changed, counters) = match &self.written {
            None => (true, true),
            Some(w) => {
                let mut changed = false;
                let mut counters = false;
                for (inst, (s, p, st)) in self.insts.iter().zip(w) {
                    changed |= (inst.machine.state(), inst.machine.priority()) != (*s, *p);
                    counters |= inst.stats != *st;
                }
                (changed, counters)
            }
        };
        let counters_due = counters && now.0 >= self.written_at.0 + STATUS_REFRESH.0;
        // A takeover of thousands comes in many wakes, each with new
        // masters; the first wake without a change of state is past it
        // (usually the kernel's events for our own address adds, a few ms
        // later). Its status write then trims the heap once written, rather
        // than at the next refresh of the counters up to a second later.
        let trim = !changed && self.untrimmed_masters >= TRIM_AFTER_TAKEOVER;
        if !changed && !counters_due && !trim {
            return;
        }
        if trim {
            self.untrimmed_masters = 0;
        }
        self.status_writer.submit_then(self.agent_status(), trim);
        self.written = Some(
            self.insts.iter().map(|i| (i.machine.state(), i.machine.priority(), i.stats.clone())).collect(),
        );
        self.written_at = now;
    }

    /// Hand instance `i`'s periodic adverts to the advert thread, give it
    /// a new plan, or take them back, as its machine now says.
    pub(super) fn tx_sync(&mut self, i: usize) {
        let Some(th) = &self.tx_thread else { return };
        let inst = &mut self.insts[i];
        // At stop the resignations go from the loop (RFC 5798 6.4.3).
        let want = if self.stopping { None } else { super::tx_thread::PlanKey::of(i, inst) };
        if want == inst.tx_plan {
            return;
        }
        let plan = match want.map(|_| super::tx_thread::plan_of(i, inst, timer::now())) {
            None => None,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                log::warn!("({}) the advert thread cannot send for it ({e}): the loop does", inst.conf.name);
                None
            }
        };
        let (plan, key) = plan.map_or((None, None), |(p, k)| (Some(p), Some(k)));
        inst.stats.advert_sent += th.set(i, plan);
        inst.tx_plan = key;
    }

    /// Add the adverts the thread sent to the instances' counters.
    pub(super) fn tx_counts(&mut self) {
        let Some(th) = &self.tx_thread else { return };
        let insts = &mut self.insts;
        th.take_sent(|i, n| {
            if let Some(inst) = insts.get_mut(i) {
                inst.stats.advert_sent += n;
            }
        });
    }

    /// The instances were renumbered (a reload): instance `i` of before
    /// is `to(i)` now. The advert thread's plans move with them and go on
    /// sending (`TxThread::remap`).
    pub(super) fn tx_renumber(&mut self, to: impl Fn(usize) -> Option<usize>) {
        if let Some(th) = &self.tx_thread {
            // An entry without a new index was taken back by its
            // instance's shutdown already; nothing is left to count.
            th.remap(&to, |n| log::debug!("advert thread: {n} advert(s) of a removed instance uncounted"));
        }
        for (k, inst) in self.insts.iter_mut().enumerate() {
            if let Some(key) = &mut inst.tx_plan {
                key.slot = k;
            }
        }
    }

    /// Take every master's adverts back from the thread (a handover sends
    /// its last ones itself),
    /// and stop it when `stop`.
    pub(super) fn tx_take_back(&mut self, stop: bool) {
        if let Some(th) = &self.tx_thread {
            let insts = &mut self.insts;
            th.clear(|i, n| {
                if let Some(inst) = insts.get_mut(i) {
                    inst.stats.advert_sent += n;
                }
            });
        }
        for inst in &mut self.insts {
            inst.tx_plan = None;
        }
        if stop {
            self.tx_thread = None;
        }
    }

    /// Arm the timerfd for the next deadline of any kind.
    fn arm_timer(&mut self) {
        let now = timer::now();
        for inst in &mut self.insts {
            self.source.sync_watch(inst, now);
        }
        let alive = self.source.keep_alive(now);
        let status_due = self.written.as_ref().and_then(|w| {
            // The advert thread's masters count adverts without waking
            // the loop: their counters are due every STATUS_REFRESH.
            let dirty = self.insts.iter().zip(w).any(|(i, (_, _, st))| i.stats != *st || i.tx_plan.is_some());
            dirty.then(|| self.written_at.after(STATUS_REFRESH))
        });
        let next = self
            .insts
            .iter()
            .filter_map(Inst::next_deadline)
            .chain(alive)
            .chain(self.retry_at)
            .chain(status_due)
            .min();
        if let Err(e) = self.deadline.set(next) {
            log::error!("arming the timer: {e}");
        }
    }

    /// Shutdown: resign first (the backups' Skew_Time starts with our
    /// priority-0 advert), drop the VIPs, then detach.
    async fn stop(mut self) {
        self.sd.stopping();
        let now = timer::now();
        // keepalived removes the static addresses, routes and rules at stop.
        self.stopping = true;
        for i in 0..self.insts.len() {
            let mut out = Vec::new();
            self.insts[i].machine.handle(now, Input::Shutdown, &mut out);
            self.execute(i, now, out).await;
        }
        // The reconciles the loop left due, before the groups' notifies.
        self.reconcile().await;
        // The groups' STOP notifies run to completion (at most 1 s each,
        // keepalived's limit for them) before the agent exits, which would
        // kill them.
        let mut stops = tokio::task::JoinSet::new();
        for g in 0..self.groups.len() {
            let mut events = Vec::new();
            self.groups[g].stop(&mut events);
            let Some(run_as) = self.group_notify_as else { continue };
            for argv in self.group_notify_argv(g, State::Init) {
                stops.spawn(async move { runner::run_once(&argv, run_as, Duration::from_secs(1)).await });
            }
        }
        stops.join_all().await;
        // Anything still held (a removal that failed) gets one more try.
        self.reconcile().await;
        // The XDP teardown holds the kernel's RTNL lock for 10-20 ms. A
        // backup on the same kernel (namespaces, containers) needs that
        // lock to add the VIP within its Skew_Time (< one advert
        // interval), so linger one interval, at most 1 s, before detaching
        // (measured: 10 ms adverts, graceful failover 21 ms to VIP without,
        // see bench-results/report.md).
        let linger = self
            .insts
            .iter()
            .map(|i| Micros::from_centis(i.conf.advert_int).0)
            .max()
            .unwrap_or(0)
            .min(1_000_000);
        if self.insts.iter().any(|i| i.stats.pri_zero_sent > 0) {
            tokio::time::sleep(Duration::from_micros(linger)).await;
        }
        // The VIPs are gone; their macvlans go now (after the linger: a
        // link deletion takes the RTNL lock too).
        self.vmacs.stop(&self.nl).await;
        self.status_writer.finish();
        status::remove(&self.opts.name);
        // A clean stop resumes nothing.
        self.live = None;
        super::live::remove(&self.opts.name);
        if self.held_now() == vips::Held::default() {
            let _ = std::fs::remove_file(vips::held_file(&self.opts.name));
        }
        drop(self.source);
        log::info!("Stopped");
    }
}

/// The result of the XDP attach on its thread; never resolves without one.
async fn wait_attach(
    attach: &mut Option<super::run::PendingAttach>,
) -> crate::datapath::attach::AttachResult {
    match attach {
        Some(p) => (&mut p.job.done).await.unwrap_or_else(|_| {
            Err(crate::datapath::DatapathError::Program {
                action: "attaching",
                iface: "-".into(),
                source: aya::programs::ProgramError::IOError(std::io::Error::other(
                    "the attaching thread ended without an answer",
                )),
            })
        }),
        None => std::future::pending().await,
    }
}

/// The crash record after instance `i` (`inst`) advertised `priority`
/// (`went`: to at least one destination) at `sent_at`: MASTER at the
/// configured priority is what a new worker resumes (a priority lowered
/// by tracking, or 0 at a resignation, is not).
fn live_after_advert(
    l: &super::live::Writer,
    i: usize,
    inst: &Inst,
    priority: u8,
    sent_at: Micros,
    went: bool,
) {
    let master = inst.machine.state() == State::Master && priority == inst.conf.priority;
    let fp = super::live::fingerprint(inst.conf.name.as_bytes());
    if went {
        l.advert(i, fp, sent_at, master);
    } else {
        l.set_master(i, fp, master);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warned_backup_is_waited_for_only_near_its_deadline() {
        let now = Micros(10_000_000);
        // 2 ms ahead: within the lead, wait for it.
        assert_eq!(imminent_of([Some(Micros(10_002_000))].into_iter(), now), Some(Micros(10_002_000)));
        // The earliest of several.
        let two = [Some(Micros(10_002_000)), Some(Micros(10_001_000))];
        assert_eq!(imminent_of(two.into_iter(), now), Some(Micros(10_001_000)));
        // Already due (the warning came late): at once.
        assert_eq!(imminent_of([Some(Micros(9_999_000))].into_iter(), now), Some(Micros(9_999_000)));
        // Further than SPIN_MAX: the timer, not the CPU.
        assert_eq!(imminent_of([Some(Micros(10_000_000 + SPIN_MAX.0 + 1))].into_iter(), now), None);
        // No deadline (not a backup any more) and nobody warned.
        assert_eq!(imminent_of([None].into_iter(), now), None);
        assert_eq!(imminent_of(std::iter::empty(), now), None);
        // A mass failover keeps the timer, which gathers them in batches.
        let many = std::iter::repeat_n(Some(Micros(10_001_000)), SPIN_INSTANCES + 1);
        assert_eq!(imminent_of(many, now), None);
        let few = std::iter::repeat_n(Some(Micros(10_001_000)), SPIN_INSTANCES);
        assert_eq!(imminent_of(few, now), Some(Micros(10_001_000)));
    }

    #[test]
    fn the_wait_ends_at_the_deadline_not_before() {
        let due = Micros(timer::now().0 + 1_500);
        let done = spin_until(due);
        assert!(done / 1000 >= due.0, "returned at {done} ns, before {} µs", due.0);
        // And returns at once for a deadline already past.
        let past = Micros(timer::now().0.saturating_sub(1_000));
        assert!(spin_until(past) / 1000 >= past.0);
    }
}
