//! Restart without a failover (a hitless restart, an upgrade, and a crash
//! the agent comes back from in time): the record a master leaves when it
//! stops for a restart, and the pure decision of the next process whether
//! to resume an instance as MASTER (`decide`; after a crash `decide_live`
//! from the live record the dead worker kept, `live.rs`, with the same
//! three conditions).
//!
//! RFC 5798 6.4.2: a backup leaves BACKUP only when its Master_Down_Timer
//! fires, Master_Down_Interval (3 x Master_Adver_Interval + Skew_Time)
//! after the last advert it accepted, and an advert of a priority equal to
//! or above its own resets that timer. A master that goes quiet for less
//! than that and comes back advertising the same priority is, to the
//! backups, a master whose adverts came late: no rule is broken and no
//! backup moves. So the old process stops without resigning (no priority
//! 0, the VIPs stay), records when it sent its last advert, and the new
//! one resumes as MASTER only if it can advertise well inside the
//! backups' Master_Down_Interval; otherwise it starts as any start does
//! (BACKUP, and the VIPs found are removed), since by then a backup may
//! have taken over and one holder is the hard rule.

use std::net::IpAddr;

use super::live::SlotData;
use crate::config::Instance;
use crate::machine::Micros;

/// The file agent `name` leaves for the next process at a hitless stop.
pub fn record_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(crate::instance_lock::LOCK_DIR).join(format!("{name}.resume"))
}

/// The exit status of a worker that stopped for a hitless restart: its
/// supervisor starts the next one at once (EX_TEMPFAIL, sysexits.h).
pub const EXIT_HANDOVER: i32 = 75;

/// One instance that was MASTER at the hitless stop, as it was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `vrrp_instance` name.
    pub name: String,
    /// Interface.
    pub interface: String,
    /// VRID.
    pub vrid: u8,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// Configured priority.
    pub priority: u8,
    /// Advert interval, centiseconds.
    pub advert_cs: u16,
    /// Its VIPs, as configured.
    pub vips: Vec<IpAddr>,
}

impl Entry {
    /// The entry for a configured instance.
    pub fn of(conf: &Instance) -> Entry {
        Entry {
            name: conf.name.clone(),
            interface: conf.interface.clone(),
            vrid: conf.vrid,
            v6: conf.family == vrrp_common::wire::Family::V6,
            version: match conf.version {
                vrrp_common::wire::Version::V2 => 2,
                vrrp_common::wire::Version::V3 => 3,
            },
            priority: conf.priority,
            advert_cs: conf.advert_int.0,
            vips: conf.vips.iter().map(|v| v.addr).collect(),
        }
    }
}

impl Entry {
    /// Its line in the record: `master NAME IFACE VRID FAMILY VERSION
    /// PRIORITY ADVERT_CS VIPS`.
    pub fn line(&self) -> String {
        let vips: Vec<String> = self.vips.iter().map(IpAddr::to_string).collect();
        format!(
            "master {} {} {} {} {} {} {} {}",
            self.name,
            self.interface,
            self.vrid,
            if self.v6 { 6 } else { 4 },
            self.version,
            self.priority,
            self.advert_cs,
            vips.join(",")
        )
    }

    /// Its fingerprint, for the live record (`live.rs`), which has a fixed
    /// size per instance: equal for every configuration `decide` would
    /// take as unchanged.
    pub fn fingerprint(&self) -> u64 {
        super::live::fingerprint(self.line().as_bytes())
    }
}

/// The record: when the last adverts went out (CLOCK_MONOTONIC, which runs
/// across processes until a reboot, and /run does not survive one), and
/// the instances that were MASTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the old process sent its last adverts.
    pub at: Micros,
    /// Its masters.
    pub masters: Vec<Entry>,
}

impl Record {
    /// As text: `at MICROS`, then one line per master.
    pub fn to_text(&self) -> String {
        let mut s = format!("at {}\n", self.at.0);
        for e in &self.masters {
            s += &e.line();
            s.push('\n');
        }
        s
    }

    /// From `to_text`'s form; None if it is not that.
    pub fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        let at = Micros(lines.next()?.strip_prefix("at ")?.trim().parse().ok()?);
        let mut masters = Vec::new();
        for l in lines.filter(|l| !l.trim().is_empty()) {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 8 || w[0] != "master" {
                return None;
            }
            masters.push(Entry {
                name: w[1].to_owned(),
                interface: w[2].to_owned(),
                vrid: w[3].parse().ok()?,
                v6: w[4] == "6",
                version: w[5].parse().ok()?,
                priority: w[6].parse().ok()?,
                advert_cs: w[7].parse().ok()?,
                vips: match w.get(8) {
                    Some(v) => v.split(',').map(|a| a.parse().ok()).collect::<Option<Vec<_>>>()?,
                    None => Vec::new(),
                },
            });
        }
        Some(Record { at, masters })
    }
}

