//! `vrrp-agent run` as two processes, as keepalived runs its VRRP child
//! under a parent: a small synchronous supervisor that holds the instance
//! lock, and the worker (this binary again, with `--supervised`) that runs
//! the instances.
//!
//! A worker killed by SIGKILL (an OOM kill, a crash in a library) cannot
//! remove its VIPs: the dead node keeps answering ARP/ND for them while the
//! backup takes over. The supervisor sees the death at once (waitpid) and
//! removes the addresses the worker recorded in `<name>.vips`, then exits
//! non-zero (128 + signal for a signal) so systemd's `Restart=` applies.
//!
//! When: not at once, which would leave nobody answering until the backup
//! takes over, but 2 x advert_int after the death. RFC 5798 6.4.2: the
//! backup takes over Master_Down_Interval (3 x advert_int + Skew_Time)
//! after the last advert it heard, and a master that was advertising sent
//! its last one at most one advert_int before it died; so the takeover
//! comes no earlier than death + 2 x advert_int + Skew_Time, and the old
//! master is gone by then: never two holders, and the VIP is back on the
//! wire within Skew_Time + one advert_int. A stopped worker (SIGSTOP) is
//! treated the same unless it continues first; once resumed, the worker's
//! own address handling puts back what a master should hold.
//!
//! The supervisor forwards SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and
//! SIGUSR2 to the worker (which stops, reloads or dumps its state), and the worker has PR_SET_PDEATHSIG=SIGTERM: a supervisor
//! that is killed makes the worker resign cleanly (priority 0).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use vrrp_agent::daemon::{sd, status, vips};
use vrrp_agent::instance_lock;

/// Signals an operator or a tool sends to "the agent", passed on to the
/// worker, which handles them.
const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2];

/// Run the worker under supervision until it exits; returns the exit
/// status for this process.
pub fn run(args: &super::run::RunArgs) -> Result<i32> {
    let name = args.agent.name.as_str();
    // Held for as long as this process lives (and handed to the worker):
    // no second agent of this name can start, or take the dead worker's
    // leftovers as its own, before the clean-up here is done.
    let lock = instance_lock::acquire(name)?;
    // The configuration was parsed (for net_namespace) and dropped: give
    // its memory back before supervising for the agent's whole life.
    vrrp_agent::daemon::trim_heap();
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    // Blocked, and taken with sigtimedwait: no handler, no signal lost
    // between the spawn and the loop.
    set.thread_block().context("blocking signals")?;

    let (lock_fd, sock_fd) = lock.handover();
    let mut argv = std::env::args_os();
    let arg0 = argv.next().unwrap_or_else(|| OsString::from("vrrp-agent"));
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(arg0).args(argv).arg("--supervised").arg(format!("{lock_fd},{sock_fd}"));
    let parent = std::process::id();
    // systemd addressed its watchdog to this process (the unit's MAINPID);
    // the worker's loop is what pings it (daemon/sd.rs): without
    // WATCHDOG_PID, sd_watchdog_enabled's rule makes it the worker's.
    if sd::for_worker(std::env::var("WATCHDOG_PID").ok().as_deref(), parent) {
        cmd.env_remove("WATCHDOG_PID");
    }
    // SAFETY: only async-signal-safe calls (prctl, getppid, sigprocmask,
    // fcntl) between fork and exec, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died before the line above took effect: the
            // signal would never come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("supervisor gone"));
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            for fd in [lock_fd, sock_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // Ready before the worker starts (no thread: a current-thread runtime).
    let nl = Netlink::new()?;
    let _pid = super::run::PidFile::write(args.pid_file.as_ref(), std::process::id())?;
    let child = cmd.spawn().context("starting the worker")?;
    let worker = Pid::from_raw(i32::try_from(child.id()).context("worker pid")?);
    let _worker_pid = super::run::PidFile::write(args.worker_pid_file.as_ref(), child.id());
    log::info!("supervising worker pid {worker} (a worker killed or stopped loses its VIPs)");
    let code = supervise(name, worker, &set, &nl);
    drop(lock);
    Ok(code)
}

/// The loop: forward signals, follow the worker's stops and its death.
fn supervise(name: &str, worker: Pid, set: &SigSet, nl: &Netlink) -> i32 {
    // Set while the worker is stopped: when its VIPs go.
    let mut stopped: Option<(Instant, Signal)> = None;
    loop {
        match next_signal(set, stopped.map(|(at, _)| at)) {
            Some(Signal::SIGCHLD) => loop {
                let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
                match waitpid(worker, Some(flags)) {
                    Ok(WaitStatus::Exited(_, code)) => return died(name, worker, set, nl, Death::Exit(code)),
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        return died(name, worker, set, nl, Death::Signal(sig));
                    }
                    Ok(WaitStatus::Stopped(_, sig)) => {
                        let margin = takeover_margin(name, worker);
                        log::warn!(
                            "worker pid {worker} stopped ({sig}): its VIPs go in {} ms unless it continues",
                            margin.as_millis()
                        );
                        stopped = Some((Instant::now() + margin, sig));
                    }
                    Ok(WaitStatus::Continued(_)) => {
                        log::info!("worker pid {worker} continued");
                        stopped = None;
                    }
                    Ok(_) => break,
                    Err(Errno::EINTR) => {}
                    Err(e) => {
                        // ECHILD cannot happen with our only child; do not
                        // spin if it somehow does.
                        log::error!("waiting for worker pid {worker}: {e}");
                        return died(name, worker, set, nl, Death::Lost);
                    }
                }
            },
            Some(sig) => {
                let _ = kill(worker, sig);
                // A stopped worker would only act on it once continued, as
                // systemd does on stop (SIGTERM, then SIGCONT).
                if stopped.is_some() && matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
                    let _ = kill(worker, Signal::SIGCONT);
                }
            }
            None => {
                if let Some((at, sig)) = stopped
                    && Instant::now() >= at
                {
                    nl.remove(
                        name,
                        &format!("worker pid {worker} is stopped ({sig}) and the backup may take over"),
                    );
                    stopped = None;
                }
            }
        }
    }
}

