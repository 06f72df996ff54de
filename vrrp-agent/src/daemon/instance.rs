//! One running VRRP instance: its configuration, state machine, sockets
//! and what the kernel's watch of it looks like.

use std::collections::HashMap;
use std::net::IpAddr;

use vrrp_common::accept::{VipKey, VipOwner};
use vrrp_common::maps::{PeerKey, PeerState};
use vrrp_common::rx::Expect;
use vrrp_common::wire::{Auth, Family};

use super::announce::{Announcer, Pacer};
use super::link;
use super::no_accept;
use super::reconcile::{AddrKey, RouteKey, RuleKey, Want};
use super::run::DaemonError;
use super::status::{InstanceStatus, Stats, Takeover};
use super::tx::{AdvertSpec, Sender};
use super::vips::ManagedVip;
use crate::config;
use crate::config::model::AuthConf;
use crate::fallback;
use crate::health::runner::{self, RunAs};
use crate::health::trackers::{self, Trackers};
use crate::health::{self, Health, Status, Tracked};
use crate::machine::{Action, Input, Machine, Micros, Params, State};

/// One running instance.
pub(super) struct Inst {
    pub(super) conf: config::Instance,
    pub(super) machine: Machine,
    pub(super) ifindex: u32,
    pub(super) family: Family,
    /// None while the interface does not exist.
    pub(super) sender: Option<Sender>,
    /// While MASTER: what the advert thread was handed to send its
    /// periodic adverts (`tx_thread.rs`); the machine's Adver_Timer is
    /// then the thread's to follow, not the loop's.
    pub(super) tx_plan: Option<super::tx_thread::PlanKey>,
    pub(super) vips: Vec<ManagedVip>,
    pub(super) announcer: Option<Announcer>,
    /// Per peer address: the last-seen time already fed to the machine.
    pub(super) fed: HashMap<[u8; 16], u64>,
    /// Remaining announcement batches and when the next one is due.
    pub(super) announce_at: Option<Micros>,
    pub(super) announce_batches: u32,
    pub(super) refresh_at: Option<Micros>,
    /// Announcements waiting for `vrrp_garp_interval` / `vrrp_gna_interval`.
    pub(super) pacer: Pacer,
    /// The second burst after a lower-priority advert (`garp_lower_prio_delay`).
    pub(super) lower_prio_at: Option<Micros>,
    /// Own addresses of the family on the interface.
    pub(super) own: Vec<IpAddr>,
    /// Tracked scripts: index in the script table, weight, reverse.
    pub(super) tracks: Vec<(usize, i32, bool)>,
    /// Tracked files and processes: index in their tables, weight, reverse.
    pub(super) track_files: Vec<trackers::Entry>,
    pub(super) track_procs: Vec<trackers::Entry>,
    /// Who notify scripts run as.
    pub(super) notify_as: Option<RunAs>,
    /// Tracked interfaces: index, name, weight (0: FAULT when down). The
    /// instance's own interface is always among them.
    pub(super) track_ifs: Vec<(u32, String, i32)>,
    /// Counters for the status file.
    pub(super) stats: Stats,
    /// Unix time of the last transition.
    pub(super) last_transition: f64,
    /// The kernel's master-down watch as last written (watch priority,
    /// our priority) and when (monotonic µs); None before the first write
    /// and on the raw-socket path, which has no watch.
    pub(super) watch: Option<(u8, u8)>,
    pub(super) watch_since: Micros,
    /// `use_vmac`: the macvlan the VIPs live on.
    pub(super) vmac: Option<InstVmac>,
    /// Whether the kernel's watch has been armed by an advert since it was
    /// last configured: then the agent's own Master_Down_Timer is only a
    /// backstop (`WATCH_BACKSTOP` later), and the kernel wakes us.
    pub(super) watch_armed: bool,
    /// The kernel watch's warning that the master has been quiet for
    /// nearly Master_Down_Interval (its last holding advert, when the
    /// warning fired; CLOCK_MONOTONIC ns), until a newer advert or the
    /// transition it leads to. While set the agent's own timer is exact:
    /// the kernel's has stopped.
    pub(super) silence: Option<(u64, u64)>,
    /// `auth_type AH`: the key and the sequence counter its receive path
    /// and its sender share.
    pub(super) ah: Option<std::sync::Arc<fallback::AhAuth>>,
    /// The last entry into MASTER, step by step (the status file's
    /// `last_takeover`); its later steps are filled in as they happen.
    pub(super) takeover: Option<Takeover>,
}

