//! The Agent's side of a reload: carry out the plan `reload::plan` made
//! (keep, update in place, restart, add, remove), and what stays to be
//! removed from the kernel once nobody configures it any more.

use crate::config::Config;
use crate::config::routes::{Route, Rule};
use crate::machine::{Input, Micros};
use crate::sync_group::SyncGroup;

use super::agent::Agent;
use super::instance::{self, Inst};
use super::link;
use super::reconcile::{AddrKey, RouteKey, RuleKey, Want};
use super::reload::{self, Change};
use super::routes;
use super::timer;
use super::vips::ManagedVip;

/// The owner index of what a reload took out of the configuration.
pub(super) const RETIRED: usize = usize::MAX;

/// Addresses, routes and rules a reload took out of the configuration
/// (a VIP dropped from an instance, a removed instance's, a static one):
/// still wanted absent until the kernel no longer has them, since the
/// reconciler never touches what nobody names.
#[derive(Default)]
pub(super) struct Retired {
    pub(super) vips: Vec<ManagedVip>,
    pub(super) routes: Vec<Route>,
    pub(super) rules: Vec<Rule>,
}

impl Retired {
    /// The absent wants for the addresses.
    pub(super) fn wants(&self) -> impl Iterator<Item = Want> + '_ {
        self.vips.iter().filter(|v| v.ifindex != 0).map(|v| Want {
            key: AddrKey { ifindex: v.ifindex, addr: v.vip.addr },
            detail: v.vip.prefix,
            present: false,
            track: false,
            owner: RETIRED,
        })
    }

    pub(super) fn route_wants(&self) -> impl Iterator<Item = Want<RouteKey>> + '_ {
        self.routes.iter().map(|r| Want {
            key: routes::route_key(r),
            detail: (),
            present: false,
            track: false,
            owner: RETIRED,
        })
    }

    pub(super) fn rule_wants(&self) -> impl Iterator<Item = Want<RuleKey>> + '_ {
        self.rules.iter().map(|r| Want {
            key: routes::rule_key(r),
            detail: (),
            present: false,
            track: false,
            owner: RETIRED,
        })
    }
}

