//! The one owner of the addresses the agent puts in the kernel.
//!
//! The instances' state machines say what they want (a master's VIPs
//! present, everyone else's absent); the kernel's address dump and its
//! netlink events say what is there. `Reconciler::plan` compares the two
//! and returns the netlink operations that close the gap: a VIP someone
//! deleted under a master is put back (keepalived re-adds it within the
//! same second), a VIP found on a backup's interface (added by hand, or left
//! by keepalived during a migration) is removed, because a backup that
//! holds its VIP answers ARP for it beside the master.
//!
//! Pure: no sockets here, so every decision is unit-tested. The daemon
//! applies the operations and reports the outcome (`applied`), and feeds
//! in every address event (`observed`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// An address as the kernel keys it on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrKey {
    /// Interface index.
    pub ifindex: u32,
    /// The address.
    pub addr: IpAddr,
}

/// What one instance wants for one of its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// Where and what.
    pub key: AddrKey,
    /// Prefix length to add it with.
    pub prefix: u8,
    /// Present (a master's) or absent (anyone else's).
    pub present: bool,
    /// The instance that wants it (an index of the caller's), for logs and
    /// for the address message (scope, label).
    pub owner: usize,
}

/// A netlink operation to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Add the address.
    Add {
        /// Where and what.
        key: AddrKey,
        /// Prefix length.
        prefix: u8,
        /// The instance it is for.
        owner: usize,
        /// It was ours and someone removed it.
        restore: bool,
    },
    /// Remove the address (with the prefix the kernel has it with).
    Remove {
        /// Where and what.
        key: AddrKey,
        /// Prefix length, as present.
        prefix: u8,
        /// The instance that does not want it.
        owner: usize,
        /// We did not add it (by hand, or another program).
        foreign: bool,
    },
}

/// What the kernel did with an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Nothing to do: the address was already there (add) or already gone
    /// (remove).
    AlreadySo,
    /// Failed; the state is as before.
    Failed,
}

/// The reconciler's knowledge: what the kernel has, what we added.
#[derive(Clone, Debug, Default)]
pub struct Reconciler {
    /// Every address the kernel reported, with the prefixes it has it with.
    actual: BTreeMap<AddrKey, BTreeSet<u8>>,
    /// Addresses we added (or found and kept as a master's), until we
    /// remove them: those of them present are what a crash would leave
    /// behind, and one that goes missing is put back as ours.
    installed: BTreeSet<(AddrKey, u8)>,
}

impl Reconciler {
    /// An empty picture; fill it with the kernel's dump (`observed`).
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// The kernel reported the address present (`up`) or gone. Returns
    /// whether it was one we had installed and it is now gone.
    pub fn observed(&mut self, key: AddrKey, prefix: u8, up: bool) -> bool {
        if up {
            self.actual.entry(key).or_default().insert(prefix);
            false
        } else {
            if let Some(p) = self.actual.get_mut(&key) {
                p.remove(&prefix);
                if p.is_empty() {
                    self.actual.remove(&key);
                }
            }
            self.installed.contains(&(key, prefix))
        }
    }

    /// The interface went away: the kernel dropped its addresses with it.
    pub fn interface_gone(&mut self, ifindex: u32) {
        self.actual.retain(|k, _| k.ifindex != ifindex);
        self.installed.retain(|(k, _)| k.ifindex != ifindex);
    }

    /// Whether the kernel has `key` (with any prefix).
    pub fn present(&self, key: &AddrKey) -> bool {
        self.actual.contains_key(key)
    }

