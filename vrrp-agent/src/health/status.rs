//! A tracked script's good/bad state with keepalived's rise and fall, and
//! the effective priority the tracked scripts give an instance. Pure: the
//! runner feeds results in, the daemon reads states out.

/// Where a script stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No verdict yet: contributes no weight (keepalived's INIT).
    Unknown,
    /// `rise` consecutive successes.
    Good,
    /// `fall` consecutive failures (or `init_fail` before the first run).
    Bad,
}

/// rise/fall bookkeeping for one script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    health: Health,
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
}

impl Status {
    /// A script needing `rise` successes to be good and `fall` failures to
    /// be bad; `init_fail` starts it bad.
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Status {
        Status {
            health: if init_fail { Health::Bad } else { Health::Unknown },
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
        }
    }

    /// Current health.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Take one run's result; the new health if it changed.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.health != Health::Good && self.successes >= self.rise {
                self.health = Health::Good;
                return Some(Health::Good);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.health != Health::Bad && self.failures >= self.fall {
                self.health = Health::Bad;
                return Some(Health::Bad);
            }
        }
        None
    }
}

impl Status {
    /// The status a reload gives a script whose definition changed, from
    /// this (the old definition's) status, as keepalived 2.2.7 does
    /// (vrrp.c `clear_diff_script`): a script with no verdict yet starts
    /// over (keepalived sets it back to INIT, whatever the new
    /// `init_fail` says); one with a verdict keeps it ("considered
    /// successful/unsuccessful on reload"), and the runs still needed to
    /// turn it over are kept, capped to the new rise or fall (keepalived
    /// keeps the distance of its result counter from the threshold).
    pub fn carried(&self, rise: u32, fall: u32) -> Status {
        let (rise, fall) = (rise.max(1), fall.max(1));
        let mut s = Status::new(rise, fall, false);
        match self.health {
            Health::Unknown => {}
            Health::Good => {
                // Failures still tolerated before turning bad.
                let left = self.fall.saturating_sub(self.failures).min(fall);
                s.health = Health::Good;
                s.failures = fall - left;
            }
            Health::Bad => {
                s.health = Health::Bad;
                // keepalived: no success yet stays at none; else the
                // successes still needed are kept (at least none done).
                if self.successes > 0 {
                    let needed = self.rise.saturating_sub(self.successes);
                    s.successes = rise.saturating_sub(needed);
                }
            }
        }
        s
    }
}

/// One tracked script as an instance sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Weight (the instance's `track_script` weight, else the script's).
    pub weight: i32,
    /// `reverse`: the weight applies the other way round.
    pub reverse: bool,
    /// The script's health.
    pub health: Health,
}

/// keepalived's effective priority: the base, plus each positive weight
/// whose script is good, plus each negative weight whose script is bad
/// (`reverse` swaps good and bad), clamped to 1-254 (255 stays the owner's).
/// A weight-0 script that is bad (good, with `reverse`) puts the instance
/// in FAULT. Returns (priority, fault).
pub fn effective(base: u8, tracked: &[Tracked]) -> (u8, bool) {
    effective_with(base, tracked, &[])
}

/// As [`effective`], with `offsets` besides: (delta, fault) pairs that
/// trackers computing their own delta give (`track_file`: the value times
/// the weight). The owner (255) keeps its priority, as keepalived
/// requires weight 0 of an owner's trackers; faults still count.
pub fn effective_with(base: u8, tracked: &[Tracked], offsets: &[(i32, bool)]) -> (u8, bool) {
    if base == 255 {
        let fault = tracked.iter().any(|t| t.weight == 0 && faulty(t)) || offsets.iter().any(|(_, f)| *f);
        return (255, fault);
    }
    let mut p = i32::from(base);
    let mut fault = false;
    for (d, f) in offsets {
        p += d;
        fault |= f;
    }
    for t in tracked {
        let (good, bad) = match (t.health, t.reverse) {
            (Health::Unknown, _) => (false, false),
            (Health::Good, false) | (Health::Bad, true) => (true, false),
            (Health::Bad, false) | (Health::Good, true) => (false, true),
        };
        if t.weight == 0 {
            fault |= faulty(t);
        } else if (t.weight > 0 && good) || (t.weight < 0 && bad) {
            p += t.weight;
        }
    }
    (p.clamp(1, 254) as u8, fault)
}