impl Agent {
    /// Apply a valid new configuration `new` (SIGHUP).
    pub(super) async fn apply_reload(&mut self, new: Config) {
        let plan = reload::plan(&self.cfg, &new);
        if let Some(why) = reload::needs_restart(&self.cfg, &plan, &new) {
            log::error!(
                "Reload: {why}: vrrp-agent cannot apply that in place; the running configuration stays (restart the agent to apply it)"
            );
            return;
        }
        if plan.is_noop() {
            log::info!("Reload: no instance changed; nothing to do");
            self.cfg = new;
            return;
        }
        // The masters' periodic adverts stay with the advert thread all
        // through the reload (their entries follow the renumbering,
        // `tx_renumber`): a reload that waits on the kernel (a macvlan
        // made or deleted, VIPs removed) must not pause the adverts of
        // the instances it does not touch, or their backups take over.
        // A changed sync group's members stop and start anew in it.
        let groups = reload::group_plan(&self.cfg, &new, &plan);
        let mut plan = plan;
        for &i in &groups.restart {
            if let Some(Some((_, c))) = plan.running.get_mut(i) {
                *c = Change::Restart(vec!["its sync group"]);
            }
        }
        // The check loops first: the instances resolve their tracking
        // against the new table below.
        let scripts =
            reload::script_plan(&self.cfg, &self.checks.running(), &new, &super::checks::used(&new));
        if plan.scripts_changed || scripts.changes_loops() {
            self.checks.reload(&new, &scripts);
        }
        let now = timer::now();
        let old_names: Vec<String> = self.insts.iter().map(|i| i.conf.name.clone()).collect();
        let mut start: Vec<usize> = plan.added.clone();
        // Stop the removed and restarted ones first (from the end, so the
        // indices before stay valid): their resignation and VIP removal go
        // before anything new starts on the same addresses.
        for (i, what) in plan.running.iter().enumerate().rev() {
            match what {
                None => {
                    log::info!("({}) Reload: removed from the configuration; stopping it", old_names[i]);
                    self.stop_instance(i, now).await;
                }
                Some((j, Change::Restart(why))) => {
                    log::warn!(
                        "({}) Reload: {} changed, which cannot be applied in place: stopping the instance and starting it anew",
                        old_names[i],
                        why.join(", ")
                    );
                    self.stop_instance(i, now).await;
                    start.push(*j);
                }
                _ => {}
            }
        }
        // The macvlans follow, once their old instances stopped and before
        // the new ones start on them.
        // (Also when they did not change: a use_vmac instance restarted
        // for its sync group starts on its macvlan again.)
        if reload::vmacs_changed(&self.cfg, &new) || new.instances.iter().any(|i| i.vmac.is_some()) {
            let names = self.vmacs.reload(&new, &self.nl).await;
            self.vmac_names =
                new.instances.iter().zip(names).filter_map(|(c, n)| Some((c.name.clone(), n?))).collect();
        }
        // The groups that go or change: their notify_stop, as at shutdown
        // (their members were stopped above).
        for g in 0..self.groups.len() {
            if !groups.kept.contains(&Some(g)) {
                let mut events = Vec::new();
                self.groups[g].stop(&mut events);
                self.group_notify(g, crate::machine::State::Init);
            }
        }
        for (j, fields) in plan.running.iter().flatten().filter_map(|(j, c)| match c {
            Change::Update(f) => Some((*j, f)),
            _ => None,
        }) {
            let conf = new.instances[j].clone();
            let Some(i) = self.insts.iter().position(|x| x.conf.name == conf.name) else { continue };
            log::info!("({}) Reload: applying {} in place", conf.name, fields.join(", "));
            self.update_instance(i, conf, &new).await;
        }
        let trackers = plan.trackers_changed;
        if trackers {
            self.restart_trackers(&new);
        }
        if plan.scripts_changed || scripts.changes_loops() {
            // Kept instances too: a script's weight, or its place in the
            // table, may have changed; the new weight counts at once.
            self.retrack_scripts(&new).await;
        }
        if plan.statics_changed {
            self.retire_statics(&new);
        }
        self.cfg = new;
        // The groups of the new file: the kept ones go on as they are (their
        // members' indices followed every stop), the others start with
        // their members.
        let mut old_groups: Vec<Option<SyncGroup>> =
            std::mem::take(&mut self.groups).into_iter().map(Some).collect();
        self.groups = self
            .cfg
            .sync_groups
            .iter()
            .zip(&groups.kept)
            .map(|(g, k)| {
                k.and_then(|o| old_groups.get_mut(o)?.take())
                    .unwrap_or_else(|| SyncGroup::new(g.name.clone(), Vec::new()))
            })
            .collect();
        self.group_notify_as = crate::health::user::resolve(
            None,
            self.cfg.global.script_user.as_ref(),
            self.cfg.global.enable_script_security,
        )
        .ok();
        start.sort_unstable();
        let in_new_group = |name: &str, cfg: &Config| {
            cfg.sync_groups
                .iter()
                .zip(&groups.kept)
                .any(|(g, k)| k.is_none() && g.members.iter().any(|m| m == name))
        };
        for &j in &start {
            let conf = self.cfg.instances[j].clone();
            if !in_new_group(&conf.name, &self.cfg) {
                self.start_instance(conf).await;
            }
        }
        for g in 0..self.groups.len() {
            if groups.kept[g].is_some() {
                continue;
            }
            let confs: Vec<crate::config::Instance> = self.cfg.sync_groups[g]
                .members
                .iter()
                .filter_map(|m| self.cfg.instances.iter().find(|c| &c.name == m).cloned())
                .filter(|c| !self.insts.iter().any(|i| i.conf.name == c.name))
                .collect();
            self.start_group(g, confs).await;
        }
        if trackers {
            // The new values and weights count at once (a master
            // advertises a changed priority at once).
            for i in 0..self.insts.len() {
                self.retrack(i).await;
            }
        }
        // Keep the instances in the file's order (the status file's).
        let order: Vec<String> = self.cfg.instances.iter().map(|c| c.name.clone()).collect();
        let before: Vec<String> = self.insts.iter().map(|i| i.conf.name.clone()).collect();
        self.insts.sort_by_key(|x| order.iter().position(|n| *n == x.conf.name));
        let after: std::collections::HashMap<String, usize> =
            self.insts.iter().enumerate().map(|(k, i)| (i.conf.name.clone(), k)).collect();
        for g in &mut self.groups {
            g.remap(|m| after.get(before[m].as_str()).copied().unwrap_or(m));
        }
        self.tx_renumber(|m| before.get(m).and_then(|n| after.get(n.as_str()).copied()));
        self.refollow().await;
        // Slot i is instance i again, with the new identities.
        self.live_rewrite();
        if let Some(th) = &self.tx_thread {
            th.set_live(self.live.clone());
        }
        self.written = None;
        self.reconcile().await;
        log::info!("Reload: done");
    }

