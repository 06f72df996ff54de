//! Golden scenarios for the state machine on a virtual clock: inputs and
//! timer expiries in, the exact actions out, at the exact microsecond.

use std::net::IpAddr;

use vrrp_agent::machine::{Action, Input, Machine, Micros, Note, Params, State};
use vrrp_common::Centis;
use vrrp_common::wire::Version;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn params(version: Version, priority: u8, advert_cs: u16) -> Params {
    Params {
        name: "VI_1".into(),
        version,
        priority,
        advert_int: Centis(advert_cs),
        primary: ip("192.0.2.2"),
        preempt: true,
        preempt_delay: Micros(0),
        lower_prio_no_advert: false,
    }
}

/// A machine, a virtual clock, and every action with the time it came.
struct Sim {
    m: Machine,
    now: Micros,
    log: Vec<(Micros, Action)>,
}

impl Sim {
    fn new(p: Params) -> Sim {
        let mut s = Sim { m: Machine::new(p), now: Micros(0), log: Vec::new() };
        let mut out = Vec::new();
        s.m.start(s.now, &mut out);
        s.record(out);
        s
    }

    /// As `new`, with the receive path not up yet (`Machine::set_deaf`).
    fn deaf(p: Params) -> Sim {
        let mut m = Machine::new(p);
        m.set_deaf();
        let mut s = Sim { m, now: Micros(0), log: Vec::new() };
        let mut out = Vec::new();
        s.m.start(s.now, &mut out);
        s.record(out);
        s
    }

    fn hearing(&mut self) {
        self.m.hearing(self.now);
    }

    fn record(&mut self, out: Vec<Action>) {
        self.log.extend(out.into_iter().map(|a| (self.now, a)));
    }

    /// Run the clock to `t`, firing each timer at its deadline.
    fn run_to(&mut self, t: Micros) {
        while let Some(d) = self.m.poll_timeout().filter(|d| *d <= t) {
            self.now = d.max(self.now);
            let mut out = Vec::new();
            self.m.handle_timeout(self.now, &mut out);
            self.record(out);
        }
        self.now = t;
    }

    fn input(&mut self, i: Input) {
        let mut out = Vec::new();
        self.m.handle(self.now, i, &mut out);
        self.record(out);
    }

    fn advert(&mut self, src: &str, priority: u8, interval_cs: u16) {
        self.input(Input::Advert { src: ip(src), priority, interval: Centis(interval_cs) });
    }

    /// When the machine entered `state` (last time).
    fn entered(&self, state: State) -> Option<Micros> {
        self.log.iter().rev().find_map(|(t, a)| match a {
            Action::Transition { to, .. } if *to == state => Some(*t),
            _ => None,
        })
    }

    fn adverts_sent(&self) -> Vec<(Micros, u8)> {
        self.log
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SendAdvert { priority } => Some((*t, *priority)),
                _ => None,
            })
            .collect()
    }

    fn take(&mut self) -> Vec<(Micros, Action)> {
        std::mem::take(&mut self.log)
    }
}

#[test]
fn skew_and_master_down_interval_are_integer_microseconds() {
    // v3, priority 100, 1 s: Skew = 156 * 1 s / 256 = 609375 us.
    let m = Machine::new(params(Version::V3, 100, 100));
    assert_eq!(m.skew_time(), Micros(609_375));
    assert_eq!(m.master_down_interval(), Micros(3_609_375));
    // v3 at 10 ms: one priority step moves Skew_Time by 10000/256 us.
    let a = Machine::new(params(Version::V3, 200, 1));
    let b = Machine::new(params(Version::V3, 201, 1));
    assert_eq!(a.skew_time().0 - b.skew_time().0, 39);
    assert_eq!(a.master_down_interval(), Micros(30_000 + 56 * 10_000 / 256));
    // v2: (256 - priority) / 256 seconds, whatever the interval.
    let v2 = Machine::new(params(Version::V2, 150, 300));
    assert_eq!(v2.skew_time(), Micros(106 * 1_000_000 / 256));
    assert_eq!(v2.master_down_interval(), Micros(9_000_000 + 414_062));
}

