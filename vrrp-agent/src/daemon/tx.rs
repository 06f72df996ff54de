//! Adverts out: a raw socket per instance, TTL/hop limit 255, to the VRRP
//! group or to each unicast peer, from the instance's source address
//! (RFC 5798 5.1). The kernel writes the IP header; we write the message,
//! with the checksum for each destination (v3's pseudo-header covers it).
//!
//! With `auth_type AH` the socket is protocol 51 with `IP_HDRINCL`: the
//! ICV covers the IP header, its ID included, so we write it ourselves as
//! keepalived does (ID counting from 1, TOS 0xc0, TTL 255), then the AH
//! header with the instance's next sequence number, then the message.
//!
//! A master's adverts are the agent's steady work (100 a second per
//! instance at 10 ms), so the messages are built once per priority and
//! kept (`Frame`); only AH, whose sequence number and ICV change with
//! every advert, builds them each time. Adverts of instances that fall
//! due together and leave through equal sockets (same device, source and
//! protocol) go out with one `sendmmsg` (`Batch`): one system call for a
//! VLAN's worth of instances instead of one each.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
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

/// One prepared message to one destination.
struct Frame {
    dst: IpAddr,
    to: SockAddr,
    bytes: Vec<u8>,
}

/// Which sockets are interchangeable: a message prepared for one may leave
/// through any other of the same key (each is bound to the device and the
/// source address, with the same options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxKey {
    ifindex: u32,
    src: IpAddr,
    ah: bool,
}

impl TxKey {
    /// The key of sockets on `ifindex` sending from `src` (with AH or not).
    pub fn new(ifindex: u32, src: IpAddr, ah: bool) -> TxKey {
        TxKey { ifindex, src, ah }
    }
}

/// One instance's sending socket.
pub struct Sender {
    sock: Socket,
    src: IpAddr,
    ifindex: u32,
    spec: AdvertSpec,
    /// One message per destination (the group, or each unicast peer).
    frames: Vec<Frame>,
    /// The priority `frames` carry; None: not built (or AH: always built).
    built: Option<u8>,
    /// `auth_type AH`: the key and sequence counter, and the IP ID.
    ah: Option<(Arc<AhAuth>, u16)>,
    /// Which socket this is (`id`).
    id: u64,
}

