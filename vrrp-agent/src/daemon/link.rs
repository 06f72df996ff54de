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
    /// The kernel dropped notifications: the socket's receive buffer was
    /// full (ENOBUFS, which netlink-proto turns into an overrun message).
    /// Any link, address, route or rule change may have been lost, so the
    /// watch is lost too: the caller must read the kernel again (a lost
    /// watch is re-listed, as Kubernetes informers and FRR's zebra do).
    Overrun,
}

/// The event socket's receive buffer floor: 4 MiB holds ~2,000 to 4,000
/// notifications (see `event_buffer_size`), well above the kernel's
/// default (net.core.rmem_default, 208 KiB: ~150 to 200 notifications,
/// which a takeover of 200 VIPs already fills, since the agent's own
/// address adds come back as events while it is busy adding more).
pub const EVENT_BUFFER_FLOOR: usize = 4 << 20;
/// Its cap: 128 MiB (net.core.rmem_max does not bind SO_RCVBUFFORCE; the
/// memory is only charged while notifications are queued, but a config of
/// hundreds of thousands of entries should not pin gigabytes).
pub const EVENT_BUFFER_CAP: usize = 128 << 20;
/// What one queued notification costs the receive buffer: not its payload
/// (~60 to 200 bytes) but its skb's truesize (the data buffer rounded up
/// plus struct sk_buff), which the kernel charges against SO_RCVBUF:
/// ~1 to 2 KiB each for an address or route message. 2 KiB, to be safe.
const NOTIFICATION_TRUESIZE: usize = 2 << 10;

/// The event socket's receive buffer for a configuration whose takeover
/// (or release) can produce `notifications` events at once: every VIP
/// added or removed is one RTM_NEWADDR/DELADDR, and an IPv4 one also one
/// RTM_NEWROUTE per local/broadcast route when routes are followed; every
/// virtual route and rule one more; every instance a link event or two (a
/// macvlan's, or a veth's when its peer's XDP program changes). Twice that
/// (two takeovers back to back, a release then a takeover, before the
/// agent reads), between the floor and the cap.
pub fn event_buffer_size(notifications: usize) -> usize {
    notifications
        .saturating_mul(NOTIFICATION_TRUESIZE)
        .saturating_mul(2)
        .clamp(EVENT_BUFFER_FLOOR, EVENT_BUFFER_CAP)
}

/// For tests only: `VRRP_AGENT_TEST_NETLINK_RCVBUF=<bytes>` replaces the
/// computed size, so a test can overrun the event socket at will (a tiny
/// buffer) and check that the agent reads the kernel again.
pub const TEST_RCVBUF_ENV: &str = "VRRP_AGENT_TEST_NETLINK_RCVBUF";

/// Set `fd`'s receive buffer to `bytes`: SO_RCVBUFFORCE (the agent runs as
/// root or with CAP_NET_ADMIN, and net.core.rmem_max, 208 KiB by default,
/// would cap SO_RCVBUF far below what a takeover needs), else SO_RCVBUF
/// (capped at rmem_max by the kernel). keepalived does the same with
/// `vrrp_netlink_monitor_rcv_bufs` and its `_force` variant.
fn set_rcvbuf(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) {
    use std::os::fd::AsRawFd;
    let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: a valid descriptor of ours and a c_int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&val).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    };
    if let Err(e) = set(libc::SO_RCVBUFFORCE) {
        log::debug!(
            "netlink event socket: SO_RCVBUFFORCE {bytes} refused ({e}); SO_RCVBUF instead (capped at net.core.rmem_max)"
        );
        if let Err(e) = set(libc::SO_RCVBUF) {
            log::debug!("netlink event socket: SO_RCVBUF {bytes}: {e}");
        }
    }
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
    /// `rcvbuf`: the socket's receive buffer (`event_buffer_size`); the
    /// test-only `VRRP_AGENT_TEST_NETLINK_RCVBUF` replaces it.
    pub fn subscribe(routes: bool, rules: bool, rcvbuf: usize) -> io::Result<NetEvents> {
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
        let rcvbuf = std::env::var(TEST_RCVBUF_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(rcvbuf);
        set_rcvbuf(std::os::fd::AsFd::as_fd(&*sock), rcvbuf);
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
            let m = match msg.payload {
                NetlinkPayload::InnerMessage(m) => m,
                NetlinkPayload::Overrun(_) => return Some(NetEvent::Overrun),
                _ => continue,
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_buffer_holds_a_takeover_between_floor_and_cap() {
        // A small configuration still gets the floor.
        assert_eq!(event_buffer_size(0), EVENT_BUFFER_FLOOR);
        assert_eq!(event_buffer_size(100), EVENT_BUFFER_FLOOR);
        // 1,000 VIPs, their local routes and 1,000 instances' link
        // events: twice their truesize, above the floor.
        let n = 3_000;
        assert_eq!(event_buffer_size(n), n * NOTIFICATION_TRUESIZE * 2);
        assert!(event_buffer_size(n) > EVENT_BUFFER_FLOOR);
        // A huge one is capped, without overflow.
        assert_eq!(event_buffer_size(10_000_000), EVENT_BUFFER_CAP);
        assert_eq!(event_buffer_size(usize::MAX), EVENT_BUFFER_CAP);
    }
}
