//! The live record: what a crash recovery needs, kept up to date by the
//! running worker in `/run/vrrp-agent/<name>.live`, a small file it maps
//! (`MAP_SHARED`) and writes with plain memory stores: per instance,
//! whether it is MASTER at its configured priority, its identity as
//! `resume::Entry` checks it (a fingerprint), and the CLOCK_MONOTONIC time
//! of its last advert sent. No syscall per advert: the page is the
//! kernel's page cache, so what the worker stored is there for the next
//! process after a SIGKILL (clock_gettime is the vDSO's, not a syscall).
//!
//! A hitless restart leaves a record on purpose (`resume.rs`); a crash
//! cannot write one, so this one is written all along. The next worker
//! reads it and resumes exactly as after a hitless restart
//! (`resume::decide_live`): MASTER, configured as it was, last advert less
//! than 2.5 x advert_int ago.
//!
//! One holder is the hard rule (RFC 5798 6.4.2: a backup takes over
//! Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time after the
//! last advert it accepted, whatever our processes do). The supervisor
//! removes a dead worker's VIPs before that can happen unless the new
//! worker has taken them over; the two must never disagree (a VIP removed
//! under a worker that advertises as MASTER, or kept by nobody while a
//! backup takes over). The header's `owner` word settles it with one
//! compare-exchange each: `generation << 32 | pid` of the worker whose
//! record and kernel state this is. The new worker *claims* with
//! `(g, dead) -> (g + 1, itself)`; the supervisor *fences* with
//! `(g, dead) -> (g, 0)`. Exactly one of them succeeds; a worker whose
//! claim failed starts normally (and removes what it finds), a supervisor
//! whose fence failed leaves the VIPs to the worker that claimed them.
//!
//! Layout (`#[repr(C)]`, native endianness: it never leaves the machine):
//! a 64-byte header (magic, version, owner, slot count, slot size), then
//! 64-byte slots. Each slot is a seqlock: its `seq` is odd while it is
//! written, so a slot whose writer was killed mid-write reads as torn
//! (and a torn record resumes nothing).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::machine::Micros;

/// "VRLV".
pub const MAGIC: u32 = 0x564c_5256;
/// Layout version; another one is not read (a normal start follows).
pub const VERSION: u32 = 1;
const HEADER_SIZE: usize = 64;
const SLOT_SIZE: usize = 64;
/// More slots than this is not a record of ours.
const MAX_SLOTS: u32 = 1 << 20;

/// The file's first 64 bytes.
#[repr(C)]
pub struct Header {
    magic: AtomicU32,
    version: AtomicU32,
    /// `generation << 32 | pid`: whose record this is; pid 0: fenced.
    owner: AtomicU64,
    count: AtomicU32,
    slot_size: AtomicU32,
    _pad: [u64; 5],
}

/// One instance's 64 bytes.
#[repr(C)]
pub struct Slot {
    /// Odd while being written.
    seq: AtomicU64,
    /// CLOCK_MONOTONIC µs of the last advert sent (0: none).
    at: AtomicU64,
    /// `resume::Entry::fingerprint` of the instance as configured.
    ident: AtomicU64,
    /// `fingerprint` of its name.
    name: AtomicU64,
    advert_cs: AtomicU32,
    /// 1: MASTER advertising its configured priority.
    master: AtomicU32,
    _pad: [u64; 3],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

/// What a slot says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotData {
    /// Last advert sent.
    pub at: Micros,
    /// Identity fingerprint.
    pub ident: u64,
    /// Name fingerprint.
    pub name: u64,
    /// Advert interval, centiseconds.
    pub advert_cs: u16,
    /// MASTER at its configured priority.
    pub master: bool,
}

/// FNV-1a, 64 bits: stable across builds and processes (std's hashers
/// promise neither).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The owner word: generation and pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Bumped by every claim.
    pub generation: u32,
    /// The worker whose record this is; 0: fenced by the supervisor.
    pub pid: u32,
}