/// The next sender's `id`.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A master's prepared adverts at one priority, to hand to the advert
/// thread (`tx_thread.rs`): its own descriptor of the socket, and one
/// message per destination.
pub struct Prepared {
    /// A duplicate of the sender's socket: the thread's stays open even
    /// when the agent closes or replaces its own.
    pub sock: Socket,
    pub key: TxKey,
    /// (destination, its address, the message).
    pub frames: Vec<(IpAddr, SockAddr, Vec<u8>)>,
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
        let frames = dsts
            .into_iter()
            .map(|dst| Frame { dst, to: sock_addr(dst, ifindex), bytes: Vec::new() })
            .collect();
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Sender { sock, src, ifindex, spec, frames, built: None, ah: ah_auth.map(|a| (a, 0)), id })
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// This sender's identity: another socket (a rebind, a reload) has
    /// another.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// With `auth_type AH`, whose messages change with every advert.
    pub fn is_ah(&self) -> bool {
        self.ah.is_some()
    }

    /// The messages of an advert with `priority` and a duplicate of the
    /// socket, for a thread that sends them again and again (not for AH,
    /// whose messages differ each time: None). A destination whose message
    /// cannot be built is left out.
    pub fn prepare(&mut self, priority: u8) -> io::Result<Option<Prepared>> {
        if self.ah.is_some() {
            return Ok(None);
        }
        self.build(priority);
        // Exactly as long as needed: a filtered `collect` starts at four
        // entries of about 180 bytes (the socket address's storage) for
        // the one most masters have, 2.2 MiB of 4,000 masters' plans.
        let mut frames = Vec::with_capacity(self.frames.iter().filter(|f| !f.bytes.is_empty()).count());
        frames.extend(
            self.frames
                .iter()
                .filter(|f| !f.bytes.is_empty())
                .map(|f| (f.dst, f.to.clone(), f.bytes.clone())),
        );
        Ok(Some(Prepared { sock: self.sock.try_clone()?, key: self.key(), frames }))
    }

    /// Which other senders' sockets this one's messages may leave through.
    pub fn key(&self) -> TxKey {
        TxKey { ifindex: self.ifindex, src: self.src, ah: self.ah.is_some() }
    }

    /// Build the messages for `priority` unless they are built: a master's
    /// adverts differ only when its priority does (without AH).
    fn build(&mut self, priority: u8) {
        if self.ah.is_none() && self.built == Some(priority) {
            return;
        }
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
        // keepalived: one IP ID and one sequence number per advert, the
        // same to every unicast peer (the ICV differs by destination).
        let ah_next = self.ah.as_mut().map(|(auth, id)| {
            *id = id.wrapping_add(1).max(1);
            (auth.clone(), *id, auth.with_counter(|c| c.next_tx()))
        });
        let mut buf = [0u8; 4200];
        for f in &mut self.frames {
            let tx = TxIp { src: self.src, dst: f.dst, v3_checksum_as_v2: self.spec.v3_checksum_as_v2 };
            let built = match (&ah_next, self.src, f.dst) {
                (Some((auth, id, seq)), IpAddr::V4(s), IpAddr::V4(d)) => {
                    ah::emit_ipv4(&mut buf, s, d, *id, *seq, &auth.key, auth.unicast, |b| {
                        repr.emit(b, &tx).ok()
                    })
                }
                (Some(_), _, _) => None,
                (None, _, _) => repr.emit(&mut buf, &tx).ok(),
            };
            // An empty frame is one that cannot be built (reported at send).
            f.bytes.clear();
            if let Some(n) = built {
                f.bytes.extend_from_slice(&buf[..n]);
            }
        }
        self.built = Some(priority);
    }

    /// Send one advert with `priority` to every destination; `failed` hears
    /// of each destination it could not be sent to. How many it went to.
    pub fn send(&mut self, priority: u8, mut failed: impl FnMut(IpAddr, io::Error)) -> usize {
        self.build(priority);
        let mut went = 0;
        for f in &self.frames {
            if f.bytes.is_empty() {
                failed(f.dst, unbuildable());
                continue;
            }
            match self.sock.send_to(&f.bytes, &f.to) {
                Ok(_) => went += 1,
                Err(e) => failed(f.dst, e),
            }
        }
        went
    }

    /// Queue one advert with `priority` to every destination in `batch`,
    /// on behalf of `owner` (the caller's index of the instance); `failed`
    /// hears of a destination whose message cannot be built.
    pub fn queue(
        &mut self,
        priority: u8,
        owner: usize,
        batch: &mut Batch,
        mut failed: impl FnMut(IpAddr, io::Error),
    ) {
        self.build(priority);
        for f in &self.frames {
            if f.bytes.is_empty() {
                failed(f.dst, unbuildable());
                continue;
            }
            let start = batch.buf.len();
            batch.buf.extend_from_slice(&f.bytes);
            batch.msgs.push(Queued {
                key: self.key(),
                owner,
                priority,
                went: true,
                dst: f.dst,
                to: f.to.clone(),
                range: start..batch.buf.len(),
            });
        }
    }
}

fn unbuildable() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "the advert cannot be built (AH is IPv4 only)")
}

impl Batch {
    /// Queue one prepared message (`Sender::prepare`) for `owner`.
    pub fn push(&mut self, key: TxKey, owner: usize, priority: u8, dst: IpAddr, to: &SockAddr, bytes: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.msgs.push(Queued {
            key,
            owner,
            priority,
            went: true,
            dst,
            to: to.clone(),
            range: start..self.buf.len(),
        });
    }
}

/// Where a message to `dst` is addressed: the scope of a link-local or
/// multicast IPv6 destination is the interface.
fn sock_addr(dst: IpAddr, ifindex: u32) -> SockAddr {
    match dst {
        IpAddr::V4(d) => SockAddr::from(SocketAddr::new(IpAddr::V4(d), 0)),
        IpAddr::V6(d) => {
            let scope = if d.is_multicast() || d.segments()[0] & 0xffc0 == 0xfe80 { ifindex } else { 0 };
            SockAddr::from(SocketAddrV6::new(d, 0, 0, scope))
        }
    }
}

