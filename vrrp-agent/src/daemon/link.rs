//! Interfaces: their addresses, and link state (the interfaces instances
//! run on and track with `track_interface`) from getifaddrs at start and
//! rtnetlink link events after.

use std::io;
use std::net::IpAddr;

use futures_util::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use vrrp_common::wire::Family;

/// Addresses of `family` on `iface`; IPv6 link-local ones first.
pub fn addresses(iface: &str, family: Family) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(list) = nix::ifaddrs::getifaddrs() {
        for ifa in list.filter(|i| i.interface_name == iface) {
            let Some(a) = ifa.address else { continue };
            match (family, a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Family::V4, Some(v4), _) => out.push(IpAddr::V4(v4.ip())),
                (Family::V6, _, Some(v6)) => out.push(IpAddr::V6(v6.ip())),
                _ => {}
            }
        }
    }
    out.sort_by_key(|a| !vrrp_common::rx::is_link_local_v6(a));
    out
}

/// Whether `iface` is up and running now.
pub fn is_up(iface: &str) -> bool {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs()
        .map(|mut l| {
            l.any(|i| {
                i.interface_name == iface
                    && i.flags.contains(InterfaceFlags::IFF_UP)
                    && i.flags.contains(InterfaceFlags::IFF_RUNNING)
            })
        })
        .unwrap_or(false)
}

type Messages = futures_channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    SocketAddr,
)>;

/// Link events from the kernel.
pub struct LinkEvents {
    rx: Messages,
}

impl LinkEvents {
    /// Subscribe (RTMGRP_LINK) on a connection of our own.
    pub fn subscribe() -> io::Result<LinkEvents> {
        let (mut conn, _handle, rx) = rtnetlink::new_connection()?;
        conn.socket_mut().socket_mut().bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))?;
        tokio::spawn(conn);
        Ok(LinkEvents { rx })
    }

    /// The next change: (ifindex, up and running). None when the
    /// connection is gone.
    pub async fn next(&mut self) -> Option<(u32, bool)> {
        loop {
            let (msg, _) = self.rx.next().await?;
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    let up =
                        l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::Running);
                    return Some((l.header.index, up));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    return Some((l.header.index, false));
                }
                _ => {}
            }
        }
    }
}
