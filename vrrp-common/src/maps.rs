//! The BPF map contract between the XDP program and the agent.
//!
//! Every key and value is `#[repr(C)]`, `Pod` (so implicit padding is a
//! compile error) and spells out its byte order. The map names are what
//! `bpftool map show` prints and the file names under the pin directory.

use bytemuck::{Pod, Zeroable};

/// Name of the peer map: `PeerKey` -> `PeerState`, a BPF hash map.
pub const PEERS_MAP: &str = "VRRP_PEERS";
/// Name of the verdict counters: `CounterKey` -> `u64`, per-CPU hash map.
pub const COUNTERS_MAP: &str = "VRRP_COUNTERS";
/// Name of the XDP program in the object file.
pub const XDP_PROGRAM: &str = "vrrp_xdp";

/// Name of the instance map: `InstanceKey` -> `InstanceConfig`, written by
/// the agent: which VRIDs are configured where, and what they expect.
pub const INSTANCES_MAP: &str = "VRRP_INSTANCES";
/// Name of the address map: `PeerKey` -> `AddrInfo`, written by the agent:
/// our own addresses (rows with `vrid` 0) and each unicast instance's
/// allowed peers (rows with its VRID).
pub const ADDRS_MAP: &str = "VRRP_ADDRS";
/// Name of the event ring buffer: `PeerEvent` records, only on change.
pub const EVENTS_MAP: &str = "VRRP_EVENTS";
/// Name of the per-CPU array counting which checksum form verified
/// (index `ChecksumForm as u32`).
pub const CSUM_FORMS_MAP: &str = "VRRP_CSUM_FORMS";
/// Per instance (`InstanceKey`), a kernel timer armed by the XDP program
/// to Master_Down_Interval on each advert that holds a backup down; when
/// it expires it raises `EVENT_SILENT`. So a backup's agent sleeps while
/// its master advertises, and wakes when the master goes quiet.
pub const WATCH_MAP: &str = "VRRP_WATCH";
/// One `u64` (index 0): until when (bpf_ktime_get_ns) the agent is known
/// to be alive; the agent moves it forward while it runs. Past it, the XDP
/// program still records peers but passes every packet up the stack, so
/// that an XDP program a killed agent left attached (its link is pinned,
/// see the agent's `Datapath::pin_links`) never hides adverts from
/// whatever runs VRRP on the interface next.
pub const ALIVE_MAP: &str = "VRRP_ALIVE";
/// How far ahead the agent sets `ALIVE_MAP`, ns, and how often it moves
/// it (at most, piggy-backed on its other wake-ups; at least every
/// `ALIVE_REFRESH_NS`).
pub const ALIVE_WINDOW_NS: u64 = 5_000_000_000;
/// See `ALIVE_WINDOW_NS`.
pub const ALIVE_REFRESH_NS: u64 = 2_000_000_000;

/// Capacity of the instance map: 255 VRIDs x 2 families x a few interfaces.
pub const INSTANCES_MAX_ENTRIES: u32 = 2048;
/// Capacity of the address map.
pub const ADDRS_MAX_ENTRIES: u32 = 4096;
/// Bytes of the event ring buffer (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 64 * 1024;

/// `InstanceConfig::flags`: the instance has unicast peers; adverts are
/// accepted only from addresses in `VRRP_ADDRS` under its VRID.
pub const INST_UNICAST: u32 = 1;
/// `InstanceConfig::flags`: pass valid adverts up the stack (for tcpdump
/// while debugging) instead of consuming them in XDP.
pub const INST_PASS_UP: u32 = 2;

/// `AddrInfo::flags`: one of our own addresses on the interface.
pub const ADDR_OWN: u32 = 1;
/// `AddrInfo::flags`: an allowed unicast peer of the instance.
pub const ADDR_PEER: u32 = 2;

