//! Virtual addresses on and off, through rtnetlink (what to add and remove
//! is the reconciler's decision, `reconcile.rs`), and the crash record of
//! what the agent holds.

use std::net::IpAddr;

use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};

use crate::config::Vip;
use crate::daemon::reconcile::{Outcome, RouteKey, RuleKey};
use crate::daemon::routes;

/// A failed netlink call.
#[derive(Debug, thiserror::Error)]
#[error("{op} {addr}/{prefix} on ifindex {ifindex}: {source}")]
pub struct VipError {
    /// "adding" or "removing".
    pub op: &'static str,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// The interface.
    pub ifindex: u32,
    /// rtnetlink's error.
    pub source: rtnetlink::Error,
}

/// One address to manage, resolved to an interface index.
#[derive(Clone, Debug)]
pub struct ManagedVip {
    /// As configured.
    pub vip: Vip,
    /// Resolved `dev` (or the instance's interface); 0 while it does not
    /// exist.
    pub ifindex: u32,
}

impl ManagedVip {
    /// An address to manage on `ifindex`.
    pub fn new(vip: Vip, ifindex: u32) -> ManagedVip {
        ManagedVip { vip, ifindex }
    }

    /// The message that adds it, with prefix length `prefix`.
    pub fn message_with(&self, prefix: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = match self.vip.addr {
            IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
        };
        m.header.prefix_len = prefix;
        m.header.index = self.ifindex;
        m.header.scope = match self.vip.scope.as_deref() {
            Some("host") => AddressScope::Host,
            Some("link") => AddressScope::Link,
            Some("site") => AddressScope::Site,
            Some("nowhere") => AddressScope::Nowhere,
            _ => AddressScope::Universe,
        };
        m.attributes.push(AddressAttribute::Local(self.vip.addr));
        m.attributes.push(AddressAttribute::Address(self.vip.addr));
        if let (IpAddr::V4(_), Some(label)) = (self.vip.addr, &self.vip.label) {
            m.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if self.vip.addr.is_ipv6() {
            // A VIP moves on purpose: no duplicate address detection (it
            // would hold the address tentative for a second), as keepalived.
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        m
    }
}

/// Add the address `msg` describes: Done, AlreadySo (EEXIST), or the error.
pub async fn add(handle: &Handle, msg: AddressMessage) -> Result<Outcome, rtnetlink::Error> {
    let (index, prefix) = (msg.header.index, msg.header.prefix_len);
    let addr = crate::daemon::link::address_of(&msg).map(|(_, a, _)| a);
    let Some(addr) = addr else { return Ok(Outcome::Failed) };
    let mut req = handle.address().add(index, addr, prefix);
    *req.message_mut() = msg;
    match netlink_timeout(req.execute()).await? {
        Ok(()) => Ok(Outcome::Done),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(Outcome::AlreadySo),
        Err(e) => Err(e),
    }
}

/// Remove `addr/prefix` from `ifindex`: Done, AlreadySo (EADDRNOTAVAIL),
/// or the error.
pub async fn remove(
    handle: &Handle,
    ifindex: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<Outcome, rtnetlink::Error> {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = ifindex;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    match netlink_timeout(handle.address().del(m).execute()).await? {
        Ok(()) => Ok(Outcome::Done),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
            Ok(Outcome::AlreadySo)
        }
        Err(e) => Err(e),
    }
}

/// A netlink call that hangs (the kernel's RTNL lock held elsewhere for
/// long) is given up after 2 s; the reconciler tries again later.
async fn netlink_timeout<T>(f: impl std::future::Future<Output = T>) -> Result<T, rtnetlink::Error> {
    tokio::time::timeout(std::time::Duration::from_secs(2), f)
        .await
        .map_err(|_| rtnetlink::Error::RequestFailed)
}

/// Where agent `name` records the addresses it holds, so a run after a
/// crash can take back what the dead one left.
pub fn held_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(crate::instance_lock::LOCK_DIR).join(format!("{name}.vips"))
}

/// What an agent holds in the kernel, as its crash record says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Addresses: (ifindex, address, prefix).
    pub addrs: Vec<(u32, IpAddr, u8)>,
    /// Routes, with the protocol they were added with.
    pub routes: Vec<(RouteKey, u8)>,
    /// Rules, and whether they carry keepalived's protocol.
    pub rules: Vec<(RuleKey, bool)>,
}

