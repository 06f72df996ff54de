//! `vrrp-agent run` as two processes, as keepalived runs its VRRP child
//! under a parent: a small synchronous supervisor that holds the instance
//! lock, and the worker (a fork of it, which runs the daemon with the
//! lock handed over as in `--supervised`) that runs the instances.
//!
//! A worker that crashes (killed by SIGKILL, an OOM kill, SIGSEGV,
//! SIGABRT, a panic) cannot remove its VIPs, and its masters stop
//! advertising. The supervisor sees the death at once (waitpid) and starts
//! a new worker at once, with the same command and the same lock
//! handover. The new worker reads the live record the dead one kept
//! (daemon/live.rs: per instance MASTER or not, its identity, its last
//! advert) and resumes each master that is configured as it was and last
//! advertised less than 2.5 x advert_int ago, exactly as after a hitless
//! restart (daemon/resume.rs): it takes the VIPs over and advertises at
//! once, and the backups, whose Master_Down_Timer had not run out, never
//! move.
//!
//! One holder is the hard rule, so the old guarantee stays: the dead
//! worker's VIPs (as it recorded them in `<name>.vips`) are removed before
//! any backup can take over, unless the new worker has claimed them
//! first. RFC 5798 6.4.2: the backup takes over Master_Down_Interval
//! (3 x advert_int + Skew_Time) after the last advert it heard, and a
//! master that was advertising sent its last one at most one advert_int
//! before it died; so the takeover comes no earlier than death +
//! 2 x advert_int + Skew_Time. The supervisor fences at death + 2 x
//! advert_int (earlier if the record shows an older last advert:
//! daemon/crash.rs `fence_deadline`); claim and fence are one
//! compare-exchange each on the record's owner word, so exactly one of
//! them wins: a fenced record's worker starts normally, a claimed
//! record's VIPs stay.
//!
//! A crash loop (more than `--respawn-limit` crashes, default 5, within
//! 60 s) ends as before the new worker existed: the VIPs go at the fence
//! deadline and the supervisor exits 128 + signal, so that systemd's
//! `Restart=` applies (and its own start limit). A worker that exits with
//! a status of its own (configuration refused, privilege missing) is not
//! started again either. A stopped worker (SIGSTOP) is not a crash: it
//! keeps its process, and loses its VIPs 2 x advert_int after the stop
//! unless it continues first; once continued, the worker's own address
//! handling puts back what a master should hold.
//!
//! The supervisor forwards SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1,
//! SIGUSR2 and SIGRTMIN+5 to the worker (which stops, reloads, dumps its
//! state or stops for a restart), and the worker has
//! PR_SET_PDEATHSIG=SIGTERM: a supervisor that is killed makes the worker
//! resign cleanly (priority 0). A worker that dies after a stop was asked
//! for is not started again.
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
use vrrp_agent::daemon::crash::{self, CrashLoop, Death};
use vrrp_agent::daemon::signals::handover_signal;
use vrrp_agent::daemon::{live, resume, sd, status, timer, vips};
use vrrp_agent::instance_lock;
use vrrp_agent::machine::Micros;

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
    let parent = std::process::id();
    // systemd addressed its watchdog to this process (the unit's MAINPID);
    // the worker's loop is what pings it (daemon/sd.rs): without
    // WATCHDOG_PID, sd_watchdog_enabled's rule makes it the worker's.
    let drop_watchdog = sd::for_worker(std::env::var("WATCHDOG_PID").ok().as_deref(), parent);
    let worker_mask = vrrp_agent::daemon::signals::blocked_until_handled();
    let mut worker_args = args.clone();
    worker_args.supervised = Some(format!("{lock_fd},{sock_fd}"));
    let spawn = || spawn_worker(&worker_args, parent, worker_mask, drop_watchdog);
    // Ready before the worker starts (no thread: a current-thread runtime).
    let nl = Netlink::new()?;
    let _pid = super::run::PidFile::write(args.pid_file.as_ref(), std::process::id())?;
    let mut crashes = CrashLoop::new(args.respawn_limit, crash::WINDOW);
    let mut sup = Supervisor { name, set, nl: &nl, pending: None, stopping: false };
    let mut first = true;
    let mut worker_pid_file: Option<super::run::PidFile> = None;
    let code = loop {
        let child = match spawn() {
            Ok(c) => c,
            Err(e) if first => return Err(e).context("starting the worker"),
            Err(e) => {
                // Nobody takes the dead worker's VIPs over: they go at the
                // fence deadline, as at the end of a crash loop.
                log::error!("starting a new worker: {e}");
                break sup.give_up(1, "no new worker could be started");
            }
        };
        first = false;
        let worker = child;
        // The old one first: its Drop removes the file.
        drop(worker_pid_file.take());
        worker_pid_file =
            super::run::PidFile::write(args.worker_pid_file.as_ref(), worker.as_raw().unsigned_abs()).ok();
        log::info!(
            "supervising worker pid {worker} (a crashed worker is replaced at once and resumes its masters in time; a stopped one loses its VIPs)"
        );
        WORKER.store(worker.as_raw(), std::sync::atomic::Ordering::Relaxed);
        match sup.supervise(worker) {
            Ended::Done(code) => break code,
            Ended::Crashed(death) => {
                let how = describe(death);
                sup.note_crash(worker, &how);
                if sup.stopping {
                    break sup
                        .give_up(exit_code(death), &format!("worker pid {worker} {how} while stopping"));
                }
                if crashes.allow(Instant::now()) {
                    log::error!(
                        "worker pid {worker} {how}; starting a new worker at once ({} of {} within {} s): it resumes its masters if in time, else their VIPs go before the backup can take over",
                        crashes.recent(),
                        args.respawn_limit,
                        crash::WINDOW.as_secs()
                    );
                    continue;
                }
                if args.respawn_limit == 0 {
                    log::error!("worker pid {worker} {how}; not starting another (--respawn-limit 0)");
                } else {
                    log::error!(
                        "worker pid {worker} {how}: crash loop ({} crashes within {} s, --respawn-limit {}); not starting another",
                        args.respawn_limit + 1,
                        crash::WINDOW.as_secs(),
                        args.respawn_limit
                    );
                }
                if !vips::any_recorded(name) {
                    // Nothing to wait for (a backup, or nothing added yet).
                    log::error!("worker pid {worker} {how}; it held no VIP");
                    if let Some(rec) = live::read(name) {
                        rec.fence_any();
                    }
                    break exit_code(death);
                }
                break sup.give_up(exit_code(death), &format!("held by worker pid {worker}, which {how}"));
            }
        }
    };
    drop(lock);
    if code == resume::EXIT_HANDOVER {
        // The lock is released (its descriptors close on exec too); the
        // pid file keeps this pid, which the new image writes again.
        drop(_pid);
        let err = reexec();
        // Nobody resumes: what the worker left goes now, as after a crash
        // (one holder: the backup takes over within its Master_Down_Interval).
        log::error!("executing the agent again for the restart: {err}; removing what the worker held");
        // Its live record too: nothing resumes VIPs removed here.
        if let Some(rec) = live::read(name) {
            rec.fence_any();
        }
        nl.remove(name, "held by the worker that stopped for a restart that failed");
        let _ = std::fs::remove_file(vips::held_file(name));
        let _ = std::fs::remove_file(resume::record_file(name));
        return Ok(1);
    }
    Ok(code)
}