/// `PeerEvent::kind` bits.
pub const EVENT_NEW_PEER: u32 = 1;
/// The peer's priority changed.
pub const EVENT_PRIORITY: u32 = 2;
/// The peer advertised priority 0: the master is resigning.
pub const EVENT_RESIGN: u32 = 4;
/// The peer's advertised interval changed.
pub const EVENT_INTERVAL: u32 = 8;
/// The instance's master-down watch expired: no advert that holds a backup
/// down arrived for Master_Down_Interval. Raised by the kernel's timer,
/// not by an advert: `key.addr` is zero, and `state` carries the watch's
/// own times instead of a peer's (`PeerEvent::silent`): when the last
/// holding advert arrived and when the timer fired, so that a takeover's
/// time can be split into the kernel's part and the agent's.
pub const EVENT_SILENT: u32 = 16;

/// Which virtual router on which interface and family.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct InstanceKey {
    /// Interface index (host byte order).
    pub ifindex: u32,
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    /// Virtual router ID, 1-255.
    pub vrid: u8,
    /// Always zero.
    pub _pad: [u8; 2],
}

/// What an instance expects of the adverts it receives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct InstanceConfig {
    /// `INST_*` bits (host byte order).
    pub flags: u32,
    /// 2 or 3.
    pub version: u8,
    /// v2 auth type: 0 none, 1 simple password, 2 IPsec AH.
    pub auth_type: u8,
    /// Our advert interval in centiseconds (host byte order); v2 adverts
    /// must carry the same (RFC 3768 7.1).
    pub interval_cs: u16,
    /// v2 simple password, zero padded.
    pub password: [u8; 8],
    /// The kernel's master-down watch (see `WATCH_MAP`): an accepted
    /// advert with at least this priority re-arms the instance's timer to
    /// Master_Down_Interval; 0 turns the watch off (not a backup).
    pub watch_priority: u8,
    /// Our current priority: the Skew_Time in that Master_Down_Interval.
    pub priority: u8,
    /// Always zero.
    pub _pad: [u8; 2],
}

/// A row of `VRRP_ADDRS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct AddrInfo {
    /// `ADDR_*` bits (host byte order).
    pub flags: u32,
}

/// A ring-buffer record: a peer changed in a way the state machine must
/// see. Steady adverts produce none.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PeerEvent {
    /// The peer.
    pub key: PeerKey,
    /// Its state after the advert that caused the event.
    pub state: PeerState,
    /// `EVENT_*` bits (host byte order).
    pub kind: u32,
    /// The priority before, for `EVENT_PRIORITY`.
    pub old_priority: u8,
    /// Always zero.
    pub _pad: [u8; 3],
}

/// Capacity of the peer map: 255 VRIDs x 2 families x a few interfaces.
/// Entries are never evicted, so it is a plain hash map, not an LRU one
/// (measured: an LRU update costs ~200 ns against ~80 ns for an in-place
/// write of a found entry).
pub const PEERS_MAX_ENTRIES: u32 = 4096;
/// Capacity of the counter map: interfaces x verdicts.
pub const COUNTERS_MAX_ENTRIES: u32 = 64 * crate::Verdict::COUNT as u32;

/// `PeerKey::family` for IPv4.
pub const FAMILY_IPV4: u8 = 4;
/// `PeerKey::family` for IPv6.
pub const FAMILY_IPV6: u8 = 6;

/// One VRRP speaker as seen on one interface: who sent adverts for which
/// virtual router.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct PeerKey {
    /// Interface index the advert arrived on (host byte order).
    pub ifindex: u32,
    /// `FAMILY_IPV4` or `FAMILY_IPV6`.
    pub family: u8,
    /// Virtual router ID, 1-255.
    pub vrid: u8,
    /// Always zero.
    pub _pad: [u8; 2],
    /// Source address in network byte order; an IPv4 address fills the
    /// first 4 bytes and the rest is zero.
    pub addr: [u8; 16],
}

