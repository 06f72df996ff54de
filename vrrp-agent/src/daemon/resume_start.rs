//! The daemon's side of a hitless restart and of a crash recovery
//! (`resume.rs` decides): at start, which instances resume (from the
//! hitless record, else from the dead worker's live record once claimed)
//! and their first adverts; the live record this worker keeps from then
//! on; at a hitless stop, the record (`Agent::handover`).

use super::agent::Agent;
use super::instance::Inst;
use super::live::{self, Owner, SlotData};
use super::resume::{self, Entry, Record};
use super::timer;
use super::vips;
use crate::config::Config;
use crate::machine::{Micros, State};

/// The instances of `cfg` that resume as MASTER, and this worker's live
/// record (`live.rs`; None if it cannot be written: a crash then starts
/// normally, as before the record existed).
///
/// After a hitless restart (the previous process of agent `name` stopped
/// for one and left `<name>.resume`, read once and removed): the
/// instances that were MASTER then, are configured as they were, and for
/// which it is still early enough. Otherwise, after a crash (the previous
/// worker left its live record and was killed): the same three
/// conditions from that record, and only if this worker claims it before
/// the supervisor fences it (see live.rs: one of the two owns the dead
/// worker's VIPs, never both, never neither).
pub(super) fn resumable(cfg: &Config, name: &str) -> (Vec<String>, Option<live::Writer>) {
    let found = live::read(name);
    let me = std::process::id();
    let mut out: Vec<(String, Micros)> = Vec::new();
    let mut owner = None;
    if let Some(rec) = resume::take(name) {
        let now = timer::now();
        for conf in &cfg.instances {
            match resume::decide(&rec, conf, now) {
                Ok(()) => {
                    log::info!(
                        "({}) resuming as MASTER after a hitless restart: its last advert went out {} ms ago",
                        conf.name,
                        now.0.saturating_sub(rec.at.0) / 1000
                    );
                    out.push((conf.name.clone(), rec.at));
                }
                Err(resume::NoResume::NotMaster) => {}
                Err(why) => log::warn!("({}) not resuming as MASTER: {why}; starting normally", conf.name),
            }
        }
        for e in rec.masters.iter().filter(|e| !cfg.instances.iter().any(|c| c.name == e.name)) {
            log::warn!("({}) was MASTER before the restart and is no longer configured", e.name);
        }
    } else if let Some(f) = &found
        && !f.owner.fenced()
    {
        let dead = f.owner.pid;
        let now = timer::now();
        let mut wanted = Vec::new();
        for conf in &cfg.instances {
            match resume::decide_live(&f.slots, conf, now) {
                Ok(at) => wanted.push((conf, at)),
                Err(resume::NoResume::NotMaster) => {}
                Err(why) => log::warn!(
                    "({}) not resuming as MASTER after worker pid {dead} died: {why}; starting normally",
                    conf.name
                ),
            }
        }
        // Claimed even when nothing resumes: the VIPs the dead worker
        // left are then this worker's to remove (`cleanup_stale`, at once),
        // not the supervisor's at the takeover margin.
        match f.claim(me) {
            Ok(o) => {
                owner = Some(o);
                // Checked again after the claim: the time between the
                // decision and the claim must not carry a resume past the
                // limit (then a backup may be taking over).
                let now = timer::now();
                for (conf, at) in wanted {
                    let age = now.0.saturating_sub(at.0) / 1000;
                    if now.0.saturating_sub(at.0) < resume::limit(conf.advert_int.0).0 {
                        log::info!(
                            "({}) resuming as MASTER after worker pid {dead} died: its last advert went out {age} ms ago",
                            conf.name
                        );
                        out.push((conf.name.clone(), at));
                    } else {
                        log::warn!(
                            "({}) not resuming as MASTER after worker pid {dead} died: its last advert went out {age} ms ago, past the limit; starting normally",
                            conf.name
                        );
                    }
                }
            }
            Err(o) if !wanted.is_empty() => log::warn!(
                "the supervisor fenced worker pid {dead}'s record first (owner now {o:?}): its VIPs are removed; starting normally"
            ),
            Err(_) => {}
        }
    } else if found.as_ref().is_some_and(|f| f.slots.iter().flatten().any(|s| s.master)) {
        log::info!(
            "the previous worker's VIPs were removed by its supervisor (its record is fenced): starting normally"
        );
    }
    let owner = owner.unwrap_or(Owner {
        generation: found.as_ref().map_or(1, |f| f.owner_now().generation.wrapping_add(1)),
        pid: me,
    });
    let slots: Vec<SlotData> = cfg
        .instances
        .iter()
        .map(|c| {
            let resumed = out.iter().find(|(n, _)| *n == c.name);
            SlotData {
                at: resumed.map(|(_, at)| *at).unwrap_or_default(),
                ident: Entry::of(c).fingerprint(),
                name: live::fingerprint(c.name.as_bytes()),
                advert_cs: c.advert_int.0,
                master: resumed.is_some(),
            }
        })
        .collect();
    drop(found);
    let writer = match live::Writer::create(name, owner, &slots) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!(
                "{}: {e}; after a crash the next worker starts normally (a failover)",
                live::file(name).display()
            );
            None
        }
    };
    (out.into_iter().map(|(n, _)| n).collect(), writer)
}

