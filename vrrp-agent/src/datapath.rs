//! The XDP fast path as seen from userspace: load the object, attach the
//! program to interfaces, pin its maps, and read peers and counters back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use std::net::IpAddr;

use aya::maps::Map;
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

pub mod attach;
pub mod cache;
use vrrp_common::Verdict;
use vrrp_common::accept::{
    NOACCEPT_COUNTERS_MAP, NOACCEPT_MAP, NOACCEPT_MAX_ENTRIES, NOACCEPT_ROWS_MAP, NoAcceptCounterKey,
    NoAcceptVerdict, VipKey, VipOwner,
};
use vrrp_common::maps::{
    ADDR_OWN, ADDR_PEER, ADDRS_MAP, ADDRS_MAX_ENTRIES, ALIVE_MAP, ALIVE_WINDOW_NS, AddrInfo, COUNTERS_MAP,
    CSUM_FORMS_MAP, CounterKey, EVENTS_BYTES, EVENTS_MAP, INST_PASS_UP, INSTANCES_MAP, INSTANCES_MAX_ENTRIES,
    InstanceConfig, InstanceKey, PEERS_MAP, PEERS_MAX_ENTRIES, PeerEvent, PeerKey, PeerState, WATCH_MAP,
    XDP_PROGRAM,
};
use vrrp_common::rx::Expect;
use vrrp_common::wire::Family;
use vrrp_common::wire::vrrp::addr_bytes;