#[test]
fn startup_enters_backup_then_master_after_master_down_interval() {
    let mut s = Sim::new(params(Version::V2, 150, 100));
    let mdi = s.m.master_down_interval();
    assert_eq!(
        s.take(),
        vec![
            (Micros(0), Action::Log(Note::EnteringBackupInit)),
            (Micros(0), Action::Transition { from: State::Init, to: State::Backup }),
        ]
    );
    s.run_to(Micros(10_000_000));
    let t = mdi;
    let log = s.take();
    assert_eq!(
        log[..5],
        [
            (t, Action::Log(Note::EnteringMaster)),
            (t, Action::Transition { from: State::Backup, to: State::Master }),
            (t, Action::SendAdvert { priority: 150 }),
            (t, Action::AddVips),
            (t, Action::Announce),
        ]
    );
    // Then an advert every Advertisement_Interval.
    let later: Vec<Micros> = log[5..].iter().map(|(t, _)| *t).collect();
    let want: Vec<Micros> = (1..).map(|k| t.after(Micros(k * 1_000_000))).take(later.len()).collect();
    assert_eq!(later, want);
    assert!(log[5..].iter().all(|(_, a)| *a == Action::SendAdvert { priority: 150 }));
}

#[test]
fn the_address_owner_takes_over_at_once() {
    let s = Sim::new(params(Version::V3, 255, 100));
    assert_eq!(s.m.state(), State::Master);
    assert_eq!(s.entered(State::Master), Some(Micros(0)));
    assert_eq!(s.adverts_sent(), vec![(Micros(0), 255)]);
}

#[test]
fn a_backup_stays_while_the_master_advertises_and_takes_over_one_interval_after_silence() {
    let mut s = Sim::new(params(Version::V3, 100, 100));
    for k in 0..10u64 {
        s.run_to(Micros(k * 1_000_000 + 500_000));
        s.advert("192.0.2.1", 150, 100);
    }
    assert_eq!(s.m.state(), State::Backup);
    let last = s.now;
    s.run_to(Micros(60_000_000));
    assert_eq!(s.entered(State::Master), Some(last.after(s.m.master_down_interval())));
    // Equal priority keeps a backup a backup too (RFC 5798 6.4.2).
    let mut s = Sim::new(params(Version::V3, 100, 100));
    s.run_to(Micros(3_000_000));
    s.advert("192.0.2.1", 100, 100);
    s.run_to(Micros(6_000_000));
    assert_eq!(s.m.state(), State::Backup);
}

#[test]
fn priority_zero_from_the_master_means_takeover_after_skew_time() {
    let mut s = Sim::new(params(Version::V3, 100, 100));
    s.run_to(Micros(1_000_000));
    s.advert("192.0.2.1", 150, 100);
    s.run_to(Micros(2_000_000));
    s.advert("192.0.2.1", 0, 100);
    s.run_to(Micros(10_000_000));
    assert_eq!(s.entered(State::Master), Some(Micros(2_000_000).after(Micros(609_375))));
    assert!(s.log.iter().any(|(_, a)| *a == Action::Log(Note::BackupPriorityZero)));
}

#[test]
fn a_lower_priority_master_is_preempted_unless_nopreempt() {
    // Preempt: its adverts are discarded; the down timer makes us master.
    let mut s = Sim::new(params(Version::V3, 150, 100));
    s.run_to(Micros(1_000_000));
    s.advert("192.0.2.1", 200, 100); // a real master first
    let reset = s.now;
    for k in 2..8u64 {
        s.run_to(Micros(k * 1_000_000));
        s.advert("192.0.2.1", 100, 100); // it lowered its priority
    }
    s.run_to(Micros(20_000_000));
    assert_eq!(s.entered(State::Master), Some(reset.after(s.m.master_down_interval())));

    // nopreempt: the lower-priority master keeps the role.
    let mut s = Sim::new(Params { preempt: false, ..params(Version::V3, 150, 100) });
    for k in 1..20u64 {
        s.run_to(Micros(k * 1_000_000));
        s.advert("192.0.2.1", 100, 100);
    }
    assert_eq!(s.m.state(), State::Backup);
    assert_eq!(s.entered(State::Master), None);
}