impl Owner {
    /// From the word.
    pub fn unpack(w: u64) -> Owner {
        Owner { generation: (w >> 32) as u32, pid: w as u32 }
    }
    /// To the word.
    pub fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.pid)
    }
    /// Fenced: the supervisor removed (or is removing) the VIPs.
    pub fn fenced(self) -> bool {
        self.pid == 0
    }
}

impl Slot {
    /// Seqlock write (one writer at a time: the worker).
    fn write(&self, d: &SlotData) {
        let s = self.seq.load(Ordering::Relaxed);
        // Odd from here: a reader (the next process, after a kill) sees a
        // torn slot rather than half of this update.
        self.seq.store(s | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.at.store(d.at.0, Ordering::Relaxed);
        self.ident.store(d.ident, Ordering::Relaxed);
        self.name.store(d.name, Ordering::Relaxed);
        self.advert_cs.store(u32::from(d.advert_cs), Ordering::Relaxed);
        self.master.store(u32::from(d.master), Ordering::Relaxed);
        self.seq.store((s | 1).wrapping_add(1), Ordering::Release);
    }

    /// Seqlock read: None if torn (odd, or changed under the read a few
    /// times over: the writer is dead, or the slot is not stable).
    fn read(&self) -> Option<SlotData> {
        for _ in 0..4 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                continue;
            }
            let d = SlotData {
                at: Micros(self.at.load(Ordering::Relaxed)),
                ident: self.ident.load(Ordering::Relaxed),
                name: self.name.load(Ordering::Relaxed),
                advert_cs: u16::try_from(self.advert_cs.load(Ordering::Relaxed)).unwrap_or(u16::MAX),
                master: self.master.load(Ordering::Relaxed) == 1,
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Some(d);
            }
        }
        None
    }
}

/// The file of agent `name`.
pub fn file(name: &str) -> PathBuf {
    PathBuf::from(crate::instance_lock::LOCK_DIR).join(format!("{name}.live"))
}

/// A shared mapping of the file.
struct Mapping {
    ptr: *mut u8,
    len: usize,
    _file: File,
}

// SAFETY: the mapping is only accessed through atomics (`Header`, `Slot`),
// which are Sync; the pointer stays valid until Drop unmaps it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `file`, whose length is `len` (at least the header's).
    fn new(file: File, len: usize) -> std::io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of a file we hold open, of a
        // length the file has; nothing else in this process maps it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len, _file: file })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned and at least HEADER_SIZE long;
        // Header is atomics only, valid for any bit pattern.
        unsafe { &*self.ptr.cast::<Header>() }
    }

    /// Slot `i`, if it lies in the mapping.
    fn slot(&self, i: usize) -> Option<&Slot> {
        let off = HEADER_SIZE.checked_add(i.checked_mul(SLOT_SIZE)?)?;
        if off + SLOT_SIZE > self.len {
            return None;
        }
        // SAFETY: in bounds (checked), 64-byte aligned, atomics only.
        Some(unsafe { &*self.ptr.add(off).cast::<Slot>() })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region mmap returned; no reference outlives self.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A record as found: its owner and slots (None: torn), with the mapping
/// kept for the claim or the fence.
pub struct Found {
    map: Mapping,
    /// The owner word when read.
    pub owner: Owner,
    /// The slots; None for a torn one.
    pub slots: Vec<Option<SlotData>>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found").field("owner", &self.owner).field("slots", &self.slots).finish()
    }
}

/// Read agent `name`'s record; None if there is none or it is not one of
/// this version (a normal start follows).
pub fn read(name: &str) -> Option<Found> {
    read_at(&file(name))
}