/// Errors of the datapath, each naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The object is missing or unreadable.
    #[error(transparent)]
    Object(#[from] crate::object::ObjectError),
    /// The kernel refused the object (verifier, BTF, permissions).
    #[error("loading the XDP object failed: {source}")]
    Load {
        /// aya's error.
        #[source]
        source: aya::EbpfError,
    },
    /// The object lacks a program or map this agent expects.
    #[error("the XDP object has no {what} named {name}: it does not match this agent")]
    Missing {
        /// "program" or "map".
        what: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// Program load or attach failed.
    #[error("{action} XDP program on {iface}: {source}")]
    Program {
        /// What was attempted.
        action: &'static str,
        /// Interface name, or "-" for the load.
        iface: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map could not be read or converted.
    #[error("map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// No bpffs to pin in.
    #[error(transparent)]
    Bpffs(#[from] crate::bpffs::BpffsError),
    /// Another agent's program serves one of our VRIDs on the interface.
    #[error(
        "{iface} is taken: another vrrp-agent (XDP program id {prog_id}) serves VRID {vrid} ({family}) \
         there, and two agents for one VRID on one node would both become MASTER; stop the other \
         agent, or give this instance another VRID"
    )]
    Taken {
        /// The interface.
        iface: String,
        /// The other agent's program.
        prog_id: u32,
        /// The VRID both serve.
        vrid: u8,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// Pinning failed.
    #[error("pinning {name} at {path}: {reason}")]
    Pin {
        /// Map name.
        name: &'static str,
        /// Pin path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Maps the agent uses; the object must have them all.
const ALL_MAPS: [&str; 11] = [
    PEERS_MAP,
    COUNTERS_MAP,
    INSTANCES_MAP,
    ADDRS_MAP,
    EVENTS_MAP,
    CSUM_FORMS_MAP,
    WATCH_MAP,
    ALIVE_MAP,
    NOACCEPT_MAP,
    NOACCEPT_ROWS_MAP,
    NOACCEPT_COUNTERS_MAP,
];
/// Prefix of a pinned XDP link in an agent's pin directory
/// (`link_<interface>`).
const LINK_PIN_PREFIX: &str = "link_";
/// Maps pinned for bpftool (the ring buffer has no use outside the agent).
const PINNED_MAPS: [&str; 7] =
    [PEERS_MAP, COUNTERS_MAP, INSTANCES_MAP, ADDRS_MAP, CSUM_FORMS_MAP, NOACCEPT_MAP, NOACCEPT_COUNTERS_MAP];

/// The object has no program of that name (or none was loaded).
const NO_PROGRAM: DatapathError = DatapathError::Missing { what: "program", name: XDP_PROGRAM };

/// The program is not the XDP program it should be.
fn using(source: aya::programs::ProgramError) -> DatapathError {
    DatapathError::Program { action: "using", iface: "-".into(), source }
}

/// How to attach: the kernel's choice, or forced generic / native.
/// How many entries the per-instance maps get. The object's sizes
/// (2,048 instances, 4,096 peers and addresses) are the floor; a larger
/// configuration gets twice its count, so that 16 VLANs × 250 VRIDs load
/// into XDP instead of falling back to raw sockets (map update refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// `VRRP_INSTANCES` and `VRRP_WATCH`: one entry per instance.
    pub instances: u32,
    /// `VRRP_PEERS` (a master and other routers per instance) and
    /// `VRRP_ADDRS` (own addresses and unicast peers per interface).
    pub peers: u32,
    /// `VRRP_NOACCEPT`: one entry per virtual address.
    pub vips: u32,
    /// `VRRP_EVENTS`, bytes (a power of two). The object's 64 KiB hold
    /// about 1,000 events; a start or a takeover of more instances raises
    /// one or more each at once, and an event lost from a full ring is one
    /// a MASTER instance never hears of (a higher-priority master's first
    /// advert): 2,000 instances left 107 of them MASTER beside the master.
    pub events: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            instances: INSTANCES_MAX_ENTRIES,
            peers: PEERS_MAX_ENTRIES,
            vips: NOACCEPT_MAX_ENTRIES,
            events: EVENTS_BYTES,
        }
    }
}

impl MapSizes {
    /// Sizes for `instances` instances holding `vips` virtual addresses.
    pub fn for_config(instances: usize, vips: usize) -> MapSizes {
        let twice = |n: usize, floor: u32| u32::try_from(n.saturating_mul(2)).unwrap_or(u32::MAX).max(floor);
        let d = MapSizes::default();
        MapSizes {
            instances: twice(instances, d.instances),
            peers: twice(instances, d.peers.max(ADDRS_MAX_ENTRIES)),
            vips: twice(vips, d.vips),
            // Room for four events of 64 bytes per instance, at most 64 MiB.
            events: u32::try_from(instances.saturating_mul(256).min(1 << 26))
                .unwrap_or(1 << 26)
                .next_power_of_two()
                .max(d.events),
        }
    }

    /// (map name, max entries), for the loader.
    fn entries(&self) -> [(&'static str, u32); 6] {
        [
            (INSTANCES_MAP, self.instances),
            (WATCH_MAP, self.instances),
            (PEERS_MAP, self.peers),
            (ADDRS_MAP, self.peers),
            (NOACCEPT_MAP, self.vips),
            (EVENTS_MAP, self.events),
        ]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native if the driver supports it, else generic (the kernel decides).
    #[default]
    Auto,
    /// Generic (skb) XDP.
    Generic,
    /// Native (driver) XDP; fails on drivers without it.
    Native,
}

impl From<AttachMode> for XdpMode {
    fn from(m: AttachMode) -> Self {
        match m {
            AttachMode::Auto => XdpMode::Default,
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Native => XdpMode::Driver,
        }
    }
}

/// A loaded XDP program with its maps; dropping it detaches the program
/// from every interface and removes the pins it made.
pub struct Datapath {
    /// The freshly loaded object (it owns the program), or None when the
    /// program came from the cache (`reused`).
    ebpf: Option<Ebpf>,
    /// The program from the verified-program cache (datapath/cache.rs).
    reused: Option<Xdp>,
    /// The maps of `ALL_MAPS`, taken out of `ebpf` or from the cache.
    maps: std::collections::HashMap<&'static str, Map>,
    /// The event ring, drained of a cached program's old events.
    events: Option<Events>,
    /// The cache key and directory to pin a freshly loaded program under
    /// (`pin_for`); None when it came from the cache or is not cached.
    cache_to: Option<(PathBuf, String)>,
    pins: Vec<PathBuf>,
    attached: Vec<(String, u32)>,
    modes: Vec<AttachMode>,
    /// The links of `attached`, while the program owns them.
    link_ids: Vec<XdpLinkId>,
    /// Links pinned by `pin_links`, by interface: they outlive the process.
    pinned_links: Vec<(String, PinnedLink)>,
    /// Links made by `attach_in_background` and adopted, not pinned yet
    /// (with `--no-pin`, never): closing them detaches the program.
    raw_links: Vec<(String, std::os::fd::OwnedFd)>,
}

/// One row of `VRRP_PEERS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRow {
    /// Map key.
    pub key: PeerKey,
    /// Map value.
    pub state: PeerState,
}

impl Datapath {
    /// Load the object (from `object`, else the embedded one) into the
    /// kernel. Nothing is attached yet.
    pub fn load(object: Option<&Path>) -> Result<Self, DatapathError> {
        Self::load_sized(object, &MapSizes::default())
    }

    /// As `load`, with the per-instance maps sized by `sizes` (see
    /// `MapSizes::for_config`).
    pub fn load_sized(object: Option<&Path>, sizes: &MapSizes) -> Result<Self, DatapathError> {
        let bytes = crate::object::load_bytes(object)?;
        Self::load_bytes(&bytes, sizes)
    }

    /// As `load_sized`, through the verified-program cache of the agent
    /// whose pin directory is `agent_dir` (datapath/cache.rs): its pinned
    /// program and maps, emptied, when they are of this object and these
    /// sizes; else a fresh load, pinned there by `pin_for`.
    pub fn load_cached(
        object: Option<&Path>,
        sizes: &MapSizes,
        agent_dir: &Path,
    ) -> Result<Self, DatapathError> {
        let bytes = crate::object::load_bytes(object)?;
        if std::env::var_os("VRRP_VERIFIER_LOG").is_some() {
            return Self::load_bytes(&bytes, sizes);
        }
        let key = cache::key(&bytes, sizes);
        let dir = cache::dir_of(agent_dir);
        match cache::take(&dir, &key, sizes) {
            Ok(Some(r)) => {
                let mut dp = Datapath::empty(None);
                dp.reused = Some(r.prog);
                dp.maps.extend(r.maps);
                // What the old agent's program wrote and nobody read.
                let mut events = dp.take_events_map()?;
                let mut stale = 0usize;
                while events.next().is_some() {
                    stale += 1;
                }
                dp.events = Some(events);
                dp.set_alive()?;
                log::debug!(
                    "start-up: reused the verified XDP program pinned under {} ({stale} old event(s) dropped)",
                    dir.join(&key).display()
                );
                return Ok(dp);
            }
            Ok(None) => {}
            Err(why) => log::warn!("not reusing the cached XDP program under {}: {why}", dir.display()),
        }
        let mut dp = Self::load_bytes(&bytes, sizes)?;
        dp.cache_to = Some((dir, key));
        Ok(dp)
    }

    fn empty(ebpf: Option<Ebpf>) -> Datapath {
        Datapath {
            ebpf,
            reused: None,
            maps: std::collections::HashMap::new(),
            events: None,
            cache_to: None,
            pins: Vec::new(),
            attached: Vec::new(),
            modes: Vec::new(),
            link_ids: Vec::new(),
            pinned_links: Vec::new(),
            raw_links: Vec::new(),
        }
    }

    fn load_bytes(bytes: &[u8], sizes: &MapSizes) -> Result<Self, DatapathError> {
        let mut loader = EbpfLoader::new();
        for (name, n) in sizes.entries() {
            loader.map_max_entries(name, n);
        }
        // VRRP_VERIFIER_LOG=1 asks the kernel for the verifier's full trace.
        if std::env::var_os("VRRP_VERIFIER_LOG").is_some() {
            loader.verifier_log_level(aya::VerifierLogLevel::VERBOSE | aya::VerifierLogLevel::STATS);
        }
        let mut ebpf = loader.load(bytes).map_err(|source| DatapathError::Load { source })?;
        log::debug!("start-up: object parsed, maps created");
        let prog: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or(DatapathError::Missing { what: "program", name: XDP_PROGRAM })?
            .try_into()
            .map_err(|source| DatapathError::Program { action: "loading", iface: "-".into(), source })?;
        prog.load().map_err(|source| DatapathError::Program {
            action: "loading",
            iface: "-".into(),
            source,
        })?;
        // What the verifier processed (bpf_prog_info.verified_insns, kernel
        // 5.16+): the figure bench-results/startup.md tracks.
        let insns = prog.info().ok().and_then(|i| i.verified_instruction_count());
        log::debug!(
            "start-up: program verified ({} instructions processed)",
            insns.map_or("?".into(), |n| n.to_string())
        );
        let mut maps = std::collections::HashMap::new();
        for name in ALL_MAPS {
            let map = ebpf.take_map(name).ok_or(DatapathError::Missing { what: "map", name })?;
            maps.insert(name, map);
        }
        let mut dp = Datapath::empty(Some(ebpf));
        dp.maps = maps;
        // Alive from the start: the program passes everything otherwise.
        dp.set_alive()?;
        Ok(dp)
    }

    /// Whether the program came from the verified-program cache.
    pub fn is_reused(&self) -> bool {
        self.reused.is_some()
    }

    /// The XDP program: the cached one, or the one the object loaded.
    fn prog_mut(&mut self) -> Result<&mut Xdp, DatapathError> {
        match (&mut self.reused, &mut self.ebpf) {
            (Some(p), _) => Ok(p),
            (None, e) => e
                .as_mut()
                .and_then(|e| e.program_mut(XDP_PROGRAM))
                .ok_or(NO_PROGRAM)?
                .try_into()
                .map_err(using),
        }
    }

    fn prog(&self) -> Result<&Xdp, DatapathError> {
        match (&self.reused, &self.ebpf) {
            (Some(p), _) => Ok(p),
            (None, e) => {
                e.as_ref().and_then(|e| e.program(XDP_PROGRAM)).ok_or(NO_PROGRAM)?.try_into().map_err(using)
            }
        }
    }

    fn map(&self, name: &'static str) -> Result<&Map, DatapathError> {
        self.maps.get(name).ok_or(DatapathError::Missing { what: "map", name })
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, DatapathError> {
        self.maps.get_mut(name).ok_or(DatapathError::Missing { what: "map", name })
    }

    /// Pin a freshly loaded program and its maps as the agent's cache
    /// entry (`load_cached`); a failure only costs the next start its reuse.
    /// Once: `pin_for` then does nothing more of it.
    pub fn cache_now(&mut self) {
        self.pin_cache();
    }

    /// As `cache_now` (from `pin_for`).
    fn pin_cache(&mut self) {
        let Some((dir, key)) = self.cache_to.take() else { return };
        // Only a freshly loaded program is cached: the object owns it.
        let Some(prog) = self.ebpf.as_mut().and_then(|e| e.program_mut(XDP_PROGRAM)) else { return };
        let Ok(prog) = <&mut Xdp>::try_from(prog) else { return };
        let maps: Vec<(&'static str, &Map)> =
            ALL_MAPS.iter().filter_map(|n| self.maps.get(n).map(|m| (*n, m))).collect();
        if maps.len() != ALL_MAPS.len() {
            return;
        }
        match cache::store(&dir, &key, prog, &maps) {
            Ok(()) => log::debug!("start-up: verified program cached under {}", dir.join(&key).display()),
            Err(e) => log::warn!("cannot cache the verified XDP program under {}: {e}", dir.display()),
        }
    }

    /// Attach the program to `iface`. Refuses (EBUSY from the kernel) when
    /// another XDP program is already attached there.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<u32, DatapathError> {
        let ifindex = nix::net::if_::if_nametoindex(iface).map_err(|e| DatapathError::Program {
            action: "attaching",
            iface: iface.into(),
            source: aya::programs::ProgramError::IOError(std::io::Error::from(e)),
        })?;
        let prog = self.prog_mut()?;
        let err = |source| DatapathError::Program { action: "attaching", iface: iface.into(), source };
        let used = match mode {
            // Native where the driver has it, else generic; the log says which.
            AttachMode::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(id) => (AttachMode::Native, id),
                Err(native) => {
                    log::debug!("native XDP on {iface} refused ({native}); trying generic");
                    (AttachMode::Generic, prog.attach_to_if_index(ifindex, XdpMode::Skb).map_err(err)?)
                }
            },
            m => (m, prog.attach_to_if_index(ifindex, m.into()).map_err(err)?),
        };
        let (used, id) = used;
        self.link_ids.push(id);
        self.modes.push(used);
        self.attached.push((iface.to_owned(), ifindex));
        Ok(ifindex)
    }

    /// Attach again to `iface`, which was deleted and created anew (a
    /// veth of a restarted container, a VLAN re-created by network
    /// tooling): the old link died with the old device, and only its pin
    /// (if any) is left to remove. Pins the new link under `pin_dir`.
    pub fn reattach(&mut self, iface: &str, pin_dir: Option<&Path>) -> Result<u32, DatapathError> {
        if let Some(i) = self.attached.iter().position(|(n, _)| n == iface) {
            self.attached.remove(i);
            self.modes.remove(i);
        }
        if let Some(i) = self.pinned_links.iter().position(|(n, _)| n == iface) {
            let (_, old) = self.pinned_links.remove(i);
            if let Err(e) = old.unpin() {
                log::warn!("removing the pin of the XDP link the old {iface} had: {e}");
            }
        }
        let ifindex = self.attach(iface, AttachMode::Auto)?;
        if let Some(dir) = pin_dir {
            self.pin_links(dir)?;
        }
        Ok(ifindex)
    }

    /// Interfaces the program is attached to, with their indexes.
    pub fn attached(&self) -> &[(String, u32)] {
        &self.attached
    }

    /// The mode each attachment got, in `attached` order.
    pub fn modes(&self) -> &[AttachMode] {
        &self.modes
    }

    /// Pin the maps as `dir/VRRP_PEERS` and `dir/VRRP_COUNTERS` (on a
    /// bpffs), replacing stale pins a dead agent of the same name left.
    pub fn pin_maps(&mut self, dir: &Path) -> Result<(), DatapathError> {
        for name in PINNED_MAPS {
            let path = dir.join(name);
            let pin_err =
                |reason: String| DatapathError::Pin { name, path: path.display().to_string(), reason };
            fs::create_dir_all(dir).map_err(|e| pin_err(e.to_string()))?;
            match fs::remove_file(&path) {
                Ok(()) => log::warn!("removed stale pin {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(pin_err(e.to_string())),
            }
            let map = self.map(name)?;
            map.pin(&path).map_err(|e| pin_err(e.to_string()))?;
            self.pins.push(path);
        }
        Ok(())
    }

    /// Move the `ALIVE_MAP` deadline `ALIVE_WINDOW_NS` ahead of now.
    pub fn set_alive(&mut self) -> Result<(), DatapathError> {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
            .unwrap_or(0);
        self.set_alive_until(now + ALIVE_WINDOW_NS)
    }

    /// Set the `ALIVE_MAP` deadline (CLOCK_MONOTONIC ns); a past one makes
    /// the program fail open as if the agent had died (tests).
    pub fn set_alive_until(&mut self, until_ns: u64) -> Result<(), DatapathError> {
        let map = self.map_mut(ALIVE_MAP)?;
        let mut alive: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(|source| DatapathError::Map { name: ALIVE_MAP, source })?;
        alive.set(0, until_ns, 0).map_err(|source| DatapathError::Map { name: ALIVE_MAP, source })
    }

    /// Pin the XDP links as `dir/link_<interface>`, so that they outlive
    /// the process: a killed agent's program stays attached (and fails
    /// open once `ALIVE_MAP` runs out) instead of being torn down while
    /// the kernel's RTNL lock is needed elsewhere; the next agent of the
    /// same name removes it (`clear_stale`), a clean exit removes it.
    pub fn pin_links(&mut self, dir: &Path) -> Result<(), DatapathError> {
        self.pin_raw_links(dir)?;
        let ids = std::mem::take(&mut self.link_ids);
        // The links not pinned yet are the last ones attached.
        let fresh = self.attached[self.attached.len().saturating_sub(ids.len())..].to_vec();
        for ((iface, _), id) in fresh.iter().zip(ids) {
            let path = dir.join(format!("{LINK_PIN_PREFIX}{iface}"));
            let pin_err = |reason: String| DatapathError::Pin {
                name: "XDP link",
                path: path.display().to_string(),
                reason,
            };
            let prog = self.prog_mut().map_err(|e| pin_err(e.to_string()))?;
            let link = prog.take_link(id).map_err(|e| pin_err(e.to_string()))?;
            // Only a bpf_link (kernel 5.9+) can be pinned; the netlink kind
            // is detached when this fails.
            let fd = FdLink::try_from(link).map_err(|e| pin_err(e.to_string()))?;
            self.pinned_links.push((iface.clone(), fd.pin(&path).map_err(|e| pin_err(e.to_string()))?));
        }
        Ok(())
    }

    /// Remove what a killed agent named `name` left under `pin_root`: its
    /// pinned XDP links (detaching their programs) and map pins. Run before
    /// attaching, which the kernel refuses while the old link holds the
    /// interface.
    pub fn clear_stale(pin_root: &Path, name: &str) {
        let dir = crate::bpffs::persistent_root(pin_root).join(name);
        let Ok(entries) = fs::read_dir(&dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            // The verified-program cache is checked and emptied when used.
            if e.file_name() == cache::CACHE_DIR {
                continue;
            }
            let is_link = e.file_name().to_string_lossy().starts_with(LINK_PIN_PREFIX);
            let done = if is_link {
                PinnedLink::from_pin(&path).map_err(|e| e.to_string()).and_then(|l| {
                    // Unpinned and dropped: the last reference; detached.
                    l.unpin().map(drop).map_err(|e| e.to_string())
                })
            } else {
                fs::remove_file(&path).map_err(|e| e.to_string())
            };
            match done {
                Ok(()) => log::warn!(
                    "removed {} {} (left by an agent that did not stop cleanly)",
                    if is_link { "the stale XDP link" } else { "stale pin" },
                    path.display()
                ),
                Err(err) => log::warn!("cannot remove stale pin {}: {err}", path.display()),
            }
        }
        let _ = fs::remove_dir(&dir);
    }

    /// Pin the maps under `pin_root/<name>` (an agent's directory),
    /// mounting a bpffs at `pin_root`'s parent if there is none there (`ip
    /// netns exec` hides the host's). Logs where, and returns it.
    pub fn pin_for(&mut self, pin_root: &Path, name: &str) -> Result<PathBuf, DatapathError> {
        let resolved = crate::bpffs::persistent_root(pin_root);
        if resolved != pin_root {
            log::info!(
                "{} is hidden in this mount namespace (ip netns exec): pinning through {} instead, the \
                 bpffs an ancestor process sees there, so the pins (and a killed agent's program) outlive \
                 this mount namespace",
                pin_root.display(),
                resolved.display()
            );
        }
        let pin_root = resolved.as_path();
        let fs_root = pin_root.parent().unwrap_or(pin_root);
        if crate::bpffs::ensure(fs_root)? {
            log::warn!(
                "{} was not a BPF filesystem (ip netns exec hides the host's): mounted one",
                fs_root.display()
            );
        }
        let dir = pin_root.join(name);
        self.pin_maps(&dir)?;
        self.pin_links(&dir)?;
        self.pin_cache();
        log::info!(
            "maps pinned under {} (bpftool map dump pinned {}/VRRP_PEERS)",
            dir.display(),
            dir.display()
        );
        Ok(dir)
    }

    /// Where the maps are pinned, if they are.
    pub fn pins(&self) -> &[PathBuf] {
        &self.pins
    }

    /// Tell the kernel what the instance `vrid` on `ifindex` expects: its
    /// version, auth and interval, our own addresses there and its unicast
    /// peers. `pass_up` lets valid adverts continue up the stack (tcpdump).
    pub fn configure(
        &mut self,
        ifindex: u32,
        family: Family,
        vrid: u8,
        expect: &Expect<'_>,
        pass_up: bool,
    ) -> Result<(), DatapathError> {
        let family = family.code();
        let mut cfg = expect.config();
        if pass_up {
            cfg.flags |= INST_PASS_UP;
        }
        let key = InstanceKey { ifindex, family, vrid, _pad: [0; 2] };
        self.hash_map::<InstanceKey, InstanceConfig>(INSTANCES_MAP)?
            .insert(key, cfg, 0)
            .map_err(|source| DatapathError::Map { name: INSTANCES_MAP, source })?;
        for a in expect.own {
            self.add_addr(ifindex, 0, a, ADDR_OWN)?;
        }
        for a in expect.peers {
            self.add_addr(ifindex, vrid, a, ADDR_PEER)?;
        }
        Ok(())
    }

    /// Forget the instance `vrid` on `ifindex` (a reload removed it, or
    /// restarts it as another): its adverts are another daemon's again,
    /// passed up the stack, and the kernel's watch of it is off; its
    /// unicast `peers`' rows go. A row that is not there is no error.
    pub fn unconfigure(
        &mut self,
        ifindex: u32,
        family: Family,
        vrid: u8,
        peers: &[IpAddr],
    ) -> Result<(), DatapathError> {
        for p in peers {
            self.remove_addr(ifindex, vrid, p, ADDR_PEER)?;
        }
        let key = InstanceKey { ifindex, family: family.code(), vrid, _pad: [0; 2] };
        match self.hash_map::<InstanceKey, InstanceConfig>(INSTANCES_MAP)?.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc_enoent()) => {
                Ok(())
            }
            Err(source) => Err(DatapathError::Map { name: INSTANCES_MAP, source }),
        }
    }

    /// Configure the kernel's master-down watch of an instance (see
    /// vrrp-common `WATCH_MAP`): `watch_priority` 0 turns it off.
    pub fn set_watch(
        &mut self,
        ifindex: u32,
        family: Family,
        vrid: u8,
        watch_priority: u8,
        priority: u8,
    ) -> Result<(), DatapathError> {
        let key = InstanceKey { ifindex, family: family.code(), vrid, _pad: [0; 2] };
        let mut map = self.hash_map::<InstanceKey, InstanceConfig>(INSTANCES_MAP)?;
        let mut cfg =
            map.get(&key, 0).map_err(|source| DatapathError::Map { name: INSTANCES_MAP, source })?;
        cfg.watch_priority = watch_priority;
        cfg.priority = priority;
        map.insert(key, cfg, 0).map_err(|source| DatapathError::Map { name: INSTANCES_MAP, source })
    }

    /// Add an address row: one of ours (`vrid` 0, `ADDR_OWN`) or a unicast
    /// peer of `vrid` (`ADDR_PEER`).
    pub fn add_addr(
        &mut self,
        ifindex: u32,
        vrid: u8,
        addr: &IpAddr,
        flags: u32,
    ) -> Result<(), DatapathError> {
        let key = addr_key(ifindex, vrid, addr);
        let mut map = self.hash_map::<PeerKey, AddrInfo>(ADDRS_MAP)?;
        let old = map.get(&key, 0).map(|a| a.flags).unwrap_or(0);
        map.insert(key, AddrInfo { flags: old | flags }, 0)
            .map_err(|source| DatapathError::Map { name: ADDRS_MAP, source })
    }

    /// Take `flags` off an address row (a unicast peer a reload took out
    /// of `unicast_peer`: its adverts are `not_a_peer` from now on); the
    /// row goes when no flag is left. A row that is not there is no error.
    pub fn remove_addr(
        &mut self,
        ifindex: u32,
        vrid: u8,
        addr: &IpAddr,
        flags: u32,
    ) -> Result<(), DatapathError> {
        let key = addr_key(ifindex, vrid, addr);
        let mut map = self.hash_map::<PeerKey, AddrInfo>(ADDRS_MAP)?;
        let Ok(old) = map.get(&key, 0).map(|a| a.flags) else { return Ok(()) };
        let left = old & !flags;
        let r = if left == 0 { map.remove(&key) } else { map.insert(key, AddrInfo { flags: left }, 0) };
        match r {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc_enoent()) => {
                Ok(())
            }
            Err(source) => Err(DatapathError::Map { name: ADDRS_MAP, source }),
        }
    }

    /// Drop packets to `key` (Accept Mode off, `vrrp_common::accept`)
    /// for the instance `owner`.
    pub fn add_no_accept(&mut self, key: VipKey, owner: VipOwner) -> Result<(), DatapathError> {
        self.hash_map::<VipKey, VipOwner>(NOACCEPT_MAP)?
            .insert(key, owner, 0)
            .map_err(|source| DatapathError::Map { name: NOACCEPT_MAP, source })?;
        self.count_no_accept_rows()
    }

    /// Accept packets to `key` again; a row that is not there is no error.
    pub fn remove_no_accept(&mut self, key: &VipKey) -> Result<(), DatapathError> {
        match self.hash_map::<VipKey, VipOwner>(NOACCEPT_MAP)?.remove(key) {
            Ok(()) => {}
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc_enoent()) => {
            }
            Err(source) => return Err(DatapathError::Map { name: NOACCEPT_MAP, source }),
        }
        self.count_no_accept_rows()
    }

    /// Keep `NOACCEPT_ROWS_MAP` equal to the rows in `NOACCEPT_MAP` (the
    /// program skips its lookup while it is 0). Counted from the map, so
    /// it cannot drift from what is there.
    fn count_no_accept_rows(&mut self) -> Result<(), DatapathError> {
        let n = self.no_accept_rows()?.len();
        let name = NOACCEPT_ROWS_MAP;
        let map = self.map_mut(name)?;
        let mut rows: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
        rows.set(0, u32::try_from(n).unwrap_or(u32::MAX), 0)
            .map_err(|source| DatapathError::Map { name, source })
    }

    /// The rows of `NOACCEPT_MAP`.
    pub fn no_accept_rows(&self) -> Result<Vec<(VipKey, VipOwner)>, DatapathError> {
        let name = NOACCEPT_MAP;
        let map = self.map(name)?;
        let rows: BpfHashMap<&MapData, VipKey, VipOwner> =
            BpfHashMap::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
        rows.iter().collect::<Result<_, _>>().map_err(|source| DatapathError::Map { name, source })
    }

    /// Accept Mode counters summed over CPUs, per (ifindex, verdict).
    pub fn no_accept_counters(&self) -> Result<BTreeMap<(u32, NoAcceptVerdict), u64>, DatapathError> {
        let name = NOACCEPT_COUNTERS_MAP;
        read_no_accept_counters(self.map(name)?)
    }

    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<BpfHashMap<&mut MapData, K, V>, DatapathError> {
        let map = self.map_mut(name)?;
        BpfHashMap::try_from(map).map_err(|source| DatapathError::Map { name, source })
    }

    /// The event ring buffer, handed over to the caller (once).
    pub fn take_events(&mut self) -> Result<Events, DatapathError> {
        match self.events.take() {
            Some(e) => Ok(e),
            None => self.take_events_map(),
        }
    }

    fn take_events_map(&mut self) -> Result<Events, DatapathError> {
        let map =
            self.maps.remove(EVENTS_MAP).ok_or(DatapathError::Missing { what: "map", name: EVENTS_MAP })?;
        let ring =
            RingBuf::try_from(map).map_err(|source| DatapathError::Map { name: EVENTS_MAP, source })?;
        Ok(Events { ring })
    }

    /// How many accepted adverts verified with each checksum form, indexed
    /// by `ChecksumForm as usize` (plain, pseudo-header, pseudo-header with
    /// the group address), summed over CPUs.
    pub fn checksum_forms(&self) -> Result<[u64; 3], DatapathError> {
        let name = CSUM_FORMS_MAP;
        let map = self.map(name)?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
        let mut out = [0u64; 3];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot =
                arr.get(&(i as u32), 0).map_err(|source| DatapathError::Map { name, source })?.iter().sum();
        }
        Ok(out)
    }

    /// Every peer the kernel has recorded.
    pub fn peers(&self) -> Result<Vec<PeerRow>, DatapathError> {
        read_peers(self.map(PEERS_MAP)?)
    }

    /// Verdict counters summed over CPUs, per (ifindex, verdict).
    pub fn counters(&self) -> Result<BTreeMap<(u32, Verdict), u64>, DatapathError> {
        read_counters(self.map(COUNTERS_MAP)?)
    }
}