fn faulty(t: &Tracked) -> bool {
    matches!((t.health, t.reverse), (Health::Bad, false) | (Health::Good, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(weight: i32, health: Health) -> Tracked {
        Tracked { weight, reverse: false, health }
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut s = Status::new(2, 3, false);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(Health::Good));
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "a success resets the failure count");
        assert_eq!((s.record(false), s.record(false)), (None, None));
        assert_eq!(s.record(false), Some(Health::Bad));
        assert_eq!(Status::new(1, 1, true).health(), Health::Bad);
    }

    #[test]
    fn a_reload_carries_the_verdict_as_keepalived() {
        // No verdict yet: starts over (INIT), whatever init_fail says.
        let s = Status::new(2, 2, false);
        assert_eq!(s.carried(3, 3), Status::new(3, 3, false));
        // Good stays good: a later single failure with fall 1 turns it.
        let mut good = Status::new(1, 1, false);
        good.record(true);
        let mut c = good.carried(1, 1);
        assert_eq!(c.health(), Health::Good);
        assert_eq!(c.record(false), Some(Health::Bad));
        // Good with one of three failures done, new fall 2: one more
        // tolerated... two left, capped to the new fall 2: two to go.
        let mut g3 = Status::new(1, 3, false);
        g3.record(true);
        g3.record(false);
        let mut c = g3.carried(1, 2);
        assert_eq!(c.health(), Health::Good);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(Health::Bad));
        // Bad (init_fail, never run): stays bad, a success turns it with rise 1.
        let mut c = Status::new(1, 1, true).carried(1, 1);
        assert_eq!(c.health(), Health::Bad);
        assert_eq!(c.record(true), Some(Health::Good));
        // Bad with 2 of 3 successes, new rise 5: 1 still needed.
        let mut b = Status::new(3, 1, true);
        b.record(true);
        b.record(true);
        let mut c = b.carried(5, 1);
        assert_eq!(c.health(), Health::Bad);
        assert_eq!(c.record(true), Some(Health::Good));
        // Bad with no success: all of the new rise needed.
        let mut c = Status::new(1, 1, true).carried(2, 1);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(Health::Good));
    }

    #[test]
    fn the_tutorials_priority_tables() {
        // Two nodes: base 50 and 1, check_nginx weight 100.
        assert_eq!(effective(50, &[t(100, Health::Unknown)]), (50, false));
        assert_eq!(effective(50, &[t(100, Health::Good)]), (150, false));
        assert_eq!(effective(1, &[t(100, Health::Good)]), (101, false));
        assert_eq!(effective(50, &[t(100, Health::Bad)]), (50, false));
        // Three nodes: 50, 1, 2 -> 150, 101, 102.
        assert_eq!(effective(2, &[t(100, Health::Good)]), (102, false));
    }

    #[test]
    fn negative_weights_reverse_and_fault() {
        assert_eq!(effective(150, &[t(-100, Health::Good)]), (150, false));
        assert_eq!(effective(150, &[t(-100, Health::Bad)]), (50, false));
        let rev = Tracked { weight: 100, reverse: true, health: Health::Bad };
        assert_eq!(effective(50, &[rev]), (150, false));
        assert_eq!(effective(100, &[t(0, Health::Bad)]), (100, true));
        assert_eq!(effective(100, &[t(0, Health::Unknown)]), (100, false));
        let rev0 = Tracked { weight: 0, reverse: true, health: Health::Good };
        assert_eq!(effective(100, &[rev0]), (100, true));
        // Clamped, and the owner keeps 255.
        assert_eq!(effective(200, &[t(100, Health::Good)]), (254, false));
        assert_eq!(effective(10, &[t(-100, Health::Bad)]), (1, false));
        assert_eq!(effective(255, &[t(-100, Health::Bad)]), (255, false));
    }

    #[test]
    fn offsets_add_and_fault() {
        assert_eq!(effective_with(100, &[], &[(30, false), (-10, false)]), (120, false));
        assert_eq!(effective_with(100, &[t(50, Health::Good)], &[(200, false)]), (254, false));
        assert_eq!(effective_with(100, &[], &[(0, true)]), (100, true));
        assert_eq!(effective_with(255, &[], &[(-50, false)]), (255, false));
        assert_eq!(effective_with(255, &[], &[(0, true)]), (255, true));
    }
}
