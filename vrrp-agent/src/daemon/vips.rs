//! Virtual addresses on and off, through rtnetlink. Only the addresses we
//! added are removed: one that was already there belongs to someone else.

use std::net::IpAddr;

use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};

use crate::config::Vip;
use crate::daemon::reconcile::Outcome;

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
    /// Resolved `dev` (or the instance's interface).
    pub ifindex: u32,
    /// The message we added it with, kept to delete exactly it.
    added: Option<AddressMessage>,
}

impl ManagedVip {
    /// An address to manage on `ifindex`.
    pub fn new(vip: Vip, ifindex: u32) -> ManagedVip {
        ManagedVip { vip, ifindex, added: None }
    }

    /// Whether we hold it.
    pub fn held(&self) -> bool {
        self.added.is_some()
    }

    fn message(&self) -> AddressMessage {
        self.message_with(self.vip.prefix)
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

    /// Add it. An address that is already there is left alone and not
    /// marked ours (Ok(false)).
    pub async fn add(&mut self, handle: &Handle) -> Result<bool, VipError> {
        if self.added.is_some() {
            return Ok(true);
        }
        let msg = self.message();
        let mut req = handle.address().add(self.ifindex, self.vip.addr, self.vip.prefix);
        *req.message_mut() = msg.clone();
        match req.execute().await {
            Ok(()) => {
                self.added = Some(msg);
                Ok(true)
            }
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
            Err(source) => Err(self.err("adding", source)),
        }
    }

    /// Remove it if we added it.
    pub async fn remove(&mut self, handle: &Handle) -> Result<(), VipError> {
        let Some(msg) = self.added.take() else { return Ok(()) };
        match handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            // Already gone (someone removed it): nothing to do.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => Ok(()),
            Err(source) => Err(self.err("removing", source)),
        }
    }

    fn err(&self, op: &'static str, source: rtnetlink::Error) -> VipError {
        VipError { op, addr: self.vip.addr, prefix: self.vip.prefix, ifindex: self.ifindex, source }
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

/// Record `held` (ifindex, address, prefix), one per line.
pub fn save_held(name: &str, held: &[(u32, IpAddr, u8)]) -> std::io::Result<()> {
    let text: String = held.iter().map(|(i, a, p)| format!("{i} {a}/{p}\n")).collect();
    let path = held_file(name);
    let tmp = path.with_extension("vips.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// Remove the addresses a previous agent of this name recorded and did not
/// remove (it was killed). Called with the instance lock held, so that
/// agent is gone.
pub async fn cleanup_stale(name: &str, handle: &Handle) {
    let path = held_file(name);
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    for line in text.lines() {
        let parsed = line.split_once(' ').and_then(|(i, rest)| {
            let (a, p) = rest.split_once('/')?;
            Some((i.parse::<u32>().ok()?, a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?))
        });
        let Some((ifindex, addr, prefix)) = parsed else {
            log::warn!("{}: ignoring malformed line {line:?}", path.display());
            continue;
        };
        let vip = Vip { addr, prefix, dev: None, label: None, scope: None };
        let mut m = ManagedVip::new(vip, ifindex);
        m.added = Some(m.message());
        match m.remove(handle).await {
            Ok(()) => log::warn!("removed {addr}/{prefix}, left by an earlier run that did not stop cleanly"),
            Err(e) => log::warn!("removing {addr}/{prefix} left by an earlier run: {e}"),
        }
    }
    let _ = std::fs::remove_file(path);
}
