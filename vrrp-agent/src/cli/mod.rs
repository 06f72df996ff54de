//! The subcommands and what they share.

pub mod check;
pub mod exit;
pub mod keepalived;
pub mod restart;
pub mod run;
pub mod stats;
pub mod status;
pub mod supervise;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;

use vrrp_agent::daemon::ReceiveMode;

use vrrp_common::maps::{
    EVENT_INTERVAL, EVENT_NEW_PEER, EVENT_PRIORITY, EVENT_RESIGN, FAMILY_IPV4, PeerEvent, PeerKey,
};

/// The agent's name when none is given.
pub const DEFAULT_NAME: &str = "default";

/// What `run` and `watch` share: how adverts come in and where the agent
/// keeps its pins and lock.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// Receive path: XDP, raw sockets, or XDP falling back to sockets
    /// (with a warning) where it cannot attach.
    #[arg(long, value_enum, default_value_t = ReceiveMode::Auto)]
    pub receive: ReceiveMode,
    /// Name of this agent: its pin directory, lock and status files (in a
    /// `net_namespace` or with `-s NAME`, the default is the namespace's name).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// bpffs directory the per-agent pin directories go under.
    #[arg(long, default_value = "/sys/fs/bpf/vrrp-agent")]
    pub pin_root: PathBuf,
    /// Do not pin the maps (bpftool can then only find them by id).
    #[arg(long)]
    pub no_pin: bool,
    /// Load the XDP object from this file instead of the embedded one.
    #[arg(long)]
    pub ebpf_object: Option<PathBuf>,
    /// Let valid adverts continue up the stack after XDP has recorded
    /// them, to see them in tcpdump while debugging.
    #[arg(long)]
    pub pass_up: bool,
}

/// One line about a peer event.
pub fn describe(ev: &PeerEvent, names: &BTreeMap<u32, String>) -> String {
    let mut what = Vec::new();
    if ev.kind & EVENT_NEW_PEER != 0 {
        what.push("new peer".to_owned());
    }
    if ev.kind & EVENT_PRIORITY != 0 {
        what.push(format!("priority {} -> {}", ev.old_priority, ev.state.priority));
    }
    if ev.kind & EVENT_RESIGN != 0 {
        what.push("resigning (priority 0)".to_owned());
    }
    if ev.kind & EVENT_INTERVAL != 0 {
        what.push("interval changed".to_owned());
    }
    format!(
        "peer {} on {} vrid {}: {} (version {}, priority {}, interval {} cs)",
        addr_string(&ev.key),
        iface_name(names, ev.key.ifindex),
        ev.key.vrid,
        what.join(", "),
        ev.state.version,
        ev.state.priority,
        ev.state.interval_cs
    )
}

/// Interface name from the agent's table, or the index.
pub fn iface_name(names: &BTreeMap<u32, String>, ifindex: u32) -> String {
    names.get(&ifindex).cloned().unwrap_or_else(|| format!("ifindex {ifindex}"))
}

/// The peer's address as text.
pub fn addr_string(key: &PeerKey) -> String {
    let a = key.addr;
    if key.family == FAMILY_IPV4 {
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    } else {
        std::net::Ipv6Addr::from(a).to_string()
    }
}