    /// Stop instance `i` as at shutdown (priority 0 if master, its VIPs,
    /// routes and rules removed, notify_stop) and forget it.
    async fn stop_instance(&mut self, i: usize, now: Micros) {
        let mut out = Vec::new();
        self.insts[i].machine.handle(now, Input::Shutdown, &mut out);
        self.execute(i, now, out).await;
        let inst = self.insts.remove(i);
        for g in &mut self.groups {
            g.forget(i);
        }
        // Its plan went with its shutdown (no longer MASTER); the later
        // instances move down one.
        self.tx_renumber(|k| match k.cmp(&i) {
            std::cmp::Ordering::Less => Some(k),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(k - 1),
        });
        self.source.forget(&inst, &self.insts);
        // What a failed removal left stays wanted absent.
        self.retired.vips.extend(inst.vips);
        self.retired.routes.extend(inst.conf.routes);
        self.retired.rules.extend(inst.conf.rules);
    }

    /// Build and start an instance as at the agent's start.
    async fn start_instance(&mut self, conf: crate::config::Instance) {
        let Some(i) = self.open_instance(conf) else { return };
        let now = timer::now();
        let inst = &mut self.insts[i];
        let (p, fault) = inst.health_input(&self.checks.statuses, &self.links, &self.trackers);
        let mut out = Vec::new();
        inst.machine.handle(now, Input::Priority(p), &mut out);
        inst.machine.handle(now, Input::Fault(fault), &mut out);
        inst.machine.start(now, &mut out);
        self.execute(i, now, out).await;
    }

    /// Start the members `confs` of the new sync group `g` (empty so far)
    /// as at the agent's start (`Agent::start`): the group starts in
    /// FAULT if any member would, then each member enters its first state.
    async fn start_group(&mut self, g: usize, confs: Vec<crate::config::Instance>) {
        let members: Vec<usize> = confs.into_iter().filter_map(|c| self.open_instance(c)).collect();
        for &i in &members {
            self.insts[i].machine.set_synced();
            self.groups[g].add(i);
        }
        let health: Vec<(u8, bool)> = members
            .iter()
            .map(|&i| self.insts[i].health_input(&self.checks.statuses, &self.links, &self.trackers))
            .collect();
        for (&i, &(_, own)) in members.iter().zip(&health) {
            self.groups[g].record_fault(i, own);
        }
        let now = timer::now();
        for (&i, &(p, _)) in members.iter().zip(&health) {
            let fault = self.groups[g].faulted();
            let mut out = Vec::new();
            self.insts[i].machine.handle(now, Input::Priority(p), &mut out);
            self.insts[i].machine.handle(now, Input::Fault(fault), &mut out);
            self.insts[i].machine.start(now, &mut out);
            self.execute(i, now, out).await;
        }
    }