/// Why an instance does not resume (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoResume {
    /// It was not MASTER at the stop (or is new).
    NotMaster,
    /// Its configuration changed in a way the backups would see
    /// (interface, VRID, family, version, priority, interval, VIPs).
    Changed,
    /// Too late: a backup may be taking over (the age, the limit).
    TooLate(Micros, Micros),
    /// The live record was being written when the worker died.
    Torn,
}

impl std::fmt::Display for NoResume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoResume::NotMaster => f.write_str("it was not MASTER"),
            NoResume::Changed => f.write_str("its configuration changed"),
            NoResume::Torn => f.write_str("the dead worker's record was being written when it died"),
            NoResume::TooLate(age, limit) => {
                write!(
                    f,
                    "its last advert went out {} ms ago, past the {} ms limit",
                    age.0 / 1000,
                    limit.0 / 1000
                )
            }
        }
    }
}

/// How late the new process may decide to resume: the backups'
/// Master_Down_Interval is at least 3 x Advertisement_Interval (Skew_Time
/// is never negative), and half an interval of it is kept as margin for
/// the new process's first advert (sent right after the decision) to
/// reach them: 2.5 x Advertisement_Interval after the last advert.
pub fn limit(advert_cs: u16) -> Micros {
    Micros(u64::from(advert_cs) * 25_000)
}

/// Whether instance `conf` resumes as MASTER from `rec` at `now`.
pub fn decide(rec: &Record, conf: &Instance, now: Micros) -> Result<(), NoResume> {
    let Some(e) = rec.masters.iter().find(|e| e.name == conf.name) else { return Err(NoResume::NotMaster) };
    if *e != Entry::of(conf) {
        return Err(NoResume::Changed);
    }
    in_time(rec.at, e.advert_cs, now)
}

/// Whether the last advert at `at` is recent enough at `now` for an
/// instance advertising every `advert_cs` to resume (`limit`).
fn in_time(at: Micros, advert_cs: u16, now: Micros) -> Result<(), NoResume> {
    let age = Micros(now.0.saturating_sub(at.0));
    let lim = limit(advert_cs);
    // A record from the future (it cannot be, on one boot's monotonic
    // clock) is not trusted.
    if now.0 < at.0 || age >= lim {
        return Err(NoResume::TooLate(age, lim));
    }
    Ok(())
}

/// As `decide`, from a crashed worker's live record (`live.rs`): the same
/// three conditions (MASTER at its configured priority, configured as it
/// was, last advert less than 2.5 x advert_int ago), each slot checked by
/// fingerprint. A torn record resumes nothing (what was being written is
/// unknown); an instance found in several slots (killed mid-reload)
/// resumes only if every one says so, from the oldest advert.
pub fn decide_live(slots: &[Option<SlotData>], conf: &Instance, now: Micros) -> Result<Micros, NoResume> {
    if slots.iter().any(Option::is_none) {
        return Err(NoResume::Torn);
    }
    let name = super::live::fingerprint(conf.name.as_bytes());
    let mine: Vec<&SlotData> = slots.iter().flatten().filter(|s| s.name == name).collect();
    if mine.is_empty() || mine.iter().any(|s| !s.master) {
        return Err(NoResume::NotMaster);
    }
    let ident = Entry::of(conf).fingerprint();
    if mine.iter().any(|s| s.ident != ident || s.advert_cs != conf.advert_int.0) {
        return Err(NoResume::Changed);
    }
    let at = mine.iter().map(|s| s.at).min().unwrap_or_default();
    in_time(at, conf.advert_int.0, now).map(|()| at)
}

/// Read and remove agent `name`'s record: it is good for one start only.
pub fn take(name: &str) -> Option<Record> {
    let path = record_file(name);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    let rec = Record::parse(&text);
    if rec.is_none() {
        log::warn!("{}: not a resume record; starting normally", path.display());
    }
    rec
}