    /// The operations that bring the kernel to `wants`. An address wanted
    /// present by one instance and absent by another stays (present wins:
    /// removing it would take it from a master). Addresses nobody names
    /// are never touched.
    pub fn plan(&self, wants: &[Want]) -> Vec<Op> {
        let mut by_key: BTreeMap<AddrKey, &Want> = BTreeMap::new();
        for w in wants {
            by_key
                .entry(w.key)
                .and_modify(|cur| {
                    if w.present && !cur.present {
                        *cur = w;
                    }
                })
                .or_insert(w);
        }
        let mut ops = Vec::new();
        for (key, w) in by_key {
            let have = self.actual.get(&key);
            match (w.present, have) {
                (true, None) => ops.push(Op::Add {
                    key,
                    prefix: w.prefix,
                    owner: w.owner,
                    restore: self.installed.contains(&(key, w.prefix)),
                }),
                (false, Some(prefixes)) => {
                    for p in prefixes {
                        ops.push(Op::Remove {
                            key,
                            prefix: *p,
                            owner: w.owner,
                            foreign: !self.installed.contains(&(key, *p)),
                        });
                    }
                }
                _ => {}
            }
        }
        ops
    }

    /// Record what the kernel answered to `op`, before its event arrives
    /// (so a second plan does not repeat it).
    pub fn applied(&mut self, op: &Op, outcome: Outcome) {
        if outcome == Outcome::Failed {
            return;
        }
        match *op {
            Op::Add { key, prefix, .. } => {
                self.actual.entry(key).or_default().insert(prefix);
                self.installed.insert((key, prefix));
            }
            Op::Remove { key, prefix, .. } => {
                self.observed(key, prefix, false);
                self.installed.remove(&(key, prefix));
            }
        }
    }

    /// Take a master's address that was already there as ours: it goes
    /// when the instance leaves MASTER or the agent stops, and a crash
    /// record names it.
    pub fn adopt(&mut self, wants: &[Want]) {
        for w in wants.iter().filter(|w| w.present) {
            if let Some(prefixes) = self.actual.get(&w.key) {
                for p in prefixes {
                    self.installed.insert((w.key, *p));
                }
            }
        }
    }

    /// What we hold now: (ifindex, address, prefix), in a stable order.
    pub fn installed(&self) -> impl Iterator<Item = (u32, IpAddr, u8)> + '_ {
        self.installed
            .iter()
            .filter(|(k, p)| self.actual.get(k).is_some_and(|ps| ps.contains(p)))
            .map(|(k, p)| (k.ifindex, k.addr, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(last: u8) -> AddrKey {
        AddrKey { ifindex: 2, addr: IpAddr::from([192, 0, 2, last]) }
    }

    fn want(last: u8, present: bool) -> Want {
        Want { key: key(last), prefix: 24, present, owner: 0 }
    }

    #[test]
    fn a_master_adds_what_is_missing() {
        let r = Reconciler::new();
        assert_eq!(
            r.plan(&[want(130, true)]),
            vec![Op::Add { key: key(130), prefix: 24, owner: 0, restore: false }]
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
        r.applied(&r.plan(&[want(130, true)])[0], Outcome::Done);
        assert!(r.observed(key(130), 24, false), "it was ours");
        assert_eq!(r.installed().count(), 0, "not held while missing");
        assert_eq!(
            r.plan(&[want(130, true)]),
            vec![Op::Add { key: key(130), prefix: 24, owner: 0, restore: true }]
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
            vec![Op::Remove { key: key(130), prefix: 32, owner: 0, foreign: true }]
        );
    }

    #[test]
    fn leaving_master_removes_what_we_added() {
        let mut r = Reconciler::new();
        r.applied(&r.plan(&[want(130, true)])[0], Outcome::Done);
        let ops = r.plan(&[want(130, false)]);
        assert_eq!(ops, vec![Op::Remove { key: key(130), prefix: 24, owner: 0, foreign: false }]);
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
    fn adopted_addresses_count_as_installed() {
        let mut r = Reconciler::new();
        r.observed(key(130), 24, true);
        r.adopt(&[want(130, true)]);
        assert_eq!(
            r.plan(&[want(130, false)]),
            vec![Op::Remove { key: key(130), prefix: 24, owner: 0, foreign: false }]
        );
    }

    #[test]
    fn a_gone_interface_forgets_its_addresses() {
        let mut r = Reconciler::new();
        r.applied(&r.plan(&[want(130, true)])[0], Outcome::Done);
        r.interface_gone(2);
        assert!(!r.present(&key(130)));
        assert_eq!(r.installed().count(), 0);
        assert_eq!(r.plan(&[want(130, true)]).len(), 1);
    }
}