    /// Build instance `conf` and open it on its interface, as at the
    /// agent's start; its index, None if it cannot be.
    fn open_instance(&mut self, conf: crate::config::Instance) -> Option<usize> {
        log::info!("({}) Reload: starting it", conf.name);
        // Its macvlan was made by `vmacs.reload` (apply_reload).
        let vmac = conf.vmac.as_ref().and_then(|_| self.vmac_names.get(&conf.name).cloned());
        if conf.vmac.is_some() && vmac.is_none() {
            log::error!("({}) Reload: cannot start it: its VMAC interface could not be made", conf.name);
            return None;
        }
        let mut inst = match instance::build(&conf, vmac, &super::link::Ifaddrs::now()) {
            Ok(x) => x,
            Err(e) => {
                log::error!("({}) Reload: cannot start it: {e}", conf.name);
                return None;
            }
        };
        instance::resolve_tracks(&mut inst, &self.cfg.scripts, &self.checks.running());
        super::run::resolve_trackers(&self.cfg, &mut inst);
        self.notify_as(&mut inst);
        Self::follow_links(&mut self.links, &inst);
        self.insts.push(inst);
        let i = self.insts.len() - 1;
        if self.insts[i].bound()
            && let Err(e) = self.source.bind(&self.insts, i)
        {
            log::error!("({}) receiving on {}: {e}", conf.name, conf.interface);
        }
        Some(i)
    }

    /// Apply a changed configuration to instance `i` in place: new
    /// sockets and advert contents, the machine keeps its state and
    /// timers (`Machine::reconfigure`), the reconciler follows the new
    /// VIPs, routes and rules.
    async fn update_instance(&mut self, i: usize, conf: crate::config::Instance, new: &Config) {
        let now = timer::now();
        // A VMAC is unchanged by an update (a changed one restarts the
        // instance, `reload::change`); keep its name.
        let vmac = self.insts[i].vmac.as_ref().map(|m| m.name.clone());
        let mut fresh = match instance::build(&conf, vmac, &super::link::Ifaddrs::now()) {
            Ok(x) => x,
            Err(e) => {
                log::error!(
                    "({}) Reload: cannot apply the change: {e}; the instance keeps running as it was",
                    conf.name
                );
                return;
            }
        };
        instance::resolve_tracks(&mut fresh, &new.scripts, &self.checks.running());
        self.notify_as(&mut fresh);
        let old = std::mem::replace(&mut self.insts[i], fresh);
        let gone_peers = reload::peers_removed(&old.conf, &conf);
        let old_row = old.bound().then_some(old.ifindex);
        let inst = &mut self.insts[i];
        inst.machine = old.machine;
        inst.machine.reconfigure(now, instance::params(&conf));
        if let Some(src) = inst.sender.as_ref().map(super::tx::Sender::src) {
            inst.machine.set_primary(src);
        }
        inst.stats = old.stats;
        // Against the trackers running now (`restart_trackers` resolves
        // every instance again when they change).
        inst.track_files = old.track_files;
        inst.track_procs = old.track_procs;
        inst.last_transition = old.last_transition;
        if inst.ifindex == old.ifindex {
            inst.fed = old.fed;
        }
        inst.announce_at = old.announce_at;
        inst.announce_batches = old.announce_batches;
        inst.refresh_at = old.refresh_at;
        let master = inst.machine.state() == crate::machine::State::Master;
        let vips_added = inst.vips.iter().any(|v| !old.vips.iter().any(|o| o.vip == v.vip));
        for v in old.vips {
            if !inst.vips.iter().any(|n| n.ifindex == v.ifindex && n.vip.addr == v.vip.addr) {
                self.retired.vips.push(v);
            }
        }
        for r in old.conf.routes {
            if !conf.routes.iter().any(|n| routes::route_key(n) == routes::route_key(&r)) {
                self.retired.routes.push(r);
            }
        }
        for r in old.conf.rules {
            if !conf.rules.iter().any(|n| routes::rule_key(n) == routes::rule_key(&r)) {
                self.retired.rules.push(r);
            }
        }
        Self::follow_links(&mut self.links, &self.insts[i]);
        if let Some(ifindex) = old_row {
            self.source.drop_peers(&conf.name, ifindex, conf.vrid, &gone_peers);
        }
        let inst = &self.insts[i];
        // The kernel's row (version, auth, interval, peers) anew; the watch
        // is written again from `wanted_watch`.
        if inst.bound()
            && let Err(e) = self.source.bind(&self.insts, i)
        {
            log::error!("({}) receiving on {}: {e}", conf.name, conf.interface);
        }
        // A changed base priority or tracking: the effective priority (a
        // master advertises it at once).
        self.retrack(i).await;
        if master && vips_added {
            self.reconcile().await;
            let repeat = self.insts[i].conf.garp_master_repeat;
            self.insts[i].announce_now(timer::now(), repeat);
        }
    }

