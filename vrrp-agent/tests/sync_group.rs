//! Golden scenarios for `vrrp_sync_group` on a virtual clock: two nodes,
//! each with a group of two instances on two links (VI_1 on link 0, VI_2
//! on link 1), their machines and groups wired together the way the agent
//! wires them, adverts delivered between the nodes on each link. Every
//! instant is checked: at most one master per VRID, and no node ever
//! holds one of the group's VIPs without the other (the group moves as
//! one).

use std::net::IpAddr;

use vrrp_agent::machine::{Action, Input, Machine, Micros, Params, State};
use vrrp_agent::sync_group::{Event, SyncGroup};
use vrrp_common::Centis;
use vrrp_common::wire::Version;

/// Instances: node A's VI_1, VI_2 are 0, 1; node B's are 2, 3. Instance k
/// is on node k / 2 and link k % 2.
const NODES: usize = 2;

fn node_ip(node: usize) -> IpAddr {
    format!("192.0.2.{}", 10 + node).parse().expect("address")
}

fn params(name: &str, node: usize, priority: u8) -> Params {
    Params {
        name: name.into(),
        version: Version::V3,
        priority,
        advert_int: Centis(100),
        primary: node_ip(node),
        preempt: true,
        preempt_delay: Micros(0),
        lower_prio_no_advert: false,
    }
}

struct Net {
    now: Micros,
    ms: Vec<Machine>,
    groups: Vec<SyncGroup>,
    /// Link l of node n is up.
    up: [[bool; 2]; NODES],
    /// Deliveries on link l are dropped (a partition without link loss).
    cut: [bool; 2],
    /// Everything any machine did, with when and whose.
    log: Vec<(Micros, usize, Action)>,
    /// Group events: when, node, event.
    events: Vec<(Micros, usize, Event)>,
}

impl Net {
    /// Both nodes' groups start at 0 with these priorities.
    fn new(prio_a: u8, prio_b: u8) -> Net {
        let mut ms = Vec::new();
        for (node, p) in [(0, prio_a), (1, prio_b)] {
            for name in ["VI_1", "VI_2"] {
                let mut m = Machine::new(params(name, node, p));
                m.set_synced();
                ms.push(m);
            }
        }
        let groups = vec![SyncGroup::new("G", vec![0, 1]), SyncGroup::new("G", vec![2, 3])];
        let mut net = Net {
            now: Micros(0),
            ms,
            groups,
            up: [[true; 2]; NODES],
            cut: [false; 2],
            log: Vec::new(),
            events: Vec::new(),
        };
        for k in 0..4 {
            let mut out = Vec::new();
            net.ms[k].start(Micros(0), &mut out);
            net.process(vec![(k, out)]);
        }
        net.check();
        net
    }

    /// Carry out actions as the agent does: the group follows each
    /// member's actions, adverts are delivered to the other node's
    /// instance on the same link.
    fn process(&mut self, mut work: Vec<(usize, Vec<Action>)>) {
        while !work.is_empty() {
            let (k, actions) = work.remove(0);
            let g = k / 2;
            let mut more = Vec::new();
            let mut ev = Vec::new();
            self.groups[g].follow(self.now, k, &actions, &mut self.ms[..], &mut more, &mut ev);
            self.events.extend(ev.into_iter().map(|e| (self.now, g, e)));
            for a in actions {
                if let Action::SendAdvert { priority } = a {
                    let (node, link) = (k / 2, k % 2);
                    let peer = (1 - node) * 2 + link;
                    if self.up[node][link] && self.up[1 - node][link] && !self.cut[link] {
                        let mut out = Vec::new();
                        let input = Input::Advert { src: node_ip(node), priority, interval: Centis(100) };
                        self.ms[peer].handle(self.now, input, &mut out);
                        work.push((peer, out));
                    }
                }
                self.log.push((self.now, k, a));
            }
            work.extend(more);
        }
    }

