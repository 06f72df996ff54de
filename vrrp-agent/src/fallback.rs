//! The userspace receive path, for machines where the XDP program cannot
//! attach (and the baseline the benchmarks compare XDP with): a raw socket
//! per interface and family, the same checks as the kernel (`rx::admit`),
//! the same peer-table rule (`PeerState::observe`), the same events.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use vrrp_common::classify::Advert;
use vrrp_common::maps::{PeerEvent, PeerKey, PeerState};
use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, addr_bytes};
use vrrp_common::wire::{Auth, Family, Repr, Version, ip};
use vrrp_common::{Centis, IPPROTO_VRRP, Verdict};

/// What an instance expects, owned (the receiver outlives the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Version.
    pub version: Version,
    /// v2 authentication.
    pub auth: Auth,
    /// Our advert interval.
    pub interval: Centis,
    /// Our own addresses on the interface.
    pub own: Vec<IpAddr>,
    /// Unicast peers; empty for multicast.
    pub peers: Vec<IpAddr>,
}

/// One interface and family: its socket, instances, peers and counters.
pub struct Receiver {
    sock: Socket,
    family: Family,
    ifindex: u32,
    instances: HashMap<u8, Instance>,
    peers: BTreeMap<PeerKey, PeerState>,
    counters: BTreeMap<(u32, Verdict), u64>,
    buf: Vec<u8>,
}

impl Receiver {
    /// A raw protocol-112 socket on `iface` (in this thread's namespace),
    /// joined to the VRRP group, non-blocking.
    pub fn open(iface: &str, family: Family) -> io::Result<Receiver> {
        let ifindex = nix::net::if_::if_nametoindex(iface).map_err(io::Error::from)?;
        let proto = Some(Protocol::from(IPPROTO_VRRP as i32));
        let sock = match family {
            Family::V4 => {
                let s = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                s.join_multicast_v4_n(&GROUP_V4, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
                s
            }
            Family::V6 => {
                let s = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                s.join_multicast_v6(&GROUP_V6, ifindex)?;
                // IPv6 raw sockets deliver no IP header: the destination
                // and hop limit come as control messages.
                setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
                setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
                s
            }
        };
        sock.bind_device(Some(iface.as_bytes()))?;
        sock.set_nonblocking(true)?;
        Ok(Receiver {
            sock,
            family,
            ifindex,
            instances: HashMap::new(),
            peers: BTreeMap::new(),
            counters: BTreeMap::new(),
            buf: vec![0u8; 65536],
        })
    }

    /// Accept adverts for `vrid` as `inst` describes.
    pub fn add_instance(&mut self, vrid: u8, inst: Instance) {
        self.instances.insert(vrid, inst);
    }

    /// Stop accepting adverts for `vrid` (the instance was removed by a
    /// reload): they count as another daemon's again, and its peers go.
    pub fn remove_instance(&mut self, vrid: u8) {
        self.instances.remove(&vrid);
        self.peers.retain(|k, _| k.vrid != vrid);
    }

    /// Whether any instance is left.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Peers seen, as the kernel's `VRRP_PEERS` would hold them.
    pub fn peers(&self) -> &BTreeMap<PeerKey, PeerState> {
        &self.peers
    }

    /// Verdict counters, as the kernel's `VRRP_COUNTERS` would hold them.
    pub fn counters(&self) -> &BTreeMap<(u32, Verdict), u64> {
        &self.counters
    }

    /// Read one datagram if one is waiting (`WouldBlock` otherwise) and
    /// judge it; an event when a peer changed.
    pub fn recv_one(&mut self, now_ns: u64) -> io::Result<Option<PeerEvent>> {
        match self.family {
            Family::V4 => {
                let n = nix::sys::socket::recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let pkt = self.buf[..n].to_vec();
                // IPv4 raw sockets hand over the IP header too.
                let view = match ip::parse(&pkt) {
                    Ok(v) => v,
                    Err(v) => {
                        self.count(v);
                        return Ok(None);
                    }
                };
                let env = Envelope { src: view.src, dst: view.dst, ttl: view.ttl };
                Ok(self.handle(&env, view.payload, now_ns))
            }
            Family::V6 => {
                let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
                let (n, env) = {
                    let mut iov = [IoSliceMut::new(&mut self.buf)];
                    let msg = recvmsg::<SockaddrIn6>(
                        self.sock.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::empty(),
                    )
                    .map_err(io::Error::from)?;
                    let src =
                        msg.address.map(|a| IpAddr::V6(a.ip())).unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
                    let (mut dst, mut hops) = (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0u8);
                    for c in msg.cmsgs().map_err(io::Error::from)? {
                        match c {
                            ControlMessageOwned::Ipv6PacketInfo(info) => {
                                dst = IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                            }
                            ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).unwrap_or(0),
                            _ => {}
                        }
                    }
                    (msg.bytes, Envelope { src, dst, ttl: hops })
                };
                let payload = self.buf[..n].to_vec();
                Ok(self.handle(&env, &payload, now_ns))
            }
        }
    }