/// An instance's macvlan (`use_vmac`), created by the agent before the
/// instance is built (`vmac.rs`).
#[derive(Clone, Debug)]
pub(super) struct InstVmac {
    /// Its name.
    pub(super) name: String,
    /// Its index when the instance was last opened.
    pub(super) ifindex: u32,
    /// `vmac_xmit_base`: adverts go out on the base interface.
    pub(super) xmit_base: bool,
}

/// Where VIP `v` of instance `conf` lives: keepalived puts those without
/// a `dev` (or with the instance's interface) of the instance's family on
/// its macvlan, the others on their interface.
pub(super) fn vip_iface<'a>(
    conf: &'a config::Instance,
    vmac: Option<&'a str>,
    v: &'a config::Vip,
) -> &'a str {
    let on_base = v.dev.as_deref().is_none_or(|d| d == conf.interface);
    let same_family = v.addr.is_ipv4() == (conf.family == Family::V4);
    match (vmac, on_base && same_family) {
        (Some(m), true) => m,
        _ => v.dev.as_deref().unwrap_or(&conf.interface),
    }
}

/// With the kernel's master-down watch armed, the agent's own
/// Master_Down_Timer fires this much later, as a backstop should the
/// kernel's timer ever fail to fire: a backup then wakes about once a
/// second, not once per Master_Down_Interval.
pub(super) const WATCH_BACKSTOP: Micros = Micros(1_000_000);

/// Build instance `conf`. An interface that does not exist yet is not an
/// error: the instance starts in FAULT and comes up when the interface
/// appears (`bind` on its link event), as it does after a re-creation.
pub(super) fn build(
    conf: &config::Instance,
    vmac: Option<String>,
    ifs: &link::Ifaddrs,
) -> Result<Inst, DaemonError> {
    let resolve = |name: &str| nix::net::if_::if_nametoindex(name).unwrap_or(0);
    // VIPs on the instance's own interface get its index at `bind`; those
    // on another (a `dev`, the macvlan) now.
    let vips = conf
        .vips
        .iter()
        .chain(&conf.vips_excluded)
        .map(|v| {
            let at = vip_iface(conf, vmac.as_deref(), v);
            ManagedVip::new(v.clone(), if at == conf.interface { 0 } else { resolve(at) })
        })
        .collect();
    // keepalived's dont_track_primary: the instance's own link is not
    // tracked (its going down is no FAULT); a deleted interface still is
    // (no socket to advertise on).
    let mut track_ifs =
        if conf.dont_track_primary { Vec::new() } else { vec![(0, conf.interface.clone(), 0)] };
    // keepalived tracks the macvlan as the instance's interface: without
    // it (deleted, set down) the instance is in FAULT until the agent
    // has put it back.
    if let Some(m) = &vmac {
        track_ifs.push((resolve(m), m.clone(), 0));
    }
    for t in &conf.track_interface {
        let idx = resolve(&t.name);
        if idx == 0 {
            log::warn!(
                "({}) track_interface {} does not exist (yet): counted as down until it appears",
                conf.name,
                t.name
            );
        }
        track_ifs.push((idx, t.name.clone(), t.weight.unwrap_or(0)));
    }
    let mut inst = Inst {
        conf: conf.clone(),
        machine: Machine::new(params(conf)),
        ifindex: 0,
        family: conf.family,
        sender: None,
        tx_plan: None,
        vips,
        announcer: None,
        fed: HashMap::new(),
        watch: None,
        watch_since: Micros(0),
        watch_armed: false,
        silence: None,
        vmac: vmac.map(|name| InstVmac { name, ifindex: 0, xmit_base: conf.vmac_xmit_base }),
        ah: match &conf.auth {
            Some(AuthConf::Ah(p)) => Some(std::sync::Arc::new(fallback::AhAuth::new(
                &conf.name,
                p.as_bytes(),
                !conf.unicast_peers.is_empty(),
            ))),
            _ => None,
        },
        announce_at: None,
        announce_batches: 0,
        refresh_at: None,
        pacer: Pacer::default(),
        lower_prio_at: None,
        own: Vec::new(),
        tracks: Vec::new(),
        track_files: Vec::new(),
        track_procs: Vec::new(),
        notify_as: None,
        track_ifs,
        stats: Stats::default(),
        last_transition: unix_now(),
        takeover: None,
    };
    match inst.bind(ifs) {
        Ok(_) => {}
        Err(DaemonError::NoInterface { iface, .. }) => log::warn!(
            "({}) interface {iface} does not exist (yet): the instance stays in FAULT until it appears",
            conf.name
        ),
        Err(e) => return Err(e),
    }
    Ok(inst)
}