/// `read`, of the record at `path`.
fn read_at(path: &std::path::Path) -> Option<Found> {
    let f = OpenOptions::new().read(true).write(true).open(path).ok()?;
    let len = usize::try_from(f.metadata().ok()?.len()).ok()?;
    if len < HEADER_SIZE {
        return None;
    }
    let map = Mapping::new(f, len).ok()?;
    let h = map.header();
    if h.magic.load(Ordering::Acquire) != MAGIC
        || h.version.load(Ordering::Relaxed) != VERSION
        || h.slot_size.load(Ordering::Relaxed) as usize != SLOT_SIZE
    {
        log::warn!("{}: not a live record of this version; ignored", path.display());
        return None;
    }
    let count = h.count.load(Ordering::Acquire).min(MAX_SLOTS) as usize;
    let owner = Owner::unpack(h.owner.load(Ordering::Acquire));
    let mut slots = Vec::with_capacity(count);
    for i in 0..count {
        // A count beyond the file's end: the rest is torn.
        slots.push(map.slot(i).and_then(Slot::read));
    }
    Some(Found { map, owner, slots })
}

impl Found {
    /// The worker's claim: `seen -> (seen.generation + 1, pid)`. Err with
    /// the owner found instead (the supervisor fenced first).
    pub fn claim(&self, pid: u32) -> Result<Owner, Owner> {
        cas(self.map.header(), self.owner, Owner { generation: self.owner.generation.wrapping_add(1), pid })
    }

    /// The supervisor's fence: `seen -> (seen.generation, 0)`. Err with the
    /// owner found instead (a new worker claimed first).
    pub fn fence(&self) -> Result<Owner, Owner> {
        cas(self.map.header(), self.owner, Owner { generation: self.owner.generation, pid: 0 })
    }

    /// The owner now.
    pub fn owner_now(&self) -> Owner {
        Owner::unpack(self.map.header().owner.load(Ordering::Acquire))
    }

    /// Fence whatever is there (no worker will run: the supervisor exits).
    pub fn fence_any(&self) {
        let h = self.map.header();
        let mut cur = h.owner.load(Ordering::Acquire);
        loop {
            let fenced = Owner { pid: 0, ..Owner::unpack(cur) }.pack();
            match h.owner.compare_exchange(cur, fenced, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Whether any slot is torn.
    pub fn torn(&self) -> bool {
        self.slots.iter().any(Option::is_none)
    }

    /// When the VIPs of this record must be gone at the latest: before any
    /// backup can take over (RFC 5798 6.4.2, Master_Down_Interval after
    /// the last advert, at least 3 x advert_int), with the same half
    /// interval of margin the new worker keeps: min over the masters of
    /// their last advert + 2.5 x advert_int. None without a master slot.
    pub fn masters_deadline(&self) -> Option<Micros> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.master)
            .map(|s| Micros(s.at.0.saturating_add(super::resume::limit(s.advert_cs).0)))
            .min()
    }

    /// The shortest advert interval among the masters, µs.
    pub fn min_master_interval(&self) -> Option<Micros> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.master)
            .map(|s| Micros::from_centis(vrrp_common::Centis(s.advert_cs)))
            .min()
    }
}

fn cas(h: &Header, seen: Owner, new: Owner) -> Result<Owner, Owner> {
    h.owner
        .compare_exchange(seen.pack(), new.pack(), Ordering::AcqRel, Ordering::Acquire)
        .map(|_| new)
        .map_err(Owner::unpack)
}

/// The running worker's record (cheap to clone: the resume bridge's
/// thread writes it while the agent starts).
#[derive(Clone)]
pub struct Writer {
    map: Arc<Mapping>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("live::Writer").field("len", &self.map.len).finish()
    }
}

impl Writer {
    /// Write agent `name`'s record for `slots`, owned by `owner` (a claim
    /// already stored it; otherwise it is stored here). The file is kept
    /// (same inode: the supervisor may hold it mapped) and only grows.
    pub fn create(name: &str, owner: Owner, slots: &[SlotData]) -> std::io::Result<Writer> {
        std::fs::create_dir_all(crate::instance_lock::LOCK_DIR)?;
        Self::create_at(&file(name), owner, slots)
    }