/// Rows of a `VRRP_PEERS` map.
///
/// Read in batches (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6): a backup reads the
/// whole table about once a second (its Master_Down_Timer backstop), and
/// key by key that was two `bpf` syscalls per row, 2,000 a second at
/// 1,000 instances and most of an idle backup's CPU. A kernel without
/// batches, or a bucket larger than a batch, falls back to the key walk.
pub fn read_peers(map: &aya::maps::Map) -> Result<Vec<PeerRow>, DatapathError> {
    if let aya::maps::Map::HashMap(data) = map
        && let Some(rows) = peers_batched(data)
    {
        return Ok(rows);
    }
    read_peers_by_key(map)
}

/// bpf(2) command `cmd` with `attr`, a prefix of `union bpf_attr` of its
/// command (aya 0.14 exposes neither batch lookups nor untyped element
/// calls): the syscall's value, or errno as an error.
fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable `bpf_attr` prefix of the size
    // given; the pointers in it are the caller's to keep valid (see each
    // caller), and the kernel reads or writes only through them.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), std::mem::size_of::<A>()) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// `BPF_MAP_LOOKUP_BATCH` (`enum bpf_cmd`, include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Rows fetched per batch syscall: a few kernel buckets' worth at most
/// (the hash table hands out whole buckets), small enough to stay under
/// the heap's mmap threshold.
const PEER_BATCH: usize = 512;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every row of a hash map of `PeerKey` → `PeerState` by batches; None
/// when the kernel refuses (then the caller walks the keys).
fn peers_batched(data: &MapData) -> Option<Vec<PeerRow>> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let fd = u32::try_from(data.fd().as_fd().as_raw_fd()).ok()?;
    let mut keys = vec![<PeerKey as bytemuck::Zeroable>::zeroed(); PEER_BATCH];
    let mut values = vec![<PeerState as bytemuck::Zeroable>::zeroed(); PEER_BATCH];
    // The hash table's batch token is a bucket index (u32).
    let mut token_in: u32 = 0;
    let mut token_out: u32 = 0;
    let mut rows = Vec::new();
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { std::ptr::from_mut(&mut token_in) as u64 },
            out_batch: std::ptr::from_mut(&mut token_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: PEER_BATCH as u32,
            map_fd: fd,
            ..BatchAttr::default()
        };
        // `attr` points at buffers of PEER_BATCH keys and values of the
        // map's key and value types (checked by the kernel against the
        // map's sizes) and two u32 tokens, all live across the call; the
        // kernel writes at most `count` rows.
        let done = match sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(_) => false,
            // The last batch: ENOENT, with what it found in `count`.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(_) => return None,
        };
        let n = (attr.count as usize).min(PEER_BATCH);
        rows.extend(keys[..n].iter().zip(&values[..n]).map(|(k, v)| PeerRow { key: *k, state: *v }));
        if done {
            return Some(rows);
        }
        token_in = token_out;
        first = false;
    }
}

