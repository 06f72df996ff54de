//! A master's periodic adverts from a thread of their own.
//!
//! A master in steady state does one thing: send the same advert every
//! Advertisement_Interval (RFC 5798 6.4.3). On the agent's event loop that
//! took a tokio wake-up per advert: the timerfd's epoll round trip, its
//! read and re-arm, and a poll of every event source's future; profiled at
//! 10 ms adverts, the loop's own code was about 40% of the master's CPU
//! (the send itself, with the receiver's softirq that runs in its
//! context, most of the rest). This thread sleeps to the next due advert
//! (one futex wait with an absolute CLOCK_MONOTONIC deadline), sends every
//! advert due with one `sendmmsg` per socket key of prebuilt messages,
//! stamps the live record (`live.rs`, for crash recovery), and sleeps
//! again: four system calls fewer per advert, and the event loop sleeps.
//!
//! The state machine stays the authority: the agent hands the thread a
//! plan per master (priority, period, when the next advert is due, the
//! messages) whenever the machine changes it, and takes it back before it
//! carries out anything else the machine decided. So a resignation's
//! priority-0 advert (RFC 5798 6.4.3) can never be followed by a periodic
//! one: the table's lock orders the thread's sends before the removal.
//! Changes are rare (state, priority, a reload, a new socket); each one
//! wakes the thread through the futex word.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::live;
use super::timer;
use super::tx::{Batch, Prepared};
use crate::machine::Micros;

/// What the thread sends for one master.
pub(super) struct Plan {
    /// Instance name, for warnings.
    pub name: String,
    /// The messages and the socket.
    pub prepared: Prepared,
    /// The adverts' priority.
    pub priority: u8,
    /// Advertisement_Interval.
    pub interval: Micros,
    /// How much early an advert may go to join others due (the machine's
    /// `adver_window`).
    pub window: Micros,
    /// When the next advert is due.
    pub next: Micros,
    /// The live record's slot name (`live::fingerprint`).
    pub fingerprint: u64,
    /// MASTER at the configured priority (what the live record says).
    pub resumable: bool,
}

struct Entry {
    plan: Plan,
    /// Adverts sent since the agent last asked (`take_sent`).
    sent: u64,
}

#[derive(Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    live: Option<live::Writer>,
    stop: bool,
    /// When the thread will look at the table again by itself (None:
    /// only when woken): a plan due no sooner needs no wake-up.
    until: Option<Micros>,
}

struct Shared {
    table: Mutex<Table>,
    /// The futex word: bumped on every change, so a wait that started
    /// before it returns at once.
    changed: AtomicU32,
    /// The thread's kernel id, for `vrrp_rt_priority`.
    tid: std::sync::atomic::AtomicI32,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic in the thread cannot leave the table half-changed in a
        // way that matters more than stopping would.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.changed.fetch_add(1, Ordering::Release);
        // SAFETY: FUTEX_WAKE on a valid, aligned u32 of ours.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.changed.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }
}