    /// `create`, at `path`.
    fn create_at(path: &std::path::Path, owner: Owner, slots: &[SlotData]) -> std::io::Result<Writer> {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let w = Writer { map: Arc::new(Self::map(f, slots.len())?) };
        let h = w.map.header();
        h.owner.store(owner.pack(), Ordering::Release);
        h.slot_size.store(SLOT_SIZE as u32, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        w.rewrite(slots);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(w)
    }

    fn map(f: File, slots: usize) -> std::io::Result<Mapping> {
        let want = HEADER_SIZE + slots.max(1) * SLOT_SIZE;
        let len = usize::try_from(f.metadata()?.len()).unwrap_or(0);
        let len = if len < want {
            f.set_len(want as u64)?;
            want
        } else {
            len
        };
        Mapping::new(f, len)
    }

    /// All slots anew (at start, after a reload); grows the file first.
    pub fn rewrite(&self, slots: &[SlotData]) {
        let h = self.map.header();
        // Killed meanwhile, each slot is old and whole, new and whole, or
        // torn (a torn record resumes nothing); an instance found in two
        // slots resumes only if both say so (`resume::decide_live`).
        for (i, d) in slots.iter().enumerate() {
            if let Some(s) = self.map.slot(i) {
                s.write(d);
            }
        }
        let n = slots.len().min(self.map.len.saturating_sub(HEADER_SIZE) / SLOT_SIZE);
        h.count.store(n as u32, Ordering::Release);
    }

    /// A writer for `slots` instances: this one if the mapping holds them,
    /// else a larger mapping of the same file.
    pub fn resized(self, name: &str, slots: usize) -> std::io::Result<Writer> {
        self.resized_at(&file(name), slots)
    }

    fn resized_at(self, path: &std::path::Path, slots: usize) -> std::io::Result<Writer> {
        if HEADER_SIZE + slots * SLOT_SIZE <= self.map.len {
            return Ok(self);
        }
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Writer { map: Arc::new(Self::map(f, slots)?) })
    }

    /// Slot `i` as it is.
    pub fn get(&self, i: usize) -> Option<SlotData> {
        self.map.slot(i).and_then(Slot::read)
    }

    /// Every slot in use, as it is.
    pub fn all(&self) -> Vec<SlotData> {
        let n = self.map.header().count.load(Ordering::Acquire) as usize;
        (0..n).filter_map(|i| self.get(i)).collect()
    }

    /// An advert went out for slot `i` (the instance named `name`, a
    /// `fingerprint`: a slot another instance holds, its index shifted by
    /// a reload under way, is left alone) at `at` (taken before the send,
    /// so the age the next process computes is never short), `master`: at
    /// the configured priority. Memory stores only.
    pub fn advert(&self, i: usize, name: u64, at: Micros, master: bool) {
        let Some(s) = self.map.slot(i) else { return };
        let Some(mut d) = s.read() else { return };
        if d.name != name {
            return;
        }
        d.at = at;
        d.master = master;
        s.write(&d);
    }

    /// Slot `i` (instance `name`, as for `advert`) is no longer (or again)
    /// MASTER at its configured priority.
    pub fn set_master(&self, i: usize, name: u64, master: bool) {
        let Some(s) = self.map.slot(i) else { return };
        let Some(mut d) = s.read() else { return };
        if d.name == name && d.master != master {
            d.master = master;
            s.write(&d);
        }
    }
}

