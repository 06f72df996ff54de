//! The state of the `track_file` and `vrrp_track_process` trackers, fed
//! by their watchers ([`TrackEvent`]s) and read by the instances that
//! track them, through the same effective-priority rule as the scripts
//! ([`super::effective_with`]). Pure; a sync group can read it the same way.

use super::status::{Health, Tracked};
use super::track_file;

/// A tracker's change, from its watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackEvent {
    /// Track file `index` now reads `value`.
    File {
        /// Index in the configuration's `track_files`.
        index: usize,
        /// The number read.
        value: i64,
    },
    /// Track process `index` has (`up`) or lacks its quorum.
    Process {
        /// Index in the configuration's `track_processes`.
        index: usize,
        /// Quorum held.
        up: bool,
    },
}

/// Every tracker's current state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trackers {
    /// Track files' values by index (None: not watched).
    pub files: Vec<Option<i64>>,
    /// Track processes' health by index (Unknown until the first scan).
    pub procs: Vec<Health>,
}

/// One instance's (or group's) entry: tracker index, weight, reverse.
pub type Entry = (usize, i32, bool);

impl Trackers {
    /// Take a change; whether anything moved.
    pub fn apply(&mut self, ev: TrackEvent) -> bool {
        match ev {
            TrackEvent::File { index, value } => match self.files.get_mut(index) {
                Some(v) if *v != Some(value) => {
                    *v = Some(value);
                    true
                }
                _ => false,
            },
            TrackEvent::Process { index, up } => match self.procs.get_mut(index) {
                Some(h) => {
                    let new = if up { Health::Good } else { Health::Bad };
                    std::mem::replace(h, new) != new
                }
                None => false,
            },
        }
    }

    /// What the files tracked by `entries` add: (priority delta, fault)
    /// per entry.
    pub fn file_offsets<'a>(&'a self, entries: &'a [Entry]) -> impl Iterator<Item = (i32, bool)> + 'a {
        entries.iter().filter_map(|(i, w, r)| {
            let v = (*self.files.get(*i)?)?;
            Some(track_file::effect(v, *w, *r))
        })
    }

    /// The processes tracked by `entries`, as tracked scripts are
    /// (keepalived weighs them alike: a positive weight while up, a
    /// negative one while down, weight 0 down is FAULT, reverse swaps).
    pub fn processes<'a>(&'a self, entries: &'a [Entry]) -> impl Iterator<Item = Tracked> + 'a {
        entries
            .iter()
            .filter_map(|(i, w, r)| Some(Tracked { weight: *w, reverse: *r, health: *self.procs.get(*i)? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_reported_once() {
        let mut t = Trackers { files: vec![Some(0)], procs: vec![Health::Unknown] };
        assert!(t.apply(TrackEvent::File { index: 0, value: 3 }));
        assert!(!t.apply(TrackEvent::File { index: 0, value: 3 }));
        assert!(!t.apply(TrackEvent::File { index: 5, value: 3 }));
        assert!(t.apply(TrackEvent::Process { index: 0, up: false }));
        assert!(!t.apply(TrackEvent::Process { index: 0, up: false }));
        let e = [(0, 10, false)];
        assert_eq!(t.file_offsets(&e).collect::<Vec<_>>(), vec![(30, false)]);
        assert_eq!(t.processes(&e).next().map(|p| p.health), Some(Health::Bad));
    }
}