/// Write agent `name`'s record.
pub fn save(name: &str, rec: &Record) -> std::io::Result<()> {
    let path = record_file(name);
    let tmp = path.with_extension("resume.tmp");
    std::fs::write(&tmp, rec.to_text())?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Instance {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vrrp-resume-{}-{n}.conf", std::process::id()));
        std::fs::write(&p, text).expect("write");
        let c = crate::config::load(&p).expect("valid").0;
        let _ = std::fs::remove_file(&p);
        c.instances.into_iter().next().expect("an instance")
    }

    const A: &str = "vrrp_instance A {\n interface eth0\n virtual_router_id 5\n priority 150\n advert_int 0.1\n version 3\n virtual_ipaddress {\n  192.0.2.10/24\n }\n}\n";

    #[test]
    fn the_record_reads_back() {
        let rec = Record { at: Micros(123_456), masters: vec![Entry::of(&conf(A))] };
        assert_eq!(Record::parse(&rec.to_text()), Some(rec));
        assert_eq!(Record::parse("garbage"), None);
        assert_eq!(Record::parse("at 1\nmaster x\n"), None);
    }

    #[test]
    fn a_master_resumes_within_two_and_a_half_intervals_only() {
        let c = conf(A);
        let rec = Record { at: Micros(1_000_000), masters: vec![Entry::of(&c)] };
        assert_eq!(decide(&rec, &c, Micros(1_000_000)), Ok(()));
        assert_eq!(decide(&rec, &c, Micros(1_249_999)), Ok(()));
        assert_eq!(
            decide(&rec, &c, Micros(1_250_000)),
            Err(NoResume::TooLate(Micros(250_000), Micros(250_000)))
        );
        assert!(matches!(decide(&rec, &c, Micros(999_999)), Err(NoResume::TooLate(..))));
    }

    #[test]
    fn a_changed_or_unknown_instance_starts_normally() {
        let c = conf(A);
        let rec = Record { at: Micros(0), masters: vec![Entry::of(&c)] };
        for changed in [
            A.replace("priority 150", "priority 151"),
            A.replace("advert_int 0.1", "advert_int 1"),
            A.replace("192.0.2.10/24", "192.0.2.11/24"),
            A.replace("virtual_router_id 5", "virtual_router_id 6"),
        ] {
            assert_eq!(decide(&rec, &conf(&changed), Micros(1)), Err(NoResume::Changed), "{changed}");
        }
        let other = conf(&A.replace("vrrp_instance A", "vrrp_instance B"));
        assert_eq!(decide(&rec, &other, Micros(1)), Err(NoResume::NotMaster));
        let none = Record { at: Micros(0), masters: vec![] };
        assert_eq!(decide(&none, &c, Micros(1)), Err(NoResume::NotMaster));
    }

    fn slot(c: &Instance, at: u64, master: bool) -> Option<SlotData> {
        Some(SlotData {
            at: Micros(at),
            ident: Entry::of(c).fingerprint(),
            name: super::super::live::fingerprint(c.name.as_bytes()),
            advert_cs: c.advert_int.0,
            master,
        })
    }

    /// After a crash, from the live record: the same three conditions as
    /// after a hitless restart.
    #[test]
    fn a_crashed_master_resumes_from_its_live_record_as_after_a_restart() {
        let c = conf(A);
        let other = conf(&A.replace("vrrp_instance A", "vrrp_instance B"));
        let slots = vec![slot(&other, 5, false), slot(&c, 1_000_000, true)];
        assert_eq!(decide_live(&slots, &c, Micros(1_249_999)), Ok(Micros(1_000_000)));
        assert!(matches!(decide_live(&slots, &c, Micros(1_250_000)), Err(NoResume::TooLate(..))));
        assert_eq!(decide_live(&slots, &other, Micros(1_000_001)), Err(NoResume::NotMaster));
        for changed in
            [A.replace("priority 150", "priority 151"), A.replace("192.0.2.10/24", "192.0.2.11/24")]
        {
            assert_eq!(
                decide_live(&slots, &conf(&changed), Micros(1_000_001)),
                Err(NoResume::Changed),
                "{changed}"
            );
        }
        // A torn slot: what was being written is unknown, nothing resumes.
        let torn = vec![None, slot(&c, 1_000_000, true)];
        assert_eq!(decide_live(&torn, &c, Micros(1_000_001)), Err(NoResume::Torn));
        // Killed mid-reload, found twice: every slot must say MASTER, and
        // the oldest advert counts.
        let twice = vec![slot(&c, 900_000, true), slot(&c, 1_000_000, true)];
        assert_eq!(decide_live(&twice, &c, Micros(1_000_001)), Ok(Micros(900_000)));
        let split = vec![slot(&c, 900_000, false), slot(&c, 1_000_000, true)];
        assert_eq!(decide_live(&split, &c, Micros(1_000_001)), Err(NoResume::NotMaster));
    }

    /// The fingerprint follows what `decide` compares, and nothing else.
    #[test]
    fn the_fingerprint_is_the_identity_decide_checks() {
        let c = conf(A);
        let same = conf(
            &A.replace("advert_int 0.1", "advert_int 0.10")
                .replace("  192.0.2.10/24\n", "  192.0.2.10/24 \n"),
        );
        assert_eq!(Entry::of(&c).fingerprint(), Entry::of(&same).fingerprint());
        let other = conf(&A.replace("virtual_router_id 5", "virtual_router_id 6"));
        assert_ne!(Entry::of(&c).fingerprint(), Entry::of(&other).fingerprint());
    }
}
