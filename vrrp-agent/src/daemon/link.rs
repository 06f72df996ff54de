//! Interfaces: their addresses, and link state (the interfaces instances
//! run on and track with `track_interface`) from getifaddrs at start, and
//! rtnetlink link and address events after.

use std::io;
use std::net::IpAddr;

use futures_util::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use vrrp_common::wire::Family;

/// One getifaddrs(3) dump (every interface's flags, MAC and addresses),
/// asked many questions. Start-up asks it for each instance: one dump per
/// question made start-up quadratic in practice (4,000 instances on 16
/// VLANs: 12,000 dumps of every interface and address).
pub struct Ifaddrs(Vec<nix::ifaddrs::InterfaceAddress>);

impl Ifaddrs {
    /// The interfaces as they are now (empty if the dump fails: then no
    /// interface has addresses, is up, or has a MAC, as before).
    pub fn now() -> Ifaddrs {
        Ifaddrs(nix::ifaddrs::getifaddrs().map(|l| l.collect()).unwrap_or_default())
    }

    /// Addresses of `family` on `iface`; IPv6 link-local ones first.
    pub fn addresses(&self, iface: &str, family: Family) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for ifa in self.0.iter().filter(|i| i.interface_name == iface) {
            let Some(a) = &ifa.address else { continue };
            match (family, a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Family::V4, Some(v4), _) => out.push(IpAddr::V4(v4.ip())),
                (Family::V6, _, Some(v6)) => out.push(IpAddr::V6(v6.ip())),
                _ => {}
            }
        }
        out.sort_by_key(|a| !vrrp_common::rx::is_link_local_v6(a));
        out
    }

    /// Whether `iface` is up and running.
    pub fn is_up(&self, iface: &str) -> bool {
        use nix::net::if_::InterfaceFlags;
        self.0.iter().any(|i| {
            i.interface_name == iface
                && i.flags.contains(InterfaceFlags::IFF_UP)
                && i.flags.contains(InterfaceFlags::IFF_RUNNING)
        })
    }

    /// The MAC address of `iface` (its AF_PACKET entry).
    pub fn mac(&self, iface: &str) -> io::Result<[u8; 6]> {
        self.0
            .iter()
            .filter(|i| i.interface_name == iface)
            .find_map(|i| i.address.as_ref().and_then(|a| a.as_link_addr()).and_then(|l| l.addr()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no MAC address for {iface}")))
    }
}

/// Addresses of `family` on `iface`; IPv6 link-local ones first.
pub fn addresses(iface: &str, family: Family) -> Vec<IpAddr> {
    Ifaddrs::now().addresses(iface, family)
}

/// Whether `iface` is up and running now.
pub fn is_up(iface: &str) -> bool {
    Ifaddrs::now().is_up(iface)
}

type Messages = futures_channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    SocketAddr,
)>;

/// A change the kernel reported on its routing socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A link exists (new, or its flags changed): index, name, up and
    /// running.
    Link {
        /// Interface index.
        ifindex: u32,
        /// Interface name.
        name: String,
        /// IFF_UP and IFF_RUNNING.
        up: bool,
    },
    /// A link was deleted.
    LinkGone {
        /// Interface index.
        ifindex: u32,
        /// Interface name.
        name: String,
    },
    /// An address was added (`up`) or removed.
    Addr {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
        /// Added or removed.
        up: bool,
    },
    /// A route was added (`up`) or removed.
    Route {
        /// As the reconciler keys it.
        key: crate::daemon::reconcile::RouteKey,
        /// Added or removed.
        up: bool,
    },
    /// A rule was added (`up`) or removed.
    Rule {
        /// As the reconciler keys it.
        key: crate::daemon::reconcile::RuleKey,
        /// Added or removed.
        up: bool,
    },
}

/// Link and address events from the kernel.
pub struct NetEvents {
    rx: Messages,
    /// A second handle on the subscribed socket, to follow routes or
    /// rules later.
    groups: Option<Groups>,
}

/// The event socket's route and rule subscriptions, which a reload that
/// configures routes or rules for the first time adds: otherwise a route
/// it installed and someone deleted would never be reported, and never
/// put back.
pub struct Groups {
    sock: rtnetlink::sys::Socket,
    routes: bool,
    rules: bool,
}

impl Groups {
    /// Join the route (`routes`) and rule (`rules`) groups not joined
    /// yet; whether any was joined now.
    pub fn follow(&mut self, routes: bool, rules: bool) -> io::Result<bool> {
        let mut joined = false;
        if routes && !self.routes {
            self.sock.add_membership(libc::RTNLGRP_IPV4_ROUTE)?;
            self.sock.add_membership(libc::RTNLGRP_IPV6_ROUTE)?;
            self.routes = true;
            joined = true;
        }
        if rules && !self.rules {
            self.sock.add_membership(libc::RTNLGRP_IPV4_RULE)?;
            self.sock.add_membership(libc::RTNLGRP_IPV6_RULE)?;
            self.rules = true;
            joined = true;
        }
        Ok(joined)
    }
}

