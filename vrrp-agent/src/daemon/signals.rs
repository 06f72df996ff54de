//! Signals an operator or a tool commonly sends, none of them fatal without
//! a resignation: keepalived's meanings where it has them.
//!
//! | signal | what the agent does |
//! |---|---|
//! | SIGTERM, SIGINT, SIGQUIT | stop: resign as master (priority 0), remove the VIPs |
//! | SIGHUP | reload: read the configuration again (keepalived reloads) |
//! | SIGUSR1 | write the state to `/run/vrrp-agent/<name>.data` (keepalived: /tmp/keepalived.data) |
//! | SIGUSR2 | write the statistics to `/run/vrrp-agent/<name>.stats` (keepalived: /tmp/keepalived.stats) |
//! | SIGRTMIN+5 | hitless restart: stop without resigning, leave the VIPs and a resume record, exit 75 (the supervisor starts the new process at once; `vrrp-agent restart`) |
//! | SIGPIPE | ignored (Rust's runtime ignores it; a closed pipe is an error on the write) |
//!
//! SIGTERM and SIGINT also arrive through the shutdown future the caller
//! passes; SIGQUIT is caught here so that its default action (a core dump,
//! leaving the VIPs behind) never applies.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// Stop gracefully.
    Stop,
    /// Read the configuration again.
    Reload,
    /// Write the state.
    DumpData,
    /// Write the statistics.
    DumpStats,
    /// Stop for a hitless restart (`resume.rs`).
    Handover,
}

/// The hitless-restart signal, SIGRTMIN+5 (keepalived uses SIGRTMIN+2 for
/// its JSON dump; +5 is free in keepalived 2.2.7).
pub fn handover_signal() -> i32 {
    libc::SIGRTMIN() + 5
}

/// The handlers, installed for the agent's whole life (from the start, so
/// no window leaves a default action in place).
pub struct Signals {
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    quit: Signal,
    handover: Signal,
}

impl Signals {
    /// Install the handlers.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            quit: signal(SignalKind::quit())?,
            handover: signal(SignalKind::from_raw(handover_signal()))?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Sig {
        tokio::select! {
            Some(()) = self.hup.recv() => Sig::Reload,
            Some(()) = self.usr1.recv() => Sig::DumpData,
            Some(()) = self.usr2.recv() => Sig::DumpStats,
            Some(()) = self.quit.recv() => Sig::Stop,
            Some(()) = self.handover.recv() => Sig::Handover,
            else => std::future::pending().await,
        }
    }
}
