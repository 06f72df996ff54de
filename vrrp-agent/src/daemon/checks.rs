//! The `vrrp_script` check loops the agent runs, one per tracked script,
//! and the states their results build (rise, fall). Started at start;
//! a reload keeps the unchanged ones running with their state, replaces
//! the changed ones (keepalived's carry-over of the verdict,
//! `Status::carried`), starts the newly tracked and stops the untracked
//! (`reload::script_plan`).
//!
//! Each loop reports under a slot number of its own, never reused: a
//! result of a replaced loop that was already on its way is recognised
//! as stale and dropped, and a loop kept across a reload that moved its
//! script in the table needs no restart.

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::config::Config;
use crate::health::runner::{self, CheckResult, CheckSpec};
use crate::health::{Status, user};

/// One tracked script's check loop.
pub(super) struct Check {
    /// What its results are reported under.
    slot: usize,
    /// Its task (None: the script is disabled, its user or permissions
    /// being refused; it stays tracked, with no verdict, as at start).
    task: Option<tokio::task::AbortHandle>,
}

/// The check loops and the scripts' states, by the script table's index.
pub(super) struct Checks {
    /// Per script: its name and state.
    pub(super) statuses: Vec<(String, Status)>,
    /// Per script: its loop, if some instance tracks it.
    loops: Vec<Option<Check>>,
    next_slot: usize,
    tx: UnboundedSender<CheckResult>,
    /// The one-time warnings given.
    warned: Warned,
}

/// keepalived's start-up warnings about who runs the scripts, once each.
#[derive(Default)]
struct Warned {
    /// "scripts are being executed but script_security not enabled".
    security: bool,
    /// "default user ... does not exist".
    default_user: bool,
}

impl Drop for Checks {
    fn drop(&mut self) {
        for c in self.loops.iter().flatten() {
            if let Some(t) = &c.task {
                t.abort();
            }
        }
    }
}

/// The script indices the instances of `cfg` track (a sync group's
/// `track_script` is in its members' already).
pub(super) fn used(cfg: &Config) -> Vec<bool> {
    let mut used = vec![false; cfg.scripts.len()];
    for inst in &cfg.instances {
        for t in &inst.track_script {
            if let Some(i) = cfg.scripts.iter().position(|s| s.name == t.name) {
                used[i] = true;
            }
        }
    }
    used
}

impl Checks {
    /// Start a check loop for every tracked script of `cfg` (untracked
    /// scripts do not run, as in keepalived); `default_user_warned`: the
    /// notify scripts' check already said the default user is missing.
    pub(super) fn start(cfg: &Config, default_user_warned: bool) -> (Checks, UnboundedReceiver<CheckResult>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut checks = Checks {
            statuses: cfg
                .scripts
                .iter()
                .map(|s| (s.name.clone(), Status::new(s.rise, s.fall, s.init_fail)))
                .collect(),
            loops: cfg.scripts.iter().map(|_| None).collect(),
            next_slot: 0,
            tx,
            warned: Warned { security: false, default_user: default_user_warned },
        };
        for (i, used) in used(cfg).into_iter().enumerate() {
            if used {
                checks.loops[i] = Some(checks.spawn(cfg, i));
            }
        }
        (checks, rx)
    }

    /// Whether script `i`'s check loop runs (some instance tracks it).
    pub(super) fn running(&self) -> Vec<bool> {
        self.loops.iter().map(Option::is_some).collect()
    }

    /// The script whose loop reports under `slot`; None for a loop a
    /// reload replaced or stopped.
    pub(super) fn index_of(&self, slot: usize) -> Option<usize> {
        self.loops.iter().position(|c| c.as_ref().is_some_and(|c| c.slot == slot))
    }

