//! The XDP attach on a thread of its own, so that the instances start
//! (enter BACKUP) while it runs.
//!
//! Attaching a program that is in no interface's XDP dispatcher yet costs
//! the kernel an RCU grace period (`bpf_dispatcher_change_prog`): 12-14 ms
//! of a 27 ms start on veth (bench-results/startup.md), which keepalived,
//! receiving on a socket, never pays. The thread only makes the
//! `BPF_LINK_CREATE` calls, with its own copy of the program's descriptor;
//! the `Datapath` (maps, pins, the program) stays with the event loop,
//! which adopts the links the thread hands back (`Datapath::adopt`).
//!
//! Stopping meanwhile needs nothing from the thread: it blocks every
//! signal (the event loop handles them), its links are bpf_links that no
//! pin holds until adopted, so if nobody takes them (the agent stopped,
//! the receiver dropped) they close with the thread's drop or with the
//! process, and the kernel detaches the program.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;

use super::{AttachMode, Datapath, DatapathError, sys_bpf};

/// `BPF_LINK_CREATE` (`enum bpf_cmd`).
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_OBJ_PIN` (`enum bpf_cmd`).
const BPF_OBJ_PIN: libc::c_long = 6;
/// `BPF_XDP` (`enum bpf_attach_type`).
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE` (if_link.h): generic XDP.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The `link_create` member of `union bpf_attr` (its first four fields;
/// the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// One interface the thread attached the program to.
#[derive(Debug)]
pub struct Attached {
    /// Interface name.
    pub iface: String,
    /// Its index.
    pub ifindex: u32,
    /// Native, or generic where the driver has no native XDP.
    pub mode: AttachMode,
    /// The bpf_link: closing it (unpinned) detaches the program.
    link: OwnedFd,
}

/// The result of an attach running on its thread.
pub type AttachResult = Result<Vec<Attached>, DatapathError>;

/// An attach under way (`Datapath::attach_in_background`): its result
/// comes on `done`.
pub struct AttachJob {
    /// The thread's answer; an error if the thread died without one.
    pub done: tokio::sync::oneshot::Receiver<AttachResult>,
}

/// `BPF_LINK_CREATE` of the program `prog` on `ifindex` with `flags`.
fn link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> std::io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: u32::try_from(prog.as_raw_fd())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    let fd = sys_bpf(BPF_LINK_CREATE, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: BPF_LINK_CREATE returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Native XDP where the driver has it, else generic, as `Datapath::attach`
/// with `AttachMode::Auto` does.
fn attach_one(prog: &OwnedFd, iface: &str, ifindex: u32) -> Result<Attached, DatapathError> {
    let (mode, link) = match link_create(prog, ifindex, XDP_FLAGS_DRV_MODE) {
        Ok(l) => (AttachMode::Native, l),
        Err(native) => {
            log::debug!("native XDP on {iface} refused ({native}); trying generic");
            let l = link_create(prog, ifindex, XDP_FLAGS_SKB_MODE).map_err(|e| DatapathError::Program {
                action: "attaching",
                iface: iface.into(),
                source: aya::programs::ProgramError::IOError(e),
            })?;
            (AttachMode::Generic, l)
        }
    };
    Ok(Attached { iface: iface.to_owned(), ifindex, mode, link })
}

/// Every signal blocked on the calling thread: the event loop's thread
/// handles them, and a stop signal must never land on a thread that does
/// not look at it.
fn block_signals() {
    // SAFETY: sigfillset initialises the set; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

impl Datapath {
    /// Attach the program to `targets` (interface, index) on a thread of
    /// its own; `Datapath::adopt` takes the links when `done` answers. On
    /// the first failure the links made so far are closed (detached) and
    /// the error answers.
    pub fn attach_in_background(&self, targets: Vec<(String, u32)>) -> Result<AttachJob, DatapathError> {
        let prog = self
            .prog()?
            .fd()
            .map_err(|source| DatapathError::Program { action: "attaching", iface: "-".into(), source })?
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| DatapathError::Program {
                action: "attaching",
                iface: "-".into(),
                source: aya::programs::ProgramError::IOError(e),
            })?;
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("xdp-attach".into())
            .spawn(move || {
                block_signals();
                let result: AttachResult =
                    targets.iter().map(|(iface, idx)| attach_one(&prog, iface, *idx)).collect();
                // Nobody waits any more (the agent stopped): the links drop
                // here, and the program detaches.
                let _ = tx.send(result);
            })
            .map_err(|e| DatapathError::Program {
                action: "starting the thread that attaches",
                iface: "-".into(),
                source: aya::programs::ProgramError::IOError(e),
            })?;
        Ok(AttachJob { done })
    }

    /// Take the links an `attach_in_background` made, as if `attach` had
    /// made them; `pin_links` pins them.
    pub fn adopt(&mut self, links: Vec<Attached>) {
        for a in links {
            self.attached.push((a.iface.clone(), a.ifindex));
            self.modes.push(a.mode);
            self.raw_links.push((a.iface, a.link));
        }
    }

    /// Pin the adopted links as `dir/link_<interface>` (`pin_links`).
    pub(super) fn pin_raw_links(&mut self, dir: &Path) -> Result<(), DatapathError> {
        for (iface, link) in std::mem::take(&mut self.raw_links) {
            let path = dir.join(format!("{}{iface}", super::LINK_PIN_PREFIX));
            let pin_err = |reason: String| DatapathError::Pin {
                name: "XDP link",
                path: path.display().to_string(),
                reason,
            };
            let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|e| pin_err(e.to_string()))?;
            let mut attr = ObjAttr {
                pathname: cpath.as_ptr() as u64,
                bpf_fd: u32::try_from(link.as_raw_fd()).map_err(|e| pin_err(e.to_string()))?,
                file_flags: 0,
            };
            // `cpath` outlives the call that reads it.
            sys_bpf(BPF_OBJ_PIN, &mut attr).map_err(|e| pin_err(e.to_string()))?;
            // The pin holds the link now; aya's handle of it unpins (and so
            // detaches) at the stop, as for the links `attach` made.
            let pinned = aya::programs::links::PinnedLink::from_pin(&path).map_err(|e| {
                // The pin would keep the program attached past the stop.
                let _ = std::fs::remove_file(&path);
                pin_err(e.to_string())
            })?;
            drop(link);
            self.pinned_links.push((iface, pinned));
        }
        Ok(())
    }
}