/// Rows of a `VRRP_PEERS` map, key by key.
fn read_peers_by_key(map: &aya::maps::Map) -> Result<Vec<PeerRow>, DatapathError> {
    let peers: BpfHashMap<&MapData, PeerKey, PeerState> =
        BpfHashMap::try_from(map).map_err(|source| DatapathError::Map { name: PEERS_MAP, source })?;
    peers
        .iter()
        .map(|r| r.map(|(key, state)| PeerRow { key, state }))
        .collect::<Result<_, _>>()
        .map_err(|source| DatapathError::Map { name: PEERS_MAP, source })
}

/// A `VRRP_COUNTERS` map summed over CPUs, per (ifindex, verdict).
pub fn read_counters(map: &aya::maps::Map) -> Result<BTreeMap<(u32, Verdict), u64>, DatapathError> {
    let name = COUNTERS_MAP;
    let counters: PerCpuHashMap<&MapData, CounterKey, u64> =
        PerCpuHashMap::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
    let mut out = BTreeMap::new();
    for row in counters.iter() {
        let (key, per_cpu) = row.map_err(|source| DatapathError::Map { name, source })?;
        // A verdict number this agent does not know comes from a newer
        // kernel object; it is skipped rather than misfiled.
        if let Some(v) = Verdict::from_u32(key.verdict) {
            *out.entry((key.ifindex, v)).or_insert(0) += per_cpu.iter().sum::<u64>();
        }
    }
    Ok(out)
}

