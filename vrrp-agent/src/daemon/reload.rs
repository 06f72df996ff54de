//! What a reload (SIGHUP) does to each instance, decided from the running
//! configuration and the new one alone: pure, so every decision is
//! unit-tested; the Agent carries the plan out (`agent.rs`, `reload`).
//!
//! Instances are matched by name, as keepalived does on a reload
//! (`vrrp_iname` is the instance's identity across reloads). One that is
//! equal apart from where it sits in the file is kept as it is: not a
//! single transition, no advert out of turn. One whose VRRP identity
//! changed (interface, VRID, address family, version: another virtual
//! router as far as the peers can tell) is stopped as at shutdown and
//! started anew. Any other change is applied in place: the machine keeps
//! its state and timers, and the reconciler follows the new desired state.

use crate::config::model::Instance;
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
    /// The `vrrp_script` definitions changed (their check loops run from
    /// the start; see `scripts_note`).
    pub scripts_changed: bool,
}

impl Plan {
    /// Whether nothing changes at all.
    pub fn is_noop(&self) -> bool {
        self.added.is_empty()
            && !self.statics_changed
            && !self.scripts_changed
            && self.running.iter().all(|r| matches!(r, Some((_, Change::Keep))))
    }
}

/// The fields that, changed, make another virtual router of the instance:
/// its peers key adverts by interface, VRID and family, and a version
/// change changes the packet format (RFC 5798 5.2.1).
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
    why
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
        scripts_changed: !same_scripts(&old.scripts, &new.scripts),
    }
}

/// The script definitions, apart from where they sit in the file.
fn same_scripts(a: &[Script], b: &[Script]) -> bool {
    let same = |x: &Script, y: &Script| {
        let mut y = y.clone();
        y.loc = x.loc.clone();
        y.user_loc = x.user_loc.clone();
        *x == y
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
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
}
