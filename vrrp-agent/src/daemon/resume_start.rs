//! The daemon's side of a hitless restart (`resume.rs` decides): at start,
//! which instances resume and their first advert; at a hitless stop, the
//! record (`Agent::handover`).

use super::agent::Agent;
use super::instance::Inst;
use super::resume::{self, Entry, Record};
use super::timer;
use super::vips;
use crate::config::Config;
use crate::machine::State;

/// The instances of `cfg` that resume as MASTER: the previous process of
/// agent `name` stopped for a hitless restart, they were MASTER then, are
/// configured as they were, and it is still early enough. The record is
/// read once and removed.
pub(super) fn resumable(cfg: &Config, name: &str) -> Vec<String> {
    let Some(rec) = resume::take(name) else { return Vec::new() };
    let now = timer::now();
    let mut out = Vec::new();
    for conf in &cfg.instances {
        match resume::decide(&rec, conf, now) {
            Ok(()) => {
                log::info!(
                    "({}) resuming as MASTER after a hitless restart: its last advert went out {} ms ago",
                    conf.name,
                    now.0.saturating_sub(rec.at.0) / 1000
                );
                out.push(conf.name.clone());
            }
            Err(resume::NoResume::NotMaster) => {}
            Err(why) => log::warn!("({}) not resuming as MASTER: {why}; starting normally", conf.name),
        }
    }
    for e in rec.masters.iter().filter(|e| !cfg.instances.iter().any(|c| c.name == e.name)) {
        log::warn!("({}) was MASTER before the restart and is no longer configured", e.name);
    }
    out
}

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
    pub(super) fn start(insts: &[Inst], resumed: &[String]) -> Bridge {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders: Vec<(String, u8, std::time::Duration, super::tx::Sender)> = insts
            .iter()
            .filter(|i| resumed.contains(&i.conf.name))
            .filter_map(|i| {
                let every = std::time::Duration::from_micros(i.conf.advert_int.as_micros());
                Some((i.conf.name.clone(), i.conf.priority, every, i.another_sender()?))
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
                for ((name, priority, every, sender), at) in senders.iter_mut().zip(next.iter_mut()) {
                    if *at <= now {
                        sender.send(*priority, |dst, e| {
                            log::warn!("({name}) cannot send advert to {dst}: {e}")
                        });
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