/// A `VRRP_NOACCEPT_COUNTERS` map summed over CPUs, per (ifindex, verdict).
pub fn read_no_accept_counters(
    map: &aya::maps::Map,
) -> Result<BTreeMap<(u32, NoAcceptVerdict), u64>, DatapathError> {
    let name = NOACCEPT_COUNTERS_MAP;
    let counters: PerCpuHashMap<&MapData, NoAcceptCounterKey, u64> =
        PerCpuHashMap::try_from(map).map_err(|source| DatapathError::Map { name, source })?;
    let mut out = BTreeMap::new();
    for row in counters.iter() {
        let (key, per_cpu) = row.map_err(|source| DatapathError::Map { name, source })?;
        if let Some(v) = NoAcceptVerdict::from_u32(key.reason) {
            *out.entry((key.ifindex, v)).or_insert(0) += per_cpu.iter().sum::<u64>();
        }
    }
    Ok(out)
}

/// ENOENT, which a map delete of a missing key returns.
const fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

/// The maps a running agent pinned, opened by path (`vrrp-agent stats`).
pub struct Pinned {
    peers: aya::maps::Map,
    counters: aya::maps::Map,
    /// None for the pins of an agent older than Accept Mode.
    no_accept_counters: Option<aya::maps::Map>,
}

