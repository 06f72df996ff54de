//! What a reload (SIGHUP) does to each instance, decided from the running
//! configuration and the new one alone: pure, so every decision is
//! unit-tested; the Agent carries the plan out (`agent.rs`, `reload`).
//!
//! Instances are matched by name, as keepalived does on a reload
//! (`vrrp_iname` is the instance's identity across reloads). One that is
//! equal apart from where it sits in the file is kept as it is: not a
//! single transition, no advert out of turn. One whose VRRP identity
//! changed (interface, VRID, address family, version: another virtual
//! router as far as the peers can tell), or its VMAC, or its sync group
//! (`group_plan`), is stopped as at shutdown and started anew. Any other
//! change is applied in place: the machine keeps its state and timers,
//! and the reconciler follows the new desired state. The `vrrp_script`
//! loops (`script_plan`), the track file and process watchers
//! (`trackers_changed`) and the route and rule events (`follows`) follow
//! the new file too.

use crate::config::model::{Instance, Track};
use crate::config::{Config, Script};

/// What happens to one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Unchanged: left alone.
    Keep,
    /// Changed in ways that apply in place: the fields, for the log.
    Update(Vec<&'static str>),
    /// Its identity changed: stop it gracefully and start it anew; why.
    Restart(Vec<&'static str>),
}

/// The plan of a reload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per running instance (by its index now), what happens to it; None:
    /// it is gone from the new file, and stops.
    pub running: Vec<Option<(usize, Change)>>,
    /// Indices in the new file of the instances to start.
    pub added: Vec<usize>,
    /// The static addresses, routes or rules changed.
    pub statics_changed: bool,
    /// The `vrrp_script` definitions (or who runs them) changed: see
    /// `script_plan`.
    pub scripts_changed: bool,
    /// The track files or tracked processes, or who tracks them, changed
    /// (`trackers_changed`).
    pub trackers_changed: bool,
    /// A sync group was added, removed or redefined (`group_plan`).
    pub groups_changed: bool,
}

impl Plan {
    /// Whether nothing changes at all.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty()
            && !self.statics_changed
            && !self.scripts_changed
            && !self.trackers_changed
            && !self.groups_changed
            && self.running.iter().all(|r| matches!(r, Some((_, Change::Keep))))
    }
}

/// The fields that, changed, make another virtual router of the instance:
/// its peers key adverts by interface, VRID and family, and a version
/// change changes the packet format (RFC 5798 5.2.1); and its VMAC, the
/// macvlan it runs on.
fn identity(a: &Instance, b: &Instance) -> Vec<&'static str> {
    let mut why = Vec::new();
    if a.interface != b.interface {
        why.push("interface");
    }
    if a.vrid != b.vrid {
        why.push("virtual_router_id");
    }
    if a.family != b.family {
        why.push("address family");
    }
    if a.version != b.version {
        why.push("version");
    }
    // Another macvlan (keepalived deletes the old VMAC and makes the new
    // one on a reload): the instance stops on the old and starts on the
    // new, or without one.
    if a.vmac != b.vmac || a.vmac_xmit_base != b.vmac_xmit_base {
        why.push("use_vmac");
    }
    why
}

/// Whether the `use_vmac` instances (their names, VMACs, VRIDs, families,
/// interfaces) differ: then the macvlans follow (`vmac::Manager::reload`).
pub fn vmacs_changed(old: &Config, new: &Config) -> bool {
    let key = |c: &Config| {
        let mut k: Vec<_> = c
            .instances
            .iter()
            .filter(|i| i.vmac.is_some())
            .map(|i| {
                (i.name.clone(), i.vmac.clone(), i.vmac_xmit_base, i.vrid, i.family, i.interface.clone())
            })
            .collect();
        k.sort_by(|a, b| a.0.cmp(&b.0));
        k
    };
    key(old) != key(new)
}

