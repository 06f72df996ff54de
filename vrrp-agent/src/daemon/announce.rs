//! Telling the segment where the virtual addresses now live: gratuitous
//! ARP for IPv4 (RFC 5227 2.4 announcements, as keepalived sends them) and
//! unsolicited neighbour advertisements for IPv6 (RFC 4861 7.2.6).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::machine::Micros;

/// keepalived's pacing of announcements (`vrrp_garp_interval` for
/// gratuitous ARPs, `vrrp_gna_interval` for unsolicited NAs): at most one
/// every `interval`, in keepalived's order (each round of
/// `garp_master_repeat` goes over every address). Pure: the caller gives
/// the time and sends what comes out. An interval of 0 sends a burst at
/// once, as keepalived does without the settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    queue: VecDeque<IpAddr>,
    last: Option<Micros>,
}

impl Pacer {
    /// Queue `repeat` rounds over `addrs`; then take what is due with
    /// [`Pacer::due`].
    pub fn burst(&mut self, addrs: &[IpAddr], repeat: u32) {
        for _ in 0..repeat.max(1) {
            self.queue.extend(addrs.iter().copied());
        }
    }

    /// The next announcement due at `now`, if any (one per call; with
    /// `interval` 0, all of them one call after the other).
    pub fn due(&mut self, now: Micros, interval: Micros) -> Option<IpAddr> {
        if interval.0 > 0 && self.last.is_some_and(|l| now < l.after(interval)) {
            return None;
        }
        let a = self.queue.pop_front()?;
        self.last = Some(now);
        Some(a)
    }

    /// When the next queued one is due.
    pub fn deadline(&self, interval: Micros) -> Option<Micros> {
        if self.queue.is_empty() {
            return None;
        }
        Some(self.last.map_or(Micros(0), |l| l.after(interval)))
    }

    /// Drop what is queued (the instance left MASTER).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// The MAC address of `iface`, from getifaddrs(3) (its AF_PACKET entry).
pub fn mac_of(iface: &str) -> io::Result<[u8; 6]> {
    super::link::Ifaddrs::now().mac(iface)
}

/// A gratuitous ARP frame for `ip` owned by `mac`: an ARP request with
/// sender and target both `ip`, to the broadcast address.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    arp_request_frame(mac, ip, ip)
}

/// An ARP request for `target` from `sender` at `mac`, to the broadcast
/// address. The target caches the sender's MAC address from it whatever
/// its neighbour entry's lock time (RFC 826; Linux `neigh_event_ns`).
pub fn arp_request_frame(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&sender.octets());
    // Target hardware address zero.
    f[38..42].copy_from_slice(&target.octets());
    f
}

/// An unsolicited neighbour advertisement for `target` (ICMPv6 type 136,
/// Override set, with the target link-layer address option). The kernel
/// fills the ICMPv6 checksum on a raw ICMPv6 socket.
pub fn na_message(mac: [u8; 6], target: Ipv6Addr, router: bool) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136;
    // R (router), S = 0 (unsolicited), O (override).
    m[4] = if router { 0x80 | 0x20 } else { 0x20 };
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // Target Link-Layer Address
    m[25] = 1; // length in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

/// Sockets to announce on one interface. The ARP frames go out on one
/// packet socket shared by every instance (`packet_socket`).
pub struct Announcer {
    ifindex: u32,
    mac: [u8; 6],
    icmp6: Option<Socket>,
}

