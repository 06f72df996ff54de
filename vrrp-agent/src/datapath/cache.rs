//! The verified-program cache: the loaded XDP program and its maps, pinned
//! under `<pin root>/<name>/cache/<key>/` so that the next start of the
//! agent of that name skips the ELF parse, the map creation and the
//! kernel's verifier (bench-results/startup.md: 10-25 ms of a start of
//! 40-50 ms on the 2-core VM).
//!
//! When it is reused, and when not:
//! - `<key>` is an MD5 digest (not a security measure: bpffs is root's)
//!   of the object's bytes and of the six configurable map sizes
//!   (`MapSizes`): another build or `--ebpf-object`, or a configuration
//!   whose instance or address count changes a map's size, has another
//!   key, and its start loads afresh and removes the other keys' pins (so
//!   at most one cached program per agent name stays in the kernel).
//! - The pinned program must be an XDP program named `vrrp_xdp`, and
//!   every pinned map one of *that program's* maps (its id among the
//!   program's `map_ids`, so a pin replaced by hand or by another program
//!   is refused), with the expected kernel name and, for the sized maps,
//!   the expected `max_entries`. Anything else, or a pin that cannot be
//!   read, and the cache is removed and the object loaded afresh.
//! - Before use every map is emptied (hash maps: every key deleted, which
//!   also cancels the silence timers of `VRRP_WATCH`; arrays: zeroed) and
//!   the event ring drained, while the program is attached nowhere: the
//!   new agent starts from the same state as a fresh load. The interface
//!   set and the instances' entries are not cached: the agent configures
//!   and attaches as after a fresh load.
//! - `VRRP_VERIFIER_LOG` (which asks for the verifier's trace) and
//!   `--no-pin` (which pins nothing) bypass the cache.
//!
//! The cache stays pinned while the agent runs and after a clean stop
//! (the program is then attached nowhere: it costs kernel memory only,
//! about the maps' size); `bpftool prog show pinned <dir>/prog` shows it,
//! and removing the directory unloads it.

use std::fs;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, MapInfo};
use aya::programs::Xdp;
use md5::{Digest, Md5};

use vrrp_common::maps::WATCH_MAP;

use super::{ALL_MAPS, MapSizes};

/// The cache's directory under an agent's pin directory.
pub const CACHE_DIR: &str = "cache";
/// The program's pin in a key's directory.
const PROG_PIN: &str = "prog";