/// The fields that differ, by their keepalived keyword. The place in the
/// file (`loc`, the notify keywords' places) is not a change.
pub fn changed_fields(a: &Instance, b: &Instance) -> Vec<&'static str> {
    let mut f = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            f.push(name);
        }
    };
    check(a.state != b.state, "state");
    check(a.priority != b.priority, "priority");
    check(a.advert_int != b.advert_int, "advert_int");
    check(a.unicast_src_ip != b.unicast_src_ip, "unicast_src_ip");
    check(a.unicast_peers != b.unicast_peers, "unicast_peer");
    check(a.auth != b.auth, "authentication");
    check(a.vips != b.vips, "virtual_ipaddress");
    check(a.vips_excluded != b.vips_excluded, "virtual_ipaddress_excluded");
    check(a.preempt != b.preempt, "nopreempt");
    check(a.preempt_delay != b.preempt_delay, "preempt_delay");
    check(a.garp_master_delay != b.garp_master_delay, "garp_master_delay");
    check(a.garp_master_repeat != b.garp_master_repeat, "garp_master_repeat");
    check(a.garp_master_refresh != b.garp_master_refresh, "garp_master_refresh");
    check(a.track_interface != b.track_interface, "track_interface");
    check(a.track_script != b.track_script, "track_script");
    check(refs(&a.track_file) != refs(&b.track_file), "track_file");
    check(refs(&a.track_process) != refs(&b.track_process), "track_process");
    let (mut na, mut nb) = (a.notify.clone(), b.notify.clone());
    na.locs.clear();
    nb.locs.clear();
    check(na != nb, "notify");
    check(a.v3_checksum_as_v2 != b.v3_checksum_as_v2, "v3_checksum_as_v2");
    check(a.routes != b.routes, "virtual_routes");
    check(a.rules != b.rules, "virtual_rules");
    check(a.strict != b.strict, "vrrp_strict");
    check(a.accept != b.accept, "accept");
    check(a.lower_prio_no_advert != b.lower_prio_no_advert, "lower_prio_no_advert");
    // A field added to the model and forgotten here still counts as a
    // change (applied in place, named as "other").
    let mut ca = a.clone();
    let mut cb = b.clone();
    ca.loc = cb.loc.clone();
    ca.notify.locs.clear();
    cb.notify.locs.clear();
    if f.is_empty() && ca != cb {
        f.push("other");
    }
    f
}

/// The unicast peers `old` had and `new` has not: their rows leave the
/// XDP program's address table, or their adverts would still be accepted
/// (the row is keyed by the VRID, and writing the new list only adds).
pub fn peers_removed(old: &Instance, new: &Instance) -> Vec<std::net::IpAddr> {
    old.unicast_peers.iter().filter(|p| !new.unicast_peers.contains(p)).copied().collect()
}

/// Whether `cfg` configures routes, and rules (virtual or static): the
/// agent follows the kernel's route and rule events for them, from the
/// start or from the reload that configures the first ones, so that one
/// deleted by someone else is put back in either case.
pub fn follows(cfg: &Config) -> (bool, bool) {
    let routes = !cfg.static_routes.is_empty() || cfg.instances.iter().any(|i| !i.routes.is_empty());
    let rules = !cfg.static_rules.is_empty() || cfg.instances.iter().any(|i| !i.rules.is_empty());
    (routes, rules)
}

/// What one running instance becomes under `new`.
pub fn change(old: &Instance, new: &Instance) -> Change {
    let why = identity(old, new);
    if !why.is_empty() {
        return Change::Restart(why);
    }
    let fields = changed_fields(old, new);
    if fields.is_empty() { Change::Keep } else { Change::Update(fields) }
}

/// The plan that takes the instances of `old` to those of `new`.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let running = old
        .instances
        .iter()
        .map(|o| {
            let j = new.instances.iter().position(|n| n.name == o.name)?;
            Some((j, change(o, &new.instances[j])))
        })
        .collect();
    let added = new
        .instances
        .iter()
        .enumerate()
        .filter(|(_, n)| !old.instances.iter().any(|o| o.name == n.name))
        .map(|(j, _)| j)
        .collect();
    Plan {
        running,
        added,
        statics_changed: old.static_addresses != new.static_addresses
            || old.static_routes != new.static_routes
            || old.static_rules != new.static_rules,
        scripts_changed: !same_scripts(&old.scripts, &new.scripts)
            || old.global.script_user != new.global.script_user
            || old.global.enable_script_security != new.global.enable_script_security,
        trackers_changed: trackers_changed(old, new),
        groups_changed: groups_key(old) != groups_key(new),
    }
}

/// The script definitions, apart from where they sit in the file.
fn same_scripts(a: &[Script], b: &[Script]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_script(x, y))
}