/// Start a worker: fork, and run the daemon in the child (`worker_args`
/// carry the lock handover). A fork without an exec: the worker needs
/// this binary, which is already mapped, and an exec of it (the dynamic
/// loader, the runtime's start, the command line parsed again) was 2-10 ms
/// of every start on the 2-core VM (bench-results/startup.md); keepalived
/// forks its VRRP child the same way. The child is the same image as a
/// `/proc/self/exe` exec would have run (an upgrade replaces the file,
/// not this process: a hitless restart re-executes the supervisor for
/// that, `reexec`).
fn spawn_worker(
    worker_args: &super::run::RunArgs,
    parent: u32,
    worker_mask: libc::sigset_t,
    drop_watchdog: bool,
) -> std::io::Result<Pid> {
    // SAFETY: this process has a single thread (main.rs starts the
    // supervisor before any runtime or thread exists, and it starts none),
    // so the child may allocate and run anything: no lock is held by a
    // thread that does not exist in it.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            // SAFETY: prctl with an integer argument.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) } != 0 {
                std::process::exit(1);
            }
            // The supervisor died before the line above took effect: the
            // signal would never come.
            if nix::unistd::getppid().as_raw().unsigned_abs() != parent {
                std::process::exit(1);
            }
            // The signals the worker handles stay blocked until its
            // handlers exist (daemon/signals.rs): one sent while it reads
            // its configuration waits instead of killing it by the default
            // action. Everything else (SIGCHLD) is unblocked.
            // SAFETY: a valid sigset_t; the old mask is not wanted.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &worker_mask, std::ptr::null_mut()) };
            if drop_watchdog {
                // SAFETY: this child has one thread (see above): nothing
                // reads the environment concurrently.
                unsafe { std::env::remove_var("WATCHDOG_PID") };
            }
            // Never returns into the supervisor's frames (whose drops
            // would remove its pid file and lock).
            std::process::exit(crate::worker_exit_code(worker_args.clone()))
        }
    }
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

