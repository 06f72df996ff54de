//! keepalived's `vrrp_priority`, `vrrp_no_swap`, `vrrp_rt_priority` and
//! `vrrp_rlimit_rttime` (global_defs): the VRRP process's scheduling, set
//! as keepalived's `set_process_priorities` (lib/process.c) sets it, once
//! the instances have started.

use crate::config::model::Global;

/// What to ask of the kernel (pure: from the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// SCHED_RR at this priority, with RLIMIT_RTTIME (soft, hard) in µs.
    pub realtime: Option<(u8, u64, u64)>,
    /// The nice value (keepalived sets it only without realtime).
    pub nice: Option<i8>,
    /// mlockall.
    pub lock: bool,
}

/// keepalived: a realtime priority wins over the nice value, whose setting
/// it skips; the CPU limit's soft half sends SIGXCPU (logged), the hard
/// limit SIGKILL.
pub fn plan(g: &Global) -> Plan {
    let realtime = g.vrrp_rt_priority.map(|p| {
        let hard = u64::from(g.vrrp_rlimit_rttime);
        (p, hard / 2, hard)
    });
    Plan { realtime, nice: if realtime.is_some() { None } else { g.vrrp_priority }, lock: g.vrrp_no_swap }
}

/// Apply `plan` to the calling thread (the agent's loop: the runtime is
/// single-threaded on the main thread) and, for the realtime priority, to
/// `senders` (the advert thread: keepalived's one VRRP process both
/// decides and sends at that priority). Threads and processes started
/// afterwards do not inherit SCHED_RR (SCHED_RESET_ON_FORK, as keepalived,
/// so notify scripts run at normal priority). A failure is logged, as
/// keepalived does, and the agent goes on.
pub fn apply(plan: Plan, senders: &[libc::pid_t]) {
    if let Some((prio, soft, hard)) = plan.realtime {
        let sp = libc::sched_param { sched_priority: i32::from(prio) };
        for &tid in senders {
            // SAFETY: sched_setscheduler reads `sp` only; `tid` is a thread
            // of this process. RLIMIT_RTTIME is the process's: it covers it.
            if unsafe { libc::sched_setscheduler(tid, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &sp) } != 0
            {
                log::warn!(
                    "cannot set realtime priority {prio} on the advert thread: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        // SAFETY: sched_setscheduler reads `sp` only; 0 is the calling thread.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &sp) };
        if r != 0 {
            log::warn!("cannot set realtime priority {prio}: {}", std::io::Error::last_os_error());
        } else {
            log::info!("realtime priority {prio} (SCHED_RR)");
            watch_sigxcpu();
            let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            // SAFETY: setrlimit reads `lim` only.
            if unsafe { libc::setrlimit(libc::RLIMIT_RTTIME, &lim) } != 0 {
                log::warn!("cannot set the realtime CPU limit: {}", std::io::Error::last_os_error());
            }
        }
    } else if let Some(nice) = plan.nice {
        // SAFETY: plain system call; who 0 is the calling thread on Linux.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, i32::from(nice)) };
        if r != 0 {
            log::warn!("cannot set process priority {nice}: {}", std::io::Error::last_os_error());
        }
    }
    if plan.lock {
        // keepalived: MCL_ONFAULT, so only pages in use are locked.
        // SAFETY: plain system call.
        if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } != 0 {
            log::info!("unable to lock the process in memory: {}", std::io::Error::last_os_error());
        }
    }
}

/// SIGXCPU (the soft RLIMIT_RTTIME) would end the process: keepalived logs
/// it instead, and the hard limit (SIGKILL) is what ends a runaway.
fn watch_sigxcpu() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::from_raw(libc::SIGXCPU)) {
        Ok(mut s) => {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    log::info!(
                        "VRRP process has used too much CPU time, vrrp_rlimit_rttime may need to be increased"
                    );
                }
            });
        }
        Err(e) => log::warn!("SIGXCPU handler: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_wins_over_nice_as_in_keepalived() {
        let mut g = Global { vrrp_priority: Some(-5), ..Global::default() };
        assert_eq!(plan(&g), Plan { realtime: None, nice: Some(-5), lock: false });
        g.vrrp_rt_priority = Some(50);
        g.vrrp_no_swap = true;
        assert_eq!(plan(&g), Plan { realtime: Some((50, 5_000, 10_000)), nice: None, lock: true });
        assert_eq!(plan(&Global::default()), Plan { realtime: None, nice: None, lock: false });
    }
}