    /// The scripts changed: every instance resolves its `track_script`
    /// against the new table (a weight or a place in it may have changed)
    /// and recomputes its priority, which a master advertises at once.
    async fn retrack_scripts(&mut self, new: &Config) {
        let running = self.checks.running();
        for i in 0..self.insts.len() {
            if self.insts[i].conf.track_script.is_empty() {
                continue;
            }
            instance::resolve_tracks(&mut self.insts[i], &new.scripts, &running);
            self.retrack(i).await;
        }
    }

    /// The track files or track processes changed: their watchers are
    /// replaced (the old ones stop, a change they had on its way is
    /// dropped with their channel), the files read and the processes
    /// scanned again, and every running instance resolves its entries in
    /// the new tables. The priorities follow once the instances are in
    /// place (`apply_reload`).
    fn restart_trackers(&mut self, new: &Config) {
        log::info!("Reload: the track files or tracked processes changed: watching them anew");
        for t in self.track_tasks.drain(..) {
            t.abort();
        }
        let (trackers, rx, tasks) = super::run::start_trackers(new, true);
        self.trackers = trackers;
        self.track_rx = rx;
        self.track_tasks = tasks;
        // The instances left are the kept and the updated ones, whose
        // configuration is the new one already.
        for inst in &mut self.insts {
            super::run::resolve_trackers(new, inst);
        }
    }

    /// Who the notify scripts run as, as at start (run.rs `start_health`).
    fn notify_as(&self, inst: &mut Inst) {
        let g = &self.cfg.global;
        match crate::health::user::resolve(None, g.script_user.as_ref(), g.enable_script_security) {
            Ok(r) => inst.notify_as = r,
            Err(e) => {
                log::error!("{e}: notify scripts disabled (keepalived does not run them as root either)");
                inst.conf.notify = crate::config::model::Notify::default();
            }
        }
    }

    /// Tracked interfaces not followed yet: their state now.
    fn follow_links(links: &mut std::collections::HashMap<u32, bool>, inst: &Inst) {
        for (idx, name, _) in inst.track_ifs.iter().filter(|(idx, _, _)| *idx != 0) {
            links.entry(*idx).or_insert_with(|| link::is_up(name));
        }
    }

    /// The static addresses, routes and rules `new` no longer has.
    fn retire_statics(&mut self, new: &Config) {
        log::info!("Reload: applying the static addresses, routes and rules");
        let gone: Vec<ManagedVip> = self
            .static_addrs()
            .filter(|v| !new.static_addresses.iter().any(|n| n.addr == v.vip.addr && n.dev == v.vip.dev))
            .collect();
        self.retired.vips.extend(gone);
        for r in &self.cfg.static_routes {
            if !new.static_routes.iter().any(|n| routes::route_key(n) == routes::route_key(r)) {
                self.retired.routes.push(r.clone());
            }
        }
        for r in &self.cfg.static_rules {
            if !new.static_rules.iter().any(|n| routes::rule_key(n) == routes::rule_key(r)) {
                self.retired.rules.push(r.clone());
            }
        }
    }

