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
//! passes, but that future installs its handlers only when first polled,
//! by the event loop after every instance took its first state: a SIGTERM
//! in between (right after 2,250 instances logged BACKUP) killed the worker
//! by the default action, VIPs and all. So they are caught here too, from
//! the start; SIGQUIT is caught here so that its default action (a core
//! dump, leaving the VIPs behind) never applies.
//!
//! Before even that, a supervised worker inherits these signals blocked
//! (`BLOCKED_UNTIL_HANDLED`, set by the supervisor across the exec): one
//! sent while the worker reads its configuration stays pending until
//! `Signals::install` has the handlers in place and unblocks it.

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

/// The signals a supervised worker starts with blocked, until
/// `Signals::install` handles them: every one whose default action would
/// end it (the supervisor forwards them all) and the handover signal.
pub const BLOCKED_UNTIL_HANDLED: [i32; 6] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

/// `BLOCKED_UNTIL_HANDLED` and the handover signal, as a set.
pub fn blocked_until_handled() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset with valid
    // signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in BLOCKED_UNTIL_HANDLED {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, handover_signal());
        set
    }
}

/// The handlers, installed for the agent's whole life (from the start, so
/// no window leaves a default action in place).
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    quit: Signal,
    handover: Signal,
}

impl Signals {
    /// Install the handlers.
    pub fn install() -> io::Result<Signals> {
        let signals = Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
            quit: signal(SignalKind::quit())?,
            handover: signal(SignalKind::from_raw(handover_signal()))?,
        };
        // Handled now: what the supervisor kept blocked (and anything sent
        // meanwhile, pending) is delivered to the handlers.
        let set = blocked_until_handled();
        // SAFETY: a valid sigset_t; a null old set is allowed.
        if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(signals)
    }

    /// The next signal.
    pub async fn next(&mut self) -> Sig {
        tokio::select! {
            Some(()) = self.term.recv() => Sig::Stop,
            Some(()) = self.int.recv() => Sig::Stop,
            Some(()) = self.hup.recv() => Sig::Reload,
            Some(()) = self.usr1.recv() => Sig::DumpData,
            Some(()) = self.usr2.recv() => Sig::DumpStats,
            Some(()) = self.quit.recv() => Sig::Stop,
            Some(()) = self.handover.recv() => Sig::Handover,
            else => std::future::pending().await,
        }
    }
}