/// The live record's slot for `inst` as it stands (`Agent::live_rewrite`).
pub(super) fn slot_of(inst: &Inst, at: Micros) -> SlotData {
    SlotData {
        at,
        ident: Entry::of(&inst.conf).fingerprint(),
        name: live::fingerprint(inst.conf.name.as_bytes()),
        advert_cs: inst.conf.advert_int.0,
        master: inst.machine.state() == State::Master && inst.machine.priority() == inst.conf.priority,
    }
}

/// One resumed instance's bridge adverts: its live record slot (index,
/// name fingerprint), name, priority, interval and socket.
type BridgeSender = ((usize, u64), String, u8, std::time::Duration, super::tx::Sender);

/// Adverts for the resumed instances while the agent starts (loading the
/// XDP program takes a good part of an interval at 100 ms adverts): one
/// at once, then one per interval from a thread of its own, with each
/// instance's configured priority (the record checked it is the one
/// advertised before), until `stop`.
pub(super) struct Bridge {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bridge {
    pub(super) fn start(insts: &[Inst], resumed: &[String], live: Option<live::Writer>) -> Bridge {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders: Vec<BridgeSender> = insts
            .iter()
            .enumerate()
            .filter(|(_, i)| resumed.contains(&i.conf.name))
            .filter_map(|(k, i)| {
                let every = std::time::Duration::from_micros(i.conf.advert_int.as_micros());
                let slot = (k, live::fingerprint(i.conf.name.as_bytes()));
                Some((slot, i.conf.name.clone(), i.conf.priority, every, i.another_sender()?))
            })
            .collect();
        if senders.is_empty() {
            return Bridge { stop, thread: None };
        }
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut next: Vec<std::time::Instant> = senders.iter().map(|_| start).collect();
            while !flag.load(std::sync::atomic::Ordering::Acquire) {
                let now = std::time::Instant::now();
                for ((k, name, priority, every, sender), at) in senders.iter_mut().zip(next.iter_mut()) {
                    if *at <= now {
                        let sent_at = timer::now();
                        let went = sender.send(*priority, |dst, e| {
                            log::warn!("({name}) cannot send advert to {dst}: {e}")
                        });
                        // A crash while the agent starts finds this advert.
                        if went > 0
                            && let Some(l) = &live
                        {
                            l.advert(k.0, k.1, sent_at, true);
                        }
                        *at = now + *every;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Bridge { stop, thread: Some(thread) }
    }

    /// Stop: the agent advertises from here on.
    pub(super) fn stop(self) {}
}

impl Drop for Bridge {
    /// Also when the start fails: nothing advertises for an agent that
    /// does not run.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Agent {
    /// The live record anew from the instances (after a reload added,
    /// removed or changed some): each keeps its last advert's time.
    pub(super) fn live_rewrite(&mut self) {
        let Some(l) = self.live.take() else { return };
        let old = l.all();
        let slots: Vec<SlotData> = self
            .insts
            .iter()
            .map(|inst| {
                let name = live::fingerprint(inst.conf.name.as_bytes());
                let at = old.iter().find(|d| d.name == name).map(|d| d.at).unwrap_or_default();
                slot_of(inst, at)
            })
            .collect();
        match l.resized(&self.opts.name, slots.len()) {
            Ok(w) => {
                w.rewrite(&slots);
                self.live = Some(w);
            }
            Err(e) => log::warn!(
                "{}: {e}; after a crash the next worker starts normally (a failover)",
                live::file(&self.opts.name).display()
            ),
        }
    }

    /// A resumed instance `i` takes what the previous process held as
    /// its own (the reconciler then neither re-adds nor loses track of it),
    /// and so does everything else the record names, so that what the
    /// instances no longer want is removed.
    pub(super) fn adopt(&mut self, i: usize) {
        let held = vips::load_held(&self.opts.name);
        self.addrs.adopt_recorded(
            held.addrs
                .iter()
                .map(|(ifindex, addr, p)| (super::reconcile::AddrKey { ifindex: *ifindex, addr: *addr }, *p)),
        );
        self.routes.adopt_recorded(held.routes.iter().map(|(k, _)| (*k, ())));
        self.rules.adopt_recorded(held.rules.iter().map(|(k, _)| (k.clone(), ())));
        let wants: Vec<_> = self.insts[i].wants(i).collect();
        self.addrs.adopt(&wants);
        let routes: Vec<_> = self.insts[i].route_wants(i).collect();
        self.routes.adopt(&routes);
        let rules: Vec<_> = self.insts[i].rule_wants(i).collect();
        self.rules.adopt(&rules);
    }

    /// SIGRTMIN+5: stop for a hitless restart. Each MASTER sends one last
    /// advert (the backups' Master_Down_Timer restarts from it), the
    /// record says when, and the process exits leaving its VIPs, routes
    /// and rules, the crash record and status file. False if the record
    /// cannot be written: then the caller stops normally (resigning).
    pub(super) fn handover(&mut self) -> bool {
        // Only a supervisor starts the next process at once, and removes
        // what this one holds should that fail: alone (--no-supervise),
        // the next start may come after a backup took over.
        if self.opts.supervised.is_none() {
            log::warn!(
                "a hitless restart needs the supervisor (this agent runs with --no-supervise): stopping normally"
            );
            return false;
        }
        // The last adverts are this one's: none from the thread after them.
        self.tx_take_back(true);
        // Detach XDP first (its teardown holds the RTNL lock for 10-20 ms,
        // more on a loaded machine): the last adverts then go out as late
        // as can be, and the next process's time runs from them.
        drop(std::mem::replace(&mut self.source, super::source::Source::Sockets { rxs: Vec::new() }));
        let mut masters = Vec::new();
        for inst in self.insts.iter_mut().filter(|i| i.machine.state() == State::Master) {
            let name = inst.conf.name.clone();
            let priority = inst.machine.priority();
            if let Some(sender) = &mut inst.sender {
                sender.send(priority, |dst, e| log::warn!("({name}) cannot send advert to {dst}: {e}"));
            }
            // A priority lowered by tracking is not the configured one the
            // next process would advertise: it starts normally.
            if priority == inst.conf.priority {
                masters.push(Entry::of(&inst.conf));
            }
        }
        let rec = Record { at: timer::now(), masters };
        if let Err(e) = resume::save(&self.opts.name, &rec) {
            log::error!(
                "writing {}: {e}; stopping normally instead",
                resume::record_file(&self.opts.name).display()
            );
            return false;
        }
        log::info!(
            "Stopping for a restart: {} MASTER instance(s) keep their VIPs; the next start resumes them within 2.5 x advert_int",
            rec.masters.len()
        );
        true
    }
}