    /// Start script `i` of `cfg`: resolve who runs it, check its
    /// permissions as keepalived does, spawn its loop.
    fn spawn(&mut self, cfg: &Config, i: usize) -> Check {
        let slot = self.next_slot;
        self.next_slot += 1;
        let sc = &cfg.scripts[i];
        let security = cfg.global.enable_script_security;
        let argv = runner::argv(&sc.script);
        let run_as = match user::resolve(sc.user.as_ref(), cfg.global.script_user.as_ref(), security) {
            Ok(None) if !self.warned.default_user && sc.user.is_none() => {
                log::warn!(
                    "WARNING - default user '{}' for script execution does not exist - please create.",
                    user::DEFAULT_SCRIPT_USER
                );
                self.warned.default_user = true;
                None
            }
            Ok(r) => r,
            Err(e) => {
                log::error!("VRRP_Script({}) disabled: {e}", sc.name);
                return Check { slot, task: None };
            }
        };
        if security {
            if let Some(why) = argv.first().and_then(|p| user::unsafe_reason(p)) {
                log::error!("Unsafe permissions found for script '{}' - disabling ({why})", sc.script);
                return Check { slot, task: None };
            }
        } else if run_as.is_none() && !self.warned.security {
            log::warn!("SECURITY VIOLATION - scripts are being executed but script_security not enabled.");
            self.warned.security = true;
        }
        let interval = sc.interval;
        let timeout = sc.timeout.unwrap_or(sc.interval);
        let task =
            runner::spawn_check(CheckSpec { index: slot, argv, interval, timeout, run_as }, self.tx.clone());
        Check { slot, task: Some(task.abort_handle()) }
    }

    /// Carry out a reload's script plan: `new` is the new configuration,
    /// `plan` says per new script what happens (`reload::script_plan`).
    pub(super) fn reload(&mut self, new: &Config, plan: &super::reload::ScriptPlan) {
        use super::reload::ScriptChange;
        let mut old_loops: Vec<Option<Check>> = std::mem::take(&mut self.loops);
        let old_statuses = std::mem::take(&mut self.statuses);
        for &i in &plan.stop {
            if let Some(c) = old_loops.get_mut(i).and_then(Option::take) {
                log::info!("VRRP_Script({}) is no longer tracked: its checks stop", old_statuses[i].0);
                if let Some(t) = c.task {
                    t.abort();
                }
            }
        }
        let mut statuses = Vec::with_capacity(new.scripts.len());
        let mut loops = Vec::with_capacity(new.scripts.len());
        for (sc, what) in new.scripts.iter().zip(&plan.scripts) {
            let fresh = || Status::new(sc.rise, sc.fall, sc.init_fail);
            match *what {
                ScriptChange::Keep(i) => {
                    statuses.push((sc.name.clone(), old_statuses[i].1.clone()));
                    loops.push(old_loops[i].take());
                }
                ScriptChange::Replace(i) => {
                    if let Some(t) = old_loops[i].take().and_then(|c| c.task) {
                        t.abort();
                    }
                    let carried = old_statuses[i].1.carried(sc.rise, sc.fall);
                    match carried.health() {
                        crate::health::Health::Good => {
                            log::info!("VRRP_Script({}) considered successful on reload", sc.name)
                        }
                        crate::health::Health::Bad => {
                            log::info!("VRRP_Script({}) considered unsuccessful on reload", sc.name)
                        }
                        crate::health::Health::Unknown => {}
                    }
                    log::info!(
                        "VRRP_Script({}) Reload: its definition changed: checking with the new one",
                        sc.name
                    );
                    statuses.push((sc.name.clone(), carried));
                    loops.push(None);
                }
                ScriptChange::Start => {
                    log::info!("VRRP_Script({}) Reload: tracked now: starting its checks", sc.name);
                    statuses.push((sc.name.clone(), fresh()));
                    loops.push(None);
                }
                ScriptChange::Idle => {
                    statuses.push((sc.name.clone(), fresh()));
                    loops.push(None);
                }
            }
        }
        self.statuses = statuses;
        self.loops = loops;
        // Spawned once `self` is whole again (the replaced and started
        // ones were left empty above).
        for (j, what) in plan.scripts.iter().enumerate() {
            if matches!(what, ScriptChange::Replace(_) | ScriptChange::Start) {
                self.loops[j] = Some(self.spawn(new, j));
            }
        }
    }
}