#[test]
fn preempt_delay_tolerates_a_lower_master_for_the_delay() {
    let mut s = Sim::new(Params { preempt_delay: Micros(5_000_000), ..params(Version::V2, 150, 100) });
    for k in 1..30u64 {
        s.run_to(Micros(k * 1_000_000));
        if s.m.state() == State::Backup {
            s.advert("192.0.2.1", 100, 100);
        }
    }
    // Tolerated from 1 s to 6 s (the advert at 6 s is the first past the
    // delay and is discarded); master one Master_Down_Interval after the
    // last tolerated advert, at 5 s.
    assert_eq!(s.entered(State::Master), Some(Micros(5_000_000).after(s.m.master_down_interval())));
    assert!(s.log.iter().any(|(_, a)| matches!(a, Action::Log(Note::PreemptDelayStarted(_)))));
}

fn master_at(version: Version, priority: u8) -> Sim {
    master_at_with(params(version, priority, 100))
}

fn master_at_with(p: Params) -> Sim {
    let mut s = Sim::new(p);
    s.run_to(Micros(5_000_000));
    assert_eq!(s.m.state(), State::Master);
    s.take();
    s
}

#[test]
fn a_master_yields_to_higher_priority_and_to_a_higher_address_at_equal_priority() {
    let mut s = master_at(Version::V3, 150);
    s.advert("192.0.2.9", 200, 100);
    let t = s.now;
    assert_eq!(
        s.take(),
        vec![
            (t, Action::Log(Note::MasterHigherPriority { src: ip("192.0.2.9"), theirs: 200, ours: 150 })),
            (t, Action::Log(Note::EnteringBackup)),
            (t, Action::Transition { from: State::Master, to: State::Backup }),
            (t, Action::RemoveVips),
        ]
    );
    // Equal priority: the higher primary address wins (ours is .2).
    let mut s = master_at(Version::V3, 150);
    s.advert("192.0.2.1", 150, 100);
    assert_eq!(s.m.state(), State::Master, "a lower address does not win a tie");
    assert!(s.adverts_sent().contains(&(s.now, 150)), "and is answered at once");
    s.take();
    s.advert("192.0.2.3", 150, 100);
    assert_eq!(s.m.state(), State::Backup, "a higher address wins a tie");
    let logged: Vec<String> = s
        .take()
        .into_iter()
        .filter_map(|(_, a)| if let Action::Log(n) = a { Some(n.to_string()) } else { None })
        .collect();
    // keepalived's line for a tie lost on the address (vrrp.c).
    assert_eq!(
        logged.first().map(String::as_str),
        Some("Master received advert from 192.0.2.3 with same priority 150 but higher IP address than ours"),
        "{logged:?}"
    );
}

#[test]
fn a_master_answers_lower_priority_and_priority_zero_at_once() {
    let mut s = master_at(Version::V2, 150);
    let t = s.now;
    s.advert("192.0.2.1", 100, 100);
    assert_eq!(
        s.take(),
        vec![
            (
                t,
                Action::Log(Note::LowerPriorityElection {
                    src: ip("192.0.2.1"),
                    theirs: 100,
                    ours: 150,
                    forcing: true,
                }),
            ),
            (t, Action::SendAdvert { priority: 150 }),
        ]
    );
    s.advert("192.0.2.1", 0, 100);
    assert_eq!(
        s.take(),
        vec![(t, Action::Log(Note::MasterPriorityZero)), (t, Action::SendAdvert { priority: 150 })]
    );
    // The Adver_Timer restarted from the answer.
    s.run_to(t.after(Micros(999_999)));
    assert!(s.take().is_empty());
    s.run_to(t.after(Micros(1_000_000)));
    assert_eq!(s.take(), vec![(t.after(Micros(1_000_000)), Action::SendAdvert { priority: 150 })]);
}