    /// The invariants at the end of every instant.
    fn check(&self) {
        for link in 0..2 {
            let masters = (0..NODES).filter(|n| self.ms[n * 2 + link].state() == State::Master).count();
            assert!(masters <= 1, "two masters on link {link} at {}", self.now);
        }
        for n in 0..NODES {
            let (a, b) = (self.ms[n * 2].state(), self.ms[n * 2 + 1].state());
            assert_eq!(
                a == State::Master,
                b == State::Master,
                "node {n} split at {}: VI_1 {a}, VI_2 {b}",
                self.now
            );
        }
    }

    /// Run the clock to `t`, firing every timer at its deadline.
    fn run_to(&mut self, t: Micros) {
        loop {
            let next = self.ms.iter().filter_map(Machine::poll_timeout).min();
            let Some(d) = next.filter(|d| *d <= t) else { break };
            self.now = d.max(self.now);
            for k in 0..self.ms.len() {
                if self.ms[k].poll_timeout().is_some_and(|x| x <= self.now) {
                    let mut out = Vec::new();
                    self.ms[k].handle_timeout(self.now, &mut out);
                    self.process(vec![(k, out)]);
                }
            }
            self.check();
        }
        self.now = t;
    }

    /// Link `link` of `node` goes down or up: the instance on it is in
    /// FAULT while it is down, and its group decides for the others.
    fn link(&mut self, node: usize, link: usize, up: bool) {
        self.up[node][link] = up;
        let k = node * 2 + link;
        let inputs = self.groups[node].fault_inputs(k, !up);
        for (m, input) in inputs {
            let mut out = Vec::new();
            self.ms[m].handle(self.now, input, &mut out);
            self.process(vec![(m, out)]);
        }
        self.check();
    }

    fn states(&self, node: usize) -> [State; 2] {
        [self.ms[node * 2].state(), self.ms[node * 2 + 1].state()]
    }

    /// When instance k last entered `state`.
    fn entered(&self, k: usize, state: State) -> Option<Micros> {
        self.log.iter().rev().find_map(|(t, kk, a)| match a {
            Action::Transition { to, .. } if *to == state && *kk == k => Some(*t),
            _ => None,
        })
    }

    fn group_events(&self, node: usize) -> Vec<(Micros, Event)> {
        self.events.iter().filter(|(_, n, _)| *n == node).map(|(t, _, e)| (*t, e.clone())).collect()
    }

    fn adverts(&self, k: usize, from: Micros, to: Micros) -> Vec<(Micros, u8)> {
        self.log
            .iter()
            .filter(|(t, kk, _)| *kk == k && *t >= from && *t < to)
            .filter_map(|(t, _, a)| match a {
                Action::SendAdvert { priority } => Some((*t, *priority)),
                _ => None,
            })
            .collect()
    }
}

const S: u64 = 1_000_000;

/// Master_Down_Interval at 1 s adverts: 3 s + (256 - priority) / 256 s.
fn mdi(priority: u64) -> Micros {
    Micros(3 * S + (256 - priority) * S / 256)
}