    /// The route and rule keys followed, after the configuration changed.
    async fn refollow(&mut self) {
        let route_keys: std::collections::BTreeSet<RouteKey> = self
            .insts
            .iter()
            .flat_map(|i| &i.conf.routes)
            .chain(&self.cfg.static_routes)
            .chain(&self.retired.routes)
            .map(routes::route_key)
            .collect();
        let rule_keys: std::collections::BTreeSet<RuleKey> = self
            .insts
            .iter()
            .flat_map(|i| &i.conf.rules)
            .chain(&self.cfg.static_rules)
            .chain(&self.retired.rules)
            .map(routes::rule_key)
            .collect();
        // The event socket was subscribed at start for what was configured
        // then: join the route or rule groups before the dumps below, so
        // that no deletion falls between them.
        let (routes, rules) = reload::follows(&self.cfg);
        if let Some(g) = &mut self.net_groups {
            match g.follow(routes, rules) {
                Ok(true) => log::info!(
                    "Reload: routes or rules are configured now: following the kernel's route and rule changes (one deleted by someone else is put back)"
                ),
                Ok(false) => {}
                Err(e) => log::error!(
                    "Reload: cannot follow the kernel's route and rule changes ({e}): a route or rule deleted by someone else is not put back"
                ),
            }
        }
        let new_routes = route_keys != self.route_keys;
        self.route_keys = route_keys;
        self.rule_keys = rule_keys;
        if new_routes && !self.route_keys.is_empty() {
            self.resync_routes().await;
        }
        if !self.rule_keys.is_empty() {
            match routes::dump_rules(&self.nl).await {
                Ok(list) => {
                    let keys = &self.rule_keys;
                    self.rules.resync(list.into_iter().filter(|k| keys.contains(k)).map(|k| (k, ())));
                }
                Err(e) => log::error!("reading the kernel's rules: {e}"),
            }
        }
    }

    /// Forget what was retired and is gone from the kernel, or configured
    /// again.
    pub(super) fn prune_retired(&mut self) {
        if self.retired.vips.is_empty() && self.retired.routes.is_empty() && self.retired.rules.is_empty() {
            return;
        }
        let statics: Vec<ManagedVip> = self.static_addrs().collect();
        let insts = &self.insts;
        let addrs = &self.addrs;
        self.retired.vips.retain(|v| {
            let key = AddrKey { ifindex: v.ifindex, addr: v.vip.addr };
            let configured = insts.iter().any(|i| i.manages(v.ifindex, v.vip.addr))
                || statics.iter().any(|s| s.ifindex == v.ifindex && s.vip.addr == v.vip.addr);
            !configured && v.ifindex != 0 && addrs.present(&key)
        });
        let cfg = &self.cfg;
        let held_routes: Vec<RouteKey> = self.routes.held().map(|(k, _)| *k).collect();
        self.retired.routes.retain(|r| {
            let k = routes::route_key(r);
            let configured = insts
                .iter()
                .flat_map(|i| &i.conf.routes)
                .chain(&cfg.static_routes)
                .any(|n| routes::route_key(n) == k);
            !configured && held_routes.contains(&k)
        });
        let held_rules: Vec<RuleKey> = self.rules.held().map(|(k, _)| k.clone()).collect();
        self.retired.rules.retain(|r| {
            let k = routes::rule_key(r);
            let configured = insts
                .iter()
                .flat_map(|i| &i.conf.rules)
                .chain(&cfg.static_rules)
                .any(|n| routes::rule_key(n) == k);
            !configured && held_rules.contains(&k)
        });
    }
}
