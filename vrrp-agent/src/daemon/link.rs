//! Link state: the interfaces instances run on and track
//! (`track_interface`), from getifaddrs at start and rtnetlink link events
//! after.

use std::io;

use futures_util::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::sys::{AsyncSocket, SocketAddr};

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