/// A message waiting in a batch.
struct Queued {
    key: TxKey,
    owner: usize,
    /// The advert's priority.
    priority: u8,
    /// Not refused by the kernel (set false when it is).
    went: bool,
    dst: IpAddr,
    to: SockAddr,
    range: std::ops::Range<usize>,
}

/// Adverts that fall due together, sent per socket key with `sendmmsg`.
/// Kept between ticks: its buffers are reused, so a master's steady
/// adverts allocate nothing.
#[derive(Default)]
pub struct Batch {
    buf: Vec<u8>,
    msgs: Vec<Queued>,
    /// After a flush: (owner, priority) of each owner at least one of
    /// whose messages went, for the crash record (`live.rs`).
    sent: Vec<(usize, u8)>,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

/// At most this many messages per `sendmmsg` (the kernel's UIO_MAXIOV).
const MMSG_MAX: usize = 1024;

impl Batch {
    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Send everything queued, one `sendmmsg` per run of equal keys (more
    /// for over `MMSG_MAX`), through the socket `sock_of` gives for the
    /// run's first owner; `failed` hears of each message that did not go,
    /// by owner and destination. Empties the batch.
    pub fn flush(
        &mut self,
        mut sock_of: impl FnMut(usize) -> Option<RawFd>,
        mut failed: impl FnMut(usize, IpAddr, io::Error),
    ) {
        // Equal keys together; within one, the queued order (stable sort).
        self.msgs.sort_by_key(|m| m.key);
        let mut i = 0;
        while i < self.msgs.len() {
            let key = self.msgs[i].key;
            let end = self.msgs[i..].iter().position(|m| m.key != key).map_or(self.msgs.len(), |n| i + n);
            match sock_of(self.msgs[i].owner) {
                Some(fd) => self.send_run(fd, i, end, &mut failed),
                None => {
                    for m in &mut self.msgs[i..end] {
                        m.went = false;
                        failed(m.owner, m.dst, io::Error::new(io::ErrorKind::NotConnected, "no socket"));
                    }
                }
            }
            i = end;
        }
        self.sent.clear();
        self.sent.extend(self.msgs.iter().filter(|m| m.went).map(|m| (m.owner, m.priority)));
        self.sent.dedup();
        self.msgs.clear();
        self.buf.clear();
    }

    /// The owners (with their adverts' priority) that the last `flush`
    /// sent at least one message for.
    pub fn sent(&self) -> &[(usize, u8)] {
        &self.sent
    }

    /// Messages `from..to` (one key) through `fd`.
    fn send_run(
        &mut self,
        fd: RawFd,
        from: usize,
        to: usize,
        failed: &mut impl FnMut(usize, IpAddr, io::Error),
    ) {
        let mut i = from;
        while i < to {
            let n = (to - i).min(MMSG_MAX);
            self.iovs.clear();
            self.hdrs.clear();
            for m in &self.msgs[i..i + n] {
                let bytes = &self.buf[m.range.clone()];
                self.iovs
                    .push(libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() });
            }
            for (k, m) in self.msgs[i..i + n].iter().enumerate() {
                // SAFETY: mmsghdr is plain data; all-zero is a valid value
                // (no control data, no flags).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = m.to.as_ptr().cast_mut().cast();
                h.msg_hdr.msg_namelen = m.to.len();
                h.msg_hdr.msg_iov = &raw mut self.iovs[k];
                h.msg_hdr.msg_iovlen = 1;
                self.hdrs.push(h);
            }
            let mut done = 0;
            while done < n {
                // SAFETY: `hdrs[done..n]` are valid headers whose names point
                // into `msgs` and whose iovecs point into `iovs` and `buf`,
                // none of which moves or changes until the call returns.
                let r = unsafe {
                    libc::sendmmsg(fd, self.hdrs[done..].as_mut_ptr(), (n - done) as libc::c_uint, 0)
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The first message of the rest failed: report it and
                    // go on with the next (the kernel stops at a failure).
                    let m = &mut self.msgs[i + done];
                    m.went = false;
                    failed(m.owner, m.dst, e);
                    done += 1;
                } else {
                    done += r as usize;
                }
            }
            i += n;
        }
    }
}

/// The raw descriptor of a sender's socket, for a batch.
impl Sender {
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}
