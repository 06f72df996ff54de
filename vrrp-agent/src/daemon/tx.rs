//! Adverts out: a raw socket per instance, TTL/hop limit 255, to the VRRP
//! group or to each unicast peer, from the instance's source address
//! (RFC 5798 5.1). The kernel writes the IP header; we write the message,
//! with the checksum for each destination (v3's pseudo-header covers it).
//!
//! With `auth_type AH` the socket is protocol 51 with `IP_HDRINCL`: the
//! ICV covers the IP header, its ID included, so we write it ourselves as
//! keepalived does (ID counting from 1, TOS 0xc0, TTL 255), then the AH
//! header with the instance's next sequence number, then the message.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp_common::wire::ah;
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, TxIp};
use vrrp_common::wire::{AddrList, Auth, Repr, Version};
use vrrp_common::{Centis, IPPROTO_VRRP};

use crate::fallback::AhAuth;

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
    /// `auth_type AH`: the key and sequence counter, and the IP ID.
    ah: Option<(Arc<AhAuth>, u16)>,
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
        ah_auth: Option<Arc<AhAuth>>,
    ) -> io::Result<Sender> {
        let proto_nr = if ah_auth.is_some() { ah::IPPROTO_AH } else { IPPROTO_VRRP };
        let proto = Some(Protocol::from(i32::from(proto_nr)));
        let sock = match src {
            IpAddr::V4(a) => {
                let s = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                if ah_auth.is_some() {
                    s.set_header_included_v4(true)?;
                }
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
        if ah_auth.is_some() && !src.is_ipv4() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "AH authentication is IPv4 only"));
        }
        // The largest advert this instance sends, not the largest any
        // could (4,200 bytes each were 16 MiB of a 4,000-instance agent's
        // heap): its own addresses, and the IPv4 and AH headers with AH.
        let addrs = if src.is_ipv4() { AddrList::V4(&spec.v4) } else { AddrList::V6(&spec.v6) };
        let repr = Repr {
            version: spec.version,
            vrid: spec.vrid,
            priority: 0,
            interval: spec.interval,
            auth: spec.auth,
            addrs,
        };
        let len = repr.buffer_len() + if ah_auth.is_some() { 20 + ah::AH_LEN } else { 0 };
        Ok(Sender { sock, src, dsts, ifindex, spec, buf: vec![0u8; len], ah: ah_auth.map(|a| (a, 0)) })
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
        // keepalived: one IP ID and one sequence number per advert, the
        // same to every unicast peer (the ICV differs by destination).
        let ah_next = self.ah.as_mut().map(|(auth, id)| {
            *id = id.wrapping_add(1).max(1);
            (auth.clone(), *id, auth.with_counter(|c| c.next_tx()))
        });
        for dst in &self.dsts {
            let tx = TxIp { src: self.src, dst: *dst, v3_checksum_as_v2: self.spec.v3_checksum_as_v2 };
            let built = match (&ah_next, self.src, *dst) {
                (Some((auth, id, seq)), IpAddr::V4(s), IpAddr::V4(d)) => {
                    ah::emit_ipv4(&mut self.buf, s, d, *id, *seq, &auth.key, auth.unicast, |b| {
                        repr.emit(b, &tx).ok()
                    })
                    .ok_or_else(|| "AH advert does not fit".to_owned())
                }
                (Some(_), _, _) => Err("AH authentication is IPv4 only".to_owned()),
                (None, _, _) => repr.emit(&mut self.buf, &tx).map_err(|e| e.to_string()),
            };
            let res = match built {
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
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidInput, e)),
            };
            out.push((*dst, res));
        }
        out
    }
}
