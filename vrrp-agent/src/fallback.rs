//! The userspace receive path, for machines where the XDP program cannot
//! attach (and the baseline the benchmarks compare XDP with): a raw socket
//! per interface and family, the same checks as the kernel (`rx::admit`),
//! the same peer-table rule (`PeerState::observe`), the same events.
//!
//! Adverts under an IP Authentication Header (`auth_type AH`, IP protocol
//! 51) come in on a raw socket of their own on both receive paths: the XDP
//! program checks their structure and passes them up (`ah_to_agent`), and
//! only here, with the key and the instance's sequence counter, are they
//! authenticated (keepalived's ICV, SPI and replay checks) before they
//! reach the peer table.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use vrrp_common::classify::Advert;
use vrrp_common::maps::{PeerEvent, PeerKey, PeerState};
use vrrp_common::rx::{self, Envelope, Expect};
use vrrp_common::wire::ah::{self, AhView, SeqCounter};
use vrrp_common::wire::vrrp::{GROUP_V4, GROUP_V6, addr_bytes};
use vrrp_common::wire::{Auth, Family, Repr, Version, ip};
use vrrp_common::{Centis, IPPROTO_VRRP, Verdict};

/// What an instance expects, owned (the receiver outlives the config).
#[derive(Clone, Debug)]
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
    /// With `auth_type AH`: the key and the sequence counter, shared with
    /// the instance's sender.
    pub ah: Option<Arc<AhAuth>>,
}

/// One instance's IPsec-AH state, shared by its receive path and its
/// sender: keepalived keeps one sequence counter per instance for both.
#[derive(Debug)]
pub struct AhAuth {
    /// The instance's name, for the log.
    pub name: String,
    /// `auth_pass` as keepalived makes it a key.
    pub key: [u8; ah::KEY_LEN],
    /// keepalived zeroes the TTL in the ICV for unicast instances only.
    pub unicast: bool,
    /// The sequence counter.
    pub counter: Mutex<SeqCounter>,
    /// Adverts refused by the ICV, SPI or replay check (keepalived's
    /// `auth_failure`).
    pub failures: AtomicU64,
}

impl AhAuth {
    /// Instance `name`'s, for `password`, unicast or not.
    pub fn new(name: &str, password: &[u8], unicast: bool) -> AhAuth {
        AhAuth {
            name: name.to_owned(),
            key: ah::key(password),
            unicast,
            counter: Mutex::new(SeqCounter::default()),
            failures: AtomicU64::new(0),
        }
    }

    /// Run `f` on the counter (a poisoned lock still holds a valid counter).
    pub fn with_counter<T>(&self, f: impl FnOnce(&mut SeqCounter) -> T) -> T {
        let mut g = self.counter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// Failures counted so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
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
    /// A protocol-51 socket for AH adverts (IPv4 only).
    ah: bool,
}

impl Receiver {
    /// A raw protocol-112 socket on `iface` (in this thread's namespace),
    /// joined to the VRRP group, non-blocking.
    pub fn open(iface: &str, family: Family) -> io::Result<Receiver> {
        Receiver::open_proto(iface, family, IPPROTO_VRRP)
    }

    /// A raw protocol-51 socket on `iface` for AH adverts (IPv4: keepalived
    /// refuses AH with IPv6), joined to the VRRP group, non-blocking.
    pub fn open_ah(iface: &str) -> io::Result<Receiver> {
        Receiver::open_proto(iface, Family::V4, ah::IPPROTO_AH)
    }

    fn open_proto(iface: &str, family: Family, proto_nr: u8) -> io::Result<Receiver> {
        let ifindex = nix::net::if_::if_nametoindex(iface).map_err(io::Error::from)?;
        Receiver::open_as_proto(iface, family, ifindex, proto_nr)
    }

    /// As `open`, on `iface` but recording peers and counters under
    /// `ifindex` (the base interface's, for an instance with use_vmac:
    /// a macvlan in private mode takes the other node's adverts, whose
    /// source MAC is its own, from the base, as keepalived hears them).
    pub fn open_as(iface: &str, family: Family, ifindex: u32) -> io::Result<Receiver> {
        Receiver::open_as_proto(iface, family, ifindex, IPPROTO_VRRP)
    }

