//! `track_file`: a number in a file moves the priority of the instances
//! that track it, as keepalived 2.2.7 does (`trackers/track_file.c`).
//!
//! - The file holds a number, read as C's `strtol(buf, NULL, 0)` reads
//!   it: leading blanks, a sign, `0x` for hex, a leading 0 for octal, and
//!   anything after the digits ignored; no digits at all reads 0. A
//!   number outside the 32-bit range is logged and ignored (the previous
//!   value stays). A missing or empty file reads 0, and so does deleting
//!   it or moving it away.
//! - An entry of weight 0 is a pass/fail: a non-zero value is FAULT
//!   (`reverse`: a zero value is).
//! - Otherwise the value times the weight (negated by `reverse`), limited
//!   to -254..=253, is added to the priority; -254 (a result below -253)
//!   puts the instance in FAULT instead.
//! - The file is watched with inotify on its directory (close after
//!   write, delete, moves), so that creating, replacing (`mv`) and
//!   deleting it are all seen, as keepalived watches it. Nothing polls.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;

use super::trackers::TrackEvent;
use crate::config::trackers::TrackFile;

/// keepalived's read of the file's text (`strtol(buf, NULL, 0)` of its
/// first 127 bytes). `None`: out of range, to be ignored.
pub fn parse_value(text: &[u8]) -> Option<i64> {
    let text = &text[..text.len().min(127)];
    let mut i = 0;
    while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < text.len() && (text[i] == b'+' || text[i] == b'-') {
        neg = text[i] == b'-';
        i += 1;
    }
    let mut radix = 10;
    if text.get(i) == Some(&b'0') {
        if matches!(text.get(i + 1), Some(b'x' | b'X')) && text.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let mut v: i128 = 0;
    let mut any = false;
    while let Some(d) = text.get(i).and_then(|c| (*c as char).to_digit(radix)) {
        v = v * i128::from(radix) + i128::from(d);
        any = true;
        i += 1;
        // strtol saturates and sets ERANGE: out of range either way.
        if v > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    if !any {
        return Some(0);
    }
    let v = if neg { -v } else { v };
    // keepalived accepts INT32_MIN..=INT32_MAX + 1.
    (i128::from(i32::MIN)..=i128::from(i32::MAX) + 1).contains(&v).then_some(v as i64)
}

/// What a value does to one tracking instance: (priority delta, fault).
pub fn effect(value: i64, weight: i32, reverse: bool) -> (i32, bool) {
    if weight == 0 {
        // keepalived: `!new_status != (multiplier == 1)`.
        return (0, (value != 0) != reverse);
    }
    let m = if reverse { -1 } else { 1 };
    let s = (i128::from(value) * i128::from(weight) * m).clamp(-254, 253) as i32;
    if s == -254 { (0, true) } else { (s, false) }
}

/// Read the file's value now (missing or unreadable: 0).
pub fn read_value(path: &Path) -> Option<i64> {
    match std::fs::read(path) {
        Ok(b) => {
            let v = parse_value(&b);
            if v.is_none() {
                log::info!("Invalid number read from {} - ignoring", path.display());
            }
            v
        }
        Err(_) => Some(0),
    }
}

/// keepalived's `init_file`: write the value if the file is missing, or
/// always with `overwrite` (a file that is not a regular file is left),
/// except on a reload, which never overwrites an existing file
/// (track_file.c, "Don't overwrite a file on reload").
pub fn init_file(t: &TrackFile, reload: bool) {
    let Some((value, overwrite)) = t.init else { return };
    match std::fs::metadata(&t.path) {
        Ok(_) if !overwrite => return,
        Ok(m) if !m.is_file() => {
            log::error!("Cannot initialise track file {} - it is not a regular file", t.name);
            return;
        }
        Ok(_) if reload => return,
        _ => {}
    }
    if let Err(e) = std::fs::write(&t.path, format!("{value}\n")) {
        log::error!("Unable to initialise track file {}: {e}", t.name);
    }
}

/// Where a tracked file is watched: its directory (resolved) and name.
fn resolve(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let full = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let dir = std::fs::canonicalize(dir)?;
            if !dir.is_dir() {
                return Err(io::Error::other("not a directory"));
            }
            dir.join(path.file_name().ok_or_else(|| io::Error::other("no file name"))?)
        }
    };
    let dir = full.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = full.file_name().map(OsString::from).unwrap_or_default();
    Ok((dir, name))
}

/// The watched files: their values now, and the task that reports changes.
pub struct Watch {
    /// Each file's value by its index in the configuration (None: the
    /// file cannot be watched and the tracker is dropped, as keepalived
    /// drops it).
    pub values: Vec<Option<i64>>,
    /// The watching task (a reload that changes the track files replaces
    /// it).
    pub task: Option<tokio::task::AbortHandle>,
}

