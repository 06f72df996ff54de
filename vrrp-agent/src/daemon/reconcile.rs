//! The one owner of what the agent puts in the kernel: addresses, routes
//! and rules.
//!
//! The instances' state machines say what they want (a master's VIPs,
//! virtual routes and virtual rules present, everyone else's absent; the
//! static ones present while the agent runs); the kernel's dumps and its
//! netlink events say what is there. `Reconciler::plan` compares the two
//! and returns the netlink operations that close the gap: a VIP, route or
//! rule someone deleted under a master is put back (unless `no_track`), a
//! VIP found on a backup's interface (added by hand, or left by keepalived
//! during a migration) is removed, because a backup that holds its VIP
//! answers ARP for it beside the master.
//!
//! One model for every kind of kernel object (`Kind`): a key (what the
//! kernel tells entries apart by) and a detail (for an address, its prefix
//! length: the kernel may hold one address with several). Pure: no sockets
//! here, so every decision is unit-tested. The daemon applies the
//! operations and reports the outcome (`applied`), and feeds in every event
//! (`observed`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;

use crate::config::routes::RuleAction;

/// A kind of kernel object the agent installs.
pub trait Kind: Clone + Ord + Debug {
    /// What tells apart entries the kernel holds under one key (an
    /// address's prefix length; nothing for routes and rules).
    type Detail: Copy + Ord + Debug;
}

/// An address as the kernel keys it on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrKey {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub addr: IpAddr,
}

impl Kind for AddrKey {
    /// The prefix length.
    type Detail = u8;
}

/// A route as the kernel tells routes apart: table, destination, TOS and
/// metric (keepalived's `route_is_ours` compares the same fields). The
/// interface is not part of it: a route without `dev` gets one from the
/// kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Routing table.
    pub table: u32,
    /// Destination network.
    pub dst: IpAddr,
    /// Its prefix length.
    pub dst_len: u8,
    /// Type of service.
    pub tos: u8,
    /// Metric (the kernel's default for IPv6 is 1024, for IPv4 0).
    pub metric: u32,
}

impl Kind for RouteKey {
    type Detail = ();
}

/// A rule as the kernel tells rules apart (keepalived's `compare_rule`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Preference.
    pub priority: u32,
    /// What it does.
    pub action: RuleAction,
    /// Source network.
    pub from: Option<(IpAddr, u8)>,
    /// Destination network.
    pub to: Option<(IpAddr, u8)>,
    /// Firewall mark and mask ((0, 0) for none).
    pub fwmark: (u32, u32),
    /// Input interface name.
    pub iif: Option<String>,
    /// Output interface name.
    pub oif: Option<String>,
    /// Type of service.
    pub tos: u8,
    /// `not`.
    pub invert: bool,
}

impl Kind for RuleKey {
    type Detail = ();
}

/// What one owner wants for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want<K: Kind = AddrKey> {
    /// What.
    pub key: K,
    /// The detail to add it with.
    pub detail: K::Detail,
    /// Present (a master's, or static) or absent (anyone else's).
    pub present: bool,
    /// Put back if someone deletes it while it is wanted (keepalived's
    /// default); `no_track` clears it: then it is added again only once it
    /// has been unwanted (the instance's next transition to MASTER).
    pub track: bool,
    /// Who wants it (an index of the caller's), for logs and for the
    /// netlink message.
    pub owner: usize,
}

/// A netlink operation to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<K: Kind = AddrKey> {
    /// Add it.
    Add {
        /// What.
        key: K,
        /// With this detail.
        detail: K::Detail,
        /// The owner it is for.
        owner: usize,
        /// It was ours and someone removed it.
        restore: bool,
    },
    /// Remove it (with the detail the kernel has it with).
    Remove {
        /// What.
        key: K,
        /// As present.
        detail: K::Detail,
        /// The owner that does not want it.
        owner: usize,
        /// We did not add it (by hand, or another program).
        foreign: bool,
    },
}

impl<K: Kind> Op<K> {
    /// Whether it removes.
    pub fn is_remove(&self) -> bool {
        matches!(self, Op::Remove { .. })
    }
}

/// What the kernel did with an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Nothing to do: it was already there (add) or already gone (remove).
    AlreadySo,
    /// Failed; the state is as before.
    Failed,
}

