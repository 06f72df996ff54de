//! The Agent's side of a reload: carry out the plan `reload::plan` made
//! (keep, update in place, restart, add, remove), and what stays to be
//! removed from the kernel once nobody configures it any more.

use crate::config::Config;
use crate::config::routes::{Route, Rule};
use crate::machine::{Input, Micros};

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
    pub(super) async fn apply_reload(&mut self, mut new: Config) {
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
        if plan.scripts_changed {
            // The check loops run from the start, by the table's index.
            log::warn!(
                "Reload: the vrrp_script definitions changed; vrrp-agent does not apply that in place: the running scripts stay as they were until the agent is restarted"
            );
            new.scripts = self.cfg.scripts.clone();
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
        for (j, fields) in plan.running.iter().flatten().filter_map(|(j, c)| match c {
            Change::Update(f) => Some((*j, f)),
            _ => None,
        }) {
            let conf = new.instances[j].clone();
            let Some(i) = self.insts.iter().position(|x| x.conf.name == conf.name) else { continue };
            log::info!("({}) Reload: applying {} in place", conf.name, fields.join(", "));
            self.update_instance(i, conf, &new).await;
        }
        if plan.statics_changed {
            self.retire_statics(&new);
        }
        let old = std::mem::replace(&mut self.cfg, new);
        start.sort_unstable();
        for j in start {
            let conf = self.cfg.instances[j].clone();
            log::info!("({}) Reload: starting it", conf.name);
            self.start_instance(conf).await;
        }
        // Keep the instances in the file's order (the status file's).
        let order: Vec<String> = self.cfg.instances.iter().map(|c| c.name.clone()).collect();
        self.insts.sort_by_key(|x| order.iter().position(|n| *n == x.conf.name));
        self.refollow(&old).await;
        // Slot i is instance i again, with the new identities.
        self.live_rewrite();
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
        self.source.forget(&inst, &self.insts);
        // What a failed removal left stays wanted absent.
        self.retired.vips.extend(inst.vips);
        self.retired.routes.extend(inst.conf.routes);
        self.retired.rules.extend(inst.conf.rules);
    }

    /// Build and start an instance as at the agent's start.
    async fn start_instance(&mut self, conf: crate::config::Instance) {
        // needs_restart: an added instance has no VMAC.
        let mut inst = match instance::build(&conf, None, &super::link::Ifaddrs::now()) {
            Ok(x) => x,
            Err(e) => {
                log::error!("({}) Reload: cannot start it: {e}", conf.name);
                return;
            }
        };
        instance::resolve_tracks(&mut inst, &self.cfg.scripts, &self.running_scripts);
        self.notify_as(&mut inst);
        Self::follow_links(&mut self.links, &inst);
        self.insts.push(inst);
        let i = self.insts.len() - 1;
        if self.insts[i].bound()
            && let Err(e) = self.source.bind(&self.insts, i)
        {
            log::error!("({}) receiving on {}: {e}", conf.name, conf.interface);
        }
        let now = timer::now();
        let inst = &mut self.insts[i];
        let (p, fault) = inst.health_input(&self.statuses, &self.links, &self.trackers);
        let mut out = Vec::new();
        inst.machine.handle(now, Input::Priority(p), &mut out);
        inst.machine.handle(now, Input::Fault(fault), &mut out);
        inst.machine.start(now, &mut out);
        self.execute(i, now, out).await;
    }

    /// Apply a changed configuration to instance `i` in place: new
    /// sockets and advert contents, the machine keeps its state and
    /// timers (`Machine::reconfigure`), the reconciler follows the new
    /// VIPs, routes and rules.
    async fn update_instance(&mut self, i: usize, conf: crate::config::Instance, new: &Config) {
        let now = timer::now();
        // needs_restart: a VMAC is unchanged by an update; keep its name.
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
        instance::resolve_tracks(&mut fresh, &new.scripts, &self.running_scripts);
        self.notify_as(&mut fresh);
        let old = std::mem::replace(&mut self.insts[i], fresh);
        let inst = &mut self.insts[i];
        inst.machine = old.machine;
        inst.machine.reconfigure(now, instance::params(&conf));
        if let Some(src) = inst.sender.as_ref().map(super::tx::Sender::src) {
            inst.machine.set_primary(src);
        }
        inst.stats = old.stats;
        // needs_restart: the trackers are unchanged; keep their entries.
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
    async fn refollow(&mut self, old: &Config) {
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
        let had_routes = old.instances.iter().any(|i| !i.routes.is_empty()) || !old.static_routes.is_empty();
        let had_rules = old.instances.iter().any(|i| !i.rules.is_empty()) || !old.static_rules.is_empty();
        if (!had_routes && !route_keys.is_empty()) || (!had_rules && !rule_keys.is_empty()) {
            // The netlink subscription was made at start for what was
            // configured then.
            log::warn!(
                "Reload: routes or rules are configured now and were not at start: they are installed, but one deleted by someone else is only put back after the agent is restarted"
            );
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
