//! Running check and notify scripts: each check script in a task of its
//! own, one run at a time, killed (its whole process group: SIGTERM, then
//! SIGKILL 2 s later) when it overruns its timeout, which counts as a
//! failure. A hanging script stalls neither the others nor the state
//! machine.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid};
use tokio::sync::mpsc::UnboundedSender;

/// Who a script runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// User.
    pub uid: Uid,
    /// Group.
    pub gid: Gid,
}

/// A check script ready to run.
#[derive(Clone, Debug)]
pub struct CheckSpec {
    /// Index in the daemon's script table.
    pub index: usize,
    /// argv.
    pub argv: Vec<String>,
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Time a run may take.
    pub timeout: Duration,
    /// Who runs it (None: as the agent, root).
    pub run_as: Option<RunAs>,
}

/// A check's result: the script's index and whether it exited 0.
pub type CheckResult = (usize, bool);

/// Run `argv` once as `run_as`, give it `timeout`; true on exit status 0.
pub async fn run_once(argv: &[String], run_as: Option<RunAs>, timeout: Duration) -> bool {
    let Some((prog, args)) = argv.split_first() else { return false };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    // A run abandoned with its task (the agent stopping) takes the child along.
    cmd.kill_on_drop(true);
    // Not the agent's voice toward systemd (daemon/sd.rs).
    crate::daemon::sd::scrub(&mut cmd);
    if let Some(r) = run_as {
        cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("cannot run {prog}: {e}");
            return false;
        }
    };
    let pgid = child.id().map(|p| Pid::from_raw(p as i32));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        Err(_) => {
            if let Some(pg) = pgid {
                let _ = killpg(pg, Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
                    let _ = killpg(pg, Signal::SIGKILL);
                    let _ = child.wait().await;
                }
            }
            log::warn!("{prog} timed out after {timeout:?}: counted as a failure");
            false
        }
    }
}

/// Start the check loop of `spec`, reporting each result on `tx`.
pub fn spawn_check(spec: CheckSpec, tx: UnboundedSender<CheckResult>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            let ok = run_once(&spec.argv, spec.run_as, spec.timeout).await;
            if tx.send((spec.index, ok)).is_err() {
                return;
            }
            next += spec.interval;
            let now = tokio::time::Instant::now();
            // A run longer than the interval starts the next one at once.
            if next < now {
                next = now;
            }
            tokio::time::sleep_until(next).await;
        }
    })
}

/// Fire-and-forget a notify script, time-limited; never blocks the caller.
pub fn spawn_notify(argv: Vec<String>, run_as: Option<RunAs>) {
    tokio::spawn(async move {
        if !run_once(&argv, run_as, Duration::from_secs(30)).await {
            log::warn!("notify script {argv:?} failed");
        }
    });
}

/// keepalived splits a script line into words (quotes already removed by
/// the lexer for a single quoted string).
pub fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Start a long-running helper (a notify FIFO's script) and reap it when
/// it exits; it is not timed out, and it is left running when the agent
/// stops (it sees the FIFO's end of file, as with keepalived).
pub fn spawn_long(argv: Vec<String>, run_as: Option<RunAs>) {
    let Some((prog, args)) = argv.split_first() else { return };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    if let Some(r) = run_as {
        cmd.uid(r.uid.as_raw()).gid(r.gid.as_raw());
    }
    match cmd.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => log::error!("cannot run {prog}: {e}"),
    }
}