#[test]
fn with_lower_prio_no_advert_a_master_only_logs_a_lower_priority_advert() {
    // keepalived's strict mode forces lower_prio_no_advert: no answer, the
    // Adver_Timer keeps its schedule, and the line lacks "forcing new election".
    let mut s = master_at_with(Params { lower_prio_no_advert: true, ..params(Version::V2, 150, 100) });
    let t = s.now;
    s.advert("192.0.2.1", 100, 100);
    let note = Note::LowerPriorityElection { src: ip("192.0.2.1"), theirs: 100, ours: 150, forcing: false };
    assert_eq!(note.to_string(), "Received advert from 192.0.2.1 with lower priority 100, ours 150");
    assert_eq!(s.take(), vec![(t, Action::Log(note))]);
}

#[test]
fn shutdown_as_master_resigns_then_removes_the_vips() {
    let mut s = master_at(Version::V3, 150);
    let t = s.now;
    s.input(Input::Shutdown);
    assert_eq!(
        s.take(),
        vec![
            (t, Action::SendAdvert { priority: 0 }),
            (t, Action::Log(Note::SentPriorityZero)),
            (t, Action::RemoveVips),
            (t, Action::Transition { from: State::Master, to: State::Init }),
        ]
    );
    assert_eq!(s.m.poll_timeout(), None);
    // A backup just stops.
    let mut s = Sim::new(params(Version::V3, 100, 100));
    s.take();
    s.input(Input::Shutdown);
    assert_eq!(s.take(), vec![(Micros(0), Action::Transition { from: State::Backup, to: State::Init })]);
}

#[test]
fn v3_learns_the_masters_interval_and_v2_does_not() {
    let mut s = Sim::new(params(Version::V3, 100, 100));
    s.run_to(Micros(100_000));
    s.advert("192.0.2.1", 200, 1); // the master advertises every 10 ms
    assert_eq!(s.m.master_adver_int(), Centis(1));
    let t = s.now;
    s.run_to(Micros(1_000_000));
    // 3 x 10 ms + (156 x 10 ms) / 256.
    assert_eq!(s.entered(State::Master), Some(t.after(Micros(30_000 + 6_093))));

    let mut s = Sim::new(params(Version::V2, 100, 100));
    s.advert("192.0.2.1", 200, 300);
    assert_eq!(s.m.master_adver_int(), Centis(100));
}

#[test]
fn a_new_effective_priority_goes_out_at_once_as_master() {
    let mut s = master_at(Version::V3, 150);
    let t = s.now;
    s.input(Input::Priority(50));
    assert_eq!(
        s.take(),
        vec![
            (t, Action::Log(Note::PriorityChanged { from: 150, to: 50 })),
            (t, Action::SendAdvert { priority: 50 }),
        ]
    );
    // Clamped to 1..=254 unless the owner.
    s.input(Input::Priority(0));
    assert_eq!(s.m.priority(), 1);
    s.input(Input::Priority(255));
    assert_eq!(s.m.priority(), 254);
}