impl Pinned {
    /// Open the pins under `dir`.
    pub fn open(dir: &Path) -> Result<Pinned, DatapathError> {
        // Under `ip netns exec` the pins are in the bpffs an ancestor sees
        // (bpffs::persistent_root), as for the agent that made them.
        let dir = &match (dir.parent(), dir.file_name()) {
            (Some(root), Some(name)) => crate::bpffs::persistent_root(root).join(name),
            _ => dir.to_path_buf(),
        };
        let open = |name: &'static str| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path).map_err(|source| DatapathError::Map { name, source })?;
            aya::maps::Map::from_map_data(data).map_err(|source| DatapathError::Map { name, source })
        };
        Ok(Pinned {
            peers: open(PEERS_MAP)?,
            counters: open(COUNTERS_MAP)?,
            no_accept_counters: open(NOACCEPT_COUNTERS_MAP).ok(),
        })
    }

    /// As `Datapath::peers`.
    pub fn peers(&self) -> Result<Vec<PeerRow>, DatapathError> {
        read_peers(&self.peers)
    }

    /// As `Datapath::counters`.
    pub fn counters(&self) -> Result<BTreeMap<(u32, Verdict), u64>, DatapathError> {
        read_counters(&self.counters)
    }

    /// As `Datapath::no_accept_counters` (empty for an older agent's pins).
    pub fn no_accept_counters(&self) -> Result<BTreeMap<(u32, NoAcceptVerdict), u64>, DatapathError> {
        self.no_accept_counters.as_ref().map_or(Ok(BTreeMap::new()), read_no_accept_counters)
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        // Pinned links first: unpinned and dropped, the program detaches.
        for (_, l) in self.pinned_links.drain(..) {
            match l.unpin() {
                Ok(fd) => drop(fd),
                Err(e) => log::warn!("cannot remove a pinned XDP link: {e}"),
            }
        }
        // Pins outlive the process; a clean exit leaves nothing behind.
        for p in &self.pins {
            if let Err(e) = fs::remove_file(p) {
                log::warn!("cannot remove pin {}: {e}", p.display());
            }
        }
        if let Some(dir) = self.pins.first().and_then(|p| p.parent()) {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The kernel's change events (`VRRP_EVENTS`). Poll its fd for readability
/// (it implements `AsRawFd`), then drain with `next`.
pub struct Events {
    ring: RingBuf<aya::maps::MapData>,
}

impl Events {
    /// The next event, if one is waiting. A record of the wrong size (an
    /// object from another build) is skipped.
    #[expect(
        clippy::should_implement_trait,
        reason = "a draining poll, not an Iterator: None means 'not now'"
    )]
    pub fn next(&mut self) -> Option<PeerEvent> {
        loop {
            let item = self.ring.next()?;
            if let Ok(ev) = bytemuck::try_pod_read_unaligned::<PeerEvent>(&item) {
                return Some(ev);
            }
        }
    }
}

