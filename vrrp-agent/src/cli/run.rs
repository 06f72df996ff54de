//! `vrrp-agent run`: the daemon.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{Result, bail};
use vrrp_agent::config::{self, ConfigError};
use vrrp_agent::daemon::{self, ReceiveMode};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// keepalived.conf to run (default: /etc/vrrp-agent/vrrp-agent.conf if
    /// present, else /etc/keepalived/keepalived.conf).
    #[arg(short = 'f', long = "config")]
    config: Option<PathBuf>,
    /// Receive path: XDP, raw sockets, or XDP falling back to sockets.
    #[arg(long, value_enum, default_value_t = ReceiveMode::Auto)]
    receive: ReceiveMode,
    /// Name of this agent: its pin directory and lock file.
    #[arg(long, default_value = "default")]
    name: String,
    /// bpffs directory the per-agent pin directories go under.
    #[arg(long, default_value = "/sys/fs/bpf/vrrp-agent")]
    pin_root: PathBuf,
    /// Do not pin the maps.
    #[arg(long)]
    no_pin: bool,
    /// Load the XDP object from this file instead of the embedded one.
    #[arg(long)]
    ebpf_object: Option<PathBuf>,
    /// Let valid adverts continue up the stack after XDP has recorded
    /// them, to see them in tcpdump while debugging.
    #[arg(long)]
    pass_up: bool,
}

/// Load the configuration and run until `shutdown`.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()>) -> Result<()> {
    let path = config::default_path(args.config.as_deref());
    let cfg = match config::load(&path) {
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
        Err(e) => bail!("{e}"),
    };
    if cfg.instances.is_empty() {
        bail!("{}: no vrrp_instance to run", path.display());
    }
    log::info!(
        "Starting vrrp-agent {} with {} ({} instance(s))",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        cfg.instances.len()
    );
    let opts = daemon::Options {
        receive: args.receive,
        name: args.name,
        pin_root: args.pin_root,
        no_pin: args.no_pin,
        ebpf_object: args.ebpf_object,
        pass_up: args.pass_up,
    };
    daemon::run(cfg, opts, shutdown).await?;
    Ok(())
}