#[test]
fn fault_takes_the_instance_out_and_recovery_brings_it_back_as_backup() {
    let mut s = master_at(Version::V3, 150);
    let t = s.now;
    s.input(Input::Fault(true));
    assert_eq!(
        s.take(),
        vec![
            (t, Action::SendAdvert { priority: 0 }),
            (t, Action::Log(Note::EnteringFault)),
            (t, Action::Transition { from: State::Master, to: State::Fault }),
            (t, Action::RemoveVips),
        ]
    );
    s.run_to(Micros(20_000_000));
    assert!(s.take().is_empty(), "silent in FAULT");
    s.input(Input::Fault(false));
    assert_eq!(s.m.state(), State::Backup);
    let back = s.now;
    s.run_to(Micros(40_000_000));
    assert_eq!(s.entered(State::Master), Some(back.after(s.m.master_down_interval())));
}

#[test]
fn ipv6_tie_break_compares_addresses() {
    let p = Params { primary: ip("fe80::2"), ..params(Version::V3, 100, 100) };
    let mut s = Sim::new(p);
    s.run_to(Micros(5_000_000));
    s.advert("fe80::1", 100, 100);
    assert_eq!(s.m.state(), State::Master);
    s.advert("fe80::10", 100, 100);
    assert_eq!(s.m.state(), State::Backup);
}

#[test]
fn note_lines_read_like_keepalived() {
    let n = Note::MasterHigherPriority { src: ip("192.0.2.1"), theirs: 150, ours: 100 };
    assert_eq!(n.to_string(), "Master received advert from 192.0.2.1 with higher priority 150, ours 100");
    assert_eq!(Note::EnteringBackupInit.to_string(), "Entering BACKUP STATE (init)");
    assert_eq!(
        Note::PriorityChanged { from: 150, to: 50 }.to_string(),
        "Changing effective priority from 150 to 50"
    );
}

#[test]
fn a_hitless_restart_resumes_as_master_with_an_advert_at_once_and_no_transition() {
    let mut m = Machine::new(params(Version::V3, 150, 100));
    let mut out = Vec::new();
    let t = Micros(7_000);
    m.resume_master(t, &mut out);
    assert_eq!(out, vec![Action::Log(Note::Resumed), Action::SendAdvert { priority: 150 }, Action::AddVips]);
    assert_eq!(m.state(), State::Master);
    // The Adver_Timer runs from the resume: the next advert one interval on.
    assert_eq!(m.poll_timeout(), Some(t.after(Micros(1_000_000))));
    // Only from Init.
    let mut again = Vec::new();
    m.resume_master(Micros(8_000), &mut again);
    assert!(again.is_empty());
    // A fault meanwhile: a normal start (into FAULT), never MASTER.
    let mut m = Machine::new(params(Version::V3, 150, 100));
    let mut out = Vec::new();
    m.handle(Micros(0), Input::Fault(true), &mut out);
    m.resume_master(Micros(0), &mut out);
    assert_eq!(m.state(), State::Fault);
    assert!(!out.contains(&Action::SendAdvert { priority: 150 }));
}

#[test]
fn a_higher_priority_advert_after_a_resume_makes_a_backup_as_ever() {
    let mut m = Machine::new(params(Version::V3, 150, 100));
    let mut out = Vec::new();
    m.resume_master(Micros(0), &mut out);
    out.clear();
    m.handle(
        Micros(10),
        Input::Advert { src: ip("192.0.2.9"), priority: 200, interval: Centis(100) },
        &mut out,
    );
    assert_eq!(m.state(), State::Backup);
    assert!(out.contains(&Action::RemoveVips));
}

#[test]
fn reconfigure_keeps_the_state_and_moves_the_advert_timer_to_the_new_interval() {
    let mut s = master_at(Version::V3, 150);
    let t = s.now;
    let mut p = params(Version::V3, 150, 10);
    s.m.reconfigure(t, p.clone());
    assert_eq!(s.m.state(), State::Master);
    assert_eq!(s.m.master_adver_int(), Centis(10));
    assert_eq!(s.m.poll_timeout(), Some(t.after(Micros(100_000))));
    assert!(s.take().is_empty(), "no action of its own: no transition, no advert out of turn");
    s.run_to(t.after(Micros(300_000)));
    assert_eq!(s.adverts_sent().len(), 3);
    // A backup keeps its Master_Down_Timer; v3 learns the interval from
    // the master, not from its own configuration.
    let mut b = Sim::new(params(Version::V3, 100, 100));
    b.advert("192.0.2.1", 200, 100);
    let down = b.m.master_down_deadline();
    p.priority = 100;
    b.m.reconfigure(b.now, p);
    assert_eq!(b.m.state(), State::Backup);
    assert_eq!(b.m.master_down_deadline(), down);
    assert_eq!(b.m.master_adver_int(), Centis(100));
}