/// The reconciler's knowledge of one kind: what the kernel has, what we
/// added.
#[derive(Clone, Debug)]
pub struct Reconciler<K: Kind = AddrKey> {
    /// Every entry the kernel reported (of the keys the caller feeds in),
    /// with the details it has it with.
    actual: BTreeMap<K, BTreeSet<K::Detail>>,
    /// Entries we added (or found and kept as a master's), until we
    /// remove them: those of them present are what a crash would leave
    /// behind, and one that goes missing is put back as ours.
    installed: BTreeSet<(K, K::Detail)>,
    /// Whether an unwanted entry we did not add is removed too.
    remove_foreign: bool,
}

impl<K: Kind> Default for Reconciler<K> {
    fn default() -> Self {
        Reconciler { actual: BTreeMap::new(), installed: BTreeSet::new(), remove_foreign: true }
    }
}

impl<K: Kind> Reconciler<K> {
    /// An empty picture; fill it with the kernel's dump (`observed`). An
    /// unwanted entry is removed whoever added it: a VIP found on a
    /// backup (it would answer ARP beside the master).
    pub fn new() -> Reconciler<K> {
        Reconciler::default()
    }

    /// As `new`, but only what we added is ever removed: routes and rules
    /// (a route of the same key that someone else added is theirs; keepalived
    /// too only deletes the routes and rules it set).
    pub fn only_own() -> Reconciler<K> {
        Reconciler { remove_foreign: false, ..Reconciler::default() }
    }

    /// The kernel reported the entry present (`up`) or gone. Returns
    /// whether it was one we had installed and it is now gone.
    pub fn observed(&mut self, key: K, detail: K::Detail, up: bool) -> bool {
        if up {
            self.actual.entry(key).or_default().insert(detail);
            false
        } else {
            if let Some(p) = self.actual.get_mut(&key) {
                p.remove(&detail);
                if p.is_empty() {
                    self.actual.remove(&key);
                }
            }
            self.installed.contains(&(key, detail))
        }
    }

    /// A fresh dump replaces what the kernel was known to have (the kernel
    /// drops routes without an event when their interface goes down or
    /// away). What we installed stays ours: missing now, it is put back.
    pub fn resync(&mut self, dump: impl IntoIterator<Item = (K, K::Detail)>) {
        self.actual.clear();
        for (k, d) in dump {
            self.actual.entry(k).or_default().insert(d);
        }
    }

    /// Whether the kernel has `key` (with any detail).
    pub fn present(&self, key: &K) -> bool {
        self.actual.contains_key(key)
    }

    /// The operations that bring the kernel to `wants`. An entry wanted
    /// present by one owner and absent by another stays (present wins:
    /// removing it would take it from a master). Entries nobody names are
    /// never touched. What is unwanted and already gone is forgotten, so
    /// that a `no_track` entry deleted under a master is added again at the
    /// next transition to MASTER, not before.
    pub fn plan(&mut self, wants: &[Want<K>]) -> Vec<Op<K>> {
        let mut by_key: BTreeMap<&K, &Want<K>> = BTreeMap::new();
        for w in wants {
            by_key
                .entry(&w.key)
                .and_modify(|cur| {
                    if w.present && !cur.present {
                        *cur = w;
                    }
                })
                .or_insert(w);
        }
        // A set: with thousands of instances, most of them backups, a
        // list here made every plan quadratic.
        let gone: BTreeSet<K> = by_key
            .iter()
            .filter(|(k, w)| !w.present && !self.actual.contains_key(**k))
            .map(|(k, _)| (*k).clone())
            .collect();
        self.installed.retain(|(k, _)| !gone.contains(k));
        let mut ops = Vec::new();
        for (key, w) in by_key {
            let have = self.actual.get(key);
            match (w.present, have) {
                (true, None) => {
                    let ours = self.installed.contains(&(key.clone(), w.detail));
                    // no_track: keepalived does not reinstate it until the
                    // instance next becomes MASTER (keepalived.conf(5)).
                    if ours && !w.track {
                        continue;
                    }
                    ops.push(Op::Add { key: key.clone(), detail: w.detail, owner: w.owner, restore: ours })
                }
                (false, Some(details)) => {
                    for d in details {
                        let foreign = !self.installed.contains(&(key.clone(), *d));
                        if foreign && !self.remove_foreign {
                            continue;
                        }
                        ops.push(Op::Remove { key: key.clone(), detail: *d, owner: w.owner, foreign });
                    }
                }
                _ => {}
            }
        }
        ops
    }