    /// Read and judge every datagram waiting; the events they raised. Ok
    /// once the socket would block.
    pub fn drain(&mut self, now_ns: impl Fn() -> u64) -> io::Result<Vec<PeerEvent>> {
        let mut out = Vec::new();
        loop {
            match self.recv_one(now_ns()) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// Judge one message (no I/O): count its verdict, record the peer of
    /// an accepted advert, and return an event if the peer changed.
    pub fn handle(&mut self, env: &Envelope, msg: &[u8], now_ns: u64) -> Option<PeerEvent> {
        let instances = &self.instances;
        let lookup = |vrid: u8, family: Family| {
            instances.get(&vrid).filter(|_| family == self.family).map(|i| Expect {
                version: i.version,
                auth: i.auth,
                interval: i.interval,
                own: &i.own,
                peers: &i.peers,
            })
        };
        let repr = match rx::admit(msg, env, lookup) {
            Ok((repr, _form)) => repr,
            Err(v) => {
                self.count(v);
                return None;
            }
        };
        self.count(Verdict::Accepted);
        let adv = advert(&repr);
        let family = self.family.code();
        let key = PeerKey {
            ifindex: self.ifindex,
            family,
            vrid: repr.vrid,
            _pad: [0; 2],
            addr: addr_bytes(&env.src),
        };
        let (kind, old_priority, state) = match self.peers.get_mut(&key) {
            Some(s) => {
                let old = s.priority;
                let kind = s.observe(&adv, now_ns);
                (kind, old, *s)
            }
            None => {
                let s = PeerState::first(&adv, now_ns);
                self.peers.insert(key, s);
                (PeerState::first_kind(&adv), 0, s)
            }
        };
        (kind != 0).then_some(PeerEvent { key, state, kind, old_priority, _pad: [0; 3] })
    }

    fn count(&mut self, v: Verdict) {
        *self.counters.entry((self.ifindex, v)).or_insert(0) += 1;
    }
}

impl AsRawFd for Receiver {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

fn advert(r: &Repr<'_>) -> Advert {
    Advert {
        version: r.version as u8,
        vrid: r.vrid,
        priority: r.priority,
        count: r.addrs.len() as u8,
        interval_cs: r.interval.0,
        auth_type: r.auth.code(),
    }
}

/// Wait until one of `rxs` has datagrams, read and judge them all; the
/// events they raised. `now_ns` reads CLOCK_MONOTONIC.
pub async fn next_events(
    rxs: &mut [tokio::io::unix::AsyncFd<Receiver>],
    now_ns: impl Fn() -> u64,
) -> io::Result<Vec<PeerEvent>> {
    let i = std::future::poll_fn(|cx| {
        for (i, rx) in rxs.iter().enumerate() {
            if rx.poll_read_ready(cx).is_ready() {
                return std::task::Poll::Ready(i);
            }
        }
        std::task::Poll::Pending
    })
    .await;
    let mut guard = rxs[i].readable_mut().await?;
    let events = guard.get_inner_mut().drain(now_ns);
    // Drained to WouldBlock (or failed): wait for the next readiness.
    guard.clear_ready();
    events
}
