//! A packet capture of our own on one interface of a namespace, with the
//! kernel's receive/transmit timestamps (SO_TIMESTAMPNS), for timing
//! failovers from the wire as the benchmarks do.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};

use crate::Netns;

/// One frame: CLOCK_REALTIME nanoseconds and its first bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Kernel timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// The frame, cut at 128 bytes.
    pub data: Vec<u8>,
}

/// A running capture; `stop` returns what it saw.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Frame>>>,
}

impl Capture {
    /// Capture every frame in and out of `iface` in `ns`.
    pub fn start(ns: &Netns, iface: &str) -> Result<Capture> {
        let iface = iface.to_owned();
        let fd = ns.run_in(move || {
            let ifindex = nix::net::if_::if_nametoindex(iface.as_str()).context("capture interface")?;
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); owned right away.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
            }
            // SAFETY: fresh fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: zeroed sockaddr_ll is valid; filled below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: address valid for its size.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error()).context("binding the capture");
            }
            setsockopt(&fd, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
            // Room for a burst (a takeover of hundreds of instances sends
            // thousands of gratuitous ARPs at once): the default buffer
            // dropped some of them before this thread read them.
            setsockopt(&fd, sockopt::RcvBufForce, &(8 << 20)).context("SO_RCVBUFFORCE")?;
            let tv = nix::sys::time::TimeVal::new(0, 20_000);
            setsockopt(&fd, sockopt::ReceiveTimeout, &tv).context("SO_RCVTIMEO")?;
            Ok(fd)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut frames = Vec::new();
            let mut buf = [0u8; 2048];
            // After the stop, what the socket already queued is still read
            // (without waiting): a frame sent before `stop` is never lost.
            let mut draining = false;
            loop {
                if !draining && flag.load(Ordering::Relaxed) {
                    draining = true;
                }
                let flags = if draining { MsgFlags::MSG_DONTWAIT } else { MsgFlags::empty() };
                let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                let msg = match recvmsg::<SockaddrStorage>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
                    Ok(msg) => msg,
                    Err(_) if draining => break,
                    Err(_) => continue,
                };
                let n = msg.bytes;
                let mut ts_ns = 0;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(t) = c {
                            ts_ns = t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64;
                        }
                    }
                }
                frames.push(Frame { ts_ns, data: buf[..n.min(128)].to_vec() });
            }
            frames
        });
        Ok(Capture { stop, thread: Some(thread) })
    }

    /// Stop and return the frames, in arrival order: every frame the
    /// kernel handed to the capture before the call.
    pub fn stop(mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `f` is an IPv4 VRRP advert from `src`.
pub fn is_advert_from(f: &Frame, src: [u8; 4]) -> bool {
    let d = &f.data;
    d.len() >= 34 && d[12..14] == [0x08, 0x00] && d[23] == 112 && d[26..30] == src
}

/// Whether `f` is an ARP for `ip` sent by `mac` (a gratuitous ARP).
pub fn is_garp(f: &Frame, mac: [u8; 6], ip: [u8; 4]) -> bool {
    let d = &f.data;
    d.len() >= 42 && d[12..14] == [0x08, 0x06] && d[22..28] == mac && d[28..32] == ip && d[38..42] == ip
}

/// `ip`'s MAC address on `iface` in `ns`.
pub fn mac(ns: &Netns, iface: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-o", "link", "show", "dev", iface])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let m = text.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).context("link/ether")?;
    let mut mac = [0u8; 6];
    for (i, p) in m.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(p, 16).context("mac")?;
    }
    Ok(mac)
}

/// A master kept `vip` through a restart or a crash, seen by `seen` (node
/// 0 the master, node 1 the backup) and the two bridge ports' frames: one
/// holder throughout, the backup never held it nor sent a gratuitous ARP
/// (from `backup_mac`), the master held it in one span and sent no
/// priority-0 advert. The kernel timestamps (ns) of the master's adverts
/// from `agent` for `vrid`, for the caller's gap checks.
pub fn master_kept_it(
    seen: &crate::holders::Seen,
    master_frames: &[Frame],
    backup_frames: &[Frame],
    backup_mac: [u8; 6],
    vip: [u8; 4],
    agent: [u8; 4],
    vrid: u8,
) -> anyhow::Result<Vec<u64>> {
    seen.assert_single_holder()?;
    assert!(seen.spans[1].is_empty(), "the backup held the VIP: {:?}", seen.spans[1]);
    assert_eq!(seen.spans[0].len(), 1, "the master lost the VIP: {:?}", seen.spans[0]);
    let garps = backup_frames.iter().filter(|f| is_garp(f, backup_mac, vip)).count();
    assert_eq!(garps, 0, "gratuitous ARPs from the backup");
    Ok(master_frames
        .iter()
        .filter(|f| is_advert_from(f, agent) && f.data[35] == vrid)
        .map(|f| {
            assert_ne!(f.data[36], 0, "a priority-0 advert");
            f.ts_ns
        })
        .collect())
}
