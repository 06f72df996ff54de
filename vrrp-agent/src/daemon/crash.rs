//! The supervisor's decisions after its worker died (pure; the process
//! handling is `cli/supervise.rs`): is it a crash worth a new worker at
//! once, has the crash loop gone on too long, and by when must the dead
//! worker's VIPs be gone unless the new worker claimed them (`live.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::machine::Micros;

/// How a worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Death {
    /// It exited with this status.
    Exit(i32),
    /// A signal killed it (its number).
    Signal(i32),
    /// waitpid failed.
    Lost,
}

/// Rust's exit status for a panic in the main thread.
pub const EXIT_PANIC: i32 = 101;

/// Whether `death` is a crash, after which a new worker starts at once:
/// killed by a signal (SIGKILL from the OOM killer or an operator,
/// SIGSEGV, SIGABRT, SIGBUS...) or a panic. A worker that exits with a
/// status of its own (a configuration refused, a privilege missing, a
/// runtime failure it reported) is not: the next one would fail the same
/// way, so the supervisor exits with that status as before, and the
/// handover status is a hitless restart.
pub fn is_crash(death: Death) -> bool {
    matches!(death, Death::Signal(_) | Death::Exit(EXIT_PANIC))
}

/// The default crash-loop limit: at most this many new workers after
/// crashes within `WINDOW`; the next crash within it ends the supervisor
/// (VIPs removed before a backup can take over, exit 128 + signal) and
/// leaves it to systemd's `Restart=`, whose own limit
/// (StartLimitBurst=5 in 10 s by default) then applies.
pub const LIMIT: usize = 5;
/// The crash-loop window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The crashes followed by a new worker, within the window.
#[derive(Debug)]
pub struct CrashLoop {
    limit: usize,
    window: Duration,
    at: VecDeque<Instant>,
}

impl CrashLoop {
    /// At most `limit` new workers within `window` (0: never one).
    pub fn new(limit: usize, window: Duration) -> CrashLoop {
        CrashLoop { limit, window, at: VecDeque::new() }
    }

    /// A crash at `now`: whether a new worker may start (counted if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        while self.at.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.at.pop_front();
        }
        if self.at.len() >= self.limit {
            return false;
        }
        self.at.push_back(now);
        true
    }

    /// New workers started within the window.
    pub fn recent(&self) -> usize {
        self.at.len()
    }
}

/// By when the dead worker's VIPs go unless its record was claimed: its
/// death plus `margin`, and no later than `masters_deadline` (its masters'
/// last advert + 2.5 x advert_int, from the live record).
///
/// RFC 5798 6.4.2: a backup takes over Master_Down_Interval (3 x
/// Master_Adver_Interval + Skew_Time, Skew_Time >= 0) after the last
/// advert it accepted. A master that was advertising sent its last one at
/// most one interval before it died, so death + 2 x advert_int (the
/// margin) comes before any takeover; but a worker that died before its
/// first advert (a new worker that claimed and was killed at once) last
/// advertised through its predecessor, longer ago: the record's times
/// bound that case, with half an interval kept for the removal, as the
/// new worker keeps half an interval for its first advert.
pub fn fence_deadline(death: Micros, margin: Micros, masters_deadline: Option<Micros>) -> Micros {
    let by_death = death.after(margin);
    masters_deadline.map_or(by_death, |m| m.min(by_death))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_are_signals_and_panics() {
        assert!(is_crash(Death::Signal(9)));
        assert!(is_crash(Death::Signal(6)));
        assert!(is_crash(Death::Exit(EXIT_PANIC)));
        for code in [0, 1, 2, 4, 75] {
            assert!(!is_crash(Death::Exit(code)), "{code}");
        }
        assert!(!is_crash(Death::Lost));
    }

    #[test]
    fn the_crash_loop_limit_counts_within_the_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = CrashLoop::new(5, s(60));
        for k in 0..5 {
            assert!(l.allow(t0 + s(k)), "crash {k}");
        }
        // A sixth within 60 s of the first: no new worker.
        assert!(!l.allow(t0 + s(10)));
        assert_eq!(l.recent(), 5);
        // The first has left the window: one more.
        assert!(l.allow(t0 + s(60)));
        assert!(!l.allow(t0 + s(60)));
        // Never, with 0.
        assert!(!CrashLoop::new(0, s(60)).allow(t0));
    }

    #[test]
    fn the_fence_comes_before_any_takeover() {
        // 100 ms adverts, margin 200 ms; died 10 ms after its last advert.
        assert_eq!(
            fence_deadline(Micros(1_010_000), Micros(200_000), Some(Micros(1_250_000))),
            Micros(1_210_000)
        );
        // Died 90 ms after it: the record's bound is earlier.
        assert_eq!(
            fence_deadline(Micros(1_090_000), Micros(200_000), Some(Micros(1_250_000))),
            Micros(1_250_000)
        );
        // No record: the margin alone (as before the record).
        assert_eq!(fence_deadline(Micros(1_000_000), Micros(200_000), None), Micros(1_200_000));
    }
}