/// The advert thread (stopped and joined on drop).
pub(super) struct TxThread {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TxThread {
    /// Start the thread, with nothing to send yet.
    pub(super) fn start(live: Option<live::Writer>) -> io::Result<TxThread> {
        let shared = Arc::new(Shared {
            table: Mutex::new(Table { live, ..Table::default() }),
            changed: AtomicU32::new(0),
            tid: std::sync::atomic::AtomicI32::new(0),
        });
        let s = Arc::clone(&shared);
        let (tid_tx, tid_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new().name("adverts".to_owned()).spawn(move || {
            // SAFETY: gettid has no arguments and cannot fail.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            run(&s)
        })?;
        // Known before `start` returns, so that `vrrp_rt_priority` (applied
        // once the instances have started) never misses the thread.
        let tid = tid_rx.recv().map_err(|_| io::Error::other("the advert thread ended at its start"))?;
        shared.tid.store(tid, Ordering::Release);
        Ok(TxThread { shared, thread: Some(thread) })
    }

    /// The thread's kernel id, once it runs: a master's adverts go out
    /// from it, so `vrrp_rt_priority` applies to it as to the loop
    /// (keepalived's VRRP process sends its adverts at that priority).
    pub(super) fn tid(&self) -> Option<libc::pid_t> {
        Some(self.shared.tid.load(Ordering::Acquire)).filter(|t| *t != 0)
    }

    /// Send `plan` for instance `i` from now on (None: stop sending for
    /// it). Returns once the thread can no longer send the previous plan,
    /// with the number of adverts that one sent not yet reported.
    pub(super) fn set(&self, i: usize, plan: Option<Plan>) -> u64 {
        let mut t = self.shared.lock();
        if t.entries.len() <= i {
            if plan.is_none() {
                return 0;
            }
            t.entries.resize_with(i + 1, || None);
        }
        let sent = t.entries[i].as_ref().map_or(0, |e| e.sent);
        // A new master's plan is due an interval after its first advert
        // (sent by the loop), usually after the thread's next look at the
        // table anyway: a takeover of thousands hands over thousands of
        // plans, and waking the thread for each cost a futex call and a
        // context switch. A removal needs none (under the lock, the thread
        // can no longer send it).
        let wake = plan.as_ref().is_some_and(|p| t.until.is_none_or(|u| p.next < u));
        t.entries[i] = plan.map(|plan| Entry { plan, sent: 0 });
        drop(t);
        if wake {
            self.shared.wake();
        }
        sent
    }

    /// Send nothing (a hitless restart's handover sends the last adverts
    /// from the loop; a reload keeps the plans, `remap`); the adverts the
    /// entries had sent are reported to `sent` first.
    pub(super) fn clear(&self, mut sent: impl FnMut(usize, u64)) {
        let mut t = self.shared.lock();
        for (i, e) in t.entries.iter().enumerate() {
            if let Some(e) = e {
                sent(i, e.sent);
            }
        }
        t.entries.clear();
        drop(t);
        self.shared.wake();
    }

    /// The instances were renumbered (a reload removed or reordered
    /// some): entry `i` moves to `to(i)`, and goes where `to(i)` is None
    /// (its adverts sent are reported to `sent` first). The other plans go
    /// on sending throughout, so a reload never pauses the masters it
    /// does not touch.
    pub(super) fn remap(&self, to: impl Fn(usize) -> Option<usize>, mut sent: impl FnMut(u64)) {
        let mut t = self.shared.lock();
        let old = std::mem::take(&mut t.entries);
        for (i, e) in old.into_iter().enumerate() {
            let Some(e) = e else { continue };
            match to(i) {
                Some(k) => {
                    if t.entries.len() <= k {
                        t.entries.resize_with(k + 1, || None);
                    }
                    t.entries[k] = Some(e);
                }
                None => sent(e.sent),
            }
        }
        drop(t);
        self.shared.wake();
    }

    /// The live record to stamp (a reload replaces it).
    pub(super) fn set_live(&self, live: Option<live::Writer>) {
        self.shared.lock().live = live;
    }

    /// How many adverts each instance's plan sent since the last call.
    pub(super) fn take_sent(&self, mut sent: impl FnMut(usize, u64)) {
        let mut t = self.shared.lock();
        for (i, e) in t.entries.iter_mut().enumerate() {
            if let Some(e) = e
                && e.sent > 0
            {
                sent(i, std::mem::take(&mut e.sent));
            }
        }
    }
}

impl Drop for TxThread {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: send what is due, sleep until the next is or the table
/// changes.
fn run(shared: &Shared) {
    let mut batch = Batch::default();
    loop {
        let seen = shared.changed.load(Ordering::Acquire);
        let next = {
            let mut t = shared.lock();
            if t.stop {
                return;
            }
            let next = send_due(&mut t, &mut batch);
            // Set under the lock: a plan set after this sees it.
            t.until = next;
            next
        };
        wait(&shared.changed, seen, next);
    }
}

/// Send every advert due (within its window, as the event loop's timer
/// pass does: `Machine::handle_timeout_coalesced`), each one's next due
/// one interval from now (RFC 5798 6.4.3 resets the Adver_Timer on each
/// advert); the earliest next deadline.
fn send_due(t: &mut Table, batch: &mut Batch) -> Option<Micros> {
    let now = timer::now();
    for (i, e) in t.entries.iter_mut().enumerate() {
        let Some(e) = e else { continue };
        let p = &mut e.plan;
        if p.next > now.after(p.window) {
            continue;
        }
        for (dst, to, bytes) in &p.prepared.frames {
            batch.push(p.prepared.key, i, p.priority, *dst, to, bytes);
        }
        p.next = now.after(p.interval);
        // Counted when sent, as the event loop counts its own.
        e.sent += 1;
    }
    if !batch.is_empty() {
        let entries = &t.entries;
        let plan = |i: usize| entries.get(i).and_then(Option::as_ref).map(|e| &e.plan);
        batch.flush(
            |i| plan(i).map(|p| p.prepared.sock.as_raw_fd()),
            |i, dst, e| {
                log::warn!("({}) cannot send advert to {dst}: {e}", plan(i).map_or("?", |p| p.name.as_str()))
            },
        );
        if let Some(l) = &t.live {
            // `now` is before the sends: the age the next worker computes
            // from it is never short.
            for &(i, _) in batch.sent() {
                if let Some(p) = plan(i) {
                    l.advert(i, p.fingerprint, now, p.resumable);
                }
            }
        }
    }
    t.entries.iter().flatten().map(|e| e.plan.next).min()
}

/// Sleep until `until` (CLOCK_MONOTONIC, absolute; None: until woken) or
/// until the futex word is no longer `seen`.
fn wait(word: &AtomicU32, seen: u32, until: Option<Micros>) {
    let ts = until.map(|t| libc::timespec {
        tv_sec: (t.0 / 1_000_000) as libc::time_t,
        tv_nsec: ((t.0 % 1_000_000) * 1000) as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT_BITSET on a valid, aligned u32 of ours, with an
    // absolute CLOCK_MONOTONIC timeout (no FUTEX_CLOCK_REALTIME) or none.
    // It returns at the deadline (ETIMEDOUT), on a wake, on a signal, or
    // at once if the word changed (EAGAIN): every case re-reads the table.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
            seen,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        );
    }
}

/// The plan for an instance's adverts, or None when it has none for the
/// thread (not MASTER, no socket, AH).
pub(super) fn plan_of(
    i: usize,
    inst: &mut super::instance::Inst,
    now: Micros,
) -> io::Result<Option<(Plan, PlanKey)>> {
    let m = &inst.machine;
    if m.state() != crate::machine::State::Master || m.priority() == 0 {
        return Ok(None);
    }
    let (priority, interval, window, deadline) =
        (m.priority(), m.advert_interval(), m.adver_window(), m.adver_deadline());
    let Some(sender) = inst.sender.as_mut() else { return Ok(None) };
    let key = PlanKey { slot: i, sender: sender.id(), priority, interval, deadline };
    let Some(prepared) = sender.prepare(priority)? else { return Ok(None) };
    let plan = Plan {
        name: inst.conf.name.clone(),
        prepared,
        priority,
        interval,
        window,
        // The machine's next advert; after a handover of the same
        // schedule its stale time means: now.
        next: deadline.unwrap_or(now),
        fingerprint: live::fingerprint(inst.conf.name.as_bytes()),
        resumable: priority == inst.conf.priority,
    };
    Ok(Some((plan, key)))
}

/// What a plan was made from: when it differs, the plan is made again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PlanKey {
    /// The instance's index (the table's, the live record's slot).
    pub slot: usize,
    /// The sender (`Sender::id`).
    pub sender: u64,
    pub priority: u8,
    pub interval: Micros,
    /// The machine's Adver_Timer when the plan was made: the machine
    /// resets it whenever it sends an advert of its own.
    pub deadline: Option<Micros>,
}

impl PlanKey {
    /// The key instance `i` would have now, without building anything.
    pub(super) fn of(i: usize, inst: &super::instance::Inst) -> Option<PlanKey> {
        let m = &inst.machine;
        if m.state() != crate::machine::State::Master || m.priority() == 0 {
            return None;
        }
        let s = inst.sender.as_ref().filter(|s| !s.is_ah())?;
        Some(PlanKey {
            slot: i,
            sender: s.id(),
            priority: m.priority(),
            interval: m.advert_interval(),
            deadline: m.adver_deadline(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use socket2::{Domain, SockAddr, Socket, Type};

    use super::*;
    use crate::daemon::tx::TxKey;

    /// A plan that sends `msg` every `interval` over UDP to `to` (the
    /// thread does not care which kind of socket it writes to).
    fn plan(to: SocketAddr, msg: &[u8], interval: Micros) -> Plan {
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("a UDP socket");
        let dst = to.ip();
        Plan {
            name: "VI_1".to_owned(),
            prepared: Prepared {
                sock,
                key: TxKey::new(1, IpAddr::V4(Ipv4Addr::LOCALHOST), false),
                frames: vec![(dst, SockAddr::from(to), msg.to_vec())],
            },
            priority: 150,
            interval,
            window: Micros(0),
            next: timer::now(),
            fingerprint: 0,
            resumable: true,
        }
    }

    fn receiver() -> UdpSocket {
        let r = UdpSocket::bind("127.0.0.1:0").expect("a UDP receiver");
        r.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
        r
    }

    #[test]
    fn a_plan_is_sent_every_interval_and_counted() {
        let rx = receiver();
        let th = TxThread::start(None).expect("the thread");
        let t0 = Instant::now();
        assert_eq!(th.set(0, Some(plan(rx.local_addr().expect("bound"), b"adv", Micros(20_000)))), 0);
        let mut buf = [0u8; 16];
        for _ in 0..5 {
            let n = rx.recv(&mut buf).expect("an advert");
            assert_eq!(&buf[..n], b"adv");
        }
        // Five adverts 20 ms apart, the first at once: at least 80 ms.
        assert!(t0.elapsed() >= Duration::from_millis(78), "{:?}", t0.elapsed());
        let mut counted = 0;
        th.take_sent(|i, n| {
            assert_eq!(i, 0);
            counted += n;
        });
        assert!(counted >= 5, "{counted}");
    }

    #[test]
    fn nothing_is_sent_once_the_plan_is_taken_back() {
        // The agent's resignation (priority 0) follows the removal: no
        // periodic advert may come after it.
        let rx = receiver();
        let th = TxThread::start(None).expect("the thread");
        th.set(3, Some(plan(rx.local_addr().expect("bound"), b"adv", Micros(2_000))));
        let mut buf = [0u8; 16];
        rx.recv(&mut buf).expect("an advert");
        let unreported = th.set(3, None);
        assert!(unreported >= 1, "{unreported}");
        // What was sent before the removal returned is in the queue now
        // (loopback delivers within the send); nothing may follow it.
        rx.set_nonblocking(true).expect("non-blocking");
        while rx.recv(&mut buf).is_ok() {}
        std::thread::sleep(Duration::from_millis(30));
        assert!(rx.recv(&mut buf).is_err(), "an advert after the plan was taken back");
    }

    #[test]
    fn renumbered_plans_keep_sending_at_their_new_index() {
        // A reload removes instance 0: instance 2's plan becomes entry 1
        // and goes on sending throughout, counted under its new index.
        let (rx1, rx2) = (receiver(), receiver());
        let th = TxThread::start(None).expect("the thread");
        th.set(1, Some(plan(rx1.local_addr().expect("bound"), b"one", Micros(5_000))));
        th.set(2, Some(plan(rx2.local_addr().expect("bound"), b"two", Micros(5_000))));
        let mut buf = [0u8; 16];
        rx2.recv(&mut buf).expect("an advert of entry 2");
        let mut dropped = Vec::new();
        th.remap(|i| if i == 1 { None } else { i.checked_sub(1) }, |n| dropped.push(n));
        assert_eq!(dropped.len(), 1, "entry 1 goes");
        th.take_sent(|_, _| {});
        for _ in 0..3 {
            let n = rx2.recv(&mut buf).expect("entry 2's adverts go on");
            assert_eq!(&buf[..n], b"two");
        }
        let mut at = Vec::new();
        th.take_sent(|i, n| at.push((i, n)));
        assert!(matches!(at[..], [(1, n)] if n >= 1), "counted under the new index only: {at:?}");
        // Nothing of the removed plan after the remap returned.
        rx1.set_nonblocking(true).expect("non-blocking");
        while rx1.recv(&mut buf).is_ok() {}
        std::thread::sleep(Duration::from_millis(20));
        assert!(rx1.recv(&mut buf).is_err(), "an advert of the removed plan");
        // Setting entry 1 now replaces the moved plan, as tx_sync would.
        assert!(th.set(1, None) < 100);
    }

    #[test]
    fn a_new_plan_wakes_the_thread_from_a_long_sleep() {
        let rx = receiver();
        let th = TxThread::start(None).expect("the thread");
        // Due in an hour: the thread sleeps until then...
        let mut p = plan(rx.local_addr().expect("bound"), b"old", Micros(3_600_000_000));
        p.next = timer::now().after(Micros(3_600_000_000));
        th.set(0, Some(p));
        // ...unless the agent changes the plan: due now.
        th.set(0, Some(plan(rx.local_addr().expect("bound"), b"new", Micros(3_600_000_000))));
        let mut buf = [0u8; 16];
        let t0 = Instant::now();
        let n = rx.recv(&mut buf).expect("an advert");
        assert_eq!(&buf[..n], b"new");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
