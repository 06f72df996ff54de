//! `vrrp-agent run`: the daemon.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Result, bail};
use vrrp_agent::config::{self, ConfigError};
use vrrp_agent::daemon;

use super::AgentArgs;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// keepalived.conf to run (default: /etc/vrrp-agent/vrrp-agent.conf if
    /// present, else /etc/keepalived/keepalived.conf).
    #[arg(short = 'f', long = "config")]
    config: Option<PathBuf>,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Run in this process alone, without the supervisor that removes the
    /// VIPs of a worker that was killed (for debugging and tests; a
    /// SIGKILLed agent then leaves its VIPs until its next start).
    #[arg(long)]
    pub no_supervise: bool,
    /// Internal: run as the supervisor's worker, adopting the instance
    /// lock handed over as descriptors FILE,SOCKET.
    #[arg(long, hide = true, value_name = "FILE,SOCKET")]
    pub supervised: Option<String>,
}

impl RunArgs {
    /// Whether this process is to be the supervisor.
    pub fn supervises(&self) -> bool {
        !self.no_supervise && self.supervised.is_none()
    }
}

/// Load the configuration and run until `shutdown`.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()>) -> Result<()> {
    let path = config::default_path(args.config.as_deref());
    // The same checks as `check-config`: what one refuses, so does the other.
    let cfg = match config::check(&path) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                log::warn!("{w}");
            }
            cfg
        }
        Err(ConfigError::Invalid { diags }) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!("{}: configuration refused", path.display());
        }
        Err(e) => {
            eprintln!("{e}");
            bail!("{}: configuration refused", path.display());
        }
    };
    log::info!(
        "Starting vrrp-agent {} with {} ({} instance(s))",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        cfg.instances.len()
    );
    let opts = daemon::Options {
        receive: args.agent.receive,
        name: args.agent.name,
        pin_root: args.agent.pin_root,
        no_pin: args.agent.no_pin,
        ebpf_object: args.agent.ebpf_object,
        pass_up: args.agent.pass_up,
        config_path: args.config.clone(),
        supervised: args.supervised,
    };
    daemon::run(cfg, opts, shutdown).await?;
    Ok(())
}