#[test]
fn the_group_elects_as_one_and_follows_a_fault_of_either_member() {
    let mut net = Net::new(150, 100);
    assert_eq!(net.states(0), [State::Backup; 2]);
    net.run_to(Micros(10 * S));
    // Both of A's members ran out at the same microsecond: the first only
    // wanted MASTER, the second made the group (and so both) MASTER.
    let t = mdi(150);
    assert_eq!(net.entered(0, State::Master), Some(t));
    assert_eq!(net.entered(1, State::Master), Some(t));
    assert_eq!(net.states(1), [State::Backup; 2]);
    assert_eq!(
        net.group_events(0),
        vec![
            (Micros(0), Event::Notify(State::Backup)),
            (t, Event::Syncing(State::Master)),
            (t, Event::Notify(State::Master)),
        ]
    );
    assert_eq!(net.group_events(1), vec![(Micros(0), Event::Notify(State::Backup))]);

    // A's link 1 goes down: VI_2 is in FAULT, and its group with it: VI_1
    // resigns on link 0 (priority 0) although nothing is wrong there.
    let down = Micros(10 * S + 200_000);
    net.run_to(down);
    net.link(0, 1, false);
    assert_eq!(net.states(0), [State::Fault; 2]);
    assert_eq!(net.adverts(0, down, down.after(Micros(1))), vec![(down, 0)]);
    assert_eq!(
        net.group_events(0)[3..],
        [(down, Event::Syncing(State::Fault)), (down, Event::Notify(State::Fault))]
    );
    // B's VI_1 heard the resignation and wants MASTER after its Skew_Time,
    // but B's VI_2 still waits for its Master_Down_Interval from A's last
    // advert on link 1: the group waits for it, so B takes both at once.
    net.run_to(Micros(20 * S));
    let last_on_link1 = net.adverts(1, Micros(0), down).last().expect("A advertised on link 1").0;
    let b_master = last_on_link1.after(mdi(100));
    assert_eq!(net.entered(2, State::Master), Some(b_master));
    assert_eq!(net.entered(3, State::Master), Some(b_master));
    assert!(b_master > down.after(Micros(609_375)), "VI_1 waited for its group beyond its Skew_Time");
    // A group in FAULT sends nothing on either link.
    assert!(net.adverts(0, down.after(Micros(1)), Micros(20 * S)).is_empty());
    assert!(net.adverts(1, down.after(Micros(1)), Micros(20 * S)).is_empty());

    // The link comes back: A's group leaves FAULT for BACKUP together,
    // then preempts B on both links one Master_Down_Interval later; B's
    // VI_1, beaten, takes its VI_2 down with it (no priority 0 there).
    let back = Micros(20 * S);
    net.link(0, 1, true);
    assert_eq!(net.states(0), [State::Backup; 2]);
    assert_eq!(
        net.group_events(0)[5..],
        [(back, Event::Syncing(State::Backup)), (back, Event::Notify(State::Backup))]
    );
    net.run_to(Micros(30 * S));
    let again = back.after(mdi(150));
    assert_eq!(net.entered(0, State::Master), Some(again));
    assert_eq!(net.entered(1, State::Master), Some(again));
    assert_eq!(net.states(1), [State::Backup; 2]);
    assert_eq!(net.entered(2, State::Backup), Some(again));
    assert_eq!(net.entered(3, State::Backup), Some(again));
    assert!(net.adverts(3, again, again.after(Micros(1))).iter().all(|(_, p)| *p != 0));
    assert_eq!(
        net.group_events(1)[1..],
        [
            (b_master, Event::Syncing(State::Master)),
            (b_master, Event::Notify(State::Master)),
            (again, Event::Syncing(State::Backup)),
            (again, Event::Notify(State::Backup)),
        ]
    );
}

#[test]
fn a_member_that_still_hears_its_master_keeps_the_group_backup() {
    // A partition of link 1 only (no link down, so no FAULT): B's VI_2
    // hears nothing and wants MASTER, but B's VI_1 still hears A's VI_1,
    // so B's group stays BACKUP, and A keeps both VIPs. Without the group,
    // B's VI_2 would take link 1's VIP while A kept link 0's.
    let mut net = Net::new(150, 100);
    net.run_to(Micros(10 * S));
    net.cut[1] = true;
    net.run_to(Micros(60 * S));
    assert_eq!(net.states(0), [State::Master; 2]);
    assert_eq!(net.states(1), [State::Backup; 2]);
    assert!(net.ms[3].wants_master(), "B's VI_2 wants MASTER");
    assert!(!net.ms[2].wants_master(), "B's VI_1 does not");
    assert_eq!(net.entered(3, State::Master), None);
    // A's VI_1 going quiet too makes B's group MASTER, both at once.
    net.link(0, 0, false);
    net.run_to(Micros(70 * S));
    assert_eq!(net.states(1), [State::Master; 2]);
    assert_eq!(net.entered(2, State::Master), net.entered(3, State::Master));
}

