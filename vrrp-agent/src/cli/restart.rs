//! `vrrp-agent restart`: restart a running agent without a failover (a new
//! binary after an upgrade included). Sends SIGRTMIN+5 to its worker: the
//! worker stops without resigning and records its masters, its supervisor
//! executes the binary again under the same pid, and the new worker resumes
//! those instances as MASTER (daemon/resume.rs). keepalived has no
//! equivalent; `systemctl restart` remains a stop (resigning) and a start.

use anyhow::{Context, Result};
use vrrp_agent::daemon::signals::handover_signal;
use vrrp_agent::daemon::status;
use vrrp_agent::instance_lock;

#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// Name of the agent (its `--name`).
    #[arg(long, default_value = "default")]
    pub name: String,
}

pub fn run(args: &RestartArgs) -> Result<()> {
    if !instance_lock::is_running(&args.name) {
        return Err(super::exit::coded(
            super::exit::NOT_RUNNING,
            format!("agent {} is not running", args.name),
        ));
    }
    let st = status::read(&args.name)
        .with_context(|| format!("reading {}", status::path(&args.name).display()))?;
    let pid = i32::try_from(st.pid).context("pid")?;
    // SAFETY: kill(2) with a pid and a valid signal number.
    if unsafe { libc::kill(pid, handover_signal()) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("signalling worker pid {pid}"));
    }
    println!(
        "asked agent {} (worker pid {pid}) to restart without a failover; its log says \"Resuming MASTER STATE\" for each master",
        args.name
    );
    Ok(())
}
