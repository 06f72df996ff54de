//! Who holds a VIP, watched continuously: one thread per namespace polls
//! the interface addresses every `POLL` and records when it saw the VIP,
//! so a test can assert the single-holder rule over a whole fault, not
//! only at the end of it.
//!
//! An overlap is reported only when it is certain: node A was seen holding
//! at every poll from a1 to a2 and node B from b1 to b2, and those spans
//! intersect. A handover faster than a poll is therefore never a false
//! alarm, and a real overlap longer than two polls is always caught.

use std::fs::File;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sched::{CloneFlags, setns};

use crate::Netns;

/// How often each namespace is looked at.
pub const POLL: Duration = Duration::from_millis(2);

/// Spans (first, last poll seen holding) of one node.
type Spans = Vec<(Instant, Instant)>;

/// A running watch of `addr` in some namespaces.
pub struct HolderWatch {
    stop: Arc<AtomicBool>,
    /// Polls made, per node: `finish` waits for one more from each, so
    /// what the caller saw just before is in the record.
    polls: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<Result<Spans>>>,
    started: Instant,
}

/// What a watch saw.
#[derive(Debug)]
pub struct Seen {
    /// Per node, the spans it was seen holding the address.
    pub spans: Vec<Spans>,
    /// When the watch started and stopped.
    pub started: Instant,
    /// When it stopped.
    pub stopped: Instant,
}

impl HolderWatch {
    /// Start watching `addr` in each of `nodes`.
    pub fn start(nodes: &[&Netns], addr: &str) -> Result<HolderWatch> {
        HolderWatch::start_with(nodes, addr, false)
    }

    /// As `start`, counting the address only on an interface that is up
    /// and running: FRR's vrrpd keeps a Backup's VIPs on its macvlan and
    /// sets the macvlan protodown (no carrier), so that node does not
    /// answer for them.
    pub fn start_running(nodes: &[&Netns], addr: &str) -> Result<HolderWatch> {
        HolderWatch::start_with(nodes, addr, true)
    }

    fn start_with(nodes: &[&Netns], addr: &str, running_only: bool) -> Result<HolderWatch> {
        let addr: IpAddr = addr.parse().context("address to watch")?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut polls = Vec::new();
        for ns in nodes {
            let count = Arc::new(AtomicU64::new(0));
            polls.push(Arc::clone(&count));
            let path = format!("/run/netns/{}", ns.name());
            let file = File::open(&path).with_context(|| format!("opening {path}"))?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || -> Result<Spans> {
                setns(&file, CloneFlags::CLONE_NEWNET).context("setns")?;
                let mut spans: Spans = Vec::new();
                let mut open: Option<(Instant, Instant)> = None;
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if holds(addr, running_only)? {
                        open = Some(open.map_or((now, now), |(a, _)| (a, now)));
                    } else if let Some(s) = open.take() {
                        spans.push(s);
                    }
                    count.fetch_add(1, Ordering::Release);
                    std::thread::sleep(POLL);
                }
                spans.extend(open);
                Ok(spans)
            }));
        }
        Ok(HolderWatch { stop, polls, threads, started: Instant::now() })
    }

    /// Stop and return what was seen.
    pub fn finish(self) -> Result<Seen> {
        // One more poll of every node after this call began (or a thread
        // that has stopped on an error, which join reports).
        let marks: Vec<u64> = self.polls.iter().map(|c| c.load(Ordering::Acquire)).collect();
        let limit = Instant::now() + Duration::from_secs(2);
        while Instant::now() < limit
            && self
                .polls
                .iter()
                .zip(&marks)
                .zip(&self.threads)
                .any(|((c, m), t)| c.load(Ordering::Acquire) <= *m + 1 && !t.is_finished())
        {
            std::thread::sleep(POLL);
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut spans = Vec::new();
        for t in self.threads {
            spans.push(t.join().map_err(|_| anyhow::anyhow!("watch thread panicked"))??);
        }
        Ok(Seen { spans, started: self.started, stopped: Instant::now() })
    }
}

impl Seen {
    /// Fail if two nodes were certainly holding the address at once.
    pub fn assert_single_holder(&self) -> Result<()> {
        self.assert_single_holder_but_handovers(Duration::ZERO)
    }

    /// As `assert_single_holder`, but for a test with a preemption: the
    /// preempting master adds the VIP right after its first advert and the
    /// master it preempts removes it when that advert arrives (RFC 5798
    /// 6.4.3, as keepalived), so the two hold it together for the advert's
    /// delivery and processing. Overlaps up to `handover` are that;
    /// anything longer fails.
    pub fn assert_single_holder_but_handovers(&self, handover: Duration) -> Result<()> {
        for (i, a) in self.spans.iter().enumerate() {
            for (j, b) in self.spans.iter().enumerate().skip(i + 1) {
                for (a1, a2) in a {
                    for (b1, b2) in b {
                        let (from, to) = ((*a1).max(*b1), (*a2).min(*b2));
                        if from <= to && (handover.is_zero() || to - from > handover) {
                            bail!(
                                "nodes {i} and {j} both held the address for {:?}, {:?} after the watch started",
                                to - from,
                                from - self.started
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Fail if this address and `other`'s (watched on the same nodes) were
    /// certainly on two different nodes at once for longer than
    /// `handover`: a sync group's addresses move together, so one node
    /// holding one while another node holds the other is a split.
    pub fn assert_not_split_from(&self, other: &Seen, handover: Duration) -> Result<()> {
        for (i, a) in self.spans.iter().enumerate() {
            for (j, b) in other.spans.iter().enumerate().filter(|(j, _)| *j != i) {
                for (a1, a2) in a {
                    for (b1, b2) in b {
                        let (from, to) = ((*a1).max(*b1), (*a2).min(*b2));
                        if from <= to && to - from > handover {
                            bail!(
                                "split: node {i} held the first address while node {j} held the second, for {:?}, {:?} after the watch started",
                                to - from,
                                from - self.started
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The longest time within [from, to] (offsets from the start) when no
    /// node was seen holding the address (up to a poll's uncertainty).
    pub fn longest_gap(&self, from: Duration, to: Duration) -> Duration {
        let (from, to) = (self.started + from, (self.started + to).min(self.stopped));
        let mut spans: Vec<(Instant, Instant)> = self.spans.iter().flatten().copied().collect();
        spans.sort();
        let mut longest = Duration::ZERO;
        let mut covered = from;
        for (a, b) in spans {
            if b < covered {
                continue;
            }
            if a > covered {
                longest = longest.max(a.min(to).saturating_duration_since(covered));
            }
            covered = covered.max(b);
            if covered >= to {
                break;
            }
        }
        longest.max(to.saturating_duration_since(covered))
    }
}

/// Whether any interface of this thread's namespace has `addr` (and,
/// with `running_only`, is up and running).
fn holds(addr: IpAddr, running_only: bool) -> Result<bool> {
    use nix::net::if_::InterfaceFlags;
    let list = nix::ifaddrs::getifaddrs().context("getifaddrs")?;
    let running = InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING;
    Ok(list.filter(|i| !running_only || i.flags.contains(running)).filter_map(|i| i.address).any(|a| {
        a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())) == Some(addr)
            || a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())) == Some(addr)
    }))
}