/// What a reload does to one script of the new file's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptChange {
    /// Its check loop runs and its definition is the same: the loop and
    /// the state go on (the old table's index).
    Keep(usize),
    /// Its loop runs and its definition changed: the loop is replaced by
    /// one with the new definition, and the verdict is carried over as
    /// keepalived does (`Status::carried`; the old table's index).
    Replace(usize),
    /// Tracked now and its loop did not run (a new script, or one no
    /// instance tracked before): started, as at the agent's start.
    Start,
    /// Tracked by no instance: not run (keepalived runs only tracked
    /// scripts).
    Idle,
}

/// What a reload does to the `vrrp_script` check loops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptPlan {
    /// Per script of the new file, in its order.
    pub scripts: Vec<ScriptChange>,
    /// The old table's indices of the loops that stop (the script is
    /// gone or no longer tracked).
    pub stop: Vec<usize>,
}

impl ScriptPlan {
    /// Whether any loop is replaced, started or stopped.
    pub fn changes_loops(&self) -> bool {
        !self.stop.is_empty()
            || self.scripts.iter().any(|c| matches!(c, ScriptChange::Replace(_) | ScriptChange::Start))
    }
}

/// The plan for the check loops: `running[i]` says whether the old
/// table's script `i` runs, `used[j]` whether some instance of `new`
/// tracks the new table's script `j`. Scripts are matched by name, as
/// keepalived matches them on a reload (vrrp.c `clear_diff_script`).
/// Who runs the scripts (`script_user`, `enable_script_security`) is
/// part of every definition.
pub fn script_plan(old: &Config, running: &[bool], new: &Config, used: &[bool]) -> ScriptPlan {
    let runner_same = old.global.script_user == new.global.script_user
        && old.global.enable_script_security == new.global.enable_script_security;
    let mut plan = ScriptPlan::default();
    for (j, n) in new.scripts.iter().enumerate() {
        let used = used.get(j).copied().unwrap_or(false);
        let old_i = old.scripts.iter().position(|o| o.name == n.name);
        let was_running = old_i.is_some_and(|i| running.get(i).copied().unwrap_or(false));
        plan.scripts.push(match (used, old_i) {
            (false, _) => ScriptChange::Idle,
            (true, Some(i)) if was_running => {
                if runner_same && same_script(&old.scripts[i], n) {
                    ScriptChange::Keep(i)
                } else {
                    ScriptChange::Replace(i)
                }
            }
            (true, _) => ScriptChange::Start,
        });
    }
    for (i, o) in old.scripts.iter().enumerate() {
        if !running.get(i).copied().unwrap_or(false) {
            continue;
        }
        let kept =
            new.scripts.iter().zip(&plan.scripts).any(|(n, c)| {
                n.name == o.name && matches!(c, ScriptChange::Keep(_) | ScriptChange::Replace(_))
            });
        if !kept {
            plan.stop.push(i);
        }
    }
    plan
}

/// Whether two definitions are the same, apart from where they are written.
fn same_script(x: &Script, y: &Script) -> bool {
    let mut y = y.clone();
    y.loc = x.loc.clone();
    y.user_loc = x.user_loc.clone();
    *x == y
}

/// What a sync group is, without where it is written.
type GroupKey =
    (String, Vec<String>, bool, Vec<Track>, Vec<Track>, [Option<String>; 5], Vec<(String, Option<i32>)>);

/// A location to compare definitions without theirs.
fn nowhere() -> crate::config::lexer::Loc {
    crate::config::lexer::Loc { file: std::sync::Arc::new(std::path::PathBuf::new()), line: 0, col: 0 }
}

/// Tracker references without where they are written.
fn refs(t: &[crate::config::trackers::TrackRef]) -> Vec<(&str, Option<i32>, Option<bool>)> {
    t.iter().map(|r| (r.name.as_str(), r.weight, r.reverse)).collect()
}

fn groups_key(c: &Config) -> Vec<GroupKey> {
    c.sync_groups
        .iter()
        .map(|g| {
            let n = &g.notify;
            (
                g.name.clone(),
                g.members.clone(),
                g.tracking_weight,
                g.track_interface.clone(),
                g.track_script.clone(),
                [n.any.clone(), n.master.clone(), n.backup.clone(), n.fault.clone(), n.stop.clone()],
                g.track_file.iter().chain(&g.track_process).map(|t| (t.name.clone(), t.weight)).collect(),
            )
        })
        .collect()
}

