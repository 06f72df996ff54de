//! keepalived's `vrrp_sync_group`, sans I/O: a layer above the instance
//! machines (`machine.rs`) that makes its members change state together,
//! following keepalived 2.2.7 (vrrp_sync.c, vrrp_scheduler.c, vrrp_track.c):
//!
//! - FAULT: the group is in FAULT while any member has a fault of its own
//!   (tracking, its interface); every member is then held in FAULT (a
//!   master resigns with priority 0 and drops its addresses, a backup
//!   stops listening), and all leave it for BACKUP together when the last
//!   fault clears (`num_member_fault`, vrrp_sync_fault, try_up_instance).
//! - MASTER: a member whose Master_Down_Timer runs out only *wants*
//!   MASTER (`Action::WantMaster`) and waits another Master_Down_Interval;
//!   when every member wants it (or the group is MASTER already), the
//!   group becomes MASTER and every member with it, at once
//!   (vrrp_sync_can_goto_master, vrrp_sync_master). An advert a member
//!   accepts withdraws its wish, so a member that still hears a master
//!   keeps the whole group BACKUP ("prefer backup state to avoid
//!   thrashing").
//! - BACKUP: a master member that leaves MASTER for BACKUP (it heard a
//!   higher priority) takes the other masters with it, without priority-0
//!   adverts (vrrp_sync_backup).
//!
//! The group decides from what its members' machines did (`follow`) and
//! feeds its orders to their machines through `Members`; the caller
//! carries out every machine's actions and the group's `Event`s (logs,
//! the group's notify scripts with `GROUP NAME STATE 0`).

use std::fmt;

use crate::machine::{Action, Input, Machine, Micros, State};

/// Access to the members' machines by the caller's instance index.
pub trait Members {
    /// Instance `idx`'s machine.
    fn machine(&mut self, idx: usize) -> &mut Machine;
}

impl Members for [Machine] {
    fn machine(&mut self, idx: usize) -> &mut Machine {
        &mut self[idx]
    }
}

/// What the group did, for the caller to log and notify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// keepalived's `VRRP_Group(G) Syncing instances to STATE state`.
    Syncing(State),
    /// The group entered this state: run its `notify_*` script and
    /// `notify` with `GROUP NAME STATE 0` (`Init`: the agent stops, STOP).
    Notify(State),
}

/// One sync group.
#[derive(Clone, Debug)]
pub struct SyncGroup {
    name: String,
    /// The members' instance indices, in `group { }` order.
    members: Vec<usize>,
    /// Each member's own fault (its tracking, its interface).
    own_fault: Vec<bool>,
    /// The group's state; `Init` before its first member starts and after
    /// `stop`.
    state: State,
}

/// The group's words for the log, as keepalived's.
pub struct Syncing<'a>(pub &'a str, pub State);

impl fmt::Display for Syncing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VRRP_Group({}) Syncing instances to {} state", self.0, self.1)
    }
}

