//! Where adverts come in: the XDP program's maps and ring buffer, or raw
//! sockets where XDP cannot attach.

use tokio::io::unix::AsyncFd;
use vrrp_common::maps::{ALIVE_REFRESH_NS, PeerEvent, PeerKey, PeerState};

use super::instance::Inst;
use super::timer;
use crate::datapath::{Datapath, Events};
use crate::fallback::{self, Receiver};
use crate::machine::Micros;

/// The XDP receive path's handles.
pub(super) struct XdpSource {
    pub(super) dp: Datapath,
    pub(super) events: AsyncFd<Events>,
    /// When the `ALIVE_MAP` deadline was last moved.
    pub(super) alive_at: Micros,
    /// Where the links are pinned (None with `--no-pin`).
    pub(super) pin_dir: Option<std::path::PathBuf>,
    /// `--pass-up`.
    pub(super) pass_up: bool,
    /// Raw protocol-51 sockets for AH instances' adverts, which the XDP
    /// program passes up unauthenticated (`ah_to_agent`).
    pub(super) ah_rxs: Vec<AsyncFd<Receiver>>,
}

pub(super) enum Source {
    Xdp(Box<XdpSource>),
    Sockets { rxs: Vec<AsyncFd<Receiver>> },
}

impl Source {
    /// "xdp" or "socket", for the status file.
    pub(super) fn kind(&self) -> &'static str {
        if matches!(self, Source::Xdp(_)) { "xdp" } else { "socket" }
    }

    /// Instance `i` is open on a new interface index (its interface was
    /// created again): attach the program there and configure the
    /// instance (XDP), or open a raw socket there (fallback).
    pub(super) fn bind(&mut self, insts: &[Inst], i: usize) -> Result<(), String> {
        let inst = &insts[i];
        let iface = inst.conf.interface.as_str();
        match self {
            Source::Xdp(x) => {
                // The map entry before the attach, as at start: an advert
                // in between would be passed up as another daemon's.
                x.dp.configure(inst.ifindex, inst.family, inst.conf.vrid, &inst.expect(), x.pass_up)
                    .map_err(|e| e.to_string())?;
                if !x.dp.attached().iter().any(|(_, idx)| *idx == inst.ifindex) {
                    x.dp.reattach(iface, x.pin_dir.as_deref()).map_err(|e| e.to_string())?;
                    log::info!("XDP program attached to {iface} again (ifindex {})", inst.ifindex);
                }
                reopen_ah(&mut x.ah_rxs, insts, i)
            }
            Source::Sockets { rxs } => {
                // One receiver per interface and family, with every
                // instance there; the old one's interface is gone.
                let gone =
                    |r: &AsyncFd<Receiver>| nix::net::if_::if_indextoname(r.get_ref().ifindex()).is_err();
                rxs.retain(|r| !gone(r));
                let mut rx = Receiver::open_as(inst.rx_iface(), inst.family, inst.ifindex)
                    .map_err(|e| e.to_string())?;
                for other in insts.iter().filter(|o| o.ifindex == inst.ifindex && o.family == inst.family) {
                    rx.add_instance(other.conf.vrid, other.fallback_instance());
                }
                rxs.retain(|r| r.get_ref().ifindex() != inst.ifindex || r.get_ref().family() != inst.family);
                // SAFETY: the Receiver owns its socket and the AsyncFd owns
                // it, so the fd stays open and the same for the AsyncFd's life.
                let fd = unsafe { AsyncFd::register_with_interest(rx, tokio::io::Interest::READABLE) }
                    .map_err(|e| e.to_string())?;
                rxs.push(fd);
                log::info!("receiving on a raw socket on {iface} again");
                reopen_ah(rxs, insts, i)
            }
        }
    }

    /// A reload removed `inst` (`remaining` are the instances left): its
    /// adverts are no longer ours (the XDP row goes, or the raw socket's
    /// instance). The program stays attached while the interface has any.
    pub(super) fn forget(&mut self, inst: &Inst, remaining: &[Inst]) {
        if !inst.bound() {
            return;
        }
        let same =
            |o: &Inst| o.ifindex == inst.ifindex && o.family == inst.family && o.conf.vrid == inst.conf.vrid;
        if remaining.iter().any(same) {
            return;
        }
        match self {
            Source::Xdp(x) => {
                if let Err(e) =
                    x.dp.unconfigure(inst.ifindex, inst.family, inst.conf.vrid, &inst.conf.unicast_peers)
                {
                    log::warn!("({}) removing its row from the XDP program's map: {e}", inst.conf.name);
                }
            }
            Source::Sockets { rxs } => {
                for r in rxs.iter_mut() {
                    let rx = r.get_mut();
                    if rx.ifindex() == inst.ifindex && rx.family() == inst.family {
                        rx.remove_instance(inst.conf.vrid);
                    }
                }
                rxs.retain(|r| !r.get_ref().is_empty());
            }
        }
    }

    /// A reload took `gone` out of the `unicast_peer` list of the
    /// instance `vrid` on `ifindex`: their rows leave the XDP program's
    /// address table, so their adverts are refused (`not_a_peer`), as at
    /// a start with the new list. (The raw-socket path takes the new list
    /// with the instance, `bind`.)
    pub(super) fn drop_peers(&mut self, name: &str, ifindex: u32, vrid: u8, gone: &[std::net::IpAddr]) {
        let Source::Xdp(x) = self else { return };
        for p in gone {
            match x.dp.remove_addr(ifindex, vrid, p, vrrp_common::maps::ADDR_PEER) {
                Ok(()) => {
                    log::info!("({name}) Reload: {p} is no longer a unicast peer: its adverts are refused")
                }
                Err(e) => log::warn!("({name}) removing unicast peer {p} from the XDP program's map: {e}"),
            }
        }
    }

    /// Keep the XDP program's `ALIVE_MAP` deadline ahead; returns when to
    /// do it next (None on the raw-socket path).
    pub(super) fn keep_alive(&mut self, now: Micros) -> Option<Micros> {
        let Source::Xdp(x) = self else { return None };
        let every = Micros(ALIVE_REFRESH_NS / 1000);
        if now.0 >= x.alive_at.0 + every.0 {
            match x.dp.set_alive() {
                Ok(()) => x.alive_at = now,
                Err(e) => log::warn!("moving the XDP program's alive deadline: {e}"),
            }
        }
        Some(x.alive_at.after(every))
    }

    /// Bring the kernel's watch of `inst` in line with its state; a map
    /// write only on change.
    pub(super) fn sync_watch(&mut self, inst: &mut Inst, now: Micros) {
        let Source::Xdp(x) = self else { return };
        // Not bound to an interface (it does not exist yet): the map has no
        // row for it, and the instance is in FAULT anyway. Trying would log
        // a warning on every timer tick.
        if inst.ifindex == 0 {
            return;
        }
        let want = inst.wanted_watch();
        if inst.watch == Some(want) {
            return;
        }
        match x.dp.set_watch(inst.ifindex, inst.family, inst.conf.vrid, want.0, want.1) {
            Ok(()) => {
                inst.watch = Some(want);
                inst.watch_since = now;
                inst.watch_armed = false;
            }
            Err(e) => {
                log::warn!("({}) configuring the kernel's master-down watch: {e}", inst.conf.name);
                inst.watch = None;
                inst.watch_armed = false;
            }
        }
    }

    pub(super) fn peers(&self) -> Vec<(PeerKey, PeerState)> {
        match self {
            Source::Xdp(x) => match x.dp.peers() {
                Ok(rows) => rows
                    .into_iter()
                    .map(|r| (r.key, r.state))
                    .chain(x.ah_rxs.iter().flat_map(|r| r.get_ref().peers().iter().map(|(k, v)| (*k, *v))))
                    .collect(),
                Err(e) => {
                    log::warn!("reading the peer table: {e}");
                    Vec::new()
                }
            },
            Source::Sockets { rxs } => {
                rxs.iter().flat_map(|r| r.get_ref().peers().iter().map(|(k, v)| (*k, *v))).collect()
            }
        }
    }
}