enum Death {
    Exit(i32),
    Signal(Signal),
    Lost,
}

/// The worker is gone: remove what it still held (after the takeover
/// margin if it died uncleanly), and say how this process exits.
fn died(name: &str, worker: Pid, set: &SigSet, nl: &Netlink, death: Death) -> i32 {
    let (code, how) = match death {
        Death::Exit(0) => (0, None),
        Death::Exit(c) => (c, Some(format!("exited with status {c}"))),
        Death::Signal(s) => (128 + s as i32, Some(format!("was killed by {s}"))),
        Death::Lost => (1, Some("was lost".to_owned())),
    };
    if !vips::any_recorded(name) {
        if let Some(how) = &how {
            log::error!("worker pid {worker} {how}; it held no VIP");
        }
        return code;
    }
    let Some(how) = how else {
        // A clean stop that could not remove everything: no reason to wait.
        nl.remove(name, &format!("worker pid {worker} stopped without removing it"));
        let _ = std::fs::remove_file(vips::held_file(name));
        return code;
    };
    let margin = takeover_margin(name, worker);
    log::error!(
        "worker pid {worker} {how}; removing its VIPs in {} ms, before the backup can take over",
        margin.as_millis()
    );
    let at = Instant::now() + margin;
    // Wait out the margin; SIGTERM or SIGINT meanwhile (the service being
    // stopped) removes them at once, which never makes two holders.
    while Instant::now() < at {
        match next_signal(set, Some(at)) {
            Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => break,
            _ => continue,
        }
    }
    nl.remove(name, &format!("held by worker pid {worker}, which {how}"));
    let _ = std::fs::remove_file(vips::held_file(name));
    log::info!("exiting with status {code} (the worker {how})");
    code
}

/// How long after the worker's death or stop its VIPs may stay: twice the
/// shortest advert interval among its instances, from the status file the
/// worker wrote (nothing if that is not this worker's: remove at once).
fn takeover_margin(name: &str, worker: Pid) -> Duration {
    match status::read(name) {
        Ok(st) if i64::from(st.pid) == i64::from(worker.as_raw()) => {
            let centis = st.instances.iter().map(|i| u64::from(i.adver_int)).min().unwrap_or(0);
            Duration::from_millis(2 * centis * 10)
        }
        _ => Duration::ZERO,
    }
}

/// The next of `set`'s signals, or None once `until` has passed.
fn next_signal(set: &SigSet, until: Option<Instant>) -> Option<Signal> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = match until {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let ts = libc::timespec {
                    tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
                };
                // SAFETY: valid set, info and timeout pointers for the call.
                unsafe { libc::sigtimedwait(set.as_ref(), &mut info, &ts) }
            }
            // SAFETY: valid set and info pointers for the call.
            None => unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) },
        };
        if r > 0 {
            if let Ok(sig) = Signal::try_from(r) {
                return Some(sig);
            }
            continue;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            _ => return None,
        }
    }
}

/// A netlink handle ready before it is needed, so the removal is one
/// round trip after the death.
struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl Netlink {
    fn new() -> Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (conn, handle, _) = {
            let _in_rt = rt.enter();
            rtnetlink::new_connection().context("netlink")?
        };
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// Remove the recorded VIPs, logging each with `why`.
    fn remove(&self, name: &str, why: &str) {
        let done = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), vips::remove_recorded(name, &self.handle)).await
        });
        let Ok(done) = done else {
            log::error!("netlink hung removing the VIPs ({why})");
            return;
        };
        for (what, r) in done {
            match r {
                Ok(()) => log::warn!("removed {what}: {why}"),
                Err(e) => log::error!("removing {what}: {e} ({why})"),
            }
        }
    }
}
