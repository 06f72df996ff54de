//! The BPF filesystem the maps are pinned in.
//!
//! `ip netns exec` remounts /sys for the command it runs, which hides the
//! host's bpffs at /sys/fs/bpf. A bpffs mounted in that private mount
//! namespace dies with it, and with it every pin: a SIGKILLed agent's XDP
//! link was then detached at once instead of staying attached and failing
//! open. So the agent pins in the bpffs of pid 1's mount namespace, reached
//! through /proc/1/root (`persistent_root`), and mounts one of its own only
//! where that is not possible, saying so.

use std::path::{Path, PathBuf};

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

/// Where pins under `pin_root` (e.g. /sys/fs/bpf/vrrp-agent) go: there if
/// its parent is a bpffs in this mount namespace; else, when this mount
/// namespace hides it (`ip netns exec`, which execs us in a private mount
/// namespace), the same path as an ancestor process sees it
/// (`/proc/<pid>/root/sys/fs/bpf/vrrp-agent`, nearest ancestor first: the
/// shell or systemd that ran `ip netns exec`) if that is a bpffs, so pins
/// outlive this process and its private mount namespace as they do for an
/// agent started normally, and the next agent of the same name finds them
/// however it was started. The walk stays within our PID namespace (a
/// container's init has no visible parent). Else `pin_root` unchanged, for
/// `ensure` to mount a bpffs there whose pins die with the namespace.
pub fn persistent_root(pin_root: &Path) -> PathBuf {
    let fs_root = pin_root.parent().unwrap_or(pin_root);
    if is_bpffs(fs_root) || !pin_root.is_absolute() {
        return pin_root.to_path_buf();
    }
    let rel = pin_root.strip_prefix("/").unwrap_or(pin_root);
    let mut pid = nix::unistd::getppid().as_raw();
    // A process tree deeper than this is not worth walking.
    for _ in 0..32 {
        if pid <= 0 {
            break;
        }
        let candidate = Path::new("/proc").join(pid.to_string()).join("root").join(rel);
        if candidate.parent().is_some_and(is_bpffs) {
            return candidate;
        }
        match parent_of(pid) {
            Some(p) if p != pid => pid = p,
            _ => break,
        }
    }
    pin_root.to_path_buf()
}

/// The parent of `pid`, from /proc/<pid>/stat (the field after the state,
/// which follows the last ')': the command name may contain one).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
