//! `vrrp-agent run`: the daemon.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Result;
use vrrp_agent::config::{self, ConfigError};
use vrrp_agent::daemon;

use super::AgentArgs;

#[derive(clap::Args, Clone, Debug)]
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
    /// Write the pid of the agent (the supervisor's; keepalived's `-p`)
    /// to this file, removed at exit.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Write the pid of the worker, which runs the VRRP instances
    /// (keepalived's `-r`, the VRRP child's), to this file, removed at exit.
    #[arg(long, value_name = "FILE")]
    pub worker_pid_file: Option<PathBuf>,
    /// Crash-loop limit: after a worker crash (killed by a signal, or a
    /// panic) the supervisor starts a new worker at once, which resumes
    /// its masters if in time; at most N times within 60 s, after which
    /// the next crash removes the VIPs and ends the agent (exit 128 +
    /// signal) for systemd's Restart=. 0: never a new worker.
    #[arg(long, value_name = "N", default_value_t = vrrp_agent::daemon::crash::LIMIT)]
    pub respawn_limit: usize,
    /// Serve Prometheus metrics (keepalived-exporter's names, and
    /// vrrp_agent_* ones) at http://ADDR/metrics, e.g. 127.0.0.1:9650.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// A pid file, removed when dropped.
pub struct PidFile(Option<PathBuf>);

impl PidFile {
    /// Write `pid` to `path` (if any).
    pub fn write(path: Option<&PathBuf>, pid: u32) -> Result<PidFile> {
        use anyhow::Context;
        if let Some(p) = path {
            std::fs::write(p, format!("{pid}\n"))
                .with_context(|| format!("writing pid file {}", p.display()))?;
        }
        Ok(PidFile(path.cloned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl RunArgs {
    /// The configuration's `net_namespace`, if it loads and has one (a
    /// configuration that does not load is reported by `run` itself).
    pub fn net_namespace(&self) -> Option<String> {
        config::load(&config::default_path(self.config.as_deref()))
            .ok()
            .and_then(|(c, _)| c.global.net_namespace)
    }

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
            return Err(super::exit::coded(
                super::exit::CONFIG,
                format!("{}: configuration refused", path.display()),
            ));
        }
        Err(e) => return Err(super::check::refused(&path, &e)),
    };
    log::debug!("start-up: configuration read");
    privileges(args.agent.receive)?;
    log::info!(
        "Starting vrrp-agent {} with {} ({} instance(s))",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        cfg.instances.len()
    );
    // Alone (no supervisor), this process is both.
    let _pids = match args.supervised {
        Some(_) => None,
        None => Some((
            PidFile::write(args.pid_file.as_ref(), std::process::id())?,
            PidFile::write(args.worker_pid_file.as_ref(), std::process::id())?,
        )),
    };
    let opts = daemon::Options {
        receive: args.agent.receive,
        name: args.agent.name,
        pin_root: args.agent.pin_root,
        no_pin: args.agent.no_pin,
        ebpf_object: args.agent.ebpf_object,
        pass_up: args.agent.pass_up,
        config_path: args.config.clone(),
        supervised: args.supervised,
        metrics: args.metrics,
    };
    let name = opts.name.clone();
    daemon::run(cfg, opts, shutdown).await?;
    // The record is taken at start, so one here is this run's: it stopped
    // for a hitless restart, and says so to its supervisor (or systemd).
    if daemon::resume::record_file(&name).exists() {
        log::info!("exiting with status {} for the restart", daemon::resume::EXIT_HANDOVER);
        std::process::exit(daemon::resume::EXIT_HANDOVER);
    }
    Ok(())
}

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// This process's effective capabilities (`CapEff` in /proc/self/status).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Which capabilities `run` lacks for `receive`, by name; empty when it
/// has them all. CAP_NET_ADMIN: addresses, routes, rules, links, XDP
/// attachment; CAP_NET_RAW: adverts and gratuitous ARPs on raw sockets;
/// loading the XDP program: CAP_BPF with CAP_PERFMON (kernel 5.8+), or
/// CAP_SYS_ADMIN before them.
pub fn missing_caps(eff: u64, receive: daemon::ReceiveMode) -> Vec<&'static str> {
    let has = |c: u32| eff & (1 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    let bpf = has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
    if receive == daemon::ReceiveMode::Xdp && !bpf {
        missing.push("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN on kernels before 5.8)");
    }
    missing
}

/// Refuse to start without the capabilities `run` needs, naming them
/// (exit 4, keepalived's KEEPALIVED_EXIT_MISSING_PERMISSION).
fn privileges(receive: daemon::ReceiveMode) -> Result<()> {
    let Some(eff) = effective_caps() else { return Ok(()) };
    let missing = missing_caps(eff, receive);
    if !missing.is_empty() {
        return Err(super::exit::coded(
            super::exit::NO_PERMISSION,
            format!(
                "missing privilege: {} (run as root, or grant them, e.g. AmbientCapabilities= in the systemd unit)",
                missing.join(", ")
            ),
        ));
    }
    let has = |c: u32| eff & (1 << c) != 0;
    if receive == daemon::ReceiveMode::Auto && !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        log::warn!(
            "without CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) the XDP program cannot be loaded: receiving on raw sockets"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp_agent::daemon::ReceiveMode;

    #[test]
    fn missing_capabilities_are_named() {
        let all = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_BPF) | (1 << CAP_PERFMON);
        assert!(missing_caps(all, ReceiveMode::Xdp).is_empty());
        assert!(
            missing_caps((1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN), ReceiveMode::Xdp)
                .is_empty()
        );
        assert_eq!(missing_caps(all & !(1 << CAP_NET_ADMIN), ReceiveMode::Auto), ["CAP_NET_ADMIN"]);
        assert_eq!(missing_caps(1 << CAP_NET_ADMIN, ReceiveMode::Socket), ["CAP_NET_RAW"]);
        assert_eq!(
            missing_caps((1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_BPF), ReceiveMode::Xdp).len(),
            1
        );
        // auto falls back to sockets without the BPF capabilities.
        assert!(missing_caps((1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW), ReceiveMode::Auto).is_empty());
    }
}
