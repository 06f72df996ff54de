//! Crafted VRRP adverts for tests and the demo, sent through a raw IP
//! socket so the kernel writes the IP header (with the TTL we choose).

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp_common::IPPROTO_VRRP;
use vrrp_common::checksum;

/// The VRRP IPv4 multicast group, 224.0.0.18 (RFC 5798 5.1.1.2).
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// A VRRPv2 advert: type 1, `vrid`, `priority`, `addrs`, auth type 1 with
/// `password` (zero padded to 8 bytes) or type 0 when `None`, and
/// `interval_s`, with a correct checksum.
pub fn v2(vrid: u8, priority: u8, interval_s: u8, addrs: &[Ipv4Addr], password: Option<&str>) -> Vec<u8> {
    let mut m = vec![0x21, vrid, priority, addrs.len() as u8, u8::from(password.is_some()), interval_s, 0, 0];
    for a in addrs {
        m.extend_from_slice(&a.octets());
    }
    let mut auth = [0u8; 8];
    if let Some(p) = password {
        let n = p.len().min(8);
        auth[..n].copy_from_slice(&p.as_bytes()[..n]);
    }
    m.extend_from_slice(&auth);
    let c = checksum::of(&m);
    m[6..8].copy_from_slice(&c.to_be_bytes());
    m
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
    fn v2_advert_layout_and_checksum() {
        let m = v2(51, 150, 1, &[Ipv4Addr::new(192, 0, 2, 100)], Some("secretpassword"));
        assert_eq!(m.len(), 20);
        assert_eq!(&m[..6], &[0x21, 51, 150, 1, 1, 1]);
        assert_eq!(&m[12..20], b"secretpa");
        assert_eq!(checksum::of(&m), 0);
    }
}
