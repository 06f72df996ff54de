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
                Ok(rows) => rows.into_iter().map(|r| (r.key, r.state)).collect(),
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

/// Wait for the next batch of peer events from the receive path.
pub(super) async fn next_events(source: &mut Source) -> Vec<PeerEvent> {
    match source {
        Source::Xdp(x) => {
            let mut out = Vec::new();
            if let Ok(mut guard) = x.events.readable_mut().await {
                while let Some(ev) = guard.get_inner_mut().next() {
                    out.push(ev);
                }
                guard.clear_ready();
            }
            out
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