/// Two masters of one interval, `phase` apart, driven as the daemon does:
/// it wakes for the earlier deadline and fires every instance's timers
/// with `handle_timeout_coalesced`. Returns the sends as (time, which).
fn two_masters(advert_cs: u16, phase: Micros, until: Micros) -> Vec<(Micros, usize)> {
    let mut ms = [
        Machine::new(params(Version::V3, 255, advert_cs)),
        Machine::new(params(Version::V3, 255, advert_cs)),
    ];
    let mut out = Vec::new();
    ms[0].start(Micros(0), &mut out);
    ms[1].start(phase, &mut out);
    let mut sent = Vec::new();
    while let Some(now) = ms.iter().filter_map(Machine::poll_timeout).min().filter(|t| *t <= until) {
        for (i, m) in ms.iter_mut().enumerate() {
            out.clear();
            m.handle_timeout_coalesced(now, &mut out);
            if out.iter().any(|a| matches!(a, Action::SendAdvert { .. })) {
                sent.push((now, i));
            }
        }
    }
    sent
}

#[test]
fn adverts_due_within_a_sixteenth_of_the_interval_go_together_and_stay_together() {
    // 100 ms adverts: the window is 1 ms (a sixteenth would be 6.25 ms).
    let m = Machine::new(params(Version::V3, 255, 10));
    assert_eq!(m.adver_window(), Micros(1_000));
    // 10 ms adverts: a sixteenth, 625 us.
    assert_eq!(Machine::new(params(Version::V3, 255, 1)).adver_window(), Micros(625));
    // The second master started 0.6 ms after the first: its first timed
    // advert goes 0.6 ms early, with the first's, and from then on every
    // one does; each instance still advertises once per interval.
    let sent = two_masters(10, Micros(600), Micros(1_000_000));
    assert_eq!(sent[0], (Micros(100_000), 0));
    assert_eq!(sent[1], (Micros(100_000), 1));
    for pair in sent.chunks(2) {
        assert_eq!(pair[0].0, pair[1].0, "sent apart: {pair:?}");
    }
    assert_eq!(sent.len(), 20);
}

#[test]
fn adverts_further_apart_than_the_window_keep_their_own_time() {
    // 1.5 ms apart at 100 ms adverts: beyond the 1 ms window.
    let sent = two_masters(10, Micros(1_500), Micros(1_000_000));
    assert_eq!(&sent[..2], &[(Micros(100_000), 0), (Micros(101_500), 1)]);
    assert!(sent.windows(2).all(|w| w[0].0 != w[1].0), "{sent:?}");
    // The plain timeout never fires early.
    let mut m = Machine::new(params(Version::V3, 255, 10));
    let mut out = Vec::new();
    m.start(Micros(0), &mut out);
    out.clear();
    m.handle_timeout(Micros(99_999), &mut out);
    assert!(out.is_empty(), "{out:?}");
}

// The receive path comes up after the instances start (the XDP attach runs
// beside them): until then a backup cannot hear its master, and RFC 5798
// 6.4.2 counts Master_Down_Interval only over time it listened.

