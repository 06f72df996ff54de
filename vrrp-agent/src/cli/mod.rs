//! The subcommands and what they share.

pub mod check;
pub mod run;
pub mod stats;
pub mod status;
pub mod watch;

use std::collections::BTreeMap;

use vrrp_common::maps::{
    EVENT_INTERVAL, EVENT_NEW_PEER, EVENT_PRIORITY, EVENT_RESIGN, FAMILY_IPV4, PeerEvent, PeerKey,
};

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
