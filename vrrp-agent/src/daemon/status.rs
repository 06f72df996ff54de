//! The agent's status, as a JSON file replaced atomically on every change
//! (`/run/vrrp-agent/<name>.json`): what `vrrp-agent status` prints and
//! what monitoring reads, without signals and without racy dumps. Field
//! names follow keepalived's JSON dump where it has one.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::instance_lock::LOCK_DIR;

/// Counters of one instance (keepalived's `stats` names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Adverts sent.
    pub advert_sent: u64,
    /// Transitions into MASTER.
    pub become_master: u64,
    /// Transitions out of MASTER.
    pub release_master: u64,
    /// Priority-0 adverts sent.
    pub pri_zero_sent: u64,
    /// Adverts refused by authentication (AH: ICV, SPI or replay).
    #[serde(default)]
    pub auth_failure: u64,
}

/// One instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Instance name.
    pub iname: String,
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// Configured priority.
    pub base_priority: u8,
    /// Priority after tracking.
    pub effective_priority: u8,
    /// Our advert interval, centiseconds.
    pub adver_int: u16,
    /// The master's, centiseconds (v3 learns it).
    pub master_adver_int: u16,
    /// Virtual addresses (CIDR).
    pub vips: Vec<String>,
    /// Unix time of the last state change, seconds.
    pub last_transition: f64,
    /// Accept Mode as in effect (keepalived's `accept`, 0 or 1): 0 drops
    /// packets to the VIPs while MASTER (`vrrp-agent stats` counts them).
    /// A file from before this field read as 1: those agents accepted.
    #[serde(default = "accepting")]
    pub accept: u8,
    /// keepalived's `strict_mode`, 0 or 1.
    #[serde(default)]
    pub strict_mode: u8,
    /// keepalived's `lower_prio_no_advert`, 0 or 1.
    #[serde(default)]
    pub lower_prio_no_advert: u8,
    /// Counters.
    pub stats: Stats,
    /// The last entry into MASTER, step by step (absent before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_takeover: Option<Takeover>,
}

/// One entry into MASTER as this agent saw it, step by step: so a slow
/// failover can be placed (the kernel's timer, the agent's wake-up, its
/// decision, the address add, the first announcement). Every time is
/// CLOCK_MONOTONIC in ns, the clock of the XDP program's
/// `bpf_ktime_get_ns`; a step that did not happen is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Takeover {
    /// Which entry: `stats.become_master` once it happened.
    pub seq: u64,
    /// The last advert the receive path recorded from a peer of the
    /// instance (the peer table's newest last-seen time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ns: Option<u64>,
    /// The kernel's master-down watch: the last advert that held the
    /// backup down, and when its timer fired (the event's own time).
    /// Absent when the agent's own timer decided (raw-socket path, AH, a
    /// resignation's Skew_Time, preempt_delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_hold_ns: Option<u64>,
    /// See `watch_hold_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_fired_ns: Option<u64>,
    /// The agent's loop woke up for the event that led to it.
    pub woke_ns: u64,
    /// Master_Down_Interval's end, which the agent, warned early by the
    /// kernel's watch, waited for on the CPU (`Agent::imminent`); absent
    /// when it did not wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ns: Option<u64>,
    /// The state machine entered MASTER.
    pub state_ns: u64,
    /// The first advert as master was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_ns: Option<u64>,
    /// The kernel acknowledged the virtual addresses (the reconcile after
    /// the transition returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vips_ns: Option<u64>,
    /// During the address add (after the first advert, to `vips_ns`): how
    /// long the agent's thread waited for a CPU, ns, and how often it
    /// slept (voluntary context switches: the RTNL lock, the netlink
    /// reply); the rest of the step ran or spun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vips_run_delay_ns: Option<u64>,
    /// See `vips_run_delay_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vips_sleeps: Option<u64>,
    /// The first gratuitous ARP (or unsolicited NA) was handed to the
    /// kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_ns: Option<u64>,
}

/// The whole agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Process id.
    pub pid: u32,
    /// Receive path: "xdp" or "socket".
    pub receive: String,
    /// The XDP attach still runs beside the start (the instances may be
    /// BACKUP, but no backup takes over before it is done).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attaching: bool,
    /// Instances, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Sync groups, in configuration order (absent without any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_groups: Vec<GroupStatus>,
}

/// One `vrrp_sync_group`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Group name.
    pub gname: String,
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    /// Its members' instance names.
    pub instances: Vec<String>,
}

/// Where agent `name` writes its status.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(LOCK_DIR).join(format!("{name}.json"))
}

/// Where agent `name` writes its state on SIGUSR1.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(LOCK_DIR).join(format!("{name}.data"))
}

/// Where agent `name` writes its statistics on SIGUSR2.
pub fn stats_path(name: &str) -> PathBuf {
    PathBuf::from(LOCK_DIR).join(format!("{name}.stats"))
}

/// Replace the file atomically (write a temporary, rename over).
pub fn write(name: &str, status: &AgentStatus) -> io::Result<()> {
    write_to(&path(name), status)
}