/// Whether the `track_file` / `vrrp_track_process` trackers change:
/// their definitions (apart from where they are written) or who tracks
/// them with which weight. Then their watchers are replaced: the files
/// are read (an existing one is not overwritten on a reload, as in
/// keepalived) and the processes scanned again, and every instance
/// takes the new values and weights.
pub fn trackers_changed(old: &Config, new: &Config) -> bool {
    // Compared without their locations: an edit elsewhere in the file
    // moves them.
    let files = |c: &Config| -> Vec<crate::config::trackers::TrackFile> {
        c.track_files
            .iter()
            .map(|f| crate::config::trackers::TrackFile { loc: nowhere(), ..f.clone() })
            .collect()
    };
    let procs = |c: &Config| -> Vec<crate::config::trackers::TrackProcess> {
        c.track_processes
            .iter()
            .map(|p| crate::config::trackers::TrackProcess { loc: nowhere(), ..p.clone() })
            .collect()
    };
    files(old) != files(new) || procs(old) != procs(new) || tracker_users(old) != tracker_users(new)
}

/// Who tracks a track file or process, with which weight and reverse.
type Users<'a> =
    Vec<(&'a str, Vec<(&'a str, Option<i32>, Option<bool>)>, Vec<(&'a str, Option<i32>, Option<bool>)>)>;

/// The instances tracking files or processes, by name.
fn tracker_users(c: &Config) -> Users<'_> {
    let mut u: Users<'_> = c
        .instances
        .iter()
        .filter(|i| !i.track_file.is_empty() || !i.track_process.is_empty())
        .map(|i| (i.name.as_str(), refs(&i.track_file), refs(&i.track_process)))
        .collect();
    u.sort();
    u
}

/// What a reload does to the sync groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// Running instances (by their index now) that stop and start anew
    /// because their sync group changed: it was added, removed or
    /// redefined (members, tracking, notify), or one of its members is
    /// restarted or removed. keepalived's reload builds its groups anew;
    /// here a changed group's members stop as at shutdown and start as at
    /// start, in the new group, which is the same for their peers.
    pub restart: Vec<usize>,
    /// Per sync group of the new file: the running group (index now) it
    /// is, unchanged, whose state and members go on untouched; None for
    /// a group that starts with its members.
    pub kept: Vec<Option<usize>>,
}

/// The sync groups' plan, given the instances' `plan`.
pub fn group_plan(old: &Config, new: &Config, plan: &Plan) -> GroupPlan {
    let (ko, kn) = (groups_key(old), groups_key(new));
    // An old group is kept when the new file has it as it was and every
    // member goes on in place.
    let member_stays = |name: &String| {
        old.instances
            .iter()
            .position(|i| &i.name == name)
            .is_some_and(|i| matches!(plan.running.get(i), Some(Some((_, Change::Keep | Change::Update(_))))))
    };
    let kept: Vec<Option<usize>> = kn
        .iter()
        .map(|n| {
            let g = ko.iter().position(|o| o.0 == n.0)?;
            (ko[g] == *n && old.sync_groups[g].members.iter().all(member_stays)).then_some(g)
        })
        .collect();
    let mut restart = Vec::new();
    let mut touch = |name: &String| {
        if let Some(i) = old.instances.iter().position(|x| &x.name == name)
            && matches!(plan.running.get(i), Some(Some((_, Change::Keep | Change::Update(_)))))
            && !restart.contains(&i)
        {
            restart.push(i);
        }
    };
    for (g, og) in old.sync_groups.iter().enumerate() {
        if !kept.contains(&Some(g)) {
            og.members.iter().for_each(&mut touch);
        }
    }
    for (n, ng) in new.sync_groups.iter().enumerate() {
        if kept[n].is_none() {
            ng.members.iter().for_each(&mut touch);
        }
    }
    restart.sort_unstable();
    GroupPlan { restart, kept }
}

