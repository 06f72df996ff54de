//! One agent per instance name: a lock file under /run/vrrp-agent and an
//! abstract unix socket named after the agent.
//!
//! The file lock alone is not enough: a lock file deleted while an agent
//! runs (a tidy-up of /run, a careless `rm`) lets the next agent create a
//! new file and lock it, and that agent would then remove the running
//! one's VIPs and XDP link as a dead agent's leftovers. An abstract socket
//! has no file to delete and is released by the kernel when its last
//! holder dies, so it is taken first; the file lock still covers agents of
//! the same name in other network namespaces (abstract sockets are per
//! namespace).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

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
        /// Lock file, or the abstract socket.
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
    /// The descriptors a supervisor handed over are not the lock.
    #[error("--supervised {fds}: not the instance lock of --name {name} ({why})")]
    BadHandover {
        /// As given.
        fds: String,
        /// Instance name.
        name: String,
        /// What did not match.
        why: String,
    },
}

/// Held for the agent's lifetime; released when dropped or the process
/// dies (and by a supervised worker's death only once its supervisor,
/// which holds the same lock, is gone too).
pub struct InstanceLock {
    lock: Flock<File>,
    socket: UnixDatagram,
    path: PathBuf,
    /// Whether dropping it removes the file (not in a supervised worker:
    /// its supervisor still holds the lock and removes the file).
    owner: bool,
}

impl std::fmt::Debug for InstanceLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceLock").field("path", &self.path).field("owner", &self.owner).finish()
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Removed while still held; an agent that opened the old file and
        // locks it after we are gone still has to bind the abstract socket,
        // so two agents can never both believe they hold the name.
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl InstanceLock {
    /// The two descriptors (lock file, abstract socket), to hand to a
    /// worker process: "FILE,SOCKET".
    pub fn handover(&self) -> (RawFd, RawFd) {
        (self.lock.as_raw_fd(), self.socket.as_raw_fd())
    }
}

fn check_name(name: &str) -> Result<(), LockError> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(()) } else { Err(LockError::BadName { name: name.into() }) }
}

/// The lock file of agent `name`.
pub fn lock_path(name: &str) -> PathBuf {
    PathBuf::from(LOCK_DIR).join(format!("{name}.lock"))
}

/// The abstract socket name of agent `name` (shown with a leading '@', as
/// `ss -x` does).
fn abstract_name(name: &str) -> String {
    format!("vrrp-agent/{name}")
}

fn abstract_addr(name: &str) -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(abstract_name(name).as_bytes())
}

/// Take the lock for instance `name`.
pub fn acquire(name: &str) -> Result<InstanceLock, LockError> {
    check_name(name)?;
    let path = lock_path(name);
    let busy = |what: String| LockError::Busy { name: name.into(), path: what };
    let sock_io = |source| LockError::Io { path: format!("@{}", abstract_name(name)), source };
    let socket = match UnixDatagram::bind_addr(&abstract_addr(name).map_err(sock_io)?) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(busy(format!("socket @{} is bound", abstract_name(name))));
        }
        Err(e) => return Err(sock_io(e)),
    };
    let io = |source| LockError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(LOCK_DIR).map_err(io)?;
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    let mut lock =
        Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| busy(path.display().to_string()))?;
    lock.set_len(0).map_err(io)?;
    writeln!(lock, "{}", std::process::id()).map_err(io)?;
    Ok(InstanceLock { lock, socket, path, owner: true })
}

/// Adopt the lock a supervisor took for `name` and handed over as "FILE,SOCKET"
/// descriptors (see `InstanceLock::handover`). The descriptors are made
/// close-on-exec again, so scripts the worker starts do not keep the name
/// locked after the agent is gone.
pub fn adopt(name: &str, fds: &str) -> Result<InstanceLock, LockError> {
    check_name(name)?;
    let bad = |why: &str| LockError::BadHandover { fds: fds.into(), name: name.into(), why: why.into() };
    let (f, s) = fds.split_once(',').ok_or_else(|| bad("expected FILE,SOCKET"))?;
    let f: RawFd = f.parse().map_err(|_| bad("not a descriptor number"))?;
    let s: RawFd = s.parse().map_err(|_| bad("not a descriptor number"))?;
    if f < 3 || s < 3 || f == s {
        return Err(bad("not a descriptor number"));
    }
    for fd in [f, s] {
        // SAFETY: F_SETFD on a descriptor number only changes its flag; a
        // closed number fails with EBADF, which is checked.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(bad("descriptor not open"));
        }
    }
    // Everything is checked on borrowed descriptors first: a mistaken
    // handover must not close descriptors this process uses otherwise.
    // SAFETY: both are open (checked above) and stay open during the checks.
    let (fb, sb) = unsafe { (BorrowedFd::borrow_raw(f), BorrowedFd::borrow_raw(s)) };
    let bound = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(sb.as_raw_fd())
        .map_err(|e| bad(&format!("not a unix socket ({e})")))?;
    if bound.as_abstract() != Some(abstract_name(name).as_bytes()) {
        return Err(bad("the socket is not this agent's"));
    }
    let st = nix::sys::stat::fstat(fb).map_err(|e| bad(&e.to_string()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(bad("not the lock file"));
    }
    // Our supervisor holds this lock on the same open file description, so
    // taking it again succeeds at once; it fails for anything else.
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(f, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(bad("the file is not locked by us"));
    }
    // SAFETY: the descriptors were handed to this process for this purpose
    // only, are open, and are owned by nothing else here.
    let socket = UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(s) });
    // SAFETY: as above, for the lock file's descriptor.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(f) });
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| bad(&format!("the file is not locked by us ({e})")))?;
    Ok(InstanceLock { lock, socket, path: lock_path(name), owner: false })
}

/// Whether agent `name` is running, without taking its lock (a `status`
/// that took it, even briefly, could make an agent starting at that
/// moment fail): its abstract socket is bound in this network namespace,
/// or its lock file is locked.
pub fn is_running(name: &str) -> bool {
    if check_name(name).is_err() {
        return false;
    }
    // Connecting to a bound datagram socket needs nothing from its owner.
    let bound =
        abstract_addr(name).and_then(|a| UnixDatagram::unbound().and_then(|s| s.connect_addr(&a))).is_ok();
    bound || file_locked(&lock_path(name))
}

/// Whether someone holds a flock(2) on `path`, from /proc/locks.
fn file_locked(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return false };
    let dev = meta.dev();
    // /proc/locks prints the device as major:minor in hex, then the inode.
    let want = format!("{:02x}:{:02x}:{}", libc::major(dev), libc::minor(dev), meta.ino());
    let Ok(text) = std::fs::read_to_string("/proc/locks") else { return false };
    text.lines().any(|l| {
        let mut words = l.split_whitespace().skip(1);
        // A waiter's line has "->" before the type; it holds nothing.
        words.next() == Some("FLOCK") && l.split_whitespace().any(|w| w == want)
    })
}
