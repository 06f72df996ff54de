//! Virtual addresses on and off, through rtnetlink (what to add and remove
//! is the reconciler's decision, `reconcile.rs`), and the crash record of
//! what the agent holds.

use std::net::IpAddr;

use rtnetlink::Handle;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};

use crate::config::Vip;
use crate::daemon::reconcile::{Outcome, RouteKey, RuleKey};
use crate::daemon::routes;

/// A failed netlink call.
#[derive(Debug, thiserror::Error)]
#[error("{op} {addr}/{prefix} on ifindex {ifindex}: {source}")]
pub struct VipError {
    /// "adding" or "removing".
    pub op: &'static str,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// The interface.
    pub ifindex: u32,
    /// rtnetlink's error.
    pub source: rtnetlink::Error,
}

/// One address to manage, resolved to an interface index.
#[derive(Clone, Debug)]
pub struct ManagedVip {
    /// As configured.
    pub vip: Vip,
    /// Resolved `dev` (or the instance's interface); 0 while it does not
    /// exist.
    pub ifindex: u32,
}

impl ManagedVip {
    /// An address to manage on `ifindex`.
    pub fn new(vip: Vip, ifindex: u32) -> ManagedVip {
        ManagedVip { vip, ifindex }
    }

    /// The message that adds it, with prefix length `prefix`.
    pub fn message_with(&self, prefix: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = match self.vip.addr {
            IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
        };
        m.header.prefix_len = prefix;
        m.header.index = self.ifindex;
        m.header.scope = match self.vip.scope.as_deref() {
            Some("host") => AddressScope::Host,
            Some("link") => AddressScope::Link,
            Some("site") => AddressScope::Site,
            Some("nowhere") => AddressScope::Nowhere,
            _ => AddressScope::Universe,
        };
        m.attributes.push(AddressAttribute::Local(self.vip.addr));
        m.attributes.push(AddressAttribute::Address(self.vip.addr));
        if let (IpAddr::V4(_), Some(label)) = (self.vip.addr, &self.vip.label) {
            m.attributes.push(AddressAttribute::Label(label.clone()));
        }
        if self.vip.addr.is_ipv6() {
            // A VIP moves on purpose: no duplicate address detection (it
            // would hold the address tentative for a second), as keepalived.
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        m
    }
}

/// Add the address `msg` describes: Done, AlreadySo (EEXIST), or the error.
pub async fn add(handle: &Handle, msg: AddressMessage) -> Result<Outcome, rtnetlink::Error> {
    let (index, prefix) = (msg.header.index, msg.header.prefix_len);
    let addr = crate::daemon::link::address_of(&msg).map(|(_, a, _)| a);
    let Some(addr) = addr else { return Ok(Outcome::Failed) };
    let mut req = handle.address().add(index, addr, prefix);
    *req.message_mut() = msg;
    match netlink_timeout(req.execute()).await? {
        Ok(()) => Ok(Outcome::Done),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(Outcome::AlreadySo),
        Err(e) => Err(e),
    }
}

/// The message that removes `addr/prefix` from `ifindex`.
pub fn remove_message(ifindex: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => rtnetlink::packet_route::AddressFamily::Inet,
        IpAddr::V6(_) => rtnetlink::packet_route::AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix;
    m.header.index = ifindex;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m
}

/// Remove `addr/prefix` from `ifindex`: Done, AlreadySo (EADDRNOTAVAIL),
/// or the error.
pub async fn remove(
    handle: &Handle,
    ifindex: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<Outcome, rtnetlink::Error> {
    let m = remove_message(ifindex, addr, prefix);
    match netlink_timeout(handle.address().del(m).execute()).await? {
        Ok(()) => Ok(Outcome::Done),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {
            Ok(Outcome::AlreadySo)
        }
        Err(e) => Err(e),
    }
}

/// An address change for `Direct`.
#[derive(Debug)]
pub enum AddrMsg {
    /// RTM_NEWADDR (EEXIST: already so).
    Add(AddressMessage),
    /// RTM_DELADDR (EADDRNOTAVAIL: already so).
    Remove(AddressMessage),
}

/// The reconciler's address changes, sent by the loop's own thread on a
/// netlink socket of its own, in batches of `IN_FLIGHT` messages per
/// `sendmsg`, their acknowledgements read right after.
///
/// Through rtnetlink each request went to its connection task (a channel,
/// a wake-up, that task's send, its read of the acknowledgement, another
/// wake-up of the waiting future): hops that a takeover waited for
/// between its decision and its gratuitous ARPs. The kernel handles an
/// RTM_NEWADDR inside the `sendmsg` that carries it (under its RTNL
/// lock), so the acknowledgements are queued when it returns: one
/// `sendmsg` and one or a few `recv`s per batch, no task in between. A
/// `sendmsg` waits for the RTNL lock through rtnetlink too (its
/// connection task runs on this same thread), so nothing blocks that did
/// not before; the acknowledgements are given up after 2 s, as before.
#[derive(Debug)]
pub struct Direct {
    sock: rtnetlink::sys::Socket,
    seq: u32,
    buf: Vec<u8>,
    rx: Vec<u8>,
}

/// nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDRLEN: usize = 16;

impl Direct {
    /// A socket in the current network namespace (the agent's).
    pub fn open() -> std::io::Result<Direct> {
        use rtnetlink::sys::{SocketAddr, protocols::NETLINK_ROUTE};
        let mut sock = rtnetlink::sys::Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        // Acknowledgements without the request copied back.
        sock.set_cap_ack(true)?;
        // Room for a batch's acknowledgements (each takes a small skb).
        let _ = sock.set_rx_buf_sz(1 << 20);
        sock.connect(&SocketAddr::new(0, 0))?;
        let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
        // SAFETY: SO_RCVTIMEO reads a timeval of the size given.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Direct { sock, seq: 0, buf: Vec::new(), rx: vec![0; 64 * 1024] })
    }

    /// Send `msgs` (None: nothing to send, it fails); the outcome of each,
    /// in order.
    pub fn apply(&mut self, msgs: Vec<Option<AddrMsg>>) -> Vec<Result<Outcome, std::io::Error>> {
        let mut out: Vec<Result<Outcome, std::io::Error>> = Vec::with_capacity(msgs.len());
        let mut msgs = msgs.into_iter().peekable();
        while msgs.peek().is_some() {
            let chunk: Vec<Option<AddrMsg>> = msgs.by_ref().take(IN_FLIGHT).collect();
            let base = out.len();
            out.extend(chunk.iter().map(|_| Err(std::io::ErrorKind::InvalidInput.into())));
            self.batch(chunk, &mut out[base..]);
        }
        out
    }

    fn batch(&mut self, chunk: Vec<Option<AddrMsg>>, out: &mut [Result<Outcome, std::io::Error>]) {
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage};
        use rtnetlink::packet_route::RouteNetlinkMessage;
        self.buf.clear();
        // Sequence number of each request sent: out[k] answers seq first + k.
        let first = self.seq.wrapping_add(1);
        let mut pending = 0usize;
        let mut adds = Vec::with_capacity(chunk.len());
        for (k, m) in chunk.into_iter().enumerate() {
            let seq = first.wrapping_add(k as u32);
            let Some(m) = m else {
                adds.push(None);
                continue;
            };
            let (payload, flags, add) = match m {
                AddrMsg::Add(a) => (
                    RouteNetlinkMessage::NewAddress(a),
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
                    true,
                ),
                AddrMsg::Remove(a) => (RouteNetlinkMessage::DelAddress(a), NLM_F_REQUEST | NLM_F_ACK, false),
            };
            adds.push(Some(add));
            let mut nl = NetlinkMessage::from(payload);
            nl.header.flags = flags;
            nl.header.sequence_number = seq;
            nl.finalize();
            let at = self.buf.len();
            self.buf.resize(at + nl.buffer_len(), 0);
            nl.serialize(&mut self.buf[at..]);
            pending += 1;
        }
        self.seq = first.wrapping_add(adds.len() as u32).wrapping_sub(1);
        if pending == 0 {
            return;
        }
        if let Err(e) = self.sock.send(&self.buf, 0) {
            for (o, a) in out.iter_mut().zip(&adds) {
                if a.is_some() {
                    *o = Err(std::io::Error::new(e.kind(), e.to_string()));
                }
            }
            return;
        }
        let mut answered = vec![false; adds.len()];
        while pending > 0 {
            let n = match self.sock.recv(&mut &mut self.rx[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Timed out (2 s) or the socket failed: what is not
                    // answered counts as failed; the reconciler tries again.
                    for ((o, a), done) in out.iter_mut().zip(&adds).zip(&answered) {
                        if a.is_some() && !done {
                            *o = Err(std::io::Error::new(e.kind(), e.to_string()));
                        }
                    }
                    return;
                }
            };
            for (seq, code) in acks(&self.rx[..n]) {
                let k = seq.wrapping_sub(first) as usize;
                let Some(Some(add)) = adds.get(k) else { continue };
                if answered[k] {
                    continue;
                }
                answered[k] = true;
                pending -= 1;
                let already = if *add { libc::EEXIST } else { libc::EADDRNOTAVAIL };
                out[k] = match code {
                    0 => Ok(Outcome::Done),
                    c if c == -already => Ok(Outcome::AlreadySo),
                    c => Err(std::io::Error::from_raw_os_error(-c)),
                };
            }
        }
    }
}

/// The acknowledgements (NLMSG_ERROR: sequence number, error code, 0 for
/// success) in a datagram of netlink messages.
fn acks(mut b: &[u8]) -> Vec<(u32, i32)> {
    use rtnetlink::packet_core::{ErrorBuffer, NetlinkBuffer};
    let mut out = Vec::new();
    // netlink-packet-core's views check each header's length against the
    // datagram; a message cut short ends the walk.
    while let Ok(msg) = NetlinkBuffer::new_checked(b) {
        let len = msg.length() as usize;
        if len < NLMSG_HDRLEN {
            break;
        }
        if msg.message_type() == libc::NLMSG_ERROR as u16
            && let Ok(err) = ErrorBuffer::new_checked(msg.payload())
        {
            out.push((msg.sequence_number(), err.code().map_or(0, i32::from)));
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// A netlink call that hangs (the kernel's RTNL lock held elsewhere for
/// long) is given up after 2 s; the reconciler tries again later.
async fn netlink_timeout<T>(f: impl std::future::Future<Output = T>) -> Result<T, rtnetlink::Error> {
    tokio::time::timeout(std::time::Duration::from_secs(2), f)
        .await
        .map_err(|_| rtnetlink::Error::RequestFailed)
}

/// Where agent `name` records the addresses it holds, so a run after a
/// crash can take back what the dead one left.
pub fn held_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(crate::instance_lock::LOCK_DIR).join(format!("{name}.vips"))
}

/// What an agent holds in the kernel, as its crash record says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Addresses: (ifindex, address, prefix).
    pub addrs: Vec<(u32, IpAddr, u8)>,
    /// Routes, with the protocol they were added with.
    pub routes: Vec<(RouteKey, u8)>,
    /// Rules, and whether they carry keepalived's protocol.
    pub rules: Vec<(RuleKey, bool)>,
}

/// `held` as the record says it, one per line: `IFINDEX ADDRESS/PREFIX`
/// for an address, `route ...` and `rule ...` (see `routes::route_record`).
fn held_text(held: &Held) -> String {
    let mut text: String = held.addrs.iter().map(|(i, a, p)| format!("{i} {a}/{p}\n")).collect();
    for (k, p) in &held.routes {
        text.push_str(&routes::route_record(k, *p));
        text.push('\n');
    }
    for (k, t) in &held.rules {
        text.push_str(&routes::rule_record(k, *t));
        text.push('\n');
    }
    text
}

/// Record `held` (replacing the record: a temporary renamed over it, so
/// that a kill at any point leaves the old list or the new one).
pub fn save_held(name: &str, held: &Held) -> std::io::Result<()> {
    let path = held_file(name);
    let tmp = path.with_extension("vips.tmp");
    std::fs::write(&tmp, held_text(held))?;
    std::fs::rename(tmp, path)
}

/// What is in `now` and not in `before`, or None if something of `before`
/// is not in `now` (the record must shrink: a rewrite).
pub fn growth(before: &Held, now: &Held) -> Option<Held> {
    use std::collections::HashSet;
    let now_addrs: HashSet<_> = now.addrs.iter().collect();
    if before.addrs.iter().any(|a| !now_addrs.contains(a))
        || before.routes.iter().any(|r| !now.routes.contains(r))
        || before.rules.iter().any(|r| !now.rules.contains(r))
    {
        return None;
    }
    let had: HashSet<_> = before.addrs.iter().collect();
    Some(Held {
        addrs: now.addrs.iter().filter(|a| !had.contains(a)).copied().collect(),
        routes: now.routes.iter().filter(|r| !before.routes.contains(r)).copied().collect(),
        rules: now.rules.iter().filter(|r| !before.rules.contains(r)).cloned().collect(),
    })
}

/// The crash record an agent keeps: what it holds, or is about to add.
///
/// It grows by appending to a file kept open, one `write` with no file
/// created or renamed: that is what a takeover does before its netlink
/// add, and a create-write-rename on /run took 0.24-0.42 ms (median; p95
/// several ms) where /run is not a tmpfs, against a few µs for the write
/// (bench-results/crash-p95.md). A kill during the write leaves a prefix
/// of it, and only whole lines count (`complete_lines`), so the record
/// then names what it named before plus whole new entries: never an
/// entry cut short (`192.0.2.10/2` for `192.0.2.10/24`). It shrinks
/// (after a removal, off the takeover's path) by a rewrite renamed over it.
#[derive(Debug)]
pub struct Record {
    name: String,
    /// Opened for appending; reopened after a rewrite or when the file
    /// was removed under it (the supervisor's fence).
    file: Option<std::fs::File>,
    /// What the record says (it may say more: a resumed worker's record
    /// holds its predecessor's entries until the first rewrite).
    pub written: Held,
}

impl Record {
    /// Agent `name`'s record, created empty if there is none, so that the
    /// first takeover only writes.
    pub fn open(name: &str) -> Record {
        let mut r = Record { name: name.to_owned(), file: None, written: Held::default() };
        if let Err(e) = r.reopen() {
            log::warn!("opening {}: {e}", held_file(name).display());
        }
        r
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        self.file = None;
        let f = std::fs::OpenOptions::new().append(true).create(true).open(held_file(&self.name))?;
        self.file = Some(f);
        Ok(())
    }

    /// Make the record say `now`: append what it adds, or rewrite it if it
    /// drops something.
    pub fn set(&mut self, now: &Held) -> std::io::Result<()> {
        if *now == self.written {
            return Ok(());
        }
        match growth(&self.written, now) {
            // The same entries in another order.
            Some(more) if more == Held::default() => {}
            Some(more) => {
                // Removed under us (a supervisor's fence removes the record
                // of a worker it gave up on, and may have read it before
                // our last append): a new file, with the whole list. An
                // fstat, no file system journal.
                let text = if self.unlinked() {
                    self.reopen()?;
                    held_text(now)
                } else {
                    held_text(&more)
                };
                self.append(&text)?;
            }
            None => {
                save_held(&self.name, now)?;
                // The file open for appending is the one renamed over.
                self.reopen()?;
            }
        }
        self.written = now.clone();
        Ok(())
    }

    /// Whether the file open for appending is gone from the directory.
    fn unlinked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.file.as_ref().is_none_or(|f| f.metadata().is_ok_and(|m| m.nlink() == 0))
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Write;
        let Some(f) = &mut self.file else { return Err(std::io::ErrorKind::NotFound.into()) };
        // One write (O_APPEND): the kernel appends it whole unless the
        // process is killed meanwhile, and then whole lines still count.
        f.write_all(text.as_bytes())
    }
}

/// The whole lines of a record: a kill during an append leaves the last
/// one without its newline, and it does not count.
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole.lines().filter(|l| !l.trim().is_empty())
}