impl SyncGroup {
    /// A group of the instances `members` (indices of the caller's). Their
    /// machines must be `set_synced` before they start.
    pub fn new(name: impl Into<String>, members: Vec<usize>) -> SyncGroup {
        let own_fault = vec![false; members.len()];
        SyncGroup { name: name.into(), members, own_fault, state: State::Init }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The members' instance indices.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// Whether instance `idx` is a member.
    pub fn contains(&self, idx: usize) -> bool {
        self.members.contains(&idx)
    }

    /// Instance `idx` of the caller's is gone and the ones after it moved
    /// down by one (a reload stopped it): it leaves the group.
    pub fn forget(&mut self, idx: usize) {
        if let Some(p) = self.members.iter().position(|m| *m == idx) {
            self.members.remove(p);
            self.own_fault.remove(p);
        }
        for m in &mut self.members {
            if *m > idx {
                *m -= 1;
            }
        }
    }

    /// Instance `idx` joins the group (a reload starts it in the group;
    /// its machine must be `set_synced` before it starts).
    pub fn add(&mut self, idx: usize) {
        self.members.push(idx);
        self.own_fault.push(false);
    }

    /// The caller reordered its instances: member `m` is now `to(m)`.
    pub fn remap(&mut self, to: impl Fn(usize) -> usize) {
        for m in &mut self.members {
            *m = to(*m);
        }
    }

    /// The group's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether some member has a fault of its own: then every member is
    /// held in FAULT.
    pub fn faulted(&self) -> bool {
        self.own_fault.iter().any(|f| *f)
    }

    /// Record member `idx`'s own fault (before the members start, or as
    /// its tracking changes) without feeding anything.
    pub fn record_fault(&mut self, idx: usize, fault: bool) {
        if let Some(p) = self.members.iter().position(|m| *m == idx) {
            self.own_fault[p] = fault;
        }
    }

    /// Member `idx`'s own fault is now `fault`: the `Input::Fault` each
    /// member's machine must be fed, in order. When the group's fault
    /// changes, every member (`idx` first, as keepalived downs the
    /// instance before syncing the others); otherwise only `idx`, with the
    /// group's fault (a member whose own fault clears stays in FAULT while
    /// another member has one).
    pub fn fault_inputs(&mut self, idx: usize, fault: bool) -> Vec<(usize, Input)> {
        let before = self.faulted();
        self.record_fault(idx, fault);
        let now = self.faulted();
        if before == now {
            return vec![(idx, Input::Fault(now))];
        }
        let rest = self.members.iter().copied().filter(|m| *m != idx);
        std::iter::once(idx).chain(rest).map(|m| (m, Input::Fault(now))).collect()
    }

    /// Member `idx`'s machine produced `actions` at `now`: follow them.
    /// The orders this gives other members (or `idx` itself) are fed to
    /// their machines through `ms`, and what those machines answer is
    /// followed in turn; every such answer is appended to `out` as
    /// (member, actions) for the caller to carry out after `actions`.
    pub fn follow(
        &mut self,
        now: Micros,
        idx: usize,
        actions: &[Action],
        ms: &mut (impl Members + ?Sized),
        out: &mut Vec<(usize, Vec<Action>)>,
        ev: &mut Vec<Event>,
    ) {
        let mut orders = self.react(idx, actions, ms, ev);
        // Breadth first; each order moves a machine at most once (a group
        // state already reached gives no more orders), so this ends.
        while !orders.is_empty() {
            let mut next = Vec::new();
            for (m, input) in orders {
                let mut a = Vec::new();
                ms.machine(m).handle(now, input, &mut a);
                if a.is_empty() {
                    continue;
                }
                next.extend(self.react(m, &a, ms, ev));
                out.push((m, a));
            }
            orders = next;
        }
    }

    /// The group stops (the agent shuts down): its `notify_stop` and
    /// `notify ... STOP`, as keepalived's notify_shutdown.
    pub fn stop(&mut self, ev: &mut Vec<Event>) {
        self.state = State::Init;
        ev.push(Event::Notify(State::Init));
    }

    fn enter(&mut self, to: State, log: bool, ev: &mut Vec<Event>) -> bool {
        if self.state == to {
            return false;
        }
        self.state = to;
        if log {
            ev.push(Event::Syncing(to));
        }
        ev.push(Event::Notify(to));
        true
    }

    /// When the group has just `entered` a state: order every member but
    /// `idx` that is in `state` to move with `input`.
    fn order_others(
        &self,
        entered: bool,
        idx: usize,
        state: State,
        input: Input,
        ms: &mut (impl Members + ?Sized),
        orders: &mut Vec<(usize, Input)>,
    ) {
        if !entered {
            return;
        }
        for &m in self.members.iter().filter(|m| **m != idx) {
            if ms.machine(m).state() == state {
                orders.push((m, input));
            }
        }
    }

    /// The group's decisions on what member `idx` just did: orders to
    /// members.
    fn react(
        &mut self,
        idx: usize,
        actions: &[Action],
        ms: &mut (impl Members + ?Sized),
        ev: &mut Vec<Event>,
    ) -> Vec<(usize, Input)> {
        let mut orders = Vec::new();
        for a in actions {
            match *a {
                Action::Transition { to: State::Master, .. } => {
                    // vrrp_sync_master: the others follow at once.
                    let entered = self.enter(State::Master, true, ev);
                    self.order_others(entered, idx, State::Backup, Input::SyncMaster, ms, &mut orders);
                }
                Action::Transition { from: State::Master, to: State::Backup } => {
                    // vrrp_sync_backup: the other masters step down too.
                    let entered = self.enter(State::Backup, true, ev);
                    self.order_others(entered, idx, State::Master, Input::SyncBackup, ms, &mut orders);
                }
                // Leaving FAULT together (the fault inputs moved every
                // member), or the first state at start (keepalived
                // notifies a group in BACKUP or FAULT at start, without
                // the "Syncing" line).
                Action::Transition { from, to: to @ (State::Backup | State::Fault) } => {
                    self.enter(to, from != State::Init, ev);
                }
                Action::Transition { .. } => {}
                Action::WantMaster => {
                    // vrrp_sync_can_goto_master: MASTER only if the group
                    // is, or every other member wants it too.
                    let all = self.state == State::Master
                        || self.members.iter().filter(|m| **m != idx).all(|m| ms.machine(*m).wants_master());
                    if all {
                        orders.push((idx, Input::SyncMaster));
                    }
                }
                _ => {}
            }
        }
        orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_follow_the_callers_indices() {
        let mut g = SyncGroup::new("G", vec![1, 3, 4]);
        g.record_fault(4, true);
        // Instance 2 goes: 3 and 4 move down; 4's fault goes with it.
        g.forget(2);
        assert_eq!(g.members(), &[1, 2, 3]);
        assert!(g.faulted());
        // A member goes: its fault with it.
        g.forget(3);
        assert_eq!(g.members(), &[1, 2]);
        assert!(!g.faulted());
        g.add(5);
        assert_eq!(g.members(), &[1, 2, 5]);
        g.remap(|m| 10 - m);
        assert_eq!(g.members(), &[9, 8, 5]);
        assert!(g.contains(5) && !g.contains(1));
    }
}
