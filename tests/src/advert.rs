//! Crafted VRRP adverts for tests and the demo, built with the project's
//! codec and sent through a raw IP socket so the kernel writes the IP
//! header (with the TTL we choose).

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result, anyhow};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp_common::wire::vrrp::{GROUP_V4, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version};
use vrrp_common::{Centis, IPPROTO_VRRP};

/// The VRRP IPv4 multicast group, 224.0.0.18 (RFC 5798 5.1.1.2).
pub const VRRP_GROUP_V4: Ipv4Addr = GROUP_V4;

/// A VRRPv2 advert from `src` to `dst`: `vrid`, `priority`, `addrs`, a
/// simple `password` (auth type 1) or none, and `interval_s`.
pub fn v2(
    vrid: u8,
    priority: u8,
    interval_s: u8,
    addrs: &[Ipv4Addr],
    password: Option<&str>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<Vec<u8>> {
    let repr = Repr {
        version: Version::V2,
        vrid,
        priority,
        interval: Centis::from_secs(interval_s),
        auth: password.map_or(Auth::None, |p| Auth::simple(p.as_bytes())),
        addrs: AddrList::V4(addrs),
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let tx = TxIp { src: IpAddr::V4(src), dst: IpAddr::V4(dst), v3_checksum_as_v2: false };
    let n = repr.emit(&mut buf, &tx).map_err(|e| anyhow!("emit: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

/// A raw protocol-112 socket bound to `iface`, for the current thread's
/// namespace.
pub fn socket_v4(iface: &str, ttl: u32) -> Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP as i32)))
        .context("raw socket (needs CAP_NET_RAW)")?;
    s.bind_device(Some(iface.as_bytes())).with_context(|| format!("binding to {iface}"))?;
    s.set_multicast_ttl_v4(ttl)?;
    s.set_ttl_v4(ttl)?;
    s.set_multicast_loop_v4(false)?;
    Ok(s)
}

/// Send `msg` to `dst` on `sock`.
pub fn send(sock: &Socket, msg: &[u8], dst: Ipv4Addr) -> Result<()> {
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let n = sock.send_to(msg, &to).with_context(|| format!("sending to {dst}"))?;
    anyhow::ensure!(n == msg.len(), "short send: {n} of {}", msg.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_advert_layout_and_checksum() -> Result<()> {
        let m = v2(
            51,
            150,
            1,
            &[Ipv4Addr::new(192, 0, 2, 100)],
            Some("secretpassword"),
            Ipv4Addr::new(192, 0, 2, 1),
            VRRP_GROUP_V4,
        )?;
        assert_eq!(m.len(), 20);
        assert_eq!(&m[..6], &[0x21, 51, 150, 1, 1, 1]);
        assert_eq!(&m[12..20], b"secretpa");
        assert_eq!(vrrp_common::checksum::of(&m), 0);
        Ok(())
    }
}