/// Record `held`, one per line: `IFINDEX ADDRESS/PREFIX` for an address,
/// `route ...` and `rule ...` (see `routes::route_record`).
pub fn save_held(name: &str, held: &Held) -> std::io::Result<()> {
    let mut text: String = held.addrs.iter().map(|(i, a, p)| format!("{i} {a}/{p}\n")).collect();
    for (k, p) in &held.routes {
        text.push_str(&routes::route_record(k, *p));
        text.push('\n');
    }
    for (k, t) in &held.rules {
        text.push_str(&routes::rule_record(k, *t));
        text.push('\n');
    }
    let path = held_file(name);
    let tmp = path.with_extension("vips.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// Remove what a previous agent of this name recorded and did not remove
/// (it was killed). Called with the instance lock held, so that agent is
/// gone.
pub async fn cleanup_stale(name: &str, handle: &Handle) {
    for (what, r) in remove_recorded(name, handle).await {
        match r {
            Ok(()) => log::warn!("removed {what}, left by an earlier run that did not stop cleanly"),
            Err(e) => log::warn!("removing {what} left by an earlier run: {e}"),
        }
    }
    let _ = std::fs::remove_file(held_file(name));
}

/// Remove everything recorded in agent `name`'s held file, leaving the
/// file in place; returns each entry (as `192.0.2.1/24`, `route ...`,
/// `rule ...`) with its outcome. Routes and rules go first (a route may
/// use a recorded address as its source). The supervisor calls it for a
/// worker that died or stopped, the next run (through `cleanup_stale`)
/// for one that was killed with its supervisor.
pub async fn remove_recorded(name: &str, handle: &Handle) -> Vec<(String, Result<(), String>)> {
    let path = held_file(name);
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    let mut out = Vec::new();
    let mut addrs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let r = if line.starts_with("route ") {
            let Some((key, proto)) = routes::parse_route_record(line) else {
                log::warn!("{}: ignoring malformed line {line:?}", path.display());
                continue;
            };
            let what = format!("route {}/{} (table {})", key.dst, key.dst_len, key.table);
            (what, routes::del_route(handle, routes::route_delete_message(&key, proto)).await)
        } else if line.starts_with("rule ") {
            let Some((key, tracked)) = routes::parse_rule_record(line) else {
                log::warn!("{}: ignoring malformed line {line:?}", path.display());
                continue;
            };
            let what = format!("rule preference {}", key.priority);
            (what, routes::del_rule(handle, routes::rule_message(&key, tracked)).await)
        } else {
            addrs.push(line);
            continue;
        };
        out.push((r.0, r.1.map(|_| ()).map_err(|e| e.to_string())));
    }
    let mut parsed = Vec::new();
    for line in addrs {
        let p = line.split_once(' ').and_then(|(i, rest)| {
            let (a, p) = rest.split_once('/')?;
            Some((i.parse::<u32>().ok()?, a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?))
        });
        match p {
            Some(p) => parsed.push(p),
            None => log::warn!("{}: ignoring malformed line {line:?}", path.display()),
        }
    }
    // Pipelined, not one round trip each: the supervisor removes a dead
    // worker's VIPs within its takeover margin (two advert intervals), and
    // a worker with thousands of instances held thousands.
    use futures_util::StreamExt;
    let removed: Vec<(String, Result<(), String>)> = futures_util::stream::iter(parsed)
        .map(|(ifindex, addr, prefix)| async move {
            let r = match remove(handle, ifindex, addr, prefix).await {
                Ok(_) => Ok(()),
                Err(source) => Err(format!("ifindex {ifindex}: {source}")),
            };
            (format!("{addr}/{prefix}"), r)
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    out.extend(removed);
    out
}

/// How many address requests are in flight on one netlink socket at once
/// (the kernel's answers queue in its receive buffer until read).
pub const IN_FLIGHT: usize = 128;

/// Agent `name`'s held file as it says (malformed lines skipped).
pub fn load_held(name: &str) -> Held {
    let mut held = Held::default();
    let Ok(text) = std::fs::read_to_string(held_file(name)) else { return held };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with("route ") {
            held.routes.extend(routes::parse_route_record(line));
        } else if line.starts_with("rule ") {
            held.rules.extend(routes::parse_rule_record(line));
        } else {
            let parsed = line.split_once(' ').and_then(|(i, rest)| {
                let (a, p) = rest.split_once('/')?;
                Some((i.parse::<u32>().ok()?, a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?))
            });
            held.addrs.extend(parsed);
        }
    }
    held
}

/// Whether agent `name`'s held file records anything.
pub fn any_recorded(name: &str) -> bool {
    std::fs::read_to_string(held_file(name)).is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()))
}