/// The process's one AF_PACKET socket for ARP frames, opened on first use
/// and kept to the end: it is bound to nothing (each frame names its
/// interface) and receives nothing (protocol 0). One per instance was
/// thousands with thousands of masters, and the kernel waits out an RCU
/// grace period for each one closed (packet_release): a SIGKILLed worker
/// of 250 masters took 4.3 s to die, so its supervisor learnt of the
/// death, and removed its VIPs, only after the backup had taken them over.
fn packet_socket() -> io::Result<std::os::fd::RawFd> {
    static SOCK: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = SOCK.get() {
        return Ok(fd.as_raw_fd());
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nothing else owns. (The agent's loop is
    // one thread; were it not, the loser's socket would close here.)
    let _ = SOCK.set(unsafe { OwnedFd::from_raw_fd(raw) });
    SOCK.get().map(AsRawFd::as_raw_fd).ok_or_else(|| io::Error::other("no packet socket"))
}

impl Announcer {
    /// For `iface` (index `ifindex`), opened lazily per family.
    pub fn new(iface: &str, ifindex: u32) -> io::Result<Announcer> {
        Ok(Announcer { ifindex, mac: mac_of(iface)?, icmp6: None })
    }

    /// As `new`, with `iface`'s MAC address from a dump already taken.
    pub fn with(ifs: &super::link::Ifaddrs, iface: &str, ifindex: u32) -> io::Result<Announcer> {
        Ok(Announcer { ifindex, mac: ifs.mac(iface)?, icmp6: None })
    }

    /// Announce `addr` once.
    pub fn announce(&mut self, addr: IpAddr) -> io::Result<()> {
        match addr {
            IpAddr::V4(a) => self.garp(a),
            IpAddr::V6(a) => self.na(a),
        }
    }

    /// Ask `target` for its MAC address from `sender` (an ARP request).
    pub fn solicit(&mut self, sender: Ipv4Addr, target: Ipv4Addr) -> io::Result<()> {
        self.send_arp(arp_request_frame(self.mac, sender, target))
    }

    fn garp(&mut self, ip: Ipv4Addr) -> io::Result<()> {
        self.send_arp(garp_frame(self.mac, ip))
    }

    fn send_arp(&mut self, frame: [u8; 42]) -> io::Result<()> {
        let fd = packet_socket()?;
        // SAFETY: zeroed sockaddr_ll is valid; filled below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: buffer and address valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn na(&mut self, target: Ipv6Addr) -> io::Result<()> {
        if self.icmp6.is_none() {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
            // RFC 4861 7.1.2: neighbour discovery uses hop limit 255.
            s.set_multicast_hops_v6(255)?;
            s.set_unicast_hops_v6(255)?;
            s.set_multicast_if_v6(self.ifindex)?;
            self.icmp6 = Some(s);
        }
        let Some(s) = &self.icmp6 else { return Err(io::Error::other("no ICMPv6 socket")) };
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let msg = na_message(self.mac, target, false);
        s.send_to(&msg, &SockAddr::from(SocketAddrV6::new(all_nodes, 0, 0, self.ifindex))).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_spaces_each_announcement_by_the_interval() {
        let a: IpAddr = "192.0.2.1".parse().expect("addr");
        let b: IpAddr = "192.0.2.2".parse().expect("addr");
        let mut p = Pacer::default();
        let iv = Micros::ms(200);
        p.burst(&[a, b], 2);
        assert_eq!(p.deadline(iv), Some(Micros(0)));
        assert_eq!(p.due(Micros::ms(1000), iv), Some(a));
        assert_eq!(p.due(Micros::ms(1000), iv), None, "one per interval");
        assert_eq!(p.deadline(iv), Some(Micros::ms(1200)));
        assert_eq!(p.due(Micros::ms(1199), iv), None);
        assert_eq!(p.due(Micros::ms(1200), iv), Some(b));
        assert_eq!(p.due(Micros::ms(1400), iv), Some(a), "round-major, as keepalived");
        assert_eq!(p.due(Micros::ms(1600), iv), Some(b));
        assert_eq!((p.due(Micros::ms(9000), iv), p.deadline(iv)), (None, None));
        // A new burst still keeps its distance from the last one sent.
        p.burst(&[a], 1);
        assert_eq!(p.deadline(iv), Some(Micros::ms(1800)));
        p.clear();
        assert_eq!(p.deadline(iv), None);
        // Interval 0: everything at once.
        p.burst(&[a, b], 3);
        let mut n = 0;
        while p.due(Micros::ms(2000), Micros(0)).is_some() {
            n += 1;
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn garp_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(192, 0, 2, 130));
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "ARP request");
        assert_eq!(&f[28..32], &[192, 0, 2, 130]);
        assert_eq!(&f[38..42], &[192, 0, 2, 130]);
        assert_eq!(&f[32..38], &[0; 6]);
    }

    #[test]
    fn na_layout() {
        let m = na_message([2, 0, 0, 0, 0, 1], "2001:db8::130".parse().expect("addr"), false);
        assert_eq!((m[0], m[4], m[24], m[25]), (136, 0x20, 2, 1));
        assert_eq!(&m[26..32], &[2, 0, 0, 0, 0, 1]);
    }
}