/// Remove what a previous agent of this name recorded and did not remove
/// (it was killed). Called with the instance lock held, so that agent is
/// gone.
pub async fn cleanup_stale(name: &str, handle: &Handle) {
    for (what, r) in remove_recorded(name, handle).await {
        match r {
            Ok(()) => log::warn!("removed {what}, left by an earlier run that did not stop cleanly"),
            Err(e) => log::warn!("removing {what} left by an earlier run: {e}"),
        }
    }
    let _ = std::fs::remove_file(held_file(name));
}

/// Remove everything recorded in agent `name`'s held file, leaving the
/// file in place; returns each entry (as `192.0.2.1/24`, `route ...`,
/// `rule ...`) with its outcome. Routes and rules go first (a route may
/// use a recorded address as its source). The supervisor calls it for a
/// worker that died or stopped, the next run (through `cleanup_stale`)
/// for one that was killed with its supervisor.
pub async fn remove_recorded(name: &str, handle: &Handle) -> Vec<(String, Result<(), String>)> {
    let path = held_file(name);
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    let mut out = Vec::new();
    let mut addrs = Vec::new();
    for line in complete_lines(&text) {
        let r = if line.starts_with("route ") {
            let Some((key, proto)) = routes::parse_route_record(line) else {
                log::warn!("{}: ignoring malformed line {line:?}", path.display());
                continue;
            };
            let what = format!("route {}/{} (table {})", key.dst, key.dst_len, key.table);
            (what, routes::del_route(handle, routes::route_delete_message(&key, proto)).await)
        } else if line.starts_with("rule ") {
            let Some((key, tracked)) = routes::parse_rule_record(line) else {
                log::warn!("{}: ignoring malformed line {line:?}", path.display());
                continue;
            };
            let what = format!("rule preference {}", key.priority);
            (what, routes::del_rule(handle, routes::rule_message(&key, tracked)).await)
        } else {
            addrs.push(line);
            continue;
        };
        out.push((r.0, r.1.map(|_| ()).map_err(|e| e.to_string())));
    }
    let mut parsed = Vec::new();
    for line in addrs {
        let p = line.split_once(' ').and_then(|(i, rest)| {
            let (a, p) = rest.split_once('/')?;
            Some((i.parse::<u32>().ok()?, a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?))
        });
        match p {
            Some(p) => parsed.push(p),
            None => log::warn!("{}: ignoring malformed line {line:?}", path.display()),
        }
    }
    // Pipelined, not one round trip each: the supervisor removes a dead
    // worker's VIPs within its takeover margin (two advert intervals), and
    // a worker with thousands of instances held thousands.
    use futures_util::StreamExt;
    let removed: Vec<(String, Result<(), String>)> = futures_util::stream::iter(parsed)
        .map(|(ifindex, addr, prefix)| async move {
            let r = match remove(handle, ifindex, addr, prefix).await {
                Ok(_) => Ok(()),
                Err(source) => Err(format!("ifindex {ifindex}: {source}")),
            };
            (format!("{addr}/{prefix}"), r)
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    out.extend(removed);
    out
}

/// How many address requests are in flight on one netlink socket at once
/// (the kernel's answers queue in its receive buffer until read).
pub const IN_FLIGHT: usize = 128;

/// Agent `name`'s held file as it says (malformed lines skipped).
pub fn load_held(name: &str) -> Held {
    std::fs::read_to_string(held_file(name)).map_or_else(|_| Held::default(), |t| parse_held(&t))
}

/// A record's text as it says (malformed lines and a last line cut short
/// skipped).
fn parse_held(text: &str) -> Held {
    let mut held = Held::default();
    for line in complete_lines(text) {
        if line.starts_with("route ") {
            held.routes.extend(routes::parse_route_record(line));
        } else if line.starts_with("rule ") {
            held.rules.extend(routes::parse_rule_record(line));
        } else {
            let parsed = line.split_once(' ').and_then(|(i, rest)| {
                let (a, p) = rest.split_once('/')?;
                Some((i.parse::<u32>().ok()?, a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?))
            });
            held.addrs.extend(parsed);
        }
    }
    held
}

/// Whether agent `name`'s held file records anything.
pub fn any_recorded(name: &str) -> bool {
    std::fs::read_to_string(held_file(name)).is_ok_and(|t| complete_lines(&t).next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32, a: &str, p: u8) -> (u32, IpAddr, u8) {
        (i, a.parse().expect("a test address"), p)
    }

    #[test]
    fn a_record_cut_short_names_whole_entries_only() {
        let held = Held {
            addrs: vec![addr(5, "192.0.2.10", 24), addr(5, "192.0.2.100", 24), addr(7, "2001:db8::1", 64)],
            ..Held::default()
        };
        let text = held_text(&held);
        assert_eq!(parse_held(&text), held);
        // A kill during the append leaves any prefix of it: what it then
        // says is the entries before the cut, never one cut short
        // (192.0.2.10/2 for 192.0.2.10/24).
        for cut in 0..text.len() {
            let said = parse_held(&text[..cut]);
            assert_eq!(said.addrs[..], held.addrs[..said.addrs.len()], "cut at {cut}: {:?}", &text[..cut]);
            let whole_lines = text[..cut].matches('\n').count();
            assert_eq!(said.addrs.len(), whole_lines, "cut at {cut}");
        }
    }

    #[test]
    fn acknowledgements_are_read_by_sequence_number() {
        // Two NLMSG_ERROR messages (cap_ack: header, code, the request's
        // header) and a message of another type between them.
        let mut b = Vec::new();
        let mut msg = |kind: u16, seq: u32, body: &[u8]| {
            b.extend(((16 + body.len()) as u32).to_ne_bytes());
            b.extend(kind.to_ne_bytes());
            b.extend(0u16.to_ne_bytes());
            b.extend(seq.to_ne_bytes());
            b.extend(0u32.to_ne_bytes());
            b.extend(body);
        };
        let ack = |code: i32| [code.to_ne_bytes().to_vec(), vec![0; 16]].concat();
        msg(2, 7, &ack(0));
        msg(3, 8, &[0; 4]);
        msg(2, 9, &ack(-libc::EEXIST));
        assert_eq!(acks(&b), vec![(7, 0), (9, -libc::EEXIST)]);
        // Cut short: what is whole is read.
        assert_eq!(acks(&b[..b.len() - 3]), vec![(7, 0)]);
    }

    #[test]
    fn the_record_grows_by_appending_and_shrinks_by_a_rewrite() {
        let a = addr(5, "192.0.2.10", 24);
        let b = addr(5, "192.0.2.11", 24);
        let before = Held { addrs: vec![a], ..Held::default() };
        let now = Held { addrs: vec![a, b], ..Held::default() };
        assert_eq!(growth(&before, &now), Some(Held { addrs: vec![b], ..Held::default() }));
        // The append to the old text says the new list.
        let appended = held_text(&before) + &held_text(&growth(&before, &now).expect("it grew"));
        assert_eq!(parse_held(&appended), now);
        // Something dropped: a rewrite, not an append.
        assert_eq!(growth(&now, &before), None);
        assert_eq!(growth(&now, &Held { addrs: vec![b], ..Held::default() }), None);
        assert_eq!(growth(&now, &now), Some(Held::default()));
    }
}