    fn open_as_proto(iface: &str, family: Family, ifindex: u32, proto_nr: u8) -> io::Result<Receiver> {
        let on = nix::net::if_::if_nametoindex(iface).map_err(io::Error::from)?;
        let proto = Some(Protocol::from(i32::from(proto_nr)));
        let sock = match family {
            Family::V4 => {
                let s = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                s.join_multicast_v4_n(&GROUP_V4, &socket2::InterfaceIndexOrAddress::Index(on))?;
                s
            }
            Family::V6 => {
                let s = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                s.join_multicast_v6(&GROUP_V6, on)?;
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
            ah: proto_nr == ah::IPPROTO_AH,
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

    /// Whether this is the AH (protocol 51) socket.
    pub fn is_ah(&self) -> bool {
        self.ah
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
                if self.ah {
                    return Ok(self.handle_ah_packet(&pkt, now_ns));
                }
                // IPv4 raw sockets hand over the IP header too.
                let view = match ip::parse(&pkt) {
                    Ok(v) => v,
                    Err(v) => {
                        self.count(v);
                        return Ok(None);
                    }
                };
                let env = Envelope { src: view.src, dst: view.dst, ttl: view.ttl, in_ah: false };
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
                    (msg.bytes, Envelope { src, dst, ttl: hops, in_ah: false })
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

    /// Judge one IPv4 packet of protocol 51 (no I/O): an advert under AH
    /// is checked as any other, then authenticated (keepalived's order:
    /// ICV, SPI, sequence number); AH around anything but VRRP is not ours
    /// and not counted.
    pub fn handle_ah_packet(&mut self, pkt: &[u8], now_ns: u64) -> Option<PeerEvent> {
        let view = match ah::split(pkt) {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(v) => {
                self.count(v);
                return None;
            }
        };
        let (src, dst) = match (pkt.get(12..16), pkt.get(16..20)) {
            (Some(s), Some(d)) => (
                IpAddr::V4(std::net::Ipv4Addr::new(s[0], s[1], s[2], s[3])),
                IpAddr::V4(std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3])),
            ),
            _ => return None,
        };
        let env = Envelope { src, dst, ttl: pkt[8], in_ah: true };
        let raw_ah = &pkt[view.ip_header.len()..view.ip_header.len() + ah::AH_LEN];
        self.judge(&env, view.payload, now_ns, Some((&view, raw_ah)))
    }

    /// Judge one message (no I/O): count its verdict, record the peer of
    /// an accepted advert, and return an event if the peer changed.
    pub fn handle(&mut self, env: &Envelope, msg: &[u8], now_ns: u64) -> Option<PeerEvent> {
        self.judge(env, msg, now_ns, None)
    }

    fn judge(
        &mut self,
        env: &Envelope,
        msg: &[u8],
        now_ns: u64,
        ah_view: Option<(&AhView<'_>, &[u8])>,
    ) -> Option<PeerEvent> {
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
        // Under AH the structure checked out (admit refuses AH at an
        // instance without it): now the key and the counter.
        if let Some((view, raw_ah)) = ah_view {
            let Some(auth) = self.instances.get(&repr.vrid).and_then(|i| i.ah.clone()) else {
                self.count(Verdict::AuthTypeMismatch);
                return None;
            };
            let res = auth.with_counter(|c| ah::check(&auth.key, view, raw_ah, auth.unicast, c));
            if let Err(rej) = res {
                // keepalived counts every one of these as auth_failure.
                auth.failures.fetch_add(1, Ordering::Relaxed);
                match rej {
                    ah::AhReject::Replay { seq, local } => log::info!(
                        "({}) IPSEC-AH : sequence number {seq} already processed. Packet dropped. Local({local})",
                        auth.name
                    ),
                    ah::AhReject::BadIcv => log::info!(
                        "({}) IPSEC-AH : invalid IPSEC HMAC-MD5 value from {}. Due to fields mutation or bad password !",
                        auth.name,
                        env.src
                    ),
                    ah::AhReject::BadSpi => log::info!(
                        "({}) IPSEC-AH : invalid IPSEC SPI value from {}: it must be the source address",
                        auth.name,
                        env.src
                    ),
                }
                self.count(rej.verdict());
                return None;
            }
        }
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