/// Initialise, read and watch `files` (those some instance tracks: the
/// others are `None`); changes go to `tx` as [`TrackEvent::File`];
/// `reload`: started again by a reload (see `init_file`).
pub fn start(files: &[TrackFile], used: &[bool], tx: UnboundedSender<TrackEvent>, reload: bool) -> Watch {
    let mut values = vec![None; files.len()];
    if !used.iter().any(|u| *u) {
        return Watch { values, task: None };
    }
    let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => {
            log::error!("Unable to monitor track files: {e}");
            return Watch { values, task: None };
        }
    };
    // (watch, file name) -> indexes of the files there.
    let mut by_name: HashMap<(WatchDescriptor, OsString), Vec<usize>> = HashMap::new();
    let mut paths = vec![PathBuf::new(); files.len()];
    for (i, t) in files.iter().enumerate() {
        if !used[i] {
            continue;
        }
        init_file(t, reload);
        let (dir, name) = match resolve(&t.path) {
            Ok(x) => x,
            Err(e) => {
                log::error!("Track file directory for {} does not exist - removing ({e})", t.name);
                continue;
            }
        };
        let flags = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVE;
        match inotify.add_watch(&dir, flags) {
            Ok(wd) => by_name.entry((wd, name.clone())).or_default().push(i),
            Err(e) => {
                log::error!("Unable to watch {} for track file {}: {e}", dir.display(), t.name);
                continue;
            }
        }
        paths[i] = dir.join(&name);
        values[i] = Some(read_value(&paths[i]).unwrap_or(0));
        log::info!("Track file {}: {} reads {}", t.name, paths[i].display(), values[i].unwrap_or(0));
    }
    // SAFETY: `Fd` owns the inotify fd and the AsyncFd owns the `Fd`, so
    // the fd stays open and the same for the AsyncFd's life.
    let fd = match unsafe {
        AsyncFd::register_with_interest(crate::fd::RawFdOf(inotify), tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)
    {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("Unable to monitor track files: {e}");
            return Watch { values, task: None };
        }
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable().await else { return };
            let events = match guard.try_io(|f| f.get_ref().0.read_events().map_err(io::Error::from)) {
                Ok(Ok(ev)) => ev,
                Ok(Err(e)) => {
                    log::error!("inotify read: {e}");
                    return;
                }
                Err(_would_block) => continue,
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_ISDIR) {
                    continue;
                }
                let Some(name) = ev.name else { continue };
                let Some(idxs) = by_name.get(&(ev.wd, name)) else { continue };
                for &i in idxs {
                    // Deleted or moved away: keepalived counts it 0.
                    let gone = ev.mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                    let value = if gone { Some(0) } else { read_value(&paths[i]) };
                    if let Some(value) = value
                        && tx.send(TrackEvent::File { index: i, value }).is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    Watch { values, task: Some(task.abort_handle()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_strtol_base_0() {
        assert_eq!(parse_value(b"42\n"), Some(42));
        assert_eq!(parse_value(b"  -7 trailing words"), Some(-7));
        assert_eq!(parse_value(b"0x10"), Some(16));
        assert_eq!(parse_value(b"010"), Some(8));
        assert_eq!(parse_value(b"+3"), Some(3));
        assert_eq!(parse_value(b""), Some(0), "an empty file is 0");
        assert_eq!(parse_value(b"maintenance"), Some(0), "no digits is 0");
        assert_eq!(parse_value(b"0x"), Some(0));
        assert_eq!(parse_value(b"2147483648"), Some(2_147_483_648), "INT32_MAX + 1 is accepted");
        assert_eq!(parse_value(b"2147483649"), None, "beyond is ignored");
        assert_eq!(parse_value(b"-2147483649"), None);
        assert_eq!(parse_value(b"99999999999999999999999"), None);
    }

    #[test]
    fn effects_are_keepalived_s() {
        // Weight 0: pass/fail.
        assert_eq!(effect(0, 0, false), (0, false));
        assert_eq!(effect(1, 0, false), (0, true));
        assert_eq!(effect(-5, 0, false), (0, true));
        assert_eq!(effect(0, 0, true), (0, true));
        assert_eq!(effect(1, 0, true), (0, false));
        // Value times weight, reverse negates.
        assert_eq!(effect(3, 10, false), (30, false));
        assert_eq!(effect(3, 10, true), (-30, false));
        assert_eq!(effect(-2, 10, false), (-20, false));
        assert_eq!(effect(0, 10, false), (0, false));
        // Limited to -254..=253; -254 is FAULT.
        assert_eq!(effect(100, 10, false), (253, false));
        assert_eq!(effect(-253, 1, false), (-253, false));
        assert_eq!(effect(-254, 1, false), (0, true));
        assert_eq!(effect(100, -10, false), (0, true));
        assert_eq!(effect(i64::from(i32::MAX) + 1, 254, true), (0, true));
    }
}