/// How supervising one worker ended.
enum Ended {
    /// This process exits with the status (or re-executes for 75).
    Done(i32),
    /// The worker crashed (`crash::is_crash`): maybe a new one.
    Crashed(Death),
}

/// A dead worker's VIPs, due to go at `at` unless its record was claimed.
struct Fence {
    /// Its live record as found at the death (None: none was readable).
    found: Option<live::Found>,
    at: Instant,
    dead: Pid,
    how: String,
}

struct Supervisor<'a> {
    name: &'a str,
    set: SigSet,
    nl: &'a Netlink,
    /// The fence of the last crash, until it is done or claimed.
    pending: Option<Fence>,
    /// A stop was forwarded: a worker that dies now is not replaced.
    stopping: bool,
}

fn describe(death: Death) -> String {
    match death {
        Death::Exit(c) => format!("exited with status {c}"),
        Death::Signal(s) => match Signal::try_from(s) {
            Ok(sig) => format!("was killed by {sig}"),
            Err(_) => format!("was killed by signal {s}"),
        },
        Death::Lost => "was lost".to_owned(),
    }
}

fn exit_code(death: Death) -> i32 {
    match death {
        Death::Exit(c) => c,
        Death::Signal(s) => 128 + s,
        Death::Lost => 1,
    }
}