impl NetEvents {
    /// Subscribe to link, IPv4 and IPv6 address changes on a connection of
    /// our own (subscribe before dumping, so no change falls between), and
    /// to route and rule changes when the configuration has routes or
    /// rules (a router's route churn is not ours to read otherwise).
    pub fn subscribe(routes: bool, rules: bool) -> io::Result<NetEvents> {
        use rtnetlink::constants::{
            RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV4_RULE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE,
            RTMGRP_LINK,
        };
        /// RTNLGRP_IPV6_RULE: it has no bit in the legacy group mask.
        const RTNLGRP_IPV6_RULE: u32 = 19;
        let (mut conn, _handle, rx) = rtnetlink::new_connection()?;
        let mut groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        if routes {
            groups |= RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
        }
        if rules {
            groups |= RTMGRP_IPV4_RULE;
        }
        let sock = conn.socket_mut().socket_mut();
        sock.bind(&SocketAddr::new(0, groups))?;
        if rules {
            sock.add_membership(RTNLGRP_IPV6_RULE)?;
        }
        // The same socket (a duplicate descriptor): the connection task
        // owns the original.
        let dup = std::os::fd::AsFd::as_fd(&*sock).try_clone_to_owned()?;
        // SAFETY: `dup` is a descriptor of our own, handed over to the
        // Socket, which closes it when dropped.
        let sock = unsafe {
            <rtnetlink::sys::Socket as std::os::fd::FromRawFd>::from_raw_fd(
                std::os::fd::IntoRawFd::into_raw_fd(dup),
            )
        };
        tokio::spawn(conn);
        Ok(NetEvents { rx, groups: Some(Groups { sock, routes, rules }) })
    }

    /// The subscriptions, to follow routes or rules later (once).
    pub fn groups(&mut self) -> Option<Groups> {
        self.groups.take()
    }

    /// The next change. None when the connection is gone.
    pub async fn next(&mut self) -> Option<NetEvent> {
        loop {
            let (msg, _) = self.rx.next().await?;
            let NetlinkPayload::InnerMessage(m) = msg.payload else { continue };
            let ev = match m {
                RouteNetlinkMessage::NewLink(l) => {
                    let up =
                        l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::Running);
                    NetEvent::Link { ifindex: l.header.index, name: link_name(&l), up }
                }
                RouteNetlinkMessage::DelLink(l) => {
                    NetEvent::LinkGone { ifindex: l.header.index, name: link_name(&l) }
                }
                RouteNetlinkMessage::NewAddress(a) => match address_of(&a) {
                    Some((ifindex, addr, prefix)) => NetEvent::Addr { ifindex, addr, prefix, up: true },
                    None => continue,
                },
                RouteNetlinkMessage::DelAddress(a) => match address_of(&a) {
                    Some((ifindex, addr, prefix)) => NetEvent::Addr { ifindex, addr, prefix, up: false },
                    None => continue,
                },
                RouteNetlinkMessage::NewRoute(r) => match crate::daemon::routes::route_key_of(&r) {
                    Some(key) => NetEvent::Route { key, up: true },
                    None => continue,
                },
                RouteNetlinkMessage::DelRoute(r) => match crate::daemon::routes::route_key_of(&r) {
                    Some(key) => NetEvent::Route { key, up: false },
                    None => continue,
                },
                RouteNetlinkMessage::NewRule(r) => match crate::daemon::routes::rule_key_of(&r) {
                    Some(key) => NetEvent::Rule { key, up: true },
                    None => continue,
                },
                RouteNetlinkMessage::DelRule(r) => match crate::daemon::routes::rule_key_of(&r) {
                    Some(key) => NetEvent::Rule { key, up: false },
                    None => continue,
                },
                _ => continue,
            };
            return Some(ev);
        }
    }
}

fn link_name(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| if let LinkAttribute::IfName(n) = a { Some(n.clone()) } else { None })
        .unwrap_or_default()
}

/// (ifindex, address, prefix) of an address message: IFA_LOCAL for IPv4
/// (IFA_ADDRESS is the peer on point-to-point links), IFA_ADDRESS for IPv6.
pub fn address_of(a: &AddressMessage) -> Option<(u32, IpAddr, u8)> {
    let local =
        a.attributes.iter().find_map(|x| if let AddressAttribute::Local(l) = x { Some(*l) } else { None });
    let address =
        a.attributes.iter().find_map(|x| if let AddressAttribute::Address(l) = x { Some(*l) } else { None });
    Some((a.header.index, local.or(address)?, a.header.prefix_len))
}

/// Every address the kernel has now, as `address_of` reads them.
pub async fn dump_addresses(handle: &rtnetlink::Handle) -> Result<Vec<(u32, IpAddr, u8)>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut s = handle.address().get().execute();
    while let Some(a) = s.try_next().await? {
        out.extend(address_of(&a));
    }
    Ok(out)
}