/// What the kernel last saw from a peer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PeerState {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC, ns) of the latest valid advert
    /// (host byte order).
    pub last_seen_ns: u64,
    /// Valid adverts received from this peer (host byte order).
    pub adverts: u64,
    /// Advertised interval in centiseconds (host byte order): v3's Max Adver
    /// Int as sent, v2's seconds times 100.
    pub interval_cs: u16,
    /// Advertised priority, 0-255.
    pub priority: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Reserved flag bits, zero for now (host byte order).
    pub flags: u32,
}

/// Index of the verdict counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct CounterKey {
    /// Interface index the packet arrived on (host byte order).
    pub ifindex: u32,
    /// `Verdict as u32` (host byte order).
    pub verdict: u32,
}

impl PeerKey {
    /// Key for an IPv4 source.
    pub fn v4(ifindex: u32, vrid: u8, addr: [u8; 4]) -> Self {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&addr);
        PeerKey { ifindex, family: FAMILY_IPV4, vrid, _pad: [0; 2], addr: a }
    }

    /// Key for an IPv6 source.
    pub fn v6(ifindex: u32, vrid: u8, addr: [u8; 16]) -> Self {
        PeerKey { ifindex, family: FAMILY_IPV6, vrid, _pad: [0; 2], addr }
    }
}

impl PeerState {
    /// The state of a peer first seen now with `adv`.
    pub fn first(adv: &crate::classify::Advert, now_ns: u64) -> PeerState {
        PeerState {
            last_seen_ns: now_ns,
            adverts: 1,
            interval_cs: adv.interval_cs,
            priority: adv.priority,
            version: adv.version,
            flags: 0,
        }
    }

    /// Take in another advert from this peer; returns the `EVENT_*` bits
    /// it raises (0 for the steady state: only last-seen and the count
    /// move; `EVENT_NEW_PEER` when it returns after more than 3 of its
    /// intervals of silence). Shared by the XDP program and the userspace
    /// receive path.
    pub fn observe(&mut self, adv: &crate::classify::Advert, now_ns: u64) -> u32 {
        let mut kind = 0;
        // A peer silent for longer than 3 of its intervals had been given up
        // for dead; its return is news even if nothing else changed.
        let silence = now_ns.saturating_sub(self.last_seen_ns);
        if silence > 3 * self.interval_cs as u64 * 10_000_000 {
            kind |= EVENT_NEW_PEER;
        }
        if self.priority != adv.priority {
            kind |= EVENT_PRIORITY;
            if adv.priority == 0 {
                kind |= EVENT_RESIGN;
            }
        }
        if self.interval_cs != adv.interval_cs {
            kind |= EVENT_INTERVAL;
        }
        self.last_seen_ns = now_ns;
        self.priority = adv.priority;
        self.interval_cs = adv.interval_cs;
        self.version = adv.version;
        self.adverts = self.adverts.wrapping_add(1);
        kind
    }

    /// The event bits of a first advert.
    pub fn first_kind(adv: &crate::classify::Advert) -> u32 {
        if adv.priority == 0 { EVENT_NEW_PEER | EVENT_RESIGN } else { EVENT_NEW_PEER }
    }
}

impl PeerEvent {
    /// The `EVENT_SILENT` record of instance `key`'s watch: `last_hold_ns`
    /// (bpf_ktime_get_ns of the last advert that held the backup down) in
    /// `state.last_seen_ns`, and `fired_ns` (when the kernel's timer fired,
    /// the event's own time) in `state.adverts`; the rest zero.
    pub const fn silent(key: &InstanceKey, last_hold_ns: u64, fired_ns: u64) -> PeerEvent {
        PeerEvent {
            key: PeerKey {
                ifindex: key.ifindex,
                family: key.family,
                vrid: key.vrid,
                _pad: [0; 2],
                addr: [0; 16],
            },
            state: PeerState {
                last_seen_ns: last_hold_ns,
                adverts: fired_ns,
                interval_cs: 0,
                priority: 0,
                version: 0,
                flags: 0,
            },
            kind: EVENT_SILENT,
            old_priority: 0,
            _pad: [0; 3],
        }
    }

