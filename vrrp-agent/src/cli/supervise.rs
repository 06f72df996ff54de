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
//! The supervisor forwards SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1,
//! SIGUSR2 and SIGRTMIN+5 to the worker (which stops, reloads, dumps its
//! state or stops for a restart), and the worker has
//! PR_SET_PDEATHSIG=SIGTERM: a supervisor that is killed makes the worker
//! resign cleanly (priority 0).
//!
//! A hitless restart (SIGRTMIN+5, `vrrp-agent restart`): the worker stops
//! without resigning, leaves its VIPs and a resume record and exits 75;
//! the supervisor then removes nothing and executes the binary again
//! (the file on disk, so an upgraded one), keeping its pid: systemd sees
//! no stop, and the new worker resumes as MASTER (daemon/resume.rs).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use vrrp_agent::daemon::signals::handover_signal;
use vrrp_agent::daemon::{resume, sd, status, vips};
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
    // nix's Signal has no real-time signals: the handover one is added
    // to the raw set.
    let mut raw = *set.as_ref();
    // SAFETY: a valid sigset_t and a valid signal number.
    unsafe { libc::sigaddset(&mut raw, handover_signal()) };
    // SAFETY: built from a valid SigSet by sigaddset.
    let set = unsafe { SigSet::from_sigset_t_unchecked(raw) };
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
    let worker_mask = vrrp_agent::daemon::signals::blocked_until_handled();
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
            // The signals the worker handles stay blocked across the exec
            // until its handlers exist (daemon/signals.rs): one sent while
            // it reads its configuration waits instead of killing it by
            // the default action. Everything else (SIGCHLD) is unblocked.
            libc::sigprocmask(libc::SIG_SETMASK, &worker_mask, std::ptr::null_mut());
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
    WORKER.store(worker.as_raw(), std::sync::atomic::Ordering::Relaxed);
    let code = supervise(name, worker, &set, &nl);
    drop(lock);
    if code == resume::EXIT_HANDOVER {
        // The lock is released (its descriptors close on exec too); the
        // pid file keeps this pid, which the new image writes again.
        drop(_pid);
        let err = reexec();
        // Nobody resumes: what the worker left goes now, as after a crash
        // (one holder: the backup takes over within its Master_Down_Interval).
        log::error!("executing the agent again for the restart: {err}; removing what the worker held");
        nl.remove(name, "held by the worker that stopped for a restart that failed");
        let _ = std::fs::remove_file(vips::held_file(name));
        let _ = std::fs::remove_file(resume::record_file(name));
        return Ok(1);
    }
    Ok(code)
}

/// The worker's pid, for forwarding the handover signal (which nix's
/// `Signal` cannot name) from `next_signal`.
static WORKER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Replace this process with the agent's binary as it is on disk now (an
/// upgrade replaces the file; /proc/self/exe would be the old one), with
/// the same arguments. Returns only on failure.
fn reexec() -> std::io::Error {
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("vrrp-agent"));
    let exe = std::env::current_exe().ok();
    // argv[0] as started (systemd gives the absolute path), else the
    // executable's path without the " (deleted)" of a replaced file.
    let path = if std::path::Path::new(&arg0).is_absolute() {
        std::path::PathBuf::from(&arg0)
    } else {
        exe.map(|p| {
            let s = p.to_string_lossy();
            std::path::PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
        })
        .unwrap_or_else(|| std::path::PathBuf::from("/proc/self/exe"))
    };
    log::info!("executing {} again for the restart", path.display());
    Command::new(path).arg0(arg0).args(args).exec()
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
    if let Death::Exit(resume::EXIT_HANDOVER) = death
        && resume::record_file(name).exists()
    {
        // A hitless restart: what it holds is the next worker's.
        log::info!("worker pid {worker} stopped for a restart; its VIPs stay for the next one");
        return resume::EXIT_HANDOVER;
    }
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
            if r == handover_signal() {
                let w = WORKER.load(std::sync::atomic::Ordering::Relaxed);
                if w > 0 {
                    // SAFETY: kill(2) with a pid and a valid signal number.
                    unsafe { libc::kill(w, r) };
                }
                continue;
            }
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