impl std::os::fd::AsRawFd for Events {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

/// An XDP program found attached to an interface (`occupant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupant {
    /// Its program id (`bpftool prog show id N`).
    pub prog_id: u32,
    /// Its name as the kernel has it.
    pub name: String,
    /// For this project's program: the (family, VRID) pairs its
    /// `VRRP_INSTANCES` holds for the interface. None for another tool's.
    pub serves: Option<Vec<(u8, u8)>>,
    /// For this project's program: whether its agent's `VRRP_ALIVE`
    /// deadline is still ahead (false: the agent is gone, the program fails
    /// open and passes every VRRP packet up).
    pub alive: bool,
}

impl Occupant {
    /// Whether this is a vrrp-agent program whose live agent serves `vrid`
    /// of `family` on the interface.
    pub fn serves_live(&self, family: Family, vrid: u8) -> bool {
        self.alive && self.serves.as_ref().is_some_and(|s| s.contains(&(family.code(), vrid)))
    }
}

/// The XDP program attached to `ifindex` (in this network namespace), if
/// any, and for this project's program what it serves there.
///
/// The kernel names the program (rtnetlink's IFLA_XDP program id, which
/// covers bpf_link and netlink attachments alike); its maps are opened by
/// id, so this works whatever bpffs the other agent pinned in, and with
/// `--no-pin`. A map that cannot be read
/// leaves `serves` empty rather than failing.
pub fn occupant(ifindex: u32) -> std::io::Result<Option<Occupant>> {
    let Some(prog_id) = xdp_prog_id(ifindex)? else { return Ok(None) };
    let info = aya::programs::loaded_programs().flatten().find(|p| p.id() == prog_id);
    let name = info.as_ref().and_then(|p| p.name_as_str().map(str::to_owned)).unwrap_or_default();
    if name != XDP_PROGRAM {
        return Ok(Some(Occupant { prog_id, name, serves: None, alive: false }));
    }
    let mut serves = Vec::new();
    let mut alive = false;
    let map_ids = info.and_then(|p| p.map_ids().ok().flatten()).unwrap_or_default();
    for id in map_ids {
        let Ok(mi) = aya::maps::MapInfo::from_id(id) else { continue };
        let Some(map_name) = mi.name_as_str().map(str::to_owned) else { continue };
        if map_name != INSTANCES_MAP && map_name != ALIVE_MAP {
            continue;
        }
        let Ok(data) = MapData::from_id(id) else { continue };
        if map_name == INSTANCES_MAP {
            if let Ok(m) =
                BpfHashMap::<_, InstanceKey, InstanceConfig>::try_from(aya::maps::Map::HashMap(data))
            {
                serves
                    .extend(m.keys().flatten().filter(|k| k.ifindex == ifindex).map(|k| (k.family, k.vrid)));
            }
        } else if let Ok(m) = Array::<_, u64>::try_from(aya::maps::Map::Array(data)) {
            let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
                .unwrap_or(0);
            alive = m.get(&0, 0).is_ok_and(|until| now <= until);
        }
    }
    serves.sort_unstable();
    Ok(Some(Occupant { prog_id, name, serves: Some(serves), alive }))
}

/// The id of the XDP program attached to `ifindex`, from rtnetlink
/// (RTM_GETLINK's IFLA_XDP): aya has no query for it.
fn xdp_prog_id(ifindex: u32) -> std::io::Result<Option<u32>> {
    use rtnetlink::packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, LinkXdp};
    use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    let mut req = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(link)),
    );
    req.header.flags = NLM_F_REQUEST;
    req.finalize();
    let mut buf = vec![0u8; req.header.length as usize];
    req.serialize(&mut buf);
    sock.send(&buf, 0)?;
    let (data, _) = sock.recv_from_full()?;
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data).map_err(|e| bad(e.to_string()))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
            for attr in l.attributes {
                let LinkAttribute::Xdp(nlas) = attr else { continue };
                for n in nlas {
                    // One program: PROG_ID; native and generic at once:
                    // one id per mode (the first found is enough here).
                    if let LinkXdp::ProgId(id) | LinkXdp::DrvProgId(id) | LinkXdp::SkbProgId(id) = n
                        && id != 0
                    {
                        return Ok(Some(id));
                    }
                }
            }
            Ok(None)
        }
        NetlinkPayload::Error(e) => Err(e.to_io()),
        other => Err(bad(format!("unexpected answer to RTM_GETLINK: {other:?}"))),
    }
}

impl Datapath {
    /// Run the loaded program once on `frame` as if it arrived on
    /// `ifindex` (BPF_PROG_TEST_RUN); its XDP action. The maps are the
    /// live ones: counters and peers move as for a real packet.
    pub fn test_run(&self, frame: &[u8], ifindex: u32) -> Result<u32, DatapathError> {
        self.test_run_repeat(frame, ifindex, 1).map(|(action, _)| action)
    }

