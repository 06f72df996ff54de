//! Whole Ethernet frames, built byte by byte and sent through an AF_PACKET
//! socket: for packets no well-behaved stack would send (bad TTL, VLAN
//! tags, fragments, broken checksums).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
use vrrp_common::checksum;
use vrrp_common::wire::ip;

/// MAC of the VRRP virtual router for IPv4 `vrid` (RFC 5798 7.3).
pub fn vrrp_mac_v4(vrid: u8) -> [u8; 6] {
    [0, 0, 0x5e, 0, 1, vrid]
}

/// An Ethernet header (with one 802.1Q tag if `vlan` is set).
fn ethernet(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(id) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Destination MAC for an IPv4 address: the multicast mapping or broadcast
/// (a veth delivers whatever it gets; the XDP program sees it first).
fn mac_for_v4(dst: Ipv4Addr) -> [u8; 6] {
    let o = dst.octets();
    if dst.is_multicast() { [0x01, 0, 0x5e, o[1] & 0x7f, o[2], o[3]] } else { [0xff; 6] }
}

/// IPv4 options for a test frame.
#[derive(Clone, Copy, Debug)]
pub struct V4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// Set More Fragments.
    pub fragment: bool,
    /// One 802.1Q tag.
    pub vlan: Option<u16>,
    /// Destination MAC; default: the multicast mapping, or broadcast for a
    /// unicast address (which the stack then treats as link broadcast).
    pub dst_mac: Option<[u8; 6]>,
}

/// An IPv4 frame carrying `payload` as protocol 112.
pub fn ipv4(o: &V4, payload: &[u8]) -> Vec<u8> {
    let mut f =
        ethernet(o.dst_mac.unwrap_or_else(|| mac_for_v4(o.dst)), [2, 0, 0, 0, 0, 0x99], o.vlan, 0x0800);
    let mut h = [0u8; ip::IPV4_HLEN];
    ip::emit_ipv4(&mut h, o.src, o.dst, payload.len() as u16, 7).expect("20 bytes");
    h[8] = o.ttl;
    if o.fragment {
        h[6] |= 0x20;
    }
    h[10..12].fill(0);
    let c = checksum::of(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// An IPv6 frame carrying `payload` as protocol 112.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let o = dst.octets();
    let mac = if dst.is_multicast() { [0x33, 0x33, o[12], o[13], o[14], o[15]] } else { [0xff; 6] };
    let mut f = ethernet(mac, [2, 0, 0, 0, 0, 0x99], vlan, 0x86dd);
    let mut h = [0u8; ip::IPV6_HLEN];
    ip::emit_ipv6(&mut h, src, dst, payload.len() as u16).expect("40 bytes");
    h[7] = hop_limit;
    f.extend_from_slice(&h);
    f.extend_from_slice(payload);
    f
}

/// A unicast IPv4 or IPv6 frame carrying `payload` as protocol (or IPv6
/// Next Header) `proto`, to the broadcast MAC (for BPF_PROG_TEST_RUN and
/// veths, which deliver whatever they get).
pub fn ip_proto(src: std::net::IpAddr, dst: std::net::IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    use std::net::IpAddr;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut f =
                ipv4(&V4 { src: s, dst: d, ttl: 64, fragment: false, vlan: None, dst_mac: None }, payload);
            f[14 + 9] = proto;
            f[14 + 10..14 + 12].fill(0);
            let c = checksum::of(&f[14..34]);
            f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
            f
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut f = ipv6(s, d, 64, None, payload);
            f[14 + 6] = proto;
            f
        }
        _ => panic!("ip_proto: mixed families"),
    }
}

/// An AF_PACKET socket bound to one interface of the namespace it was
/// made in.
pub struct FrameSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl FrameSocket {
    /// Open on `iface` (call on a thread inside the namespace).
    pub fn open(iface: &str) -> Result<FrameSocket> {
        let ifindex =
            nix::net::if_::if_nametoindex(iface).with_context(|| format!("no interface {iface}"))?;
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket (needs CAP_NET_RAW)");
        }
        // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(FrameSocket { fd, ifindex: ifindex as i32 })
    }

    /// Send one frame as is.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: sockaddr_ll is plain old data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("sendto");
        }
        if n as usize != frame.len() {
            bail!("short send: {n} of {}", frame.len());
        }
        Ok(())
    }
}
