//! `vrrp_track_process`: whether enough (and not too many) processes of
//! a name run, as keepalived 2.2.7 tracks it (`core/track_process.c`).
//!
//! The kernel reports process events (fork, exec, comm change, exit) on
//! the netlink process connector, which is what keepalived listens to; a
//! scan of /proc at start finds what already runs, and again after the
//! socket overflowed (ENOBUFS: events were lost). Nothing polls.
//!
//! The connector lives only in the initial network namespace: an agent
//! started with `ip netns exec` opens its socket there (from a short-lived
//! thread that enters PID 1's network namespace), and everything else
//! stays in its own namespace.
//!
//! Matching, as keepalived: the process name (`/proc/PID/comm`, 15
//! bytes), exactly; with `full_command` or parameters, the command line's
//! first word, and the parameters by `param_match` (exact, `partial`: the
//! given ones first, `initial`: the same but the last given may be the
//! start of a longer one). A forked child of a matching process counts as
//! one more until it execs something else. The tracker is up while
//! quorum <= count <= quorum_max; gaining the quorum through a fork waits
//! `fork_delay`, losing it waits `terminate_delay` (a process coming back
//! within it is no change).

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::trackers::TrackEvent;
use crate::config::trackers::{ParamMatch, TrackProcess};

/// Whether a process of name `comm` and command line `cmdline` (its
/// NUL-separated words) matches `t`.
pub fn matches(t: &TrackProcess, comm: &str, cmdline: &[u8]) -> bool {
    if !t.full_command {
        return comm == t.process;
    }
    let mut words = cmdline.split(|b| *b == 0);
    let Some(first) = words.next() else { return false };
    if first != t.process.as_bytes() {
        return false;
    }
    // The parameters as keepalived compares them: each followed by NUL.
    let start = (t.process.len() + 1).min(cmdline.len());
    let params = &cmdline[start..];
    let mut want: Vec<u8> = Vec::new();
    for p in &t.params {
        want.extend_from_slice(p.as_bytes());
        want.push(0);
    }
    match t.param_match {
        ParamMatch::None => true,
        ParamMatch::Exact => params == want.as_slice(),
        ParamMatch::Partial => params.starts_with(&want),
        ParamMatch::Initial => want.is_empty() || params.starts_with(&want[..want.len() - 1]),
    }
}

/// One tracker's count and its up/down with keepalived's delays. Pure:
/// the caller passes the time.
#[derive(Debug)]
pub struct Quorum {
    quorum: u32,
    quorum_max: u32,
    fork_delay: Duration,
    terminate_delay: Duration,
    /// The matching processes (thread-group ids).
    pub pids: HashSet<i32>,
    /// What was last reported (None: nothing yet).
    reported: Option<bool>,
    /// A change waiting for its delay: the state it leads to, and when.
    pending: Option<(bool, Instant)>,
}

impl Quorum {
    /// For tracker `t`.
    pub fn new(t: &TrackProcess) -> Quorum {
        Quorum {
            quorum: t.quorum,
            quorum_max: t.quorum_max,
            fork_delay: t.fork_delay,
            terminate_delay: t.terminate_delay,
            pids: HashSet::new(),
            reported: None,
            pending: None,
        }
    }

    fn up_now(&self) -> bool {
        let n = u32::try_from(self.pids.len()).unwrap_or(u32::MAX);
        self.quorum <= n && n <= self.quorum_max
    }

    /// The count changed (`by_fork`: a matching process forked): the new
    /// state to report now, if any; a delayed one is kept for `due`.
    pub fn changed(&mut self, now: Instant, by_fork: bool) -> Option<bool> {
        let up = self.up_now();
        if self.reported == Some(up) {
            // Back within the delay: keepalived cancels its timer.
            self.pending = None;
            return None;
        }
        let delay = match (self.reported, up) {
            (None, _) => Duration::ZERO,
            (_, true) if by_fork => self.fork_delay,
            (_, true) => Duration::ZERO,
            (_, false) => self.terminate_delay,
        };
        if delay.is_zero() {
            self.pending = None;
            self.reported = Some(up);
            return Some(up);
        }
        if self.pending.is_none_or(|(to, _)| to != up) {
            self.pending = Some((up, now + delay));
        }
        None
    }

    /// When a delayed change comes due.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(_, at)| at)
    }

    /// A delayed change that is due: what holds now is reported (as
    /// keepalived's timer re-checks the count).
    pub fn due(&mut self, now: Instant) -> Option<bool> {
        let (_, at) = self.pending?;
        if at > now {
            return None;
        }
        self.pending = None;
        let up = self.up_now();
        if self.reported == Some(up) {
            return None;
        }
        self.reported = Some(up);
        Some(up)
    }
}