/// The cache key of `object` loaded with `sizes`: hex, 32 characters.
pub fn key(object: &[u8], sizes: &MapSizes) -> String {
    let mut h = Md5::new();
    h.update(object);
    for (name, n) in sizes.entries() {
        h.update(name.as_bytes());
        h.update(n.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The kernel's name of a map (BPF_OBJ_NAME_LEN: 15 characters and NUL).
fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// A program and maps taken from the cache, emptied.
pub struct Reused {
    pub prog: Xdp,
    pub maps: Vec<(&'static str, Map)>,
}

/// The cached program of `key` under `dir` (an agent's `cache`
/// directory), checked and emptied; Ok(None) when there is none. Other
/// keys' entries are removed. An unusable entry is removed too, and its
/// reason returned as the error.
pub fn take(dir: &Path, key: &str, sizes: &MapSizes) -> Result<Option<Reused>, String> {
    remove_others(dir, key);
    let entry = dir.join(key);
    if !entry.join(PROG_PIN).exists() {
        return Ok(None);
    }
    match open(&entry, sizes) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            remove(&entry);
            Err(e)
        }
    }
}

fn open(entry: &Path, sizes: &MapSizes) -> Result<Reused, String> {
    let prog = Xdp::from_pin(entry.join(PROG_PIN), aya_obj::programs::XdpAttachType::Interface)
        .map_err(|e| format!("program: {e}"))?;
    let info = prog.info().map_err(|e| format!("program info: {e}"))?;
    // `name()`, not `name_as_str()`: that one runs aya's feature probes
    // (a few ms of BPF_PROG_LOADs) the first time, which a reuse avoids.
    if info.name() != kernel_name(vrrp_common::maps::XDP_PROGRAM).as_bytes() {
        return Err(format!(
            "the pinned program is {:?}, not {}",
            String::from_utf8_lossy(info.name()),
            vrrp_common::maps::XDP_PROGRAM
        ));
    }
    let ids = info.map_ids().map_err(|e| format!("program's maps: {e}"))?.unwrap_or_default();
    let wanted = sizes.entries();
    let mut maps = Vec::new();
    // The silence timers first: emptying `VRRP_WATCH` cancels them, and
    // their callback writes to the event ring (drained after this).
    let order = std::iter::once(WATCH_MAP).chain(ALL_MAPS.into_iter().filter(|n| *n != WATCH_MAP));
    for name in order {
        let data = MapData::from_pin(entry.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let mi = data.info().map_err(|e| format!("{name}: {e}"))?;
        if !ids.contains(&mi.id()) {
            return Err(format!("{name} (map id {}) is not one of the pinned program's maps", mi.id()));
        }
        if mi.name() != kernel_name(name).as_bytes() {
            return Err(format!("{name}: the pinned map is named {:?}", String::from_utf8_lossy(mi.name())));
        }
        if let Some((_, n)) = wanted.iter().find(|(m, _)| *m == name)
            && mi.max_entries() != *n
        {
            return Err(format!("{name}: {} entries, {n} wanted", mi.max_entries()));
        }
        empty(&data, &mi).map_err(|e| format!("emptying {name}: {e}"))?;
        let map = Map::from_map_data(data).map_err(|e| format!("{name}: {e}"))?;
        maps.push((name, map));
    }
    Ok(Reused { prog, maps })
}

/// Pin `prog` and `maps` as the cache entry `key` under `dir`; a partial
/// entry is removed again.
pub fn store(dir: &Path, key: &str, prog: &mut Xdp, maps: &[(&'static str, &Map)]) -> Result<(), String> {
    let entry = dir.join(key);
    let done = (|| {
        fs::create_dir_all(&entry).map_err(|e| e.to_string())?;
        for (name, map) in maps {
            map.pin(entry.join(name)).map_err(|e| format!("{name}: {e}"))?;
        }
        // The program last: `take` looks for it, so an entry without it
        // is never used.
        prog.pin(entry.join(PROG_PIN)).map_err(|e| format!("program: {e}"))
    })();
    if done.is_err() {
        remove(&entry);
    }
    done
}

/// Remove every entry of `dir` except `keep`.
fn remove_others(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_str() != Some(keep) {
            log::debug!(
                "removing the cached XDP program {} (another object or map sizes)",
                e.path().display()
            );
            remove(&e.path());
        }
    }
}

/// Unpin an entry (the kernel unloads what no one else holds).
pub fn remove(entry: &Path) {
    if let Err(e) = fs::remove_dir_all(entry)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        log::warn!("cannot remove the cached XDP program {}: {e}", entry.display());
    }
}

/// `dir`'s cache directory.
pub fn dir_of(agent_dir: &Path) -> PathBuf {
    agent_dir.join(CACHE_DIR)
}

// bpf(2) commands and map types (linux/bpf.h).
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// The element-command part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn elem(cmd: libc::c_long, fd: i32, key: *const u8, value: *mut u8) -> std::io::Result<()> {
    let mut attr = ElemAttr { map_fd: fd as u32, _pad: 0, key: key as u64, value: value as u64, flags: 0 };
    // key and value point to buffers of the map's key and value sizes (or
    // key is null for the first key), which the kernel reads or writes.
    super::sys_bpf(cmd, &mut attr).map(drop)
}

/// Empty a map: delete every key of a hash map, zero every slot of an
/// array (per CPU: every CPU's). The ring buffer is drained by its reader.
fn empty(map: &MapData, info: &MapInfo) -> std::io::Result<()> {
    let fd = map.fd().as_fd().as_raw_fd();
    let ty = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
    let key_size = info.key_size() as usize;
    let value_size = info.value_size() as usize;
    match ty {
        BPF_MAP_TYPE_HASH | BPF_MAP_TYPE_PERCPU_HASH => {
            let mut key = vec![0u8; key_size];
            // At most one pass over the entries (and one more to find none).
            for _ in 0..=info.max_entries() {
                match elem(BPF_MAP_GET_NEXT_KEY, fd, std::ptr::null(), key.as_mut_ptr()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                    Err(e) => return Err(e),
                }
                match elem(BPF_MAP_DELETE_ELEM, fd, key.as_ptr(), std::ptr::null_mut()) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(std::io::Error::other("entries kept coming back"))
        }
        BPF_MAP_TYPE_ARRAY | BPF_MAP_TYPE_PERCPU_ARRAY => {
            let per = if ty == BPF_MAP_TYPE_PERCPU_ARRAY {
                let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
                value_size.div_ceil(8) * 8 * cpus
            } else {
                value_size
            };
            let mut zero = vec![0u8; per];
            for i in 0..info.max_entries() {
                let k = i.to_ne_bytes();
                elem(BPF_MAP_UPDATE_ELEM, fd, k.as_ptr(), zero.as_mut_ptr())?;
            }
            Ok(())
        }
        BPF_MAP_TYPE_RINGBUF => Ok(()),
        other => Err(std::io::Error::other(format!("map type {other} cannot be emptied"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_the_object_and_with_every_map_size() {
        let s = MapSizes::default();
        let k = key(b"object", &s);
        assert_eq!(k.len(), 32);
        assert_eq!(k, key(b"object", &s), "the same object and sizes give the same key");
        assert_ne!(k, key(b"objecu", &s));
        for bigger in [
            MapSizes { instances: s.instances * 2, ..s },
            MapSizes { peers: s.peers * 2, ..s },
            MapSizes { vips: s.vips * 2, ..s },
            MapSizes { events: s.events * 2, ..s },
        ] {
            assert_ne!(k, key(b"object", &bigger), "{bigger:?}");
        }
    }

    #[test]
    fn kernel_names_are_cut_at_15_characters() {
        assert_eq!(kernel_name("VRRP_NOACCEPT_ROWS"), "VRRP_NOACCEPT_R");
        assert_eq!(kernel_name("VRRP_PEERS"), "VRRP_PEERS");
    }
}