#[test]
fn a_deaf_backup_enters_backup_at_once_and_never_takes_over_until_it_hears() {
    let mut s = Sim::deaf(params(Version::V3, 100, 1));
    assert_eq!(s.m.state(), State::Backup);
    assert_eq!(s.entered(State::Backup), Some(Micros(0)));
    assert_eq!(s.m.master_down_deadline(), None);
    assert_eq!(s.m.poll_timeout(), None);
    // Far beyond any Master_Down_Interval: no takeover while deaf.
    s.run_to(Micros(60_000_000));
    assert_eq!(s.m.state(), State::Backup);
    assert!(s.adverts_sent().is_empty());
}

#[test]
fn master_down_counts_from_when_the_receive_path_came_up() {
    let mdi = Machine::new(params(Version::V3, 100, 100)).master_down_interval();
    // The receive path comes up 13 ms after the start: the deadline is
    // that moment plus a whole Master_Down_Interval, not start + MDI.
    let mut s = Sim::deaf(params(Version::V3, 100, 100));
    s.run_to(Micros(13_000));
    s.hearing();
    let up = Micros(13_000);
    assert!(!s.m.is_deaf());
    assert_eq!(s.m.master_down_deadline(), Some(up.after(mdi)));
    s.run_to(Micros(up.after(mdi).0 - 1));
    assert_eq!(s.m.state(), State::Backup);
    s.run_to(Micros(60_000_000));
    assert_eq!(s.entered(State::Master), Some(up.after(mdi)));
    // A second `hearing` changes nothing (the path came up once).
    let mut s = Sim::deaf(params(Version::V3, 100, 100));
    s.hearing();
    s.run_to(Micros(1_000_000));
    s.advert("192.0.2.1", 150, 100);
    let held = s.m.master_down_deadline();
    s.hearing();
    assert_eq!(s.m.master_down_deadline(), held);
}

#[test]
fn adverts_heard_while_deaf_do_not_start_the_timer_and_a_resignation_does_not_make_it_master() {
    // An AH instance's raw socket is open before the XDP attach: it may
    // hear adverts, including a resignation, while the other instances
    // are still deaf. Neither starts the timer before `hearing`.
    let mut s = Sim::deaf(params(Version::V3, 100, 100));
    s.run_to(Micros(1_000));
    s.advert("192.0.2.1", 150, 100);
    assert_eq!(s.m.master_down_deadline(), None);
    s.advert("192.0.2.1", 0, 100);
    s.run_to(Micros(30_000_000));
    assert_eq!(s.m.state(), State::Backup);
    s.hearing();
    assert_eq!(s.m.master_down_deadline(), Some(s.now.after(s.m.master_down_interval())));
}

#[test]
fn a_deaf_address_owner_takes_over_at_once_as_before() {
    // The owner needs to hear nobody to become master (RFC 5798 6.4.1).
    let s = Sim::deaf(params(Version::V3, 255, 100));
    assert_eq!(s.m.state(), State::Master);
    assert_eq!(s.adverts_sent(), vec![(Micros(0), 255)]);
}

#[test]
fn a_deaf_sync_group_member_does_not_want_master_and_a_recovered_fault_waits_too() {
    let mut m = Machine::new(params(Version::V3, 100, 1));
    m.set_deaf();
    m.set_synced();
    let mut out = Vec::new();
    m.start(Micros(0), &mut out);
    m.handle_timeout(Micros(10_000_000), &mut out);
    assert!(!out.contains(&Action::WantMaster));
    assert!(!m.wants_master());
    // FAULT then recovered while deaf: BACKUP, no timer.
    let mut s = Sim::deaf(params(Version::V3, 100, 1));
    s.input(Input::Fault(true));
    s.input(Input::Fault(false));
    assert_eq!(s.m.state(), State::Backup);
    assert_eq!(s.m.master_down_deadline(), None);
    s.run_to(Micros(5_000_000));
    assert_eq!(s.m.state(), State::Backup);
    s.hearing();
    s.run_to(Micros(10_000_000));
    assert_eq!(s.entered(State::Master), Some(Micros(5_000_000).after(s.m.master_down_interval())));
}