/// The name and command line of `pid` (None: gone, or a kernel thread
/// without a command line when one is needed).
fn read_proc(pid: i32) -> Option<(String, Vec<u8>)> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some((comm.trim_end_matches('\n').to_owned(), cmdline))
}

// linux/connector.h, linux/cn_proc.h.
const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
/// nlmsghdr (16) + cn_msg (20).
const EVENT_AT: usize = 36;
/// proc_event: what, cpu, timestamp_ns, then the event's data.
const DATA_AT: usize = EVENT_AT + 16;

/// A process event, as far as tracking cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// `child` (a process, not a thread) was forked by `parent`.
    Fork {
        /// Parent's thread-group id.
        parent: i32,
        /// Child's.
        child: i32,
    },
    /// `pid` exec'd a new program, or (`comm`) renamed itself.
    Exec {
        /// Thread-group id.
        pid: i32,
        /// A comm change rather than an exec.
        comm: bool,
    },
    /// `pid` exited.
    Exit {
        /// Thread-group id.
        pid: i32,
    },
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decode one netlink message of the connector (None: not one we track,
/// or a thread's event).
pub fn decode(msg: &[u8]) -> Option<ProcEvent> {
    let what = u32_at(msg, EVENT_AT)?;
    let i = |n: usize| u32_at(msg, DATA_AT + 4 * n).map(|v| v as i32);
    match what {
        PROC_EVENT_FORK => {
            let (ppid, ptgid, cpid, ctgid) = (i(0)?, i(1)?, i(2)?, i(3)?);
            let _ = ppid;
            // A new thread is no new process.
            (cpid == ctgid).then_some(ProcEvent::Fork { parent: ptgid, child: ctgid })
        }
        PROC_EVENT_EXEC => Some(ProcEvent::Exec { pid: i(1)?, comm: false }),
        PROC_EVENT_COMM => {
            let (pid, tgid) = (i(0)?, i(1)?);
            (pid == tgid).then_some(ProcEvent::Exec { pid: tgid, comm: true })
        }
        PROC_EVENT_EXIT => {
            let (pid, tgid) = (i(0)?, i(1)?);
            (pid == tgid).then_some(ProcEvent::Exit { pid: tgid })
        }
        _ => None,
    }
}

struct Sock(OwnedFd);

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Open the process connector and subscribe. The kernel's connector
/// exists only in the initial network namespace: here first, then in PID
/// 1's namespace, then in each ancestor's (an agent started by `ip netns
/// exec` from a shell or test whose PID 1 namespace it may not open).
fn open_connector() -> io::Result<OwnedFd> {
    let mut candidates: Vec<Option<String>> = vec![None, Some("/proc/1/ns/net".into())];
    let mut pid = std::process::id();
    for _ in 0..32 {
        let Some(ppid) = parent_of(pid).filter(|p| *p > 1) else { break };
        candidates.push(Some(format!("/proc/{ppid}/ns/net")));
        pid = ppid;
    }
    let mut last = io::Error::other("no network namespace to try");
    for ns in candidates {
        match std::thread::scope(|s| s.spawn(|| subscribe_in(ns.as_deref())).join()) {
            Ok(Ok(fd)) => {
                if let Some(ns) = ns {
                    log::info!("track_process: listening to the kernel's process events through {ns}");
                }
                return Ok(fd);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::other("connector thread panicked"),
        }
    }
    Err(last)
}

/// The parent of `pid`, from /proc/PID/stat (the field after the
/// parenthesised name, which may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// On this thread: enter `ns` (if given; setns(CLONE_NEWNET) moves only
/// the calling thread, and the socket keeps the namespace it was made
/// in), open the connector and subscribe.
fn subscribe_in(ns: Option<&str>) -> io::Result<OwnedFd> {
    if let Some(ns) = ns {
        let f = std::fs::File::open(ns)?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    }
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_CONNECTOR,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: zeroed sockaddr_nl is valid; filled below.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = CN_IDX_PROC;
    // SAFETY: address valid for its length.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&std::process::id().to_ne_bytes());
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    // SAFETY: buffer valid for its length. Outside the initial namespace
    // this fails with ECONNREFUSED (no connector there).
    let r = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The trackers' state and the connector task.
struct Tracker {
    conf: Vec<TrackProcess>,
    quorum: Vec<Quorum>,
    tx: UnboundedSender<TrackEvent>,
}

impl Tracker {
    fn send(&self, index: usize, up: bool) -> bool {
        log::info!(
            "Track process {}: quorum {} ({} running)",
            self.conf[index].name,
            if up { "gained" } else { "lost" },
            self.quorum[index].pids.len()
        );
        self.tx.send(TrackEvent::Process { index, up }).is_ok()
    }

    /// Re-read every process (at start, and after lost events).
    fn scan(&mut self, now: Instant) -> bool {
        let mut found: Vec<HashSet<i32>> = vec![HashSet::new(); self.conf.len()];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
                let Some((comm, cmdline)) = read_proc(pid) else { continue };
                for (i, t) in self.conf.iter().enumerate() {
                    if matches(t, &comm, &cmdline) {
                        found[i].insert(pid);
                    }
                }
            }
        }
        for (i, pids) in found.into_iter().enumerate() {
            self.quorum[i].pids = pids;
            if let Some(up) = self.quorum[i].changed(now, false)
                && !self.send(i, up)
            {
                return false;
            }
        }
        true
    }

    fn event(&mut self, ev: ProcEvent, now: Instant) -> bool {
        let mut changes = Vec::new();
        match ev {
            ProcEvent::Fork { parent, child } => {
                for (i, q) in self.quorum.iter_mut().enumerate() {
                    if q.pids.contains(&parent) && q.pids.insert(child) {
                        changes.extend(q.changed(now, true).map(|up| (i, up)));
                    }
                }
            }
            ProcEvent::Exec { pid, comm } => {
                let info = read_proc(pid);
                for (i, (t, q)) in self.conf.iter().zip(&mut self.quorum).enumerate() {
                    // A comm change says nothing about the command line.
                    if comm && t.full_command {
                        continue;
                    }
                    let m = info.as_ref().is_some_and(|(c, l)| matches(t, c, l));
                    let changed = if m { q.pids.insert(pid) } else { q.pids.remove(&pid) };
                    if changed {
                        changes.extend(q.changed(now, false).map(|up| (i, up)));
                    }
                }
            }
            ProcEvent::Exit { pid } => {
                for (i, q) in self.quorum.iter_mut().enumerate() {
                    if q.pids.remove(&pid) {
                        changes.extend(q.changed(now, false).map(|up| (i, up)));
                    }
                }
            }
        }
        changes.into_iter().all(|(i, up)| self.send(i, up))
    }

    fn due(&mut self, now: Instant) -> bool {
        let mut changes = Vec::new();
        for (i, q) in self.quorum.iter_mut().enumerate() {
            changes.extend(q.due(now).map(|up| (i, up)));
        }
        changes.into_iter().all(|(i, up)| self.send(i, up))
    }

    fn deadline(&self) -> Option<Instant> {
        self.quorum.iter().filter_map(Quorum::deadline).min()
    }
}

/// Start tracking `procs` (those some instance tracks): the first
/// verdicts are sent at once from a scan of /proc, then changes; the
/// watching task is returned (a reload that changes the tracked processes
/// replaces it). Err when the process connector cannot be opened.
pub fn start(
    procs: &[TrackProcess],
    tx: UnboundedSender<TrackEvent>,
) -> io::Result<Option<tokio::task::AbortHandle>> {
    if procs.is_empty() {
        return Ok(None);
    }
    // SAFETY: `Sock` owns the socket and the AsyncFd owns the `Sock`, so
    // the fd stays open and the same for the AsyncFd's life.
    let sock =
        unsafe { AsyncFd::register_with_interest(Sock(open_connector()?), tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
    let mut t = Tracker { conf: procs.to_vec(), quorum: procs.iter().map(Quorum::new).collect(), tx };
    // Subscribed first, then the scan: a process started between them is
    // seen by its exec event.
    if !t.scan(Instant::now()) {
        return Ok(None);
    }
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            let sleep = async {
                match t.deadline() {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    if !t.due(Instant::now()) {
                        return;
                    }
                }
                r = sock.readable() => {
                    let Ok(mut guard) = r else { return };
                    loop {
                        // SAFETY: buffer valid for its length.
                        let n = unsafe {
                            libc::recv(guard.get_inner().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                        };
                        if n < 0 {
                            let e = io::Error::last_os_error();
                            match e.raw_os_error() {
                                Some(libc::EAGAIN) => {
                                    guard.clear_ready();
                                    break;
                                }
                                Some(libc::EINTR) => continue,
                                // Events were lost: read the whole table again.
                                Some(libc::ENOBUFS) => {
                                    log::debug!("process events overflowed: rescanning /proc");
                                    if !t.scan(Instant::now()) {
                                        return;
                                    }
                                    continue;
                                }
                                _ => {
                                    log::error!("process events: {e}");
                                    return;
                                }
                            }
                        }
                        let msg = &buf[..n as usize];
                        if let Some(ev) = decode(msg)
                            && !t.event(ev, Instant::now())
                        {
                            return;
                        }
                    }
                }
            }
        }
    });
    Ok(Some(task.abort_handle()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lexer::Loc;

    fn tp(process: &str, params: &[&str], pm: ParamMatch, full: bool) -> TrackProcess {
        TrackProcess {
            name: "t".into(),
            process: process.into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            param_match: pm,
            full_command: full,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: u32::MAX,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
            loc: Loc { file: std::sync::Arc::new("t.conf".into()), line: 1, col: 1 },
        }
    }

    #[test]
    fn names_and_parameters_match_as_keepalived() {
        let by_name = tp("nginx", &[], ParamMatch::None, false);
        assert!(matches(&by_name, "nginx", b"/usr/sbin/nginx\0-g\0"));
        assert!(!matches(&by_name, "nginx-debug", b""), "exact, not a prefix (pgrep ^nginx$)");
        let full = tp("/usr/bin/sleep", &[], ParamMatch::None, true);
        assert!(matches(&full, "sleep", b"/usr/bin/sleep\x0030\0"));
        assert!(!matches(&full, "sleep", b"sleep\x0030\0"));
        let exact = tp("sleep", &["1000", "x"], ParamMatch::Exact, true);
        assert!(matches(&exact, "sleep", b"sleep\x001000\0x\0"));
        assert!(!matches(&exact, "sleep", b"sleep\x001000\0x\0y\0"));
        assert!(!matches(&exact, "sleep", b"sleep\x001000\0"));
        let partial = tp("sleep", &["1000"], ParamMatch::Partial, true);
        assert!(matches(&partial, "sleep", b"sleep\x001000\0x\0"));
        assert!(!matches(&partial, "sleep", b"sleep\x0010000\0"));
        let initial = tp("sleep", &["100"], ParamMatch::Initial, true);
        assert!(matches(&initial, "sleep", b"sleep\x001000\0x\0"));
        assert!(!matches(&initial, "sleep", b"sleep\x00200\0"));
        let none = tp("sleep", &[], ParamMatch::Exact, true);
        assert!(matches(&none, "sleep", b"sleep\0"), "param_match alone: no parameters");
        assert!(!matches(&none, "sleep", b"sleep\x001\0"));
    }

    #[test]
    fn quorum_and_delays() {
        let mut t = tp("x", &[], ParamMatch::None, false);
        t.quorum = 2;
        t.quorum_max = 3;
        t.fork_delay = Duration::from_secs(1);
        t.terminate_delay = Duration::from_secs(2);
        let mut q = Quorum::new(&t);
        let t0 = Instant::now();
        assert_eq!(q.changed(t0, false), Some(false), "the first verdict is at once");
        q.pids.extend([1, 2]);
        assert_eq!(q.changed(t0, false), Some(true), "an exec gains the quorum at once");
        q.pids.remove(&2);
        assert_eq!(q.changed(t0, false), None, "losing it waits terminate_delay");
        assert_eq!(q.deadline(), Some(t0 + Duration::from_secs(2)));
        q.pids.insert(3);
        assert_eq!(q.changed(t0 + Duration::from_secs(1), true), None, "back within the delay: no change");
        assert_eq!(q.deadline(), None);
        q.pids.extend([4, 5]);
        assert_eq!(q.changed(t0, false), None, "above quorum_max: down, after the delay");
        assert_eq!(q.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(q.due(t0 + Duration::from_secs(2)), Some(false));
        q.pids.remove(&5);
        q.pids.remove(&4);
        assert_eq!(q.changed(t0, true), None, "a fork gains it after fork_delay");
        assert_eq!(q.due(t0 + Duration::from_secs(1)), Some(true));
    }

    #[test]
    fn connector_messages_decode() {
        let mut m = vec![0u8; DATA_AT + 24];
        m[EVENT_AT..EVENT_AT + 4].copy_from_slice(&PROC_EVENT_FORK.to_ne_bytes());
        for (n, v) in [10u32, 10, 11, 11].iter().enumerate() {
            m[DATA_AT + 4 * n..DATA_AT + 4 * n + 4].copy_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(decode(&m), Some(ProcEvent::Fork { parent: 10, child: 11 }));
        m[DATA_AT + 8..DATA_AT + 12].copy_from_slice(&12u32.to_ne_bytes());
        assert_eq!(decode(&m), None, "a thread");
        m[EVENT_AT..EVENT_AT + 4].copy_from_slice(&PROC_EVENT_EXIT.to_ne_bytes());
        m[DATA_AT + 4..DATA_AT + 8].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(decode(&m), None, "pid != tgid: a thread exits");
        m[DATA_AT + 4..DATA_AT + 8].copy_from_slice(&10u32.to_ne_bytes());
        assert_eq!(decode(&m), Some(ProcEvent::Exit { pid: 10 }));
        assert_eq!(decode(&m[..10]), None, "short");
    }

    #[test]
    fn parents_read_from_proc() {
        assert_eq!(parent_of(std::process::id()), Some(nix::unistd::getppid().as_raw() as u32));
    }
}