impl Supervisor<'_> {
    /// Forward signals, follow the worker's stops and its death, and fence
    /// a crashed predecessor's VIPs when due.
    fn supervise(&mut self, worker: Pid) -> Ended {
        // Set while the worker is stopped: when its VIPs go.
        let mut stopped: Option<(Instant, Signal)> = None;
        loop {
            let until =
                [stopped.map(|(at, _)| at), self.pending.as_ref().map(|f| f.at)].into_iter().flatten().min();
            match next_signal(&self.set, until) {
                Some(Signal::SIGCHLD) => loop {
                    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
                    let death = match waitpid(worker, Some(flags)) {
                        Ok(WaitStatus::Exited(_, code)) => Death::Exit(code),
                        Ok(WaitStatus::Signaled(_, sig, _)) => Death::Signal(sig as i32),
                        Ok(WaitStatus::Stopped(_, sig)) => {
                            let margin = takeover_margin(self.name, worker);
                            log::warn!(
                                "worker pid {worker} stopped ({sig}): its VIPs go in {} ms unless it continues",
                                margin.as_millis()
                            );
                            stopped = Some((Instant::now() + margin, sig));
                            continue;
                        }
                        Ok(WaitStatus::Continued(_)) => {
                            log::info!("worker pid {worker} continued");
                            stopped = None;
                            continue;
                        }
                        Ok(_) => break,
                        Err(Errno::EINTR) => continue,
                        Err(e) => {
                            // ECHILD cannot happen with our only child; do not
                            // spin if it somehow does.
                            log::error!("waiting for worker pid {worker}: {e}");
                            Death::Lost
                        }
                    };
                    if crash::is_crash(death) {
                        return Ended::Crashed(death);
                    }
                    return Ended::Done(self.died(worker, death));
                },
                Some(sig) => {
                    if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
                        self.stopping = true;
                    }
                    let _ = kill(worker, sig);
                    // A stopped worker would only act on it once continued, as
                    // systemd does on stop (SIGTERM, then SIGCONT).
                    if stopped.is_some() && matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
                    {
                        let _ = kill(worker, Signal::SIGCONT);
                    }
                }
                None => {
                    let now = Instant::now();
                    if let Some((at, sig)) = stopped
                        && now >= at
                    {
                        self.nl.remove(
                            self.name,
                            &format!("worker pid {worker} is stopped ({sig}) and the backup may take over"),
                        );
                        stopped = None;
                    }
                    if self.pending.as_ref().is_some_and(|f| now >= f.at) {
                        self.fence_due(Some(worker));
                    }
                }
            }
        }
    }

    /// Worker `worker` crashed: the fence for what it held. Its own record
    /// (it claimed one) gets a new fence; one that it never claimed (it
    /// died while starting) keeps the pending fence of its predecessor,
    /// whose VIPs those still are.
    fn note_crash(&mut self, worker: Pid, how: &str) {
        let found = live::read(self.name);
        let owned = found.as_ref().is_some_and(|f| i64::from(f.owner.pid) == i64::from(worker.as_raw()));
        if !owned && self.pending.is_some() {
            return;
        }
        let now_us = timer::now();
        // Twice the shortest interval: from the record when it is this
        // worker's, else from its status file (none: at once).
        let margin = match &found {
            Some(f) if owned && !f.slots.is_empty() => {
                let min = f.slots.iter().flatten().map(|s| s.advert_cs).min().unwrap_or(0);
                Micros(2 * Micros::from_centis(vrrp_common::Centis(min)).0)
            }
            _ => Micros(u64::try_from(takeover_margin(self.name, worker).as_micros()).unwrap_or(u64::MAX)),
        };
        let due =
            crash::fence_deadline(now_us, margin, found.as_ref().and_then(live::Found::masters_deadline));
        let at = Instant::now() + Duration::from_micros(due.0.saturating_sub(now_us.0));
        self.pending = Some(Fence { found, at, dead: worker, how: how.to_owned() });
    }

    /// The pending fence is due: the dead worker's VIPs go unless the
    /// worker now running (`live`) claimed its record first.
    fn fence_due(&mut self, live_worker: Option<Pid>) {
        let Some(f) = self.pending.take() else { return };
        let (dead, how) = (f.dead, &f.how);
        let fenced = match &f.found {
            Some(rec) => match rec.fence() {
                Ok(_) => true,
                Err(o) if o.pid != 0 => {
                    log::info!("worker pid {} took over what worker pid {dead} held", o.pid);
                    false
                }
                // Fenced already (a record left fenced by an earlier
                // supervisor): the VIPs go again, which is harmless.
                Err(_) => true,
            },
            // No record of the dead worker: unless the new worker has one
            // (it then started normally and removed what it found), the
            // VIPs go, as before records existed.
            None => !live_worker.is_some_and(|w| {
                live::read(self.name).is_some_and(|r| i64::from(r.owner.pid) == i64::from(w.as_raw()))
            }),
        };
        if fenced {
            self.nl.remove(
                self.name,
                &format!("held by worker pid {dead}, which {how}, and not taken over before the backup could take over"),
            );
            if live_worker.is_none() {
                let _ = std::fs::remove_file(vips::held_file(self.name));
            }
        }
    }

    /// No worker runs from here on: wait for the pending fence (a stop
    /// request meanwhile removes the VIPs at once, which never makes two
    /// holders), fence the record whatever it says, remove what is
    /// recorded, and exit with `code`.
    fn give_up(&mut self, code: i32, why: &str) -> i32 {
        let at = self.pending.as_ref().map_or_else(Instant::now, |f| f.at);
        log::error!(
            "removing the VIPs in {} ms, before the backup can take over",
            at.saturating_duration_since(Instant::now()).as_millis()
        );
        while Instant::now() < at {
            match next_signal(&self.set, Some(at)) {
                Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => break,
                _ => continue,
            }
        }
        if let Some(rec) = self.pending.take().and_then(|f| f.found).or_else(|| live::read(self.name)) {
            rec.fence_any();
        }
        self.nl.remove(self.name, why);
        let _ = std::fs::remove_file(vips::held_file(self.name));
        // Fenced and its VIPs gone: nothing for a later start to resume.
        live::remove(self.name);
        log::info!("exiting with status {code} ({why})");
        code
    }

    /// The worker is gone without a crash: remove what it still held (after
    /// the takeover margin if it died uncleanly), and say how this process
    /// exits.
    fn died(&mut self, worker: Pid, death: Death) -> i32 {
        if let Death::Exit(resume::EXIT_HANDOVER) = death
            && resume::record_file(self.name).exists()
        {
            // A hitless restart: what it holds is the next worker's.
            log::info!("worker pid {worker} stopped for a restart; its VIPs stay for the next one");
            return resume::EXIT_HANDOVER;
        }
        let code = self.remove_what_it_held(worker, death);
        // No worker runs from here on and what it held is gone: a later
        // start (systemd's Restart=) must not resume from its record.
        if let Some(rec) = live::read(self.name) {
            rec.fence_any();
        }
        live::remove(self.name);
        code
    }

    /// What `died` does for a worker that did not stop for a restart.
    fn remove_what_it_held(&mut self, worker: Pid, death: Death) -> i32 {
        let code = exit_code(death);
        let how = match death {
            Death::Exit(0) => None,
            d => Some(describe(d)),
        };
        // A crashed predecessor's record this worker never claimed (it
        // exited while starting): no worker will claim it now.
        if self.pending.is_some() {
            self.fence_due(None);
        }
        if !vips::any_recorded(self.name) {
            if let Some(how) = &how {
                log::error!("worker pid {worker} {how}; it held no VIP");
            }
            return code;
        }
        let Some(how) = how else {
            // A clean stop that could not remove everything: no reason to wait.
            self.nl.remove(self.name, &format!("worker pid {worker} stopped without removing it"));
            let _ = std::fs::remove_file(vips::held_file(self.name));
            return code;
        };
        let margin = takeover_margin(self.name, worker);
        log::error!(
            "worker pid {worker} {how}; removing its VIPs in {} ms, before the backup can take over",
            margin.as_millis()
        );
        let at = Instant::now() + margin;
        // Wait out the margin; SIGTERM or SIGINT meanwhile (the service being
        // stopped) removes them at once, which never makes two holders.
        while Instant::now() < at {
            match next_signal(&self.set, Some(at)) {
                Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => break,
                _ => continue,
            }
        }
        self.nl.remove(self.name, &format!("held by worker pid {worker}, which {how}"));
        let _ = std::fs::remove_file(vips::held_file(self.name));
        log::info!("exiting with status {code} (the worker {how})");
        code
    }
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
