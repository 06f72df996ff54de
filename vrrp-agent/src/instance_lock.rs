//! One agent per instance name: a lock file under /run/vrrp-agent.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

/// Lock directory; /run is shared with `ip netns exec` children.
pub const LOCK_DIR: &str = "/run/vrrp-agent";

/// Failure to take the instance lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The name cannot name a file.
    #[error("--name {name:?}: use letters, digits, '-', '_' and '.' only (it names files and a directory)")]
    BadName {
        /// The name given.
        name: String,
    },
    /// Another agent holds it.
    #[error("another vrrp-agent with --name {name} is running ({path}); pick another --name")]
    Busy {
        /// Instance name.
        name: String,
        /// Lock file.
        path: String,
    },
    /// The lock file cannot be created.
    #[error("cannot create lock file {path}: {source}")]
    Io {
        /// Lock file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Held for the agent's lifetime; released when dropped or the process dies.
pub struct InstanceLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Removed while still held, so no other agent can hold it; a file
        // left by a killed agent is reused by the next one of that name.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Take the lock for instance `name`.
pub fn acquire(name: &str) -> Result<InstanceLock, LockError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(LockError::BadName { name: name.into() });
    }
    let path = PathBuf::from(LOCK_DIR).join(format!("{name}.lock"));
    let io = |source| LockError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(LOCK_DIR).map_err(io)?;
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| LockError::Busy { name: name.into(), path: path.display().to_string() })?;
    lock.set_len(0).map_err(io)?;
    writeln!(lock, "{}", std::process::id()).map_err(io)?;
    Ok(InstanceLock { _lock: lock, path })
}