    /// As `test_run`, `repeat` times in the kernel; the action and the
    /// kernel's mean time per run.
    pub fn test_run_repeat(
        &self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DatapathError> {
        use aya::programs::{TestRun, TestRunOptions};
        let prog = self.prog()?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex. data 0 and data_end the frame's
        // length (newer kernels take the linear part's size from it); the
        // device must exist in this thread's namespace.
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let mut md = [0u8; 24];
        md[4..8].copy_from_slice(&len.to_ne_bytes());
        md[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&md),
            repeat,
            ..TestRunOptions::default()
        };
        let r = prog.test_run(opts).map_err(|source| DatapathError::Program {
            action: "test-running",
            iface: "-".into(),
            source,
        })?;
        Ok((r.return_value, r.duration))
    }
}

/// Refuse to start beside another agent on the same interfaces and VRIDs
/// (issue 12, case 9): for each (interface, ifindex, family, VRID) wanted,
/// look at the XDP program attached there. This project's program whose
/// agent is alive and serves the same VRID and family: `Taken`, whatever
/// the receive mode (two agents would both be MASTER on one node). Anything
/// else attached (another VRID of another agent, a killed agent's program
/// that fails open, another tool's program) is only reported, one line per
/// interface, for the caller to log: the XDP attach then fails, and raw
/// sockets still hear our adverts, which such a program passes up.
pub fn refuse_taken(wanted: &[(&str, u32, Family, u8)]) -> Result<Vec<String>, DatapathError> {
    let mut notes = Vec::new();
    let mut seen = Vec::new();
    // One look per interface, not per instance: with 250 VRIDs on one
    // VLAN, a netlink query (and, with a program there, a walk of every
    // loaded program and its maps) per instance was most of the start-up.
    let mut looked: std::collections::HashMap<u32, Option<Occupant>> = std::collections::HashMap::new();
    for &(iface, ifindex, family, vrid) in wanted {
        let o = looked.entry(ifindex).or_insert_with(|| match occupant(ifindex) {
            Ok(o) => o,
            Err(e) => {
                log::debug!("cannot tell which XDP program is on {iface}: {e}");
                None
            }
        });
        let Some(o) = o else { continue };
        if o.serves_live(family, vrid) {
            let family = if family == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(DatapathError::Taken { iface: iface.into(), prog_id: o.prog_id, vrid, family });
        }
        if seen.contains(&ifindex) {
            continue;
        }
        seen.push(ifindex);
        notes.push(match (&o.serves, o.alive) {
            (None, _) => {
                format!(
                    "{iface} has another tool's XDP program ({} id {}): it is left alone",
                    o.name, o.prog_id
                )
            }
            (Some(v), true) => format!(
                "another vrrp-agent's XDP program (id {}) is on {iface}, serving VRIDs {}: it passes \
                 adverts for ours up the stack",
                o.prog_id,
                v.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>().join(",")
            ),
            (Some(_), false) => format!(
                "a killed vrrp-agent's XDP program (id {}) is still on {iface}, failing open; remove its \
                 pin directory under /sys/fs/bpf/vrrp-agent/ to detach it",
                o.prog_id
            ),
        });
    }
    Ok(notes)
}

/// The address table's key of `addr` for `vrid` (0: one of ours) on
/// `ifindex`.
fn addr_key(ifindex: u32, vrid: u8, addr: &IpAddr) -> PeerKey {
    let family = if addr.is_ipv4() { vrrp_common::maps::FAMILY_IPV4 } else { vrrp_common::maps::FAMILY_IPV6 };
    PeerKey { ifindex, family, vrid, _pad: [0; 2], addr: addr_bytes(addr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batched read of the peer table returns what the key walk does,
    /// over more rows than one batch holds. Needs CAP_BPF (root); skipped
    /// without it, a failure under CI=true.
    #[test]
    fn peer_table_read_in_batches_matches_the_key_walk() {
        use aya::maps::IterableMap as _;
        use std::os::fd::AsFd as _;
        let mut table = match BpfHashMap::<MapData, PeerKey, PeerState>::create(4096, 0) {
            Ok(m) => m,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: cannot create a BPF map ({e})");
                return;
            }
            Err(e) => panic!("cannot create a BPF map: {e}"),
        };
        let rows = PEER_BATCH * 3 + 17;
        for n in 0..rows {
            let i = u32::try_from(n).expect("small");
            let key = PeerKey {
                ifindex: 1 + i / 250,
                family: vrrp_common::maps::FAMILY_IPV4,
                vrid: u8::try_from(1 + i % 250).expect("small"),
                _pad: [0; 2],
                addr: [203, 0, 113, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            };
            let state = PeerState {
                last_seen_ns: u64::from(i) * 1000,
                adverts: u64::from(i),
                interval_cs: 10,
                priority: 150,
                version: 3,
                flags: 0,
            };
            table.insert(key, state, 0).expect("insert");
        }
        let fd = table.map().fd().as_fd().try_clone_to_owned().expect("dup");
        let map = Map::HashMap(MapData::from_fd(fd).expect("map from fd"));
        let Map::HashMap(data) = &map else { unreachable!() };
        let mut batched = peers_batched(data).expect("the kernel reads hash maps in batches");
        let mut walked = read_peers_by_key(&map).expect("key walk");
        assert_eq!(batched.len(), rows);
        batched.sort_by_key(|r| r.state.adverts);
        walked.sort_by_key(|r| r.state.adverts);
        assert_eq!(batched, walked);
        // Empty: no rows, no error.
        let empty = BpfHashMap::<MapData, PeerKey, PeerState>::create(16, 0).expect("create");
        let fd = empty.map().fd().as_fd().try_clone_to_owned().expect("dup");
        let Map::HashMap(data) = Map::HashMap(MapData::from_fd(fd).expect("map from fd")) else {
            unreachable!()
        };
        assert_eq!(peers_batched(&data), Some(Vec::new()));
    }

    #[test]
    fn small_configurations_keep_the_objects_map_sizes() {
        assert_eq!(MapSizes::for_config(1, 1), MapSizes::default());
        assert_eq!(MapSizes::for_config(250, 250), MapSizes::default());
    }

    #[test]
    fn sixteen_vlans_of_250_vrids_get_room_for_every_instance() {
        let s = MapSizes::for_config(4000, 4000);
        assert_eq!(s.instances, 8000);
        assert_eq!(s.peers, 8000);
        assert_eq!(s.vips, 8000);
        assert_eq!(s.events, 1 << 20, "four 64-byte events per instance, a power of two");
        let e = s.entries();
        assert!(e.iter().all(|(_, n)| *n >= 4000), "{e:?}");
        assert!(e.iter().any(|(name, _)| *name == WATCH_MAP));
    }

    #[test]
    fn absurd_counts_saturate_instead_of_wrapping() {
        let s = MapSizes::for_config(usize::MAX, usize::MAX);
        assert_eq!(s.instances, u32::MAX);
    }
}