    /// Record what the kernel answered to `op`, before its event arrives
    /// (so a second plan does not repeat it).
    pub fn applied(&mut self, op: &Op<K>, outcome: Outcome) {
        if outcome == Outcome::Failed {
            return;
        }
        match op {
            Op::Add { key, detail, .. } => {
                self.actual.entry(key.clone()).or_default().insert(*detail);
                self.installed.insert((key.clone(), *detail));
            }
            Op::Remove { key, detail, .. } => {
                self.observed(key.clone(), *detail, false);
                self.installed.remove(&(key.clone(), *detail));
            }
        }
    }

    /// Take a master's entry that was already there as ours: it goes
    /// when the instance leaves MASTER or the agent stops, and a crash
    /// record names it.
    pub fn adopt(&mut self, wants: &[Want<K>]) {
        for w in wants.iter().filter(|w| w.present) {
            if let Some(details) = self.actual.get(&w.key) {
                for d in details {
                    self.installed.insert((w.key.clone(), *d));
                }
            }
        }
    }

    /// Take entries a previous run of this agent recorded as its own (a
    /// hitless restart) as ours where the kernel has them: whoever wants
    /// them absent now has them removed, routes and rules included.
    pub fn adopt_recorded(&mut self, recorded: impl IntoIterator<Item = (K, K::Detail)>) {
        for (k, d) in recorded {
            if self.actual.get(&k).is_some_and(|ds| ds.contains(&d)) {
                self.installed.insert((k, d));
            }
        }
    }

    /// What we hold now (installed and present), in a stable order.
    pub fn held(&self) -> impl Iterator<Item = (&K, K::Detail)> + '_ {
        self.installed
            .iter()
            .filter(|(k, d)| self.actual.get(k).is_some_and(|ds| ds.contains(d)))
            .map(|(k, d)| (k, *d))
    }
}

impl Reconciler<AddrKey> {
    /// The interface went away: the kernel dropped its addresses with it.
    pub fn interface_gone(&mut self, ifindex: u32) {
        self.actual.retain(|k, _| k.ifindex != ifindex);
        self.installed.retain(|(k, _)| k.ifindex != ifindex);
    }