/// The state machine's part of the configuration.
pub(super) fn params(conf: &config::Instance) -> Params {
    Params {
        name: conf.name.clone(),
        version: conf.version,
        priority: conf.priority,
        advert_int: conf.advert_int,
        primary: conf.unicast_src_ip.unwrap_or(match conf.family {
            Family::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }),
        preempt: conf.preempt,
        preempt_delay: Micros(u64::try_from(conf.preempt_delay.as_micros()).unwrap_or(u64::MAX)),
        lower_prio_no_advert: conf.lower_prio_no_advert,
    }
}

/// Resolve the instance's `track_script` against the script table (by
/// name), at start and after a reload; `running[i]`: script `i`'s check
/// loop runs (every tracked script's does, `Checks`). One that does not
/// is named in the log and not counted.
pub(super) fn resolve_tracks(inst: &mut Inst, scripts: &[config::Script], running: &[bool]) {
    inst.tracks.clear();
    for t in &inst.conf.track_script {
        match scripts.iter().position(|s| s.name == t.name) {
            Some(i) if running.get(i).copied().unwrap_or(false) => {
                let sc = &scripts[i];
                inst.tracks.push((i, t.weight.unwrap_or(sc.weight), t.reverse || sc.reverse));
            }
            _ => log::warn!(
                "({}) track_script {}: its vrrp_script is not running; not tracked",
                inst.conf.name,
                t.name
            ),
        }
    }
}

/// What the instance's adverts carry.
fn advert_spec(conf: &config::Instance) -> AdvertSpec {
    let auth = auth_of(conf);
    AdvertSpec {
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
    }
}

/// The instance's v2 authentication as the wire codec takes it.
fn auth_of(conf: &config::Instance) -> Auth {
    match &conf.auth {
        Some(AuthConf::Pass(p)) => Auth::simple(p.as_bytes()),
        Some(AuthConf::Ah(_)) => Auth::Ah,
        None => Auth::None,
    }
}

pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Inst {
    /// The interface's index (and its macvlan's, 0 without use_vmac) when
    /// the instance is not yet open there (`bind` would open it); None
    /// when it is. Cheap (an ioctl per name), unlike the address dump
    /// `bind` needs: a link event on an interface with hundreds of
    /// instances asks every one of them.
    pub(super) fn unbound_indices(&self) -> Result<Option<(u32, u32)>, DaemonError> {
        let conf = &self.conf;
        let ifindex = nix::net::if_::if_nametoindex(conf.interface.as_str()).map_err(|source| {
            DaemonError::NoInterface { instance: conf.name.clone(), iface: conf.interface.clone(), source }
        })?;
        let vmac_index = match &self.vmac {
            None => 0,
            Some(m) => nix::net::if_::if_nametoindex(m.name.as_str()).map_err(|source| {
                DaemonError::NoInterface { instance: conf.name.clone(), iface: m.name.clone(), source }
            })?,
        };
        let open_here = self.sender.is_some()
            && ifindex == self.ifindex
            && self.vmac.as_ref().is_none_or(|m| m.ifindex == vmac_index);
        Ok((!open_here).then_some((ifindex, vmac_index)))
    }

    /// Open the instance on its interface as it exists now (at start, and
    /// again when the interface is re-created with a new index): the
    /// advert and announcement sockets, our addresses there. Ok(false) when
    /// it is already open on this index. Follows the interface by name.
    /// `ifs`: the interfaces as they are now.
    pub(super) fn bind(&mut self, ifs: &link::Ifaddrs) -> Result<bool, DaemonError> {
        let Some((ifindex, vmac_index)) = self.unbound_indices()? else { return Ok(false) };
        let conf = &self.conf;
        let name = conf.name.clone();
        // Never run an instance that cannot advertise: the check at start
        // used the MTU then (or keepalived's default for a missing
        // interface); a re-created interface may have a smaller one.
        use crate::config::system::{DEFAULT_MTU, max_vips, mtu};
        let mtu = mtu(&conf.interface).unwrap_or(DEFAULT_MTU);
        let max = max_vips(mtu, conf.family, conf.version);
        if conf.vips.len() > max {
            return Err(DaemonError::AdvertTooBig {
                instance: name,
                iface: conf.interface.clone(),
                mtu,
                vips: conf.vips.len(),
                max,
            });
        }
        let own = ifs.addresses(&conf.interface, conf.family);
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
        let io = |what: &'static str| {
            let instance = name.clone();
            move |source| DaemonError::Io { instance, what, source }
        };
        // With use_vmac, adverts go out on the macvlan, so their source
        // MAC is the virtual router's (RFC 5798 7.3), from the base's
        // address (IPv6: the base's link-local, which the macvlan got
        // too); with vmac_xmit_base, from the base. Announcements always
        // go out on the macvlan: hosts learn the virtual MAC for the VIPs.
        let (tx_if, tx_index, ann_if, ann_index) = match &self.vmac {
            None => (conf.interface.as_str(), ifindex, conf.interface.as_str(), ifindex),
            Some(m) if m.xmit_base => (conf.interface.as_str(), ifindex, m.name.as_str(), vmac_index),
            Some(m) => (m.name.as_str(), vmac_index, m.name.as_str(), vmac_index),
        };
        let sender =
            Sender::open(tx_if, tx_index, src, &conf.unicast_peers, advert_spec(conf), self.ah.clone())
                .map_err(io("advert socket"))?;
        let announcer = Announcer::with(ifs, ann_if, ann_index).map_err(io("announcement sockets"))?;
        if self.conf.vips.iter().chain(&self.conf.vips_excluded).any(|v| v.addr == src)
            && self.sender.is_none()
            && self.ifindex == 0
        {
            log::warn!(
                "({}) {src} is both a virtual address and the address adverts are sent from: it is this node's own, so the agent never adds or removes it",
                self.conf.name
            );
        }
        let mut own_all = own;
        if !own_all.contains(&src) {
            own_all.push(src);
        }
        self.sender = Some(sender);
        self.announcer = Some(announcer);
        self.own = own_all;
        self.machine.set_primary(src);
        self.ifindex = ifindex;
        let iface = self.conf.interface.clone();
        self.relink(&iface, ifindex);
        if let Some(m) = &mut self.vmac {
            m.ifindex = vmac_index;
            let vname = m.name.clone();
            self.relink(&vname, vmac_index);
        }
        // The kernel's watch and the peers fed are per interface index.
        self.watch = None;
        self.watch_armed = false;
        self.fed.clear();
        Ok(true)
    }

    /// Make the peers learn the interface's new MAC address (after a
    /// re-creation): a gratuitous ARP (unsolicited NA) for the address
    /// adverts go from, and an ARP request to each IPv4 unicast peer, which
    /// updates its neighbour entry even within its lock time, where a
    /// gratuitous ARP may be ignored.
    pub(super) fn announce_self(&mut self) {
        let (Some(sender), Some(own)) = (&self.sender, &mut self.announcer) else { return };
        let src = sender.src();
        // The announcer of an instance with use_vmac sends from the
        // virtual MAC; the base's address is announced with the base's.
        let mut base;
        let announcer = if self.vmac.is_some() {
            match Announcer::new(&self.conf.interface, self.ifindex) {
                Ok(a) => {
                    base = a;
                    &mut base
                }
                Err(e) => {
                    log::warn!("({}) announcing {src}: {e}", self.conf.name);
                    return;
                }
            }
        } else {
            own
        };
        if let Err(e) = announcer.announce(src) {
            log::warn!("({}) announcing {src}: {e}", self.conf.name);
        }
        let IpAddr::V4(from) = src else { return };
        for peer in &self.conf.unicast_peers {
            if let IpAddr::V4(to) = peer
                && let Err(e) = announcer.solicit(from, *to)
            {
                log::warn!("({}) ARP request to {to}: {e}", self.conf.name);
            }
        }
    }

    /// A second advert socket like the instance's own, for adverts sent
    /// from another thread while the agent starts (a hitless restart).
    pub(super) fn another_sender(&self) -> Option<Sender> {
        let src = self.sender.as_ref()?.src();
        // The same interface as the instance's own sender: the macvlan
        // with use_vmac (unless vmac_xmit_base), else the interface.
        let (iface, index) = match &self.vmac {
            Some(m) if !m.xmit_base => (m.name.as_str(), m.ifindex),
            _ => (self.conf.interface.as_str(), self.ifindex),
        };
        Sender::open(iface, index, src, &self.conf.unicast_peers, advert_spec(&self.conf), self.ah.clone())
            .ok()
    }

    /// The interface went away: no sockets until it is back.
    pub(super) fn unbind(&mut self) {
        self.sender = None;
        self.announcer = None;
    }

    /// Where a raw socket hears this instance's adverts: the macvlan
    /// with use_vmac (without vmac_xmit_base), as keepalived; else the
    /// interface.
    pub(super) fn rx_iface(&self) -> &str {
        match &self.vmac {
            Some(m) if !m.xmit_base => &m.name,
            _ => &self.conf.interface,
        }
    }

    /// Whether the instance is open on its interface.
    pub(super) fn bound(&self) -> bool {
        self.sender.is_some()
    }

    /// Interface `name` now has index `ifindex`: VIPs with that `dev` (or
    /// the instance's interface) and tracked interfaces of that name
    /// follow it.
    pub(super) fn relink(&mut self, name: &str, ifindex: u32) {
        let vmac = self.vmac.as_ref().map(|m| m.name.as_str());
        for v in &mut self.vips {
            if vip_iface(&self.conf, vmac, &v.vip) == name {
                v.ifindex = ifindex;
            }
        }
        for (idx, n, _) in &mut self.track_ifs {
            if n == name {
                *idx = ifindex;
            }
        }
    }

    pub(super) fn expect(&self) -> Expect<'_> {
        Expect {
            version: self.conf.version,
            auth: auth_of(&self.conf),
            interval: self.conf.advert_int,
            own: &self.own,
            peers: &self.conf.unicast_peers,
        }
    }

    pub(super) fn fallback_instance(&self) -> fallback::Instance {
        let e = self.expect();
        fallback::Instance {
            version: e.version,
            auth: e.auth,
            interval: e.interval,
            own: self.own.clone(),
            peers: self.conf.unicast_peers.clone(),
            ah: self.ah.clone(),
        }
    }

    pub(super) fn owns(&self, key: &PeerKey) -> bool {
        key.ifindex == self.ifindex && key.family == self.family.code() && key.vrid == self.conf.vrid
    }

    /// Feed the machine one advert the receive path recorded, at the time
    /// it arrived; once per distinct last-seen time.
    pub(super) fn feed(&mut self, key: &PeerKey, state: &PeerState, out: &mut Vec<Action>) {
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
            // A holding advert after the warning: the master is alive and
            // the XDP program armed the watch again.
            self.silence = None;
        }
        // A resignation sets our timer to Skew_Time, which the kernel's
        // watch (armed for Master_Down_Interval) does not cover.
        if state.priority == 0 {
            self.watch_armed = false;
        }
        // Rounded up to the machine's µs: its Master_Down_Timer then never
        // ends before Master_Down_Interval has fully passed since the
        // advert (RFC 5798 6.4.2), even by the nanoseconds a truncation
        // would take off.
        self.machine.handle(Micros(state.last_seen_ns.div_ceil(1000)), input, out);
    }

    /// What the kernel's watch should be now: (watch priority, our
    /// priority). Only a backup watches; with preempt_delay the agent
    /// keeps its own timer (it must see the tolerated adverts).
    pub(super) fn wanted_watch(&self) -> (u8, u8) {
        let p = self.machine.priority();
        // An AH instance's adverts are authenticated in the agent, after
        // the XDP program: the kernel's watch would be fed by packets
        // nobody has authenticated yet, so it stays off and the agent's own
        // Master_Down_Timer, fed only by authentic adverts, decides.
        if self.machine.state() != State::Backup || !self.conf.preempt_delay.is_zero() || self.ah.is_some() {
            return (0, p);
        }
        (if self.conf.preempt { p } else { 1 }, p)
    }

    /// keepalived's notify scripts for a new state: the state's own
    /// (`notify_master`, ...) as written, and `notify` with
    /// `INSTANCE NAME STATE PRIORITY` appended.
    pub(super) fn notify(&self, to: State) {
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
    pub(super) fn health_input(
        &self,
        statuses: &[(String, Status)],
        links: &HashMap<u32, bool>,
        others: &Trackers,
    ) -> (u8, bool) {
        let scripts = self.tracks.iter().filter_map(|(i, weight, reverse)| {
            statuses.get(*i).map(|(_, s)| Tracked { weight: *weight, reverse: *reverse, health: s.health() })
        });
        let ifs = self.track_ifs.iter().map(|(idx, _, weight)| Tracked {
            weight: *weight,
            reverse: false,
            // Index 0: the interface does not exist (yet).
            health: if *idx != 0 && links.get(idx).copied().unwrap_or(true) {
                Health::Good
            } else {
                Health::Bad
            },
        });
        let procs = others.processes(&self.track_procs);
        let tracked: Vec<Tracked> = scripts.chain(ifs).chain(procs).collect();
        let offsets: Vec<(i32, bool)> = others.file_offsets(&self.track_files).collect();
        let (priority, fault) = health::effective_with(self.conf.priority, &tracked, &offsets);
        // Without its interface an instance can neither hear nor advertise.
        (priority, fault || !self.bound())
    }

    pub(super) fn status(&self) -> InstanceStatus {
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
            // The owner's no_accept has no effect: report what happens.
            accept: u8::from(!self.conf.drops_to_vips()),
            strict_mode: u8::from(self.conf.strict),
            lower_prio_no_advert: u8::from(self.conf.lower_prio_no_advert),
            stats: self.stats.clone(),
            last_takeover: self.takeover.clone(),
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Micros> {
        // A master whose adverts the thread sends has no timer of the
        // loop's (a master runs no Master_Down_Timer).
        let mut machine = if self.tx_plan.is_some() {
            self.machine.master_down_deadline()
        } else {
            self.machine.poll_timeout()
        };
        if self.watch_armed
            && self.watch.is_some_and(|(wp, _)| wp != 0)
            && machine == self.machine.master_down_deadline()
        {
            // The kernel wakes us when the master goes quiet; our own
            // timer is the backstop. Other timers of the machine (none
            // run in Backup today) keep their time.
            machine = machine.map(|d| d.after(WATCH_BACKSTOP));
        }
        let paced = self.pacer.deadline(self.pace_interval());
        [machine, self.announce_at, self.refresh_at, paced, self.lower_prio_at].into_iter().flatten().min()
    }

    /// What this instance (index `i` of the caller's) wants of its
    /// addresses: present while MASTER, absent otherwise (a backup that
    /// holds its VIP answers ARP for it beside the master). The address
    /// adverts are sent from is never one of them: it is the node's own.
    pub(super) fn wants(&self, i: usize) -> impl Iterator<Item = Want> + '_ {
        let present = self.machine.state() == State::Master;
        let src = self.sender.as_ref().map(Sender::src);
        self.vips.iter().filter(move |v| Some(v.vip.addr) != src && v.ifindex != 0).map(move |v| Want {
            key: AddrKey { ifindex: v.ifindex, addr: v.vip.addr },
            detail: v.vip.prefix,
            present,
            track: !v.vip.no_track,
            owner: i,
        })
    }

    /// What this instance (index `i`) wants of its `virtual_routes`:
    /// present while MASTER (keepalived adds them on the transition to
    /// MASTER and deletes them on leaving it). A route whose interface does
    /// not exist cannot be added; the kernel dropped it with the interface.
    pub(super) fn route_wants(&self, i: usize) -> impl Iterator<Item = Want<RouteKey>> + '_ {
        let present = self.machine.state() == State::Master;
        self.conf.routes.iter().filter(|r| super::routes::missing_devs(r).is_empty()).map(move |r| Want {
            key: super::routes::route_key(r),
            detail: (),
            present,
            track: !r.no_track,
            owner: i,
        })
    }

    /// What this instance (index `i`) wants of its `virtual_rules`.
    pub(super) fn rule_wants(&self, i: usize) -> impl Iterator<Item = Want<RuleKey>> + '_ {
        let present = self.machine.state() == State::Master;
        self.conf.rules.iter().map(move |r| Want {
            key: super::routes::rule_key(r),
            detail: (),
            present,
            track: !r.no_track,
            owner: i,
        })
    }

    /// The Accept Mode rows this instance wants (`no_accept::row`): its
    /// VIPs and excluded VIPs while it is MASTER in non-accept mode and not
    /// the address owner (keepalived's `vrrp_handle_accept_mode`), none
    /// otherwise. The adverts' source address is the node's own and never
    /// dropped.
    pub(super) fn no_accept_rows(&self) -> impl Iterator<Item = (VipKey, VipOwner)> + '_ {
        let on = self.conf.drops_to_vips() && self.machine.state() == State::Master;
        let src = self.sender.as_ref().map(Sender::src);
        self.vips.iter().filter(move |v| on && Some(v.vip.addr) != src).map(move |v| {
            let ifindex = if v.ifindex != 0 { v.ifindex } else { self.ifindex };
            no_accept::row(ifindex, self.conf.vrid, v.vip.addr)
        })
    }

    /// Whether `addr` on `ifindex` is one of this instance's VIPs.
    pub(super) fn manages(&self, ifindex: u32, addr: IpAddr) -> bool {
        self.vips.iter().any(|v| v.ifindex == ifindex && v.vip.addr == addr)
    }

    /// The pause between two announcements of this instance's family.
    pub(super) fn pace_interval(&self) -> Micros {
        let d = if self.family == Family::V4 { self.conf.garp_interval } else { self.conf.gna_interval };
        Micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Send what the pacer has due now.
    pub(super) fn send_paced(&mut self, now: Micros) {
        let interval = self.pace_interval();
        while let Some(addr) = self.pacer.due(now, interval) {
            let Some(announcer) = &mut self.announcer else {
                self.pacer.clear();
                return;
            };
            match announcer.announce(addr) {
                Ok(()) => {
                    if let Some(t) = &mut self.takeover
                        && t.announce_ns.is_none()
                    {
                        t.announce_ns = Some(super::timer::now_ns());
                    }
                }
                Err(e) => log::warn!("({}) announcing {addr}: {e}", self.conf.name),
            }
        }
    }

    /// A burst of `repeat` announcements per VIP (keepalived's order:
    /// round after round over the addresses), paced by
    /// `vrrp_garp_interval` / `vrrp_gna_interval`.
    pub(super) fn announce_now(&mut self, now: Micros, repeat: u32) {
        let addrs: Vec<IpAddr> = self.vips.iter().map(|v| v.vip.addr).collect();
        self.pacer.burst(&addrs, repeat);
        self.send_paced(now);
        let what = if self.family == Family::V4 {
            "gratuitous ARPs"
        } else {
            "unsolicited neighbour advertisements"
        };
        let on = self.vmac.as_ref().map_or(&self.conf.interface, |m| &m.name);
        for v in &self.vips {
            log::info!("({}) Sending/queueing {what} on {on} for {}", self.conf.name, v.vip.addr);
        }
    }
}
