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

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rtnetlink::Handle;
use vrrp_common::maps::{EVENT_SILENT, PeerEvent, PeerKey, PeerState};

use super::instance::{Inst, unix_now};
use super::link::NetEvent;
use super::no_accept::{NoAcceptRows, RowOp};
use super::reconcile::{Op, Outcome, Reconciler, Want};
use super::run::{DaemonError, Options};
use super::signals::Sig;
use super::source::{Source, next_events};
use super::status::{self, AgentStatus, Stats};
use super::timer::{self, Deadline};
use super::vips;
use crate::config::Config;
use crate::health::trackers::{TrackEvent, Trackers};
use crate::health::{Health, Status};
use crate::machine::{Action, Input, Micros, State};
use crate::notify_fifo::Fifos;

/// A failed reconciliation is tried again this much later (a VIP's
/// interface may be coming back, or the kernel may be short of memory).
const RECONCILE_RETRY: Micros = Micros(1_000_000);

/// The status file's counters are at most this old.
const STATUS_REFRESH: Micros = Micros(1_000_000);

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
}

/// The running daemon.
pub(super) struct Agent {
    pub(super) opts: Options,
    /// The configuration running, and the file it came from (for reloads).
    pub(super) cfg: Config,
    pub(super) cfg_path: Option<PathBuf>,
    pub(super) insts: Vec<Inst>,
    pub(super) source: Source,
    pub(super) deadline: Deadline,
    /// Tracked scripts' states, by the script table's index.
    pub(super) statuses: Vec<(String, Status)>,
    /// Tracked interfaces' link state, by ifindex.
    pub(super) links: HashMap<u32, bool>,
    pub(super) nl: Handle,
    /// The addresses the agent owns in the kernel.
    pub(super) addrs: Reconciler,
    /// When to reconcile again after a failure.
    pub(super) retry_at: Option<Micros>,
    /// What the status file last said: states, priorities, counters.
    pub(super) written: Option<Vec<(State, u8, Stats)>>,
    pub(super) written_at: Micros,
    /// What the crash record (`<name>.vips`) last said.
    pub(super) held_written: Vec<(u32, IpAddr, u8)>,
    /// The Accept Mode rows the agent wrote into the XDP program's map.
    pub(super) no_accept: NoAcceptRows,
    /// Track files' values and track processes' quorums.
    pub(super) trackers: Trackers,
    /// keepalived's notify FIFOs.
    pub(super) fifos: Fifos,
}

