//! systemd's readiness protocol (`Type=notify`, sd_notify(3)) and its
//! watchdog, for the process that owns the state machines.
//!
//! Process model (cli/supervise.rs): systemd starts the supervisor (its
//! MAINPID), which forks and execs the worker; the worker runs the
//! instances. The worker notifies systemd directly and the unit says
//! `NotifyAccess=all`: only the worker knows when XDP is attached and
//! every instance has entered its first state, and only its select! loop
//! can prove with a watchdog ping that the machines are being served. A
//! relay through the supervisor would prove the supervisor alive, not the
//! loop. The scripts the worker starts must then not be able to speak for
//! it: they get neither NOTIFY_SOCKET nor WATCHDOG_* (`scrub`).
//!
//! The watchdog follows sd_watchdog_enabled(3): WATCHDOG_USEC applies
//! when WATCHDOG_PID is unset or ours. systemd sets WATCHDOG_PID to the
//! supervisor's pid; the supervisor, which does not ping, hands the
//! watchdog to its worker by not passing WATCHDOG_PID on (`for_worker`).

use std::time::Duration;

use sd_notify::NotifyState;

use crate::machine::State;

/// The variables of the protocol, none of which a script inherits.
pub const VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Keep `cmd`'s child (a check or notify script) out of the protocol: a
/// script that sent READY=1 or STOPPING=1 would lie about the agent.
pub fn scrub(cmd: &mut tokio::process::Command) {
    for v in VARS {
        cmd.env_remove(v);
    }
}

/// Whether the supervisor must drop WATCHDOG_PID from its worker's
/// environment: systemd addressed the watchdog to the supervisor (`pid`),
/// and the worker's loop is what pings it.
pub fn for_worker(watchdog_pid: Option<&str>, pid: u32) -> bool {
    watchdog_pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(pid)
}

/// How often to ping a watchdog of `timeout`: half of it, as
/// sd_watchdog_enabled(3) advises, so that one late wake-up is not fatal.
pub fn ping_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(1))
}

/// The one-line STATUS= summary: each instance's name and state.
pub fn summary<'a>(insts: impl Iterator<Item = (&'a str, State)>) -> String {
    let parts: Vec<String> = insts.map(|(n, s)| format!("{n} {s}")).collect();
    if parts.is_empty() { "no VRRP instance".to_owned() } else { parts.join(", ") }
}

/// The agent's side of the protocol.
#[derive(Debug, Default)]
pub struct Notifier {
    /// NOTIFY_SOCKET was set: systemd (or a test) listens.
    enabled: bool,
    /// The watchdog's ping interval, when one applies to this process.
    pub ping: Option<Duration>,
    /// The states last reported in STATUS=, to send it on change only.
    last: Vec<State>,
}

impl Notifier {
    /// From this process's environment.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let ping = if enabled { sd_notify::watchdog_enabled().map(ping_interval) } else { None };
        if let Some(p) = ping {
            log::info!("systemd watchdog enabled: pinging every {} ms", p.as_millis());
        }
        Notifier { enabled, ping, last: Vec::new() }
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            log::warn!("notifying systemd: {e}");
        }
    }

    /// Every instance has entered its first state (or a reload is done).
    pub fn ready<'a>(&mut self, insts: impl Iterator<Item = (&'a str, State)> + Clone) {
        let status = summary(insts.clone());
        self.last = insts.map(|(_, s)| s).collect();
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// A STATUS= line when some instance's state changed since the last;
    /// compared without allocating (a master passes here per advert).
    pub fn states<'a>(&mut self, insts: impl Iterator<Item = (&'a str, State)> + Clone) {
        if !self.enabled || insts.clone().map(|(_, s)| s).eq(self.last.iter().copied()) {
            return;
        }
        self.last = insts.clone().map(|(_, s)| s).collect();
        self.send(&[NotifyState::Status(&summary(insts))]);
    }

    /// A reload begins (SIGHUP); `ready` ends it.
    pub fn reloading(&self) {
        // MONOTONIC_USEC lets Type=notify-reload match the two; plain
        // Type=notify ignores it.
        let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading the configuration")];
        if let Ok(m) = NotifyState::monotonic_usec_now() {
            states.push(m);
        }
        self.send(&states);
    }

    /// The agent stops: resigning and removing its VIPs.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping: resigning as master")]);
    }

    /// The loop is alive.
    pub fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// The watchdog's next tick; never, without a watchdog.
pub async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_pid_is_the_supervisors_or_not() {
        assert!(for_worker(Some("42"), 42));
        assert!(!for_worker(Some("43"), 42));
        assert!(!for_worker(None, 42));
        assert!(!for_worker(Some("x"), 42));
    }

    #[test]
    fn pings_at_half_the_timeout() {
        assert_eq!(ping_interval(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(ping_interval(Duration::from_micros(1)), Duration::from_millis(1));
    }

    #[test]
    fn summary_names_each_state() {
        assert_eq!(
            summary([("VI_1", State::Master), ("VI_2", State::Backup)].into_iter()),
            "VI_1 MASTER, VI_2 BACKUP"
        );
        assert_eq!(summary(std::iter::empty()), "no VRRP instance");
    }

    #[test]
    fn status_only_on_change() {
        let mut n = Notifier { enabled: true, ping: None, last: vec![State::Backup] };
        // Unchanged: nothing recorded anew (and nothing sent).
        n.states([("VI_1", State::Backup)].into_iter());
        assert_eq!(n.last, [State::Backup]);
        n.enabled = false;
        n.states([("VI_1", State::Master)].into_iter());
        assert_eq!(n.last, [State::Backup], "disabled: nothing tracked");
    }
}