#[test]
fn a_member_whose_fault_clears_waits_for_the_others() {
    let mut net = Net::new(150, 100);
    net.run_to(Micros(10 * S));
    // Both of A's links go down, then only link 0 comes back: A's group
    // stays in FAULT (VI_1 included) until link 1 is back too.
    net.link(0, 1, false);
    net.link(0, 0, false);
    net.run_to(Micros(15 * S));
    net.link(0, 0, true);
    assert_eq!(net.states(0), [State::Fault; 2]);
    net.run_to(Micros(25 * S));
    assert_eq!(net.states(0), [State::Fault; 2]);
    assert_eq!(net.states(1), [State::Master; 2]);
    net.link(0, 1, true);
    assert_eq!(net.states(0), [State::Backup; 2]);
    net.run_to(Micros(40 * S));
    assert_eq!(net.states(0), [State::Master; 2]);
    assert_eq!(net.states(1), [State::Backup; 2]);
}

#[test]
fn address_owners_take_over_together_at_start() {
    // Every member an address owner: the group is MASTER at once
    // (keepalived: all members want MASTER from the start).
    let mut net = Net::new(255, 100);
    assert_eq!(net.states(0), [State::Master; 2]);
    assert_eq!(net.entered(0, State::Master), Some(Micros(0)));
    net.run_to(Micros(10 * S));
    assert_eq!(net.states(1), [State::Backup; 2]);
}

#[test]
fn a_lone_instance_is_unchanged_by_set_synced_only_in_needing_its_group() {
    // A synced machine whose timer runs out asks, and waits another
    // Master_Down_Interval; it never becomes master by itself.
    let mut m = Machine::new(params("VI_1", 0, 100));
    m.set_synced();
    let mut out = Vec::new();
    m.start(Micros(0), &mut out);
    out.clear();
    m.handle_timeout(mdi(100), &mut out);
    assert_eq!(out, vec![Action::WantMaster]);
    assert_eq!(m.state(), State::Backup);
    assert_eq!(m.poll_timeout(), Some(mdi(100).after(mdi(100))));
    assert!(m.wants_master());
    // An advert it accepts withdraws the wish.
    m.handle(
        Micros(4 * S),
        Input::Advert { src: node_ip(1), priority: 200, interval: Centis(100) },
        &mut out,
    );
    assert!(!m.wants_master());
    // The group's order makes it master.
    out.clear();
    m.handle(Micros(5 * S), Input::SyncMaster, &mut out);
    assert_eq!(m.state(), State::Master);
    assert!(out.contains(&Action::AddVips));
    // ... and steps it down, with no priority-0 advert.
    out.clear();
    m.handle(Micros(6 * S), Input::SyncBackup, &mut out);
    assert_eq!(m.state(), State::Backup);
    assert!(out.contains(&Action::RemoveVips));
    assert!(!out.contains(&Action::SendAdvert { priority: 0 }));
}

#[test]
fn a_member_beaten_by_a_higher_priority_takes_its_group_to_backup() {
    // B is master of both while A's links are down. Then link 1 is cut
    // between them and A's links come up: A's VI_2 hears nothing, A's VI_1
    // preempts B's on link 0. B's VI_1, beaten, takes B's VI_2 to BACKUP
    // although B's VI_2 never heard a better master (vrrp_sync_backup).
    let mut net = Net::new(150, 100);
    net.link(0, 0, false);
    net.link(0, 1, false);
    net.run_to(Micros(10 * S));
    assert_eq!(net.states(1), [State::Master; 2]);
    net.cut[1] = true;
    net.link(0, 0, true);
    net.link(0, 1, true);
    net.run_to(Micros(20 * S));
    let t = net.entered(0, State::Master).expect("A became master");
    assert_eq!(net.entered(1, State::Master), Some(t));
    assert_eq!(net.states(1), [State::Backup; 2]);
    assert_eq!(net.entered(3, State::Backup), Some(t), "B's VI_2 followed B's VI_1 at once");
    assert!(net.adverts(3, t, Micros(20 * S)).is_empty(), "and sent nothing, not even priority 0");
}