    /// The addresses we hold now: (ifindex, address, prefix), in a stable
    /// order.
    pub fn installed(&self) -> impl Iterator<Item = (u32, IpAddr, u8)> + '_ {
        self.held().map(|(k, p)| (k.ifindex, k.addr, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u8) -> AddrKey {
        AddrKey { ifindex: 2, addr: IpAddr::from([192, 0, 2, last]) }
    }

    fn want(last: u8, present: bool) -> Want {
        Want { key: key(last), detail: 24, present, track: true, owner: 0 }
    }

    #[test]
    fn a_master_adds_what_is_missing() {
        let mut r = Reconciler::new();
        assert_eq!(
            r.plan(&[want(130, true)]),
            vec![Op::Add { key: key(130), detail: 24, owner: 0, restore: false }]
        );
    }

    #[test]
    fn nothing_to_do_once_applied_or_reported() {
        let mut r = Reconciler::new();
        let ops = r.plan(&[want(130, true)]);
        r.applied(&ops[0], Outcome::Done);
        assert!(r.plan(&[want(130, true)]).is_empty());
        // The kernel's event for our own add changes nothing.
        assert!(!r.observed(key(130), 24, true));
        assert!(r.plan(&[want(130, true)]).is_empty());
        assert_eq!(r.installed().collect::<Vec<_>>(), vec![(2, key(130).addr, 24)]);
    }

    #[test]
    fn a_vip_deleted_under_a_master_is_put_back() {
        let mut r = Reconciler::new();
        let ops = r.plan(&[want(130, true)]);
        r.applied(&ops[0], Outcome::Done);
        assert!(r.observed(key(130), 24, false), "it was ours");
        assert_eq!(r.installed().count(), 0, "not held while missing");
        assert_eq!(
            r.plan(&[want(130, true)]),
            vec![Op::Add { key: key(130), detail: 24, owner: 0, restore: true }]
        );
    }

    #[test]
    fn a_backup_removes_a_vip_it_did_not_add() {
        let mut r = Reconciler::new();
        // Added by hand with another prefix, and the node's own address.
        r.observed(key(130), 32, true);
        r.observed(key(20), 24, true);
        assert_eq!(
            r.plan(&[want(130, false)]),
            vec![Op::Remove { key: key(130), detail: 32, owner: 0, foreign: true }]
        );
    }

    #[test]
    fn leaving_master_removes_what_we_added() {
        let mut r = Reconciler::new();
        let ops = r.plan(&[want(130, true)]);
        r.applied(&ops[0], Outcome::Done);
        let ops = r.plan(&[want(130, false)]);
        assert_eq!(ops, vec![Op::Remove { key: key(130), detail: 24, owner: 0, foreign: false }]);
        r.applied(&ops[0], Outcome::AlreadySo);
        assert!(r.plan(&[want(130, false)]).is_empty());
        assert_eq!(r.installed().count(), 0);
    }

    #[test]
    fn a_failed_operation_is_planned_again() {
        let mut r = Reconciler::new();
        let ops = r.plan(&[want(130, true)]);
        r.applied(&ops[0], Outcome::Failed);
        assert_eq!(r.plan(&[want(130, true)]), ops);
    }

    #[test]
    fn present_wins_over_absent_for_a_shared_address() {
        let mut r = Reconciler::new();
        r.observed(key(130), 24, true);
        let wants =
            [Want { owner: 1, ..want(130, false) }, want(130, true), Want { owner: 2, ..want(130, false) }];
        assert!(r.plan(&wants).is_empty());
    }

    #[test]
    fn recorded_entries_are_adopted_where_present_and_removed_when_unwanted() {
        let mut r: Reconciler = Reconciler::new();
        r.observed(key(130), 24, true);
        r.adopt_recorded([(key(130), 24), (key(131), 24)]);
        assert_eq!(r.installed().count(), 1, "only what the kernel has");
        let ops = r.plan(&[want(130, false)]);
        assert!(matches!(ops.as_slice(), [Op::Remove { foreign: false, .. }]), "{ops:?}");
    }

    #[test]
    fn adopted_addresses_count_as_installed() {
        let mut r = Reconciler::new();
        r.observed(key(130), 24, true);
        r.adopt(&[want(130, true)]);
        assert_eq!(
            r.plan(&[want(130, false)]),
            vec![Op::Remove { key: key(130), detail: 24, owner: 0, foreign: false }]
        );
    }

    #[test]
    fn a_gone_interface_forgets_its_addresses() {
        let mut r = Reconciler::new();
        let ops = r.plan(&[want(130, true)]);
        r.applied(&ops[0], Outcome::Done);
        r.interface_gone(2);
        assert!(!r.present(&key(130)));
        assert_eq!(r.installed().count(), 0);
        assert_eq!(r.plan(&[want(130, true)]).len(), 1);
    }

    fn route(last: u8) -> RouteKey {
        RouteKey {
            v6: false,
            table: 100,
            dst: IpAddr::from([198, 51, 100, last]),
            dst_len: 32,
            tos: 0,
            metric: 0,
        }
    }

    fn want_route(last: u8, present: bool, track: bool) -> Want<RouteKey> {
        Want { key: route(last), detail: (), present, track, owner: 0 }
    }

    #[test]
    fn a_virtual_route_follows_the_master_and_is_put_back() {
        let mut r: Reconciler<RouteKey> = Reconciler::new();
        let ops = r.plan(&[want_route(1, true, true)]);
        assert_eq!(ops, vec![Op::Add { key: route(1), detail: (), owner: 0, restore: false }]);
        r.applied(&ops[0], Outcome::Done);
        assert!(!r.observed(route(1), (), true));
        assert_eq!(r.held().count(), 1);
        // Deleted by someone: put back while MASTER.
        assert!(r.observed(route(1), (), false));
        assert_eq!(
            r.plan(&[want_route(1, true, true)]),
            vec![Op::Add { key: route(1), detail: (), owner: 0, restore: true }]
        );
        r.applied(&Op::Add { key: route(1), detail: (), owner: 0, restore: true }, Outcome::Done);
        // Leaving MASTER removes it.
        let ops = r.plan(&[want_route(1, false, true)]);
        assert_eq!(ops, vec![Op::Remove { key: route(1), detail: (), owner: 0, foreign: false }]);
        r.applied(&ops[0], Outcome::Done);
        assert!(r.plan(&[want_route(1, false, true)]).is_empty());
        assert_eq!(r.held().count(), 0);
    }

    #[test]
    fn a_no_track_route_deleted_under_a_master_waits_for_the_next_master() {
        let mut r: Reconciler<RouteKey> = Reconciler::new();
        let ops = r.plan(&[want_route(2, true, false)]);
        r.applied(&ops[0], Outcome::Done);
        assert!(r.observed(route(2), (), false), "it was ours");
        assert!(r.plan(&[want_route(2, true, false)]).is_empty(), "not reinstated while MASTER");
        // BACKUP: nothing to remove; then MASTER again adds it.
        assert!(r.plan(&[want_route(2, false, false)]).is_empty());
        assert_eq!(
            r.plan(&[want_route(2, true, false)]),
            vec![Op::Add { key: route(2), detail: (), owner: 0, restore: false }]
        );
    }

    #[test]
    fn a_resync_finds_routes_the_kernel_dropped_silently() {
        let mut r: Reconciler<RouteKey> = Reconciler::new();
        let ops = r.plan(&[want_route(3, true, true)]);
        r.applied(&ops[0], Outcome::Done);
        // The interface went down: the kernel flushed the route without an
        // event; a fresh dump does not have it.
        r.resync([(route(4), ())]);
        assert!(r.present(&route(4)));
        assert_eq!(
            r.plan(&[want_route(3, true, true)]),
            vec![Op::Add { key: route(3), detail: (), owner: 0, restore: true }]
        );
    }

    #[test]
    fn a_resync_after_lost_events_repairs_addresses_both_ways() {
        // A master holds 130 and 131; a backup's VIP 140 is absent. Then
        // the event socket overflows: 130 was deleted by hand and 140 added
        // by hand, and neither event arrived.
        let mut r = Reconciler::new();
        let wants = [want(130, true), want(131, true), want(140, false)];
        for op in r.plan(&wants) {
            r.applied(&op, Outcome::Done);
        }
        r.observed(key(1), 24, true);
        assert!(r.plan(&wants).is_empty(), "no event: nothing seems to be wrong");
        // The dump: the node's own address, 131 and the foreign 140.
        r.resync([(key(1), 24), (key(131), 24), (key(140), 24)]);
        assert!(!r.present(&key(130)), "the gone one is dropped");
        assert!(r.present(&key(140)), "the appeared one is added");
        assert_eq!(
            r.plan(&wants),
            vec![
                Op::Add { key: key(130), detail: 24, owner: 0, restore: true },
                Op::Remove { key: key(140), detail: 24, owner: 0, foreign: true },
            ]
        );
        // What is held and present stays ours; the missing one is not held.
        assert_eq!(r.installed().collect::<Vec<_>>(), vec![(2, key(131).addr, 24)]);
        // A second dump identical to the state changes nothing.
        let mut again = r.clone();
        again.resync([(key(1), 24), (key(131), 24), (key(140), 24)]);
        assert_eq!(again.plan(&wants), r.plan(&wants));
    }

    #[test]
    fn a_route_someone_else_added_is_never_removed() {
        let mut r: Reconciler<RouteKey> = Reconciler::only_own();
        r.observed(route(5), (), true);
        assert!(r.plan(&[want_route(5, false, true)]).is_empty(), "a backup leaves it");
        // A master finds it there: nothing to add; it is not ours to remove
        // later unless adopted.
        assert!(r.plan(&[want_route(5, true, true)]).is_empty());
        assert!(r.plan(&[want_route(5, false, true)]).is_empty());
        // Our own one is removed.
        let ops = r.plan(&[want_route(6, true, true)]);
        r.applied(&ops[0], Outcome::Done);
        assert_eq!(
            r.plan(&[want_route(6, false, true)]),
            vec![Op::Remove { key: route(6), detail: (), owner: 0, foreign: false }]
        );
    }

    #[test]
    fn rules_are_keyed_by_preference_and_selector() {
        let rule = |priority: u32, table: u32| RuleKey {
            v6: false,
            priority,
            action: RuleAction::Table(table),
            from: Some((IpAddr::from([203, 0, 113, 0]), 24)),
            to: None,
            fwmark: (0, 0),
            iif: None,
            oif: None,
            tos: 0,
            invert: false,
        };
        let mut r: Reconciler<RuleKey> = Reconciler::new();
        // Someone's rule at the same preference for another table is not ours.
        r.observed(rule(100, 7), (), true);
        let want = Want { key: rule(100, 2), detail: (), present: true, track: true, owner: 1 };
        let ops = r.plan(std::slice::from_ref(&want));
        assert_eq!(ops, vec![Op::Add { key: rule(100, 2), detail: (), owner: 1, restore: false }]);
        r.applied(&ops[0], Outcome::Done);
        assert!(r.plan(std::slice::from_ref(&want)).is_empty());
        assert!(r.observed(rule(100, 2), (), false));
        assert_eq!(r.plan(&[want]), vec![Op::Add { key: rule(100, 2), detail: (), owner: 1, restore: true }]);
    }
}
