//! Adverts out: a raw socket per instance, TTL/hop limit 255, to the VRRP
//! group or to each unicast peer, from the instance's source address
//! (RFC 5798 5.1). The kernel writes the IP header; we write the message,
//! with the checksum for each destination (v3's pseudo-header covers it).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version};
use vrrp_common::{Centis, IPPROTO_VRRP};

/// What an instance advertises, besides its priority.
#[derive(Clone, Debug)]
pub struct AdvertSpec {
    /// Version.
    pub version: Version,
    /// VRID.
    pub vrid: u8,
    /// Advertisement_Interval.
    pub interval: Centis,
    /// v2 authentication.
    pub auth: Auth,
    /// IPv4 VIPs (for an IPv4 instance).
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 VIPs (for an IPv6 instance).
    pub v6: Vec<Ipv6Addr>,
    /// v3 over IPv4 without the pseudo-header.
    pub v3_checksum_as_v2: bool,
}

/// One instance's sending socket.
pub struct Sender {
    sock: Socket,
    src: IpAddr,
    dsts: Vec<IpAddr>,
    ifindex: u32,
    spec: AdvertSpec,
    buf: Vec<u8>,
}

impl Sender {
    /// Open on `iface` (index `ifindex`), sending from `src` to `peers`, or
    /// to the group when there are none.
    pub fn open(
        iface: &str,
        ifindex: u32,
        src: IpAddr,
        peers: &[IpAddr],
        spec: AdvertSpec,
    ) -> io::Result<Sender> {
        let proto = Some(Protocol::from(IPPROTO_VRRP as i32));
        let sock = match src {
            IpAddr::V4(a) => {
                let s = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                s.set_ttl_v4(255)?;
                s.set_multicast_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
                s.set_multicast_if_v4(&a)?;
                // keepalived marks adverts CS6 (internetwork control).
                s.set_tos_v4(0xc0)?;
                s.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(a), 0)))?;
                s
            }
            IpAddr::V6(a) => {
                let s = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                s.set_unicast_hops_v6(255)?;
                s.set_multicast_hops_v6(255)?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(ifindex)?;
                let scope = if a.segments()[0] & 0xffc0 == 0xfe80 { ifindex } else { 0 };
                s.bind(&SockAddr::from(SocketAddrV6::new(a, 0, 0, scope)))?;
                s
            }
        };
        sock.bind_device(Some(iface.as_bytes()))?;
        sock.set_nonblocking(true)?;
        let dsts = if peers.is_empty() {
            vec![if src.is_ipv4() { IpAddr::V4(GROUP_V4) } else { IpAddr::V6(GROUP_V6) }]
        } else {
            peers.to_vec()
        };
        Ok(Sender { sock, src, dsts, ifindex, spec, buf: vec![0u8; 4200] })
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// Send one advert with `priority` to every destination. Returns how
    /// many went out; errors are per destination and reported.
    pub fn send(&mut self, priority: u8) -> Vec<(IpAddr, io::Result<()>)> {
        let addrs =
            if self.src.is_ipv4() { AddrList::V4(&self.spec.v4) } else { AddrList::V6(&self.spec.v6) };
        let repr = Repr {
            version: self.spec.version,
            vrid: self.spec.vrid,
            priority,
            interval: self.spec.interval,
            auth: self.spec.auth,
            addrs,
        };
        let mut out = Vec::with_capacity(self.dsts.len());
        for dst in &self.dsts {
            let tx = TxIp { src: self.src, dst: *dst, v3_checksum_as_v2: self.spec.v3_checksum_as_v2 };
            let res = match repr.emit(&mut self.buf, &tx) {
                Ok(n) => {
                    let to = match dst {
                        IpAddr::V4(d) => SockAddr::from(SocketAddr::new(IpAddr::V4(*d), 0)),
                        IpAddr::V6(d) => {
                            let scope = if d.is_multicast() || d.segments()[0] & 0xffc0 == 0xfe80 {
                                self.ifindex
                            } else {
                                0
                            };
                            SockAddr::from(SocketAddrV6::new(*d, 0, 0, scope))
                        }
                    };
                    self.sock.send_to(&self.buf[..n], &to).map(|_| ())
                }
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
            };
            out.push((*dst, res));
        }
        out
    }
}