impl Agent {
    /// Start every instance, then serve events until `shutdown` resolves
    /// or a stop signal arrives; then stop gracefully.
    pub(super) async fn serve(
        mut self,
        mut net: super::link::NetEvents,
        mut health_rx: tokio::sync::mpsc::UnboundedReceiver<(usize, bool)>,
        mut track_rx: tokio::sync::mpsc::UnboundedReceiver<TrackEvent>,
        mut signals: super::signals::Signals,
        shutdown: impl Future<Output = ()>,
    ) {
        self.start().await;
        tokio::pin!(shutdown);
        let mut net_open = true;
        loop {
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
                Some(ev) = track_rx.recv() => Wake::Track(ev),
                sig = signals.next() => Wake::Signal(sig),
            };
            match wake {
                Wake::Shutdown | Wake::Signal(Sig::Stop) => break,
                Wake::Timer => self.on_timer().await,
                Wake::Peers(events) => self.on_peer_events(events).await,
                Wake::Net(ev) => self.on_net(ev).await,
                Wake::NetClosed => {
                    log::error!(
                        "the kernel's netlink event socket closed: address and link changes are no longer followed"
                    );
                    net_open = false;
                }
                Wake::Health(idx, ok) => self.on_health(idx, ok).await,
                Wake::Track(ev) => self.on_track(ev).await,
                Wake::Signal(sig) => self.on_signal(sig),
            }
        }
        self.stop().await;
    }

    /// Enter each instance's first state, with its tracking already
    /// counted (scripts with init_fail count from the start), and take the
    /// addresses to where the states want them.
    async fn start(&mut self) {
        // keepalived's vrrp_startup_delay: no instance starts before it
        // has passed (interfaces and routing may still be coming up).
        let delay = self.cfg.global.startup_delay;
        if !delay.is_zero() {
            log::info!("Delaying startup for {} seconds", delay.as_secs_f64());
            tokio::time::sleep(delay).await;
        }
        let now = timer::now();
        for i in 0..self.insts.len() {
            let inst = &mut self.insts[i];
            let mut out = Vec::new();
            let (p, fault) = inst.health_input(&self.statuses, &self.links, &self.trackers);
            if fault {
                log::info!("({}) a tracked interface or script is down: starting in FAULT", inst.conf.name);
            }
            inst.machine.handle(now, Input::Priority(p), &mut out);
            inst.machine.handle(now, Input::Fault(fault), &mut out);
            inst.machine.start(now, &mut out);
            self.execute(i, now, out).await;
        }
        // A backup's VIPs found on its interfaces go now (keepalived
        // leaves them until the next transition).
        self.reconcile().await;
    }

    /// The peer table's events: feed each to the instances it concerns. A
    /// silence report from the kernel's watch runs the timers.
    async fn on_peer_events(&mut self, events: Vec<PeerEvent>) {
        // The kernel's watch expired for an instance: its master went
        // quiet. Decide as for our own timer (the late-agent rule first).
        if events.iter().any(|e| e.kind & EVENT_SILENT != 0) {
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

    /// A deadline came due (or the kernel's watch reported a silent
    /// master): the late-agent rule, then the machines' timers, the
    /// announcements, a pending reconciliation.
    async fn on_timer(&mut self) {
        let now = timer::now();
        // The late-agent rule: before a backup gives up on its master,
        // read what the kernel saw meanwhile.
        if self.insts.iter().any(|i| i.machine.master_down_deadline().is_some_and(|d| d <= now)) {
            let peers = self.source.peers();
            for i in 0..self.insts.len() {
                let inst = &mut self.insts[i];
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
                self.execute(i, now, out).await;
            }
        }
        for i in 0..self.insts.len() {
            let mut out = Vec::new();
            self.insts[i].machine.handle_timeout(now, &mut out);
            self.execute(i, now, out).await;
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
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.reconcile().await;
        }
    }

    /// A link or address changed.
    async fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Link { ifindex, name, up } => {
                self.follow(ifindex, &name).await;
                self.on_link(ifindex, up).await;
            }
            NetEvent::LinkGone { ifindex, name } => self.on_link_gone(ifindex, &name).await,
            NetEvent::Addr { ifindex, addr, prefix, up } => self.on_addr(ifindex, addr, prefix, up).await,
        }
    }

    /// Interface `name` exists with index `ifindex`, perhaps created anew
    /// (a container's veth, a VLAN rebuilt by network tooling): VIPs and
    /// tracked interfaces of that name follow it, and instances on it open
    /// their sockets there and attach the program again.
    async fn follow(&mut self, ifindex: u32, name: &str) {
        for i in 0..self.insts.len() {
            self.insts[i].relink(name, ifindex);
            if self.insts[i].conf.interface == name {
                self.rebind(i).await;
            }
        }
    }

    /// Open instance `i` on its interface if it is not yet open on the
    /// index the interface has now.
    async fn rebind(&mut self, i: usize) {
        match self.insts[i].bind() {
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
        let ours = self.addrs.observed(super::reconcile::AddrKey { ifindex, addr }, prefix, up);
        for i in 0..self.insts.len() {
            if up && !self.insts[i].bound() {
                self.rebind(i).await;
            }
        }
        let managed = self.insts.iter().any(|i| i.manages(ifindex, addr));
        if !managed {
            return;
        }
        if !up && ours {
            log::warn!("{addr}/{prefix} was removed from ifindex {ifindex} by someone else");
        }
        self.reconcile().await;
    }

    /// A tracked script's result.
    async fn on_health(&mut self, idx: usize, ok: bool) {
        let Some((name, status)) = self.statuses.get_mut(idx) else { return };
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
    fn on_signal(&mut self, sig: Sig) {
        match sig {
            Sig::Reload => self.reload(),
            Sig::DumpData => self.dump(status::data_path(&self.opts.name), "state"),
            Sig::DumpStats => self.dump(status::stats_path(&self.opts.name), "statistics"),
            Sig::Stop => {}
        }
    }

    /// SIGHUP: read the configuration again. An invalid one is refused
    /// with its diagnostics and the running one stays. Changes are not
    /// applied in place yet: the log says so, and a restart applies them.
    fn reload(&mut self) {
        let path = crate::config::default_path(self.cfg_path.as_deref());
        log::info!("Reloading: reading {}", path.display());
        match crate::config::check(&path) {
            Err(crate::config::ConfigError::Invalid { diags }) => {
                for d in &diags {
                    log::error!("{d}");
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
                    log::warn!(
                        "Reload: {} changed, but vrrp-agent does not apply changes in place yet; the running instances are unchanged (restart the agent to apply them)",
                        path.display()
                    );
                }
            }
        }
    }

    /// SIGUSR1 / SIGUSR2: write the state (the status document) to `path`.
    fn dump(&self, path: PathBuf, what: &str) {
        match status::write_to(&path, &self.agent_status()) {
            Ok(()) => log::info!("Wrote the {what} to {}", path.display()),
            Err(e) => log::error!("writing the {what} to {}: {e}", path.display()),
        }
    }

    /// Health or link changed for instance `i`: recompute its effective
    /// priority and fault.
    async fn retrack(&mut self, i: usize) {
        let now = timer::now();
        let (p, fault) = self.insts[i].health_input(&self.statuses, &self.links, &self.trackers);
        let mut out = Vec::new();
        self.insts[i].machine.handle(now, Input::Fault(fault), &mut out);
        self.insts[i].machine.handle(now, Input::Priority(p), &mut out);
        self.execute(i, now, out).await;
    }

    /// Carry out a machine's actions for instance `i`, in order: the
    /// addresses are reconciled where the machine adds or removes them
    /// (before the first advert and the gratuitous ARPs of a new master),
    /// and once more after a transition that did neither (a backup's
    /// first state removes a VIP found on its interface).
    async fn execute(&mut self, i: usize, now: Micros, actions: Vec<Action>) {
        let mut transitioned = false;
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
                Action::SendAdvert { priority } => {
                    inst.stats.advert_sent += 1;
                    if priority == 0 {
                        inst.stats.pri_zero_sent += 1;
                    }
                    let Some(sender) = &mut inst.sender else { continue };
                    for (dst, r) in sender.send(priority) {
                        if let Err(e) = r {
                            log::warn!("({name}) cannot send advert to {dst}: {e}");
                        }
                    }
                }
                // The machine's state says which addresses it wants.
                Action::AddVips => {
                    transitioned = false;
                    self.reconcile().await;
                }
                Action::RemoveVips => {
                    inst.announce_at = None;
                    inst.refresh_at = None;
                    transitioned = false;
                    self.reconcile().await;
                }
                Action::Announce => {
                    // The time of sending, not of the batch: the addresses
                    // were just reconciled, and the pacing counts from here.
                    inst.announce_now(timer::now(), inst.conf.garp_master_repeat);
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
                        inst.pacer.clear();
                        inst.lower_prio_at = None;
                    }
                    transitioned = true;
                    notify.push(to);
                }
            }
        }
        if transitioned {
            self.reconcile().await;
        }
        for to in notify {
            self.insts[i].notify(to);
            let inst = &self.insts[i];
            let word = if to == State::Init { "STOP".to_owned() } else { to.to_string() };
            self.fifos.instance(&inst.conf.name, &word, inst.machine.priority());
        }
    }

    /// What every instance wants of its addresses now.
    fn wants(&self) -> Vec<Want> {
        self.insts.iter().enumerate().flat_map(|(i, inst)| inst.wants(i)).collect()
    }

    /// Bring the kernel's addresses to what the instances want; on a
    /// failure, try again `RECONCILE_RETRY` later.
    async fn reconcile(&mut self) {
        let wants = self.wants();
        let ops = self.addrs.plan(&wants);
        // Accept Mode's drop rows go in before the addresses and out after
        // them, as keepalived's firewall rules (no_accept.rs).
        let rows = self.insts.iter().flat_map(Inst::no_accept_rows).collect();
        let (row_adds, row_removes) = self.no_accept.plan(&rows);
        let mut failed = !self.apply_rows(&row_adds);
        self.record_intent(&ops);
        for op in &ops {
            let outcome = self.apply(op).await;
            failed |= outcome == Outcome::Failed;
            self.addrs.applied(op, outcome);
        }
        failed |= !self.apply_rows(&row_removes);
        if failed {
            self.retry_at = Some(timer::now().after(RECONCILE_RETRY));
        }
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

    /// One netlink operation, logged as keepalived would.
    async fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Add { key, prefix, owner, restore } => {
                let inst = &self.insts[owner];
                let Some(v) = inst.vips.iter().find(|v| v.ifindex == key.ifindex && v.vip.addr == key.addr)
                else {
                    return Outcome::Failed;
                };
                let msg = v.message_with(prefix);
                if restore {
                    log::warn!(
                        "({}) {}/{prefix} was removed from {} while MASTER: putting it back",
                        inst.conf.name,
                        key.addr,
                        inst.conf.interface
                    );
                }
                let outcome = vips::add(&self.nl, msg).await;
                if let Err(e) = &outcome {
                    log::error!("({}) adding {}/{prefix}: {e}", inst.conf.name, key.addr);
                }
                outcome.unwrap_or(Outcome::Failed)
            }
            Op::Remove { key, prefix, owner, foreign } => {
                let inst = &self.insts[owner];
                if foreign {
                    log::warn!(
                        "({}) {}/{prefix} is on ifindex {} but the instance is {}: removing it (only a master may answer for it)",
                        inst.conf.name,
                        key.addr,
                        key.ifindex,
                        inst.machine.state()
                    );
                }
                let outcome = vips::remove(&self.nl, key.ifindex, key.addr, prefix).await;
                if let Err(e) = &outcome {
                    log::error!("({}) removing {}/{prefix}: {e}", inst.conf.name, key.addr);
                }
                outcome.unwrap_or(Outcome::Failed)
            }
        }
    }

    /// Add what `ops` are about to add to the crash record first.
    fn record_intent(&mut self, ops: &[Op]) {
        // Recorded before the adds, not only after: a worker killed between
        // an add and the record would leave an address its supervisor does
        // not know of. `record_held` drops what then failed.
        let mut intent: Vec<(u32, IpAddr, u8)> = self.addrs.installed().collect();
        let before = intent.len();
        for op in ops {
            if let Op::Add { key, prefix, .. } = *op
                && !intent.contains(&(key.ifindex, key.addr, prefix))
            {
                intent.push((key.ifindex, key.addr, prefix));
            }
        }
        if intent.len() == before {
            return;
        }
        if let Err(e) = vips::save_held(&self.opts.name, &intent) {
            log::warn!("recording the VIPs about to be added: {e}");
        }
        self.held_written = intent;
    }

    /// Keep the crash record (`<name>.vips`) equal to what we hold, so a
    /// supervisor or the next start can remove what a dead agent held.
    fn record_held(&mut self) {
        if self.addrs.installed().eq(self.held_written.iter().copied()) {
            return;
        }
        let now_held: Vec<(u32, IpAddr, u8)> = self.addrs.installed().collect();
        if let Err(e) = vips::save_held(&self.opts.name, &now_held) {
            log::warn!("recording the VIPs held: {e}");
        }
        self.held_written = now_held;
    }

    fn agent_status(&self) -> AgentStatus {
        AgentStatus {
            pid: std::process::id(),
            receive: self.source.kind().into(),
            instances: self.insts.iter().map(Inst::status).collect(),
        }
    }

    /// The status file follows every change of state or priority at once,
    /// and the counters at most `STATUS_REFRESH` later. Checked without
    /// allocating, since a master passes here once per advert.
    fn write_status(&mut self) {
        let now = timer::now();
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
        if !changed && !counters_due {
            return;
        }
        if let Err(e) = status::write(&self.opts.name, &self.agent_status()) {
            log::warn!("writing {}: {e}", status::path(&self.opts.name).display());
        }
        self.written = Some(
            self.insts.iter().map(|i| (i.machine.state(), i.machine.priority(), i.stats.clone())).collect(),
        );
        self.written_at = now;
    }

    /// Arm the timerfd for the next deadline of any kind.
    fn arm_timer(&mut self) {
        let now = timer::now();
        for inst in &mut self.insts {
            self.source.sync_watch(inst, now);
        }
        let alive = self.source.keep_alive(now);
        let status_due = self.written.as_ref().and_then(|w| {
            let dirty = self.insts.iter().zip(w).any(|(i, (_, _, st))| i.stats != *st);
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
        let now = timer::now();
        for i in 0..self.insts.len() {
            let mut out = Vec::new();
            self.insts[i].machine.handle(now, Input::Shutdown, &mut out);
            self.execute(i, now, out).await;
        }
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
        status::remove(&self.opts.name);
        if self.addrs.installed().next().is_none() {
            let _ = std::fs::remove_file(vips::held_file(&self.opts.name));
        }
        drop(self.source);
        log::info!("Stopped");
    }
}