    /// For an `EVENT_SILENT` record: (last holding advert, timer fired),
    /// CLOCK_MONOTONIC ns. None for any other event.
    pub const fn silent_times(&self) -> Option<(u64, u64)> {
        if self.kind & EVENT_SILENT == 0 {
            return None;
        }
        Some((self.state.last_seen_ns, self.state.adverts))
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all): repr(C), every bit pattern valid, no padding;
    // bytemuck's derive(Pod) above checks exactly this at compile time.
    unsafe impl aya::Pod for super::PeerKey {}
    unsafe impl aya::Pod for super::PeerState {}
    unsafe impl aya::Pod for super::CounterKey {}
    unsafe impl aya::Pod for super::InstanceKey {}
    unsafe impl aya::Pod for super::InstanceConfig {}
    unsafe impl aya::Pod for super::AddrInfo {}
    unsafe impl aya::Pod for super::PeerEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layouts_are_fixed() {
        // These sizes are the kernel ABI: a change must be deliberate.
        assert_eq!(size_of::<PeerKey>(), 24);
        assert_eq!(align_of::<PeerKey>(), 4);
        assert_eq!(size_of::<PeerState>(), 24);
        assert_eq!(size_of::<CounterKey>(), 8);
        assert_eq!(size_of::<InstanceKey>(), 8);
        assert_eq!(size_of::<InstanceConfig>(), 20);
        assert_eq!(size_of::<AddrInfo>(), 4);
        assert_eq!(size_of::<PeerEvent>(), 56);
    }

    #[test]
    fn observe_raises_events_only_on_change() {
        let adv = |priority, interval_cs| crate::classify::Advert {
            version: 3,
            vrid: 1,
            priority,
            count: 1,
            interval_cs,
            auth_type: 0,
        };
        let mut s = PeerState::first(&adv(100, 10), 1);
        assert_eq!(PeerState::first_kind(&adv(100, 10)), EVENT_NEW_PEER);
        assert_eq!(s.observe(&adv(100, 10), 2), 0);
        assert_eq!((s.adverts, s.last_seen_ns), (2, 2));
        assert_eq!(s.observe(&adv(90, 10), 3), EVENT_PRIORITY);
        assert_eq!(s.observe(&adv(90, 20), 4), EVENT_INTERVAL);
        assert_eq!(s.observe(&adv(0, 20), 5), EVENT_PRIORITY | EVENT_RESIGN);
        assert_eq!(s.observe(&adv(0, 20), 6), 0);
        // Back after more than 3 intervals (3 x 20 cs) of silence.
        assert_eq!(s.observe(&adv(0, 20), 6 + 600_000_001), EVENT_NEW_PEER);
        assert_eq!(PeerState::first_kind(&adv(0, 10)), EVENT_NEW_PEER | EVENT_RESIGN);
    }

    #[test]
    fn silent_event_carries_the_watch_times() {
        let k = InstanceKey { ifindex: 3, family: FAMILY_IPV4, vrid: 9, _pad: [0; 2] };
        let ev = PeerEvent::silent(&k, 1_000, 3_609_000);
        assert_eq!(ev.kind, EVENT_SILENT);
        assert_eq!((ev.key.ifindex, ev.key.family, ev.key.vrid, ev.key.addr), (3, FAMILY_IPV4, 9, [0; 16]));
        assert_eq!(ev.silent_times(), Some((1_000, 3_609_000)));
        let other = PeerEvent { kind: EVENT_NEW_PEER, ..ev };
        assert_eq!(other.silent_times(), None);
    }

    #[test]
    fn v4_key_zero_fills() {
        let k = PeerKey::v4(7, 51, [192, 0, 2, 1]);
        assert_eq!(&k.addr[..4], &[192, 0, 2, 1]);
        assert!(k.addr[4..].iter().all(|b| *b == 0));
        assert_eq!(k.family, FAMILY_IPV4);
        assert_eq!(bytemuck::bytes_of(&k)[0..4], 7u32.to_ne_bytes());
    }
}
