//! The BPF filesystem the maps are pinned in.
//!
//! `ip netns exec` remounts /sys for the command it runs, which hides the
//! host's bpffs at /sys/fs/bpf; an agent started that way mounts a bpffs
//! of its own there and says so.

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::statfs::{BPF_FS_MAGIC, statfs};

/// Failure to provide a bpffs.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// statfs or mount failed.
    #[error("cannot mount a BPF filesystem at {path}: {source} (run as root, or pass --no-pin)")]
    Mount {
        /// Mount point.
        path: String,
        /// The errno.
        source: nix::Error,
    },
}

/// Whether `path` is on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    statfs(path).map(|s| s.filesystem_type() == BPF_FS_MAGIC).unwrap_or(false)
}

/// Make sure `mount_point` is a bpffs, mounting one if it is not.
/// Returns true when it mounted one.
pub fn ensure(mount_point: &Path) -> Result<bool, BpffsError> {
    if is_bpffs(mount_point) {
        return Ok(false);
    }
    let err = |source| BpffsError::Mount { path: mount_point.display().to_string(), source };
    std::fs::create_dir_all(mount_point)
        .map_err(|e| err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    mount(Some("bpf"), mount_point, Some("bpf"), MsFlags::empty(), None::<&str>).map_err(err)?;
    Ok(true)
}