/// Remove agent `name`'s record (a clean stop: nothing to resume).
pub fn remove(name: &str) {
    let _ = std::fs::remove_file(file(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Box<Slot> {
        // SAFETY: Slot is atomics and padding only: all zeroes is valid.
        Box::new(unsafe { std::mem::zeroed() })
    }

    fn header(owner: Owner) -> Box<Header> {
        // SAFETY: as above.
        let h: Box<Header> = Box::new(unsafe { std::mem::zeroed() });
        h.owner.store(owner.pack(), Ordering::Relaxed);
        h
    }

    #[test]
    fn a_slot_reads_back_what_was_written() {
        let s = slot();
        let d = SlotData { at: Micros(123_456_789), ident: 7, name: 9, advert_cs: 100, master: true };
        s.write(&d);
        assert_eq!(s.read(), Some(d));
        assert_eq!(s.seq.load(Ordering::Relaxed), 2);
        s.write(&SlotData { master: false, ..d });
        assert_eq!(s.read(), Some(SlotData { master: false, ..d }));
    }

    #[test]
    fn a_slot_left_mid_write_is_torn() {
        let s = slot();
        s.write(&SlotData { at: Micros(5), master: true, ..Default::default() });
        // A writer killed between its first store and its last.
        s.seq.store(3, Ordering::Relaxed);
        s.at.store(99, Ordering::Relaxed);
        assert_eq!(s.read(), None);
    }

    #[test]
    fn the_owner_word_packs() {
        let o = Owner { generation: 0xdead_beef, pid: 4_194_304 };
        assert_eq!(Owner::unpack(o.pack()), o);
        assert!(Owner { generation: 3, pid: 0 }.fenced());
    }

    /// Claim and fence are mutually exclusive, whichever comes first.
    #[test]
    fn claim_and_fence_exclude_each_other() {
        let dead = Owner { generation: 4, pid: 100 };
        let h = header(dead);
        let claimed = cas(&h, dead, Owner { generation: 5, pid: 200 });
        assert_eq!(claimed, Ok(Owner { generation: 5, pid: 200 }));
        // The supervisor comes too late: the VIPs are the new worker's.
        assert_eq!(cas(&h, dead, Owner { generation: 4, pid: 0 }), Err(Owner { generation: 5, pid: 200 }));

        let h = header(dead);
        assert_eq!(cas(&h, dead, Owner { generation: 4, pid: 0 }), Ok(Owner { generation: 4, pid: 0 }));
        // The new worker comes too late: it starts normally.
        assert_eq!(cas(&h, dead, Owner { generation: 5, pid: 200 }), Err(Owner { generation: 4, pid: 0 }));
    }

    /// Through the file, as two processes see it: the worker's mapping,
    /// then the next worker's and the supervisor's, each its own mapping.
    #[test]
    fn the_record_round_trips_through_the_file_and_claim_excludes_fence() {
        let path = std::env::temp_dir().join(format!("vrrp-live-{}.live", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let a = SlotData { at: Micros(0), ident: 1, name: 2, advert_cs: 100, master: false };
        let b = SlotData { at: Micros(0), ident: 3, name: 4, advert_cs: 10, master: false };
        let dead = Owner { generation: 7, pid: 1000 };
        let w = Writer::create_at(&path, dead, &[a, b]).expect("create");
        w.advert(1, 4, Micros(5_000_000), true);
        // Another instance's name at slot 0 (a reload under way): untouched.
        w.advert(0, 4, Micros(6_000_000), true);
        let found = read_at(&path).expect("read");
        assert_eq!(found.owner, dead);
        let b_now = SlotData { at: Micros(5_000_000), master: true, ..b };
        assert_eq!(found.slots, vec![Some(a), Some(b_now)]);
        // 2.5 x 100 ms after its last advert.
        assert_eq!(found.masters_deadline(), Some(Micros(5_000_000 + 250_000)));
        // Grown by a reload to three instances: the same file, bigger.
        let w = w.resized_at(&path, 3).expect("resize");
        w.rewrite(&[a, b_now, SlotData { name: 9, ..a }]);
        assert_eq!(read_at(&path).expect("read").slots.len(), 3);
        // The supervisor's view, mapped separately: the new worker's claim
        // wins, the fence then fails.
        let sup = read_at(&path).expect("read");
        let next = read_at(&path).expect("read");
        assert_eq!(next.claim(2000), Ok(Owner { generation: 8, pid: 2000 }));
        assert_eq!(sup.fence(), Err(Owner { generation: 8, pid: 2000 }));
        assert_eq!(sup.owner_now(), Owner { generation: 8, pid: 2000 });
        // A torn slot (killed mid-write) reads as such through the file.
        if let Some(s) = w.map.slot(2) {
            s.seq.store(5, Ordering::Relaxed);
        }
        assert!(read_at(&path).expect("read").torn());
        // Not a record of this version: ignored.
        w.map.header().version.store(VERSION + 1, Ordering::Relaxed);
        assert!(read_at(&path).is_none());
        drop(w);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn fingerprints_are_stable() {
        // FNV-1a test vectors.
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