/// Open (again) the AH socket on instance `i`'s interface if it uses AH,
/// with every instance there, replacing the one of its old index.
fn reopen_ah(rxs: &mut Vec<AsyncFd<Receiver>>, insts: &[Inst], i: usize) -> Result<(), String> {
    let inst = &insts[i];
    if inst.ah.is_none() {
        return Ok(());
    }
    rxs.retain(|r| !r.get_ref().is_ah() || nix::net::if_::if_indextoname(r.get_ref().ifindex()).is_ok());
    rxs.retain(|r| !(r.get_ref().is_ah() && r.get_ref().ifindex() == inst.ifindex));
    rxs.push(open_ah(insts, inst.ifindex, &inst.conf.interface).map_err(|e| e.to_string())?);
    log::info!("receiving AH adverts on a raw socket on {} again", inst.conf.interface);
    Ok(())
}

/// A raw protocol-51 socket on `iface` (index `ifindex`) with every IPv4
/// instance there.
pub(super) fn open_ah(insts: &[Inst], ifindex: u32, iface: &str) -> std::io::Result<AsyncFd<Receiver>> {
    let mut rx = Receiver::open_ah(iface)?;
    for other in insts.iter().filter(|o| o.ifindex == ifindex && o.family == vrrp_common::wire::Family::V4) {
        rx.add_instance(other.conf.vrid, other.fallback_instance());
    }
    // SAFETY: the Receiver owns its socket and the AsyncFd owns it, so the
    // fd stays open and the same for the AsyncFd's life.
    unsafe { AsyncFd::register_with_interest(rx, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// Wait for the next batch of peer events from the receive path.
pub(super) async fn next_events(source: &mut Source) -> Vec<PeerEvent> {
    match source {
        Source::Xdp(x) => {
            let XdpSource { events, ah_rxs, .. } = &mut **x;
            let ring = async {
                let mut out = Vec::new();
                if let Ok(mut guard) = events.readable_mut().await {
                    while let Some(ev) = guard.get_inner_mut().next() {
                        out.push(ev);
                    }
                    guard.clear_ready();
                }
                out
            };
            if ah_rxs.is_empty() {
                return ring.await;
            }
            tokio::select! {
                out = ring => out,
                r = fallback::next_events(ah_rxs, || timer::now().0 * 1000) => r.unwrap_or_else(|e| {
                    log::warn!("receive error (AH): {e}");
                    Vec::new()
                }),
            }
        }
        Source::Sockets { rxs } => match fallback::next_events(rxs, || timer::now().0 * 1000).await {
            Ok(events) => events,
            Err(e) => {
                log::warn!("receive error: {e}");
                Vec::new()
            }
        },
    }
}