/// Replace `p` atomically with `status` as JSON.
pub fn write_to(p: &std::path::Path, status: &AgentStatus) -> io::Result<()> {
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(".tmp");
    // Streamed to the file: the text of 4,000 instances is about 2 MiB,
    // and a buffer of it, grown by doubling every second, stays in the
    // worker's heap (RSS) between writes. Compact: a master rewrites it
    // every second for its advert counters, and the indentation was
    // a third of the text (0.86 MB a second at 1,000 instances);
    // `vrrp-agent status --json` indents it for people.
    let mut w = io::BufWriter::new(std::fs::File::create(&tmp)?);
    serde_json::to_writer(&mut w, status).map_err(io::Error::other)?;
    io::Write::flush(&mut w)?;
    drop(w);
    std::fs::rename(&tmp, p)
}

/// Writes agent `name`'s status file from a thread of its own, the latest
/// status first: the loop that sends adverts hands it over and goes on.
/// A rename on a `/run` that is not a tmpfs took up to 23 ms here under
/// load, and the loop passes here after adverts (issue 15: that held up
/// a master's next advert and a takeover's address add).
pub struct Writer {
    path: PathBuf,
    shared: std::sync::Arc<WriterShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct WriterShared {
    /// The status to write next (a newer one replaces it), whether the
    /// writer is to end once it is written, and whether to trim the heap
    /// after writing it.
    next: std::sync::Mutex<(Option<AgentStatus>, bool, bool)>,
    wake: std::sync::Condvar,
}

impl Writer {
    /// Start the writer of agent `name`'s file.
    pub fn start(name: &str) -> Writer {
        Writer::start_at(path(name))
    }

    /// Start the writer of the file at `path`.
    pub fn start_at(path: PathBuf) -> Writer {
        let shared = std::sync::Arc::new(WriterShared::default());
        let thread = {
            let shared = shared.clone();
            let path = path.clone();
            std::thread::Builder::new()
                .name("status-writer".into())
                .spawn(move || writer_loop(&shared, &path))
                .map_err(|e| log::warn!("status writer thread: {e}; writing from the loop"))
                .ok()
        };
        Writer { path, shared, thread }
    }

    /// Write `status` soon (at once when the thread could not start).
    pub fn submit(&self, status: AgentStatus) {
        self.submit_then(status, false);
    }

    /// Write `status` soon, then give the heap's free pages back
    /// (`trim_heap`): after a mass takeover, whose last status (thousands
    /// of instances' strings) is freed only once written, so a trim from
    /// the loop before that would leave it behind.
    pub fn submit_then(&self, status: AgentStatus, trim: bool) {
        if self.thread.is_none() {
            if let Err(e) = write_to(&self.path, &status) {
                log::warn!("writing {}: {e}", self.path.display());
            }
            drop(status);
            if trim {
                super::trim_heap();
            }
            return;
        }
        let mut next = self.shared.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        next.0 = Some(status);
        next.2 |= trim;
        self.shared.wake.notify_one();
    }

    /// Write what is pending and end the thread: after this the file is
    /// the last status submitted (and can be removed without a late write
    /// bringing it back).
    pub fn finish(&mut self) {
        let Some(t) = self.thread.take() else { return };
        {
            let mut next = self.shared.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            next.1 = true;
            self.shared.wake.notify_one();
        }
        let _ = t.join();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn writer_loop(shared: &WriterShared, path: &std::path::Path) {
    loop {
        let (status, end, trim) = {
            let mut next = shared.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while next.0.is_none() && !next.1 {
                next = shared.wake.wait(next).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            (next.0.take(), next.1, std::mem::take(&mut next.2))
        };
        if let Some(st) = status
            && let Err(e) = write_to(path, &st)
        {
            log::warn!("writing {}: {e}", path.display());
        }
        if trim {
            super::trim_heap();
        }
        if end {
            return;
        }
    }
}

/// Read agent `name`'s status.
pub fn read(name: &str) -> io::Result<AgentStatus> {
    let text = std::fs::read(path(name))?;
    serde_json::from_slice(&text).map_err(io::Error::other)
}

/// Remove the file (clean exit).
pub fn remove(name: &str) {
    let _ = std::fs::remove_file(path(name));
}

/// `InstanceStatus::accept` of a file that lacks it.
fn accepting() -> u8 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pid: u32) -> AgentStatus {
        AgentStatus {
            pid,
            receive: "xdp".into(),
            attaching: false,
            instances: Vec::new(),
            sync_groups: Vec::new(),
        }
    }

    #[test]
    fn the_file_is_compact_json_and_a_trim_request_still_writes_it() {
        let dir = std::env::temp_dir().join(format!("vrrp-status-compact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("a.json");
        let mut w = Writer::start_at(p.clone());
        w.submit_then(status(7), true);
        w.finish();
        let text = std::fs::read_to_string(&p).expect("written");
        assert!(!text.contains('\n') && !text.contains("  "), "not compact: {text}");
        let read: AgentStatus = serde_json::from_str(&text).expect("json");
        assert_eq!(read.pid, 7);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_writer_leaves_the_last_status_submitted() {
        let dir = std::env::temp_dir().join(format!("vrrp-status-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("a.json");
        let mut w = Writer::start_at(p.clone());
        for pid in 1..=500 {
            w.submit(status(pid));
        }
        w.finish();
        let read: AgentStatus = serde_json::from_slice(&std::fs::read(&p).expect("written")).expect("json");
        assert_eq!(read.pid, 500);
        // Finished: nothing writes it again after its removal.
        std::fs::remove_file(&p).expect("remove");
        drop(w);
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