/// What in `plan` the in-place reload cannot carry out, if anything (the
/// running configuration then stays as a whole, never applied halfway).
pub fn needs_restart(_old: &Config, _plan: &Plan, _new: &Config) -> Option<String> {
    // Everything is applied in place now: the instances (kept, updated,
    // restarted), scripts, trackers, sync groups and macvlans. Kept as
    // the one place a future refusal goes.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vrrp-reload-{}-{n}.conf", std::process::id()));
        std::fs::write(&p, text).expect("write");
        let c = crate::config::load(&p).expect("valid").0;
        let _ = std::fs::remove_file(&p);
        c
    }

    fn inst(name: &str, vrid: u8, prio: u8, vip: &str, iface: &str) -> String {
        format!(
            "vrrp_instance {name} {{\n interface {iface}\n virtual_router_id {vrid}\n priority {prio}\n advert_int 1\n virtual_ipaddress {{\n  {vip}\n }}\n}}\n"
        )
    }

    #[test]
    fn same_file_is_a_noop() {
        let t = inst("A", 1, 100, "192.0.2.10/24", "lo") + &inst("B", 2, 100, "192.0.2.11/24", "lo");
        let p = plan(&cfg(&t), &cfg(&t));
        assert!(p.is_noop(), "{p:?}");
        assert_eq!(p.running, vec![Some((0, Change::Keep)), Some((1, Change::Keep))]);
    }

    #[test]
    fn moved_in_the_file_is_not_a_change() {
        let a = inst("A", 1, 100, "192.0.2.10/24", "lo");
        let b = inst("B", 2, 100, "192.0.2.11/24", "lo");
        let p = plan(&cfg(&(a.clone() + &b)), &cfg(&format!("# a comment\n\n{b}{a}")));
        assert!(p.is_noop(), "{p:?}");
        assert_eq!(p.running, vec![Some((1, Change::Keep)), Some((0, Change::Keep))]);
    }

    #[test]
    fn priority_and_vips_update_in_place() {
        let old = inst("A", 1, 100, "192.0.2.10/24", "lo") + &inst("B", 2, 100, "192.0.2.11/24", "lo");
        let new = inst("A", 1, 150, "192.0.2.10/24", "lo")
            + &inst("B", 2, 100, "192.0.2.11/24\n  192.0.2.12/24", "lo");
        let p = plan(&cfg(&old), &cfg(&new));
        assert_eq!(
            p.running,
            vec![
                Some((0, Change::Update(vec!["priority"]))),
                Some((1, Change::Update(vec!["virtual_ipaddress"])))
            ]
        );
        assert!(p.added.is_empty());
        assert!(!p.is_noop());
    }

    #[test]
    fn identity_changes_restart() {
        let old = inst("A", 1, 100, "192.0.2.10/24", "lo");
        let p = plan(&cfg(&old), &cfg(&inst("A", 7, 100, "192.0.2.10/24", "lo")));
        assert_eq!(p.running, vec![Some((0, Change::Restart(vec!["virtual_router_id"])))]);
        let p = plan(&cfg(&old), &cfg(&inst("A", 1, 100, "2001:db8::10/64", "lo")));
        assert_eq!(p.running, vec![Some((0, Change::Restart(vec!["address family", "version"])))]);
        let v3 = old.replace("advert_int 1", "advert_int 1\n version 3");
        let p = plan(&cfg(&old), &cfg(&v3));
        assert!(matches!(&p.running[0], Some((0, Change::Restart(w))) if w == &vec!["version"]), "{p:?}");
    }

    #[test]
    fn added_and_removed() {
        let old = inst("A", 1, 100, "192.0.2.10/24", "lo") + &inst("B", 2, 100, "192.0.2.11/24", "lo");
        let new = inst("A", 1, 100, "192.0.2.10/24", "lo") + &inst("C", 3, 100, "192.0.2.13/24", "lo");
        let p = plan(&cfg(&old), &cfg(&new));
        assert_eq!(p.running, vec![Some((0, Change::Keep)), None]);
        assert_eq!(p.added, vec![1]);
    }

    #[test]
    fn statics_and_scripts_are_noticed() {
        let a = inst("A", 1, 100, "192.0.2.10/24", "lo");
        let s = "static_ipaddress {\n 198.51.100.1/24 dev lo\n}\n";
        let p = plan(&cfg(&a), &cfg(&format!("{s}{a}")));
        assert!(p.statics_changed && !p.scripts_changed && !p.is_noop());
        let sc = "vrrp_script chk {\n script \"/bin/true\"\n}\n";
        let p = plan(&cfg(&a), &cfg(&format!("{sc}{a}")));
        assert!(p.scripts_changed);
    }

    #[test]
    fn what_an_in_place_reload_refuses() {
        let base = |extra: &str| {
            format!(
                "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {{\n 192.0.2.1/24\n }}\n{extra}}}\n\
                 vrrp_instance VI_2 {{\n interface eth1\n virtual_router_id 2\n virtual_ipaddress {{\n 198.51.100.1/24\n }}\n}}\n"
            )
        };
        let group = "vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n}\n";
        let third = "vrrp_instance VI_3 {\n interface eth0\n virtual_router_id 3\n virtual_ipaddress {\n 192.0.2.3/24\n }\n}\n";
        let refuse = |old: &str, new: &str| {
            let (o, n) = (cfg(old), cfg(new));
            needs_restart(&o, &plan(&o, &n), &n)
        };
        // A priority change in a group: in place.
        assert_eq!(
            refuse(&format!("{group}{}", base("")), &format!("{group}{}", base(" priority 120\n"))),
            None
        );
        // An instance added beside a group, a group changed: in place.
        assert_eq!(refuse(&format!("{group}{}", base("")), &format!("{group}{}{third}", base(""))), None);
        assert_eq!(refuse(&format!("{group}{}", base("")), &base("")), None);
        // A VMAC kept: in place; added or removed: the instance restarts
        // on its new macvlan (or none); restarted with one (VRID, or its
        // sync group changed): in place too.
        let (o, n) = (cfg(&base(" use_vmac\n")), cfg(&base(" use_vmac\n priority 120\n")));
        assert_eq!(refuse(&base(" use_vmac\n"), &base(" use_vmac\n priority 120\n")), None);
        assert!(!vmacs_changed(&o, &n));
        let (o, n) = (cfg(&base("")), cfg(&base(" use_vmac\n")));
        assert_eq!(refuse(&base(""), &base(" use_vmac\n")), None);
        assert_eq!(plan(&o, &n).running[0], Some((0, Change::Restart(vec!["use_vmac"]))));
        assert!(vmacs_changed(&o, &n) && vmacs_changed(&n, &o));
        let vrid7 = |extra: &str| base(extra).replacen("virtual_router_id 1\n", "virtual_router_id 7\n", 1);
        assert!(vmacs_changed(&cfg(&base(" use_vmac\n")), &cfg(&vrid7(" use_vmac\n"))));
        assert_eq!(refuse(&base(" use_vmac\n"), &vrid7(" use_vmac\n")), None);
        assert_eq!(refuse(&format!("{group}{}", base(" use_vmac\n")), &base(" use_vmac\n")), None);
        // Track files and processes are watched anew: in place.
        let tf = "vrrp_track_file f {\n file /nonexistent/f\n}\n";
        assert_eq!(refuse(&base(""), &format!("{tf}{}", base(" track_file {\n f\n }\n"))), None);
    }

    #[test]
    fn sync_group_changes_restart_their_members_only() {
        let vi = |n: u8, extra: &str| {
            format!(
                "vrrp_instance VI_{n} {{\n interface eth0\n virtual_router_id {n}\n virtual_ipaddress {{\n 192.0.2.{n}/24\n }}\n{extra}}}\n"
            )
        };
        let group = |name: &str, members: &[u8]| {
            let m: String = members.iter().map(|n| format!(" VI_{n}\n")).collect();
            format!("vrrp_sync_group {name} {{\n group {{\n{m} }}\n}}\n")
        };
        let gp = |old: &str, new: &str| {
            let (o, n) = (cfg(old), cfg(new));
            group_plan(&o, &n, &plan(&o, &n))
        };
        let four = format!("{}{}{}{}", vi(1, ""), vi(2, ""), vi(3, ""), vi(4, ""));
        let base = format!("{}{}{four}", group("G", &[1, 2]), group("H", &[3, 4]));
        // Unchanged, or a member's priority: both groups kept.
        let p = gp(&base, &base);
        assert_eq!((p.restart, p.kept), (vec![], vec![Some(0), Some(1)]));
        let moved = format!("{}{}{four}", group("G", &[1]), group("H", &[2, 3, 4]));
        assert!(
            plan(&cfg(&base), &cfg(&moved)).groups_changed && !plan(&cfg(&base), &cfg(&base)).groups_changed
        );
        let prio = base.replace("virtual_router_id 1\n", "virtual_router_id 1\n priority 120\n");
        assert_eq!(gp(&base, &prio).kept, vec![Some(0), Some(1)]);
        // VI_2 moves from G to H: both groups change; every member of either restarts.
        let moved = format!("{}{}{four}", group("G", &[1]), group("H", &[2, 3, 4]));
        let p = gp(&base, &moved);
        assert_eq!((p.restart, p.kept), (vec![0, 1, 2, 3], vec![None, None]));
        // H gone, G untouched: H's members restart (out of any group), G's do not.
        let p = gp(&base, &format!("{}{four}", group("G", &[1, 2])));
        assert_eq!((p.restart, p.kept), (vec![2, 3], vec![Some(0)]));
        // A new group of VI_3 and VI_4 (they ran alone).
        let p = gp(&format!("{}{four}", group("G", &[1, 2])), &base);
        assert_eq!((p.restart, p.kept), (vec![2, 3], vec![Some(0), None]));
        // A member restarted (its VRID) or removed: its group starts anew;
        // the restarted member is in the plan already, not here.
        let vrid = base.replace("virtual_router_id 4\n", "virtual_router_id 14\n");
        let p = gp(&base, &vrid);
        assert_eq!((p.restart, p.kept), (vec![2], vec![Some(0), None]));
        // The group's own keywords: notify.
        let notified =
            base.replace("vrrp_sync_group G {\n", "vrrp_sync_group G {\n notify_master /bin/true\n");
        let p = gp(&base, &notified);
        assert_eq!((p.restart, p.kept), (vec![0, 1], vec![None, Some(1)]));
    }

    #[test]
    fn tracker_changes_are_noticed() {
        let tf = |w: i32| format!("vrrp_track_file f {{\n file /nonexistent/f\n weight {w}\n}}\n");
        let tp = "vrrp_track_process p {\n process nginx\n}\n";
        let a = |extra: &str| {
            inst("A", 1, 100, "192.0.2.10/24", "lo").replacen(
                "advert_int 1\n",
                &format!("advert_int 1\n{extra}"),
                1,
            )
        };
        let b = inst("B", 2, 100, "192.0.2.11/24", "lo");
        let changed = |o: &str, n: &str| trackers_changed(&cfg(o), &cfg(n));
        let base = format!("{}{tp}{}{b}", tf(1), a(" track_file {\n f\n }\n"));
        assert!(!changed(&base, &base));
        // Moved in the file, or an instance without trackers changed: no.
        assert!(!changed(&base, &format!("# moved\n\n{base}")));
        assert!(!changed(
            &base,
            &base.replace("virtual_router_id 2\n priority 100", "virtual_router_id 2\n priority 90")
        ));
        // A definition, a weight where it is tracked, a new user, one gone.
        assert!(changed(&base, &format!("{}{tp}{}{b}", tf(2), a(" track_file {\n f\n }\n"))));
        assert!(changed(&base, &format!("{}{tp}{}{b}", tf(1), a(" track_file {\n f weight 5\n }\n"))));
        assert!(changed(
            &base,
            &format!("{}{tp}{}{b}", tf(1), a(" track_file {\n f\n }\n track_process {\n p\n }\n"))
        ));
        assert!(changed(&base, &format!("{}{tp}{}{b}", tf(1), a(""))));
    }

    #[test]
    fn scripts_kept_replaced_started_and_stopped() {
        let sc = |name: &str, cmd: &str, weight: i32| {
            format!("vrrp_script {name} {{\n script \"{cmd}\"\n interval 1\n weight {weight}\n}}\n")
        };
        let tracking = |name: &str, vrid: u8, scripts: &[&str]| {
            let mut t = inst(name, vrid, 100, &format!("192.0.2.{vrid}/24"), "lo");
            if !scripts.is_empty() {
                let list: String = scripts.iter().map(|s| format!("  {s}\n")).collect();
                t = t.replacen("advert_int 1\n", &format!("advert_int 1\n track_script {{\n{list} }}\n"), 1);
            }
            t
        };
        let old = cfg(&format!(
            "{}{}{}{}{}",
            sc("same", "/bin/true", 10),
            sc("weight", "/bin/true", 10),
            sc("gone", "/bin/true", 10),
            tracking("A", 1, &["same", "weight"]),
            tracking("B", 2, &["gone"])
        ));
        let running = vec![true, true, true];
        // `new` first in the table: every index moves.
        let new = cfg(&format!(
            "{}{}{}{}{}{}",
            sc("new", "/bin/true", 5),
            sc("same", "/bin/true", 10),
            sc("weight", "/bin/true", 20),
            sc("idle", "/bin/true", 1),
            tracking("A", 1, &["same", "weight", "new"]),
            tracking("B", 2, &[])
        ));
        let used = vec![true, true, true, false];
        let p = script_plan(&old, &running, &new, &used);
        assert_eq!(
            p.scripts,
            vec![ScriptChange::Start, ScriptChange::Keep(0), ScriptChange::Replace(1), ScriptChange::Idle]
        );
        assert_eq!(p.stop, vec![2], "`gone` is no longer in the file");
        assert!(p.changes_loops());
        // The same file: every loop goes on.
        let p = script_plan(&old, &running, &old, &running);
        assert_eq!(p.scripts, vec![ScriptChange::Keep(0), ScriptChange::Keep(1), ScriptChange::Keep(2)]);
        assert!(!p.changes_loops());
        // Each definition keyword is a change (init_fail, user, timeout, ...).
        for (from, to) in [
            ("interval 1", "interval 2"),
            ("interval 1", "interval 1\n timeout 3"),
            ("interval 1", "interval 1\n fall 2"),
            ("interval 1", "interval 1\n rise 2"),
            ("interval 1", "interval 1\n init_fail"),
            ("interval 1", "interval 1\n user nobody"),
            ("/bin/true", "/bin/false"),
        ] {
            let o = format!("{}{}", sc("s", "/bin/true", 10), tracking("A", 1, &["s"]));
            let n = o.replacen(from, to, 1);
            let p = script_plan(&cfg(&o), &[true], &cfg(&n), &[true]);
            assert_eq!(p.scripts, vec![ScriptChange::Replace(0)], "{from} -> {to}");
        }
        // Not running before (untracked), tracked now: started; a stopped
        // one is no longer tracked.
        let o = format!("{}{}", sc("s", "/bin/true", 10), tracking("A", 1, &[]));
        let n = format!("{}{}", sc("s", "/bin/true", 10), tracking("A", 1, &["s"]));
        assert_eq!(script_plan(&cfg(&o), &[false], &cfg(&n), &[true]).scripts, vec![ScriptChange::Start]);
        let p = script_plan(&cfg(&n), &[true], &cfg(&o), &[false]);
        assert_eq!((p.scripts, p.stop), (vec![ScriptChange::Idle], vec![0]));
    }

    #[test]
    fn removed_unicast_peers() {
        let base = inst("A", 1, 100, "192.0.2.10/24", "lo");
        let with = |peers: &str| {
            base.replacen("advert_int 1\n", &format!("advert_int 1\n unicast_peer {{\n{peers} }}\n"), 1)
        };
        let old = cfg(&with("  192.0.2.2\n  192.0.2.3\n"));
        let new = cfg(&with("  192.0.2.3\n  192.0.2.4\n"));
        let gone = peers_removed(&old.instances[0], &new.instances[0]);
        assert_eq!(gone, vec!["192.0.2.2".parse::<std::net::IpAddr>().expect("addr")]);
        assert!(peers_removed(&new.instances[0], &new.instances[0]).is_empty());
        assert!(
            matches!(change(&old.instances[0], &new.instances[0]), Change::Update(f) if f == vec!["unicast_peer"])
        );
    }

    #[test]
    fn routes_and_rules_are_followed_once_configured() {
        let a = inst("A", 1, 100, "192.0.2.10/24", "lo");
        assert_eq!(follows(&cfg(&a)), (false, false));
        let route =
            a.replacen("advert_int 1\n", "advert_int 1\n virtual_routes {\n  203.0.113.0/24 dev lo\n }\n", 1);
        assert_eq!(follows(&cfg(&route)), (true, false));
        let rule = a.replacen(
            "advert_int 1\n",
            "advert_int 1\n virtual_rules {\n  from 203.0.113.5 table 100\n }\n",
            1,
        );
        assert_eq!(follows(&cfg(&rule)), (false, true));
        let statics = format!(
            "static_routes {{\n 198.51.100.0/24 dev lo\n}}\nstatic_rules {{\n from 198.51.100.5 table 100\n}}\n{a}"
        );
        assert_eq!(follows(&cfg(&statics)), (true, true));
    }
}
