//! The VRRP state machine (RFC 5798 6.4, updated by RFC 9568; keepalived's
//! behaviour where they leave room), sans I/O: it is fed the time, an
//! input or a timer expiry, and answers with actions. No sockets, no
//! clocks, no sleeps, so every transition is tested with a virtual clock.
//!
//! Timers are deadlines in a table: `poll_timeout` gives the next one,
//! `handle_timeout(now)` fires what is due. All timer arithmetic is integer
//! microseconds.

use std::fmt;
use std::net::IpAddr;

use vrrp_common::Centis;
use vrrp_common::wire::Version;

/// Monotonic time or a duration, in microseconds. Only the daemon loop
/// reads the real clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub u64);

impl Micros {
    /// From milliseconds.
    pub const fn ms(ms: u64) -> Micros {
        Micros(ms * 1000)
    }

    /// From centiseconds.
    pub const fn from_centis(c: Centis) -> Micros {
        Micros(c.as_micros())
    }

    /// `self + d`, saturating.
    pub const fn after(self, d: Micros) -> Micros {
        Micros(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06} s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// RFC 5798 6.4 states (and keepalived's FAULT, entered by the health
/// checks and link tracking).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running.
    Init,
    /// Watching the master.
    Backup,
    /// Holding the virtual addresses and advertising.
    Master,
    /// Out of the election: no adverts, no addresses.
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// The instance's configuration, as far as the state machine cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// keepalived's instance name, for the logs (`VI_1`).
    pub name: String,
    /// VRRP version.
    pub version: Version,
    /// Configured (base) priority, 1-255.
    pub priority: u8,
    /// Our Advertisement_Interval.
    pub advert_int: Centis,
    /// Our primary address on the interface, for the equal-priority
    /// tie-break (RFC 5798 6.4.3).
    pub primary: IpAddr,
    /// Preempt_Mode (keepalived's `nopreempt` clears it).
    pub preempt: bool,
    /// keepalived's `preempt_delay`: how long a lower-priority master is
    /// tolerated before we preempt it.
    pub preempt_delay: Micros,
    /// keepalived's `lower_prio_no_advert` (forced by strict mode): a
    /// master does not answer a lower-priority advert with its own at
    /// once; its next scheduled advert tells the other (RFC 5798 6.4.3
    /// says to discard it).
    pub lower_prio_no_advert: bool,
}

/// Something the state machine reacts to, besides timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A valid advert for our VRID (the receive path has checked it).
    Advert {
        /// Sender's address.
        src: IpAddr,
        /// Its priority.
        priority: u8,
        /// Its advertised interval (v3's Max Adver Int).
        interval: Centis,
    },
    /// The effective priority changed (health checks, tracking).
    Priority(u8),
    /// Something this instance depends on failed (FAULT) or recovered.
    Fault(bool),
    /// Stop: resign if master.
    Shutdown,
    /// From the instance's sync group (`sync_group.rs`): every member
    /// wants MASTER, or the group is MASTER already: become master now.
    SyncMaster,
    /// From the instance's sync group: another member left MASTER for
    /// BACKUP, so this one follows (keepalived's vrrp_sync_backup: no
    /// priority-0 advert, the peer takes over on its own timer).
    SyncBackup,
}

/// What the daemon must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (0 to resign).
    SendAdvert {
        /// Priority to advertise.
        priority: u8,
    },
    /// Add the virtual addresses.
    AddVips,
    /// Remove the virtual addresses (only those we added).
    RemoveVips,
    /// Gratuitous ARP / unsolicited neighbour advertisements for the VIPs,
    /// repeated and refreshed per the garp settings.
    Announce,
    /// The state changed (notify scripts, metrics).
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// A line for the log.
    Log(Note),
    /// A sync group member's Master_Down_Timer expired, but it may only
    /// become master with the rest of its group: it stays BACKUP with the
    /// timer restarted, and its group decides (keepalived's
    /// vrrp_sync_can_goto_master).
    WantMaster,
}

/// Log lines, worded as keepalived's so its users recognise them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Startup into BACKUP.
    EnteringBackupInit,
    /// Into BACKUP.
    EnteringBackup,
    /// Into MASTER.
    EnteringMaster,
    /// Into FAULT.
    EnteringFault,
    /// As master, an advert that beats us.
    MasterHigherPriority {
        /// Sender.
        src: IpAddr,
        /// Its priority.
        theirs: u8,
        /// Ours.
        ours: u8,
    },
    /// As master, an advert we beat: we answer at once.
    LowerPriorityElection {
        /// Sender.
        src: IpAddr,
        /// Its priority.
        theirs: u8,
        /// Ours.
        ours: u8,
        /// Whether we answer with an advert at once (keepalived then
        /// adds ", forcing new election").
        forcing: bool,
    },
    /// As backup, the master resigned.
    BackupPriorityZero,
    /// As master, another router resigned: we answer at once.
    MasterPriorityZero,
    /// We resigned.
    SentPriorityZero,
    /// v3: the master's interval differs from what we had.
    IntervalUpdated {
        /// New Master_Adver_Interval.
        to: Centis,
        /// Previous one.
        from: Centis,
    },
    /// The effective priority moved.
    PriorityChanged {
        /// Before.
        from: u8,
        /// After.
        to: u8,
    },
    /// A lower-priority master is tolerated for `preempt_delay`.
    PreemptDelayStarted(Micros),
    /// Resumed as MASTER after a hitless restart.
    Resumed,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::EnteringBackupInit => f.write_str("Entering BACKUP STATE (init)"),
            Note::EnteringBackup => f.write_str("Entering BACKUP STATE"),
            Note::EnteringMaster => f.write_str("Entering MASTER STATE"),
            Note::EnteringFault => f.write_str("Entering FAULT STATE"),
            // keepalived (vrrp.c, vrrp_state_master_rx) names a tie lost on
            // the address as such, not as a higher priority.
            Note::MasterHigherPriority { src, theirs, ours } if theirs == ours => {
                write!(
                    f,
                    "Master received advert from {src} with same priority {theirs} but higher IP address than ours"
                )
            }
            Note::MasterHigherPriority { src, theirs, ours } => {
                write!(f, "Master received advert from {src} with higher priority {theirs}, ours {ours}")
            }
            Note::LowerPriorityElection { src, theirs, ours, forcing } => {
                write!(f, "Received advert from {src} with lower priority {theirs}, ours {ours}")?;
                if *forcing { f.write_str(", forcing new election") } else { Ok(()) }
            }
            Note::BackupPriorityZero => f.write_str("Backup received priority 0 advertisement"),
            Note::MasterPriorityZero => f.write_str("Master received priority 0 message"),
            Note::SentPriorityZero => f.write_str("sent 0 priority"),
            Note::IntervalUpdated { to, from } => write!(
                f,
                "advertisement interval updated to {} milli-sec from {} milli-sec",
                u32::from(to.0) * 10,
                u32::from(from.0) * 10
            ),
            Note::PriorityChanged { from, to } => {
                write!(f, "Changing effective priority from {from} to {to}")
            }
            Note::PreemptDelayStarted(d) => write!(f, "start preempt delay ({d})"),
            Note::Resumed => f.write_str("Resuming MASTER STATE (hitless restart or crash recovery)"),
        }
    }
}

/// The most an Adver_Timer fires early to join a batch (`adver_window`).
const ADVER_WINDOW_MAX: Micros = Micros(1_000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// RFC 5798 6.2 Adver_Timer (master).
    Adver = 0,
    /// RFC 5798 6.2 Master_Down_Timer (backup).
    MasterDown = 1,
}

/// One virtual router instance.
#[derive(Clone, Debug)]
pub struct Machine {
    params: Params,
    state: State,
    /// Effective priority (base plus tracking weights).
    priority: u8,
    /// RFC 5798 6.1 Master_Adver_Interval (v3 learns it; v2 is ours).
    master_adver_int: Centis,
    timers: [Option<Micros>; 2],
    /// When a lower-priority master stops being tolerated (preempt_delay).
    preempt_at: Option<Micros>,
    /// A fault holds the instance out of the election.
    fault: bool,
    /// A member of a sync group: it never becomes master on its own.
    synced: bool,
    /// As a synced backup: its Master_Down_Timer expired and no advert has
    /// held it down since (keepalived's `wantstate` MASTER).
    wants_master: bool,
    /// The receive path is not up yet (the XDP attach still runs): the
    /// instance cannot hear its master, so its silence means nothing.
    deaf: bool,
}

impl Machine {
    /// A machine in Init; `start` runs it.
    pub fn new(params: Params) -> Machine {
        let priority = params.priority;
        let master_adver_int = params.advert_int;
        Machine {
            params,
            state: State::Init,
            priority,
            master_adver_int,
            timers: [None; 2],
            preempt_at: None,
            fault: false,
            synced: false,
            wants_master: false,
            deaf: false,
        }
    }

    /// The receive path is not up yet (before `start`): the instance may
    /// enter BACKUP, but its Master_Down_Timer does not run until
    /// `hearing`. RFC 5798 6.4.2 makes a backup master only after a
    /// Master_Down_Interval without an advert, and time before the
    /// receive path was up is not time it listened: a backup must never
    /// take over because of silence it could not hear.
    pub fn set_deaf(&mut self) {
        self.deaf = true;
    }

    /// Whether the receive path is still down (`set_deaf`).
    pub fn is_deaf(&self) -> bool {
        self.deaf
    }

    /// The receive path is up from `now`: a backup's Master_Down_Timer
    /// starts, a whole Master_Down_Interval from now (RFC 5798 6.4.2),
    /// whatever it would have been had the instance heard all along.
    pub fn hearing(&mut self, now: Micros) {
        if !self.deaf {
            return;
        }
        self.deaf = false;
        if self.state == State::Backup {
            self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
        }
    }

    /// Make this instance a member of a sync group (before `start`): a
    /// Master_Down_Timer that expires then asks the group (`WantMaster`)
    /// instead of taking over, and the group's `SyncMaster` /
    /// `SyncBackup` move it.
    pub fn set_synced(&mut self) {
        self.synced = true;
    }

    /// As a sync group member in BACKUP, whether it would be master but
    /// for its group (keepalived's wantstate MASTER); a master wants it too.
    pub fn wants_master(&self) -> bool {
        self.state == State::Master || (self.state == State::Backup && self.wants_master)
    }

    /// Our primary address changed (the interface was re-created and the
    /// address came back, or was only known once it existed).
    pub fn set_primary(&mut self, primary: IpAddr) {
        self.params.primary = primary;
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.params.name
    }

    /// Master_Adver_Interval.
    pub fn master_adver_int(&self) -> Centis {
        self.master_adver_int
    }

    /// RFC 5798 6.1 Skew_Time, with the effective priority: v3
    /// ((256 - Priority) * Master_Adver_Interval) / 256; v2 (RFC 3768 6.1)
    /// (256 - Priority) / 256 seconds.
    pub fn skew_time(&self) -> Micros {
        Micros(self.master_adver_int.skew_micros(self.params.version == Version::V3, self.priority))
    }

    /// RFC 5798 6.1 Master_Down_Interval: 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Micros {
        // The kernel's watch computes the same (vrrp-common), from the
        // advert's interval.
        Micros(self.master_adver_int.master_down_micros(self.params.version == Version::V3, self.priority))
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Micros> {
        self.timers.iter().flatten().min().copied()
    }

    /// The Master_Down_Timer's deadline, if it runs (the daemon checks the
    /// kernel's last-seen time against it before acting: a late wake-up
    /// must not turn into a false takeover).
    pub fn master_down_deadline(&self) -> Option<Micros> {
        self.timers[Timer::MasterDown as usize]
    }

    fn set(&mut self, t: Timer, at: Option<Micros>) {
        // Deaf, the Master_Down_Timer stays off (`set_deaf`); `hearing`
        // starts it.
        self.timers[t as usize] = if t == Timer::MasterDown && self.deaf { None } else { at };
    }

    /// RFC 5798 6.4.1: leave Init.
    pub fn start(&mut self, now: Micros, out: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        if self.fault {
            self.enter_fault(out);
        } else if self.priority == 255 && !self.synced {
            // The address owner takes over at once.
            self.become_master(now, out);
        } else {
            // keepalived enters BACKUP at startup whatever `state` says
            // (measured with 2.2.7: `state MASTER` at priority 150 took
            // over after 3 x advert_int + skew, as BACKUP did). A sync
            // group's address owner too: its group goes MASTER when every
            // member's timer has run out (vrrp_sync_can_goto_master).
            self.master_adver_int = self.params.advert_int;
            self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
            self.transition(State::Backup, Note::EnteringBackupInit, out);
            if self.synced && self.priority == 255 {
                // keepalived (vrrp_init_state): an address owner wants
                // MASTER from the start; its group goes MASTER at once if
                // every member is an owner, else when the others' timers
                // have run out.
                self.wants_master = true;
                out.push(Action::WantMaster);
            }
        }
    }

    /// A reload changed the instance's configuration (`params`), its
    /// identity (version) aside: the state and the running timers stay;
    /// what changed applies from now. A master's next advert goes out one
    /// new Advertisement_Interval from now (RFC 5798 6.4.3 resets the
    /// Adver_Timer to it on each advert); a v2 instance's
    /// Master_Adver_Interval is its own interval. A changed base priority
    /// reaches the machine as `Input::Priority` (the tracking weights
    /// apply to it), after this.
    pub fn reconfigure(&mut self, now: Micros, params: Params) {
        let interval_changed = params.advert_int != self.params.advert_int;
        let preempt_changed = params.preempt_delay != self.params.preempt_delay;
        self.params = params;
        if preempt_changed {
            self.preempt_at = None;
        }
        if !interval_changed {
            return;
        }
        if self.params.version == Version::V2 || self.state != State::Backup {
            self.master_adver_int = self.params.advert_int;
        }
        if self.state == State::Master {
            self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
        }
    }

    /// Leave Init straight into MASTER without a transition to announce: a
    /// hitless restart, where the previous process of this agent was
    /// master and stopped without resigning less than a
    /// Master_Down_Interval ago (the caller checks the record). To the
    /// backups nothing happened but a late advert: RFC 5798 6.4.2 lets a
    /// backup act only when Master_Down_Timer fires, and an advert of
    /// equal or higher priority resets it. So: advertise at once, keep
    /// the VIPs (the reconciler adopts the recorded ones), no gratuitous
    /// ARPs (the addresses never moved), no Transition (no notify script:
    /// the node was master all along).
    pub fn resume_master(&mut self, now: Micros, out: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        if self.fault {
            // Something it depends on failed meanwhile: a normal start.
            self.start(now, out);
            return;
        }
        self.state = State::Master;
        self.master_adver_int = self.params.advert_int;
        out.push(Action::Log(Note::Resumed));
        out.push(Action::SendAdvert { priority: self.priority });
        out.push(Action::AddVips);
        self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
    }

    /// React to `input` at `now`.
    pub fn handle(&mut self, now: Micros, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Advert { src, priority, interval } => self.advert(now, src, priority, interval, out),
            Input::Priority(p) => self.set_priority(now, p, out),
            Input::Fault(f) => self.set_fault(now, f, out),
            Input::Shutdown => self.shutdown(out),
            Input::SyncMaster => {
                if self.state == State::Backup {
                    self.become_master(now, out);
                }
            }
            Input::SyncBackup => {
                if self.state == State::Master {
                    self.become_backup(now, out);
                }
            }
        }
    }

    /// Fire the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Micros, out: &mut Vec<Action>) {
        self.fire(now, Micros(0), out);
    }

    /// The Adver_Timer's deadline, if it runs: when a master's next
    /// periodic advert is due. The daemon may hand the periodic adverts to
    /// a thread of their own (`daemon/tx_thread.rs`), which follows this
    /// schedule from the last time the machine reset it (every advert the
    /// machine sends itself resets it, RFC 5798 6.4.3).
    pub fn adver_deadline(&self) -> Option<Micros> {
        if self.state == State::Master { self.timers[Timer::Adver as usize] } else { None }
    }

    /// The configured Advertisement_Interval (a master's period).
    pub fn advert_interval(&self) -> Micros {
        Micros::from_centis(self.params.advert_int)
    }

    /// How much early an Adver_Timer may fire to go out with others due at
    /// the same moment: a sixteenth of the interval, at most 1 ms.
    pub fn adver_window(&self) -> Micros {
        Micros((Micros::from_centis(self.params.advert_int).0 / 16).min(ADVER_WINDOW_MAX.0))
    }

    /// As `handle_timeout`, and a master's Adver_Timer also fires if it
    /// comes due within `adver_window` of `now`. The daemon wakes for the
    /// earliest deadline; the adverts of the instances due just after go
    /// with it, in one batch, and their next ones fall due together too
    /// (the timer is reset from `now`). RFC 5798 6.4.3 fixes each
    /// instance's Advertisement_Interval, not its phase: a backup's
    /// Master_Down_Interval (3 x interval + Skew_Time) does not notice one
    /// advert a sixteenth of an interval early.
    pub fn handle_timeout_coalesced(&mut self, now: Micros, out: &mut Vec<Action>) {
        let window = self.adver_window();
        self.fire(now, window, out);
    }

    fn fire(&mut self, now: Micros, adver_window: Micros, out: &mut Vec<Action>) {
        if self.timers[Timer::Adver as usize].is_some_and(|t| t <= now.after(adver_window))
            && self.state == State::Master
        {
            // RFC 5798 6.4.3: send an advert, reset the Adver_Timer.
            out.push(Action::SendAdvert { priority: self.priority });
            self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
        }
        if self.timers[Timer::MasterDown as usize].is_some_and(|t| t <= now) && self.state == State::Backup {
            if self.synced {
                // keepalived (vrrp_sync_can_goto_master): want MASTER, and
                // wait another Master_Down_Interval for the rest of the
                // group; the group moves us as soon as every member wants it.
                self.wants_master = true;
                self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
                out.push(Action::WantMaster);
            } else {
                // RFC 5798 6.4.2: the master is gone.
                self.become_master(now, out);
            }
        }
    }

    fn transition(&mut self, to: State, note: Note, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.wants_master = false;
        out.push(Action::Log(note));
        out.push(Action::Transition { from, to });
    }

    fn become_master(&mut self, now: Micros, out: &mut Vec<Action>) {
        // RFC 5798 6.4.1/6.4.2: advertise, announce the addresses, and
        // start the Adver_Timer. The advert goes before the addresses are
        // added: a master we preempt removes its VIPs when it arrives, so
        // the two hold them together for as short a time as can be.
        self.set(Timer::MasterDown, None);
        self.preempt_at = None;
        self.transition(State::Master, Note::EnteringMaster, out);
        out.push(Action::SendAdvert { priority: self.priority });
        out.push(Action::AddVips);
        out.push(Action::Announce);
        self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
    }

    fn become_backup(&mut self, now: Micros, out: &mut Vec<Action>) {
        self.set(Timer::Adver, None);
        self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
        self.transition(State::Backup, Note::EnteringBackup, out);
        out.push(Action::RemoveVips);
    }

    fn enter_fault(&mut self, out: &mut Vec<Action>) {
        self.timers = [None; 2];
        self.preempt_at = None;
        let was_master = self.state == State::Master;
        if was_master {
            // Let the backups take over at once (keepalived does the same).
            out.push(Action::SendAdvert { priority: 0 });
        }
        self.transition(State::Fault, Note::EnteringFault, out);
        if was_master {
            out.push(Action::RemoveVips);
        }
    }

    /// The learned interval (v3) and the derived Master_Down_Interval.
    fn learn_interval(&mut self, interval: Centis, out: &mut Vec<Action>) {
        if self.params.version == Version::V3 && interval != self.master_adver_int && interval.0 != 0 {
            out.push(Action::Log(Note::IntervalUpdated { to: interval, from: self.master_adver_int }));
            self.master_adver_int = interval;
        }
    }

    /// Whether an advert (`theirs` from `src`) beats us as master: higher
    /// priority, or equal with a higher primary address (RFC 5798 6.4.3).
    fn beats_us(&self, src: IpAddr, theirs: u8) -> bool {
        theirs > self.priority || (theirs == self.priority && addr_gt(src, self.params.primary))
    }

    fn advert(&mut self, now: Micros, src: IpAddr, theirs: u8, interval: Centis, out: &mut Vec<Action>) {
        match self.state {
            State::Init | State::Fault => {}
            State::Backup => {
                if theirs == 0 {
                    // RFC 5798 6.4.2: the master resigned; take over after
                    // Skew_Time (the highest priority backup first).
                    out.push(Action::Log(Note::BackupPriorityZero));
                    self.set(Timer::MasterDown, Some(now.after(self.skew_time())));
                    return;
                }
                let tolerate = !self.params.preempt || theirs >= self.priority || self.tolerating(now, out);
                if tolerate {
                    if theirs >= self.priority {
                        self.preempt_at = None;
                    }
                    // keepalived (vrrp_state_backup): an advert we accept
                    // means we want BACKUP again, so a sync group that
                    // waited for us stays BACKUP.
                    self.wants_master = false;
                    self.learn_interval(interval, out);
                    self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
                }
                // Otherwise (lower priority, preempting): discard it, and
                // the Master_Down_Timer will make us master.
            }
            State::Master => {
                if theirs == 0 {
                    // RFC 5798 6.4.3: answer a resignation at once.
                    out.push(Action::Log(Note::MasterPriorityZero));
                    out.push(Action::SendAdvert { priority: self.priority });
                    self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
                } else if self.beats_us(src, theirs) {
                    out.push(Action::Log(Note::MasterHigherPriority { src, theirs, ours: self.priority }));
                    self.learn_interval(interval, out);
                    self.become_backup(now, out);
                } else {
                    // keepalived: a lower-priority master is told at once,
                    // unless lower_prio_no_advert (strict mode).
                    let forcing = !self.params.lower_prio_no_advert;
                    out.push(Action::Log(Note::LowerPriorityElection {
                        src,
                        theirs,
                        ours: self.priority,
                        forcing,
                    }));
                    if forcing {
                        out.push(Action::SendAdvert { priority: self.priority });
                        self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
                    }
                }
            }
        }
    }

    /// With `preempt_delay`, a lower-priority master is tolerated until the
    /// delay, counted from its first such advert, has passed.
    fn tolerating(&mut self, now: Micros, out: &mut Vec<Action>) -> bool {
        if self.params.preempt_delay.0 == 0 {
            return false;
        }
        match self.preempt_at {
            None => {
                self.preempt_at = Some(now.after(self.params.preempt_delay));
                out.push(Action::Log(Note::PreemptDelayStarted(self.params.preempt_delay)));
                true
            }
            Some(at) => now < at,
        }
    }

    fn set_priority(&mut self, now: Micros, p: u8, out: &mut Vec<Action>) {
        // 255 is the address owner's alone: tracking never reaches it.
        let p = if self.params.priority == 255 { 255 } else { p.clamp(1, 254) };
        if p == self.priority {
            return;
        }
        out.push(Action::Log(Note::PriorityChanged { from: self.priority, to: p }));
        self.priority = p;
        if self.state == State::Master {
            // The next advert carries it: send it now.
            out.push(Action::SendAdvert { priority: p });
            self.set(Timer::Adver, Some(now.after(Micros::from_centis(self.params.advert_int))));
        }
    }

    fn set_fault(&mut self, now: Micros, fault: bool, out: &mut Vec<Action>) {
        if fault == self.fault {
            return;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Backup | State::Master) => self.enter_fault(out),
            (false, State::Fault) => {
                self.master_adver_int = self.params.advert_int;
                self.set(Timer::MasterDown, Some(now.after(self.master_down_interval())));
                self.transition(State::Backup, Note::EnteringBackup, out);
            }
            _ => {}
        }
    }

    fn shutdown(&mut self, out: &mut Vec<Action>) {
        let was_master = self.state == State::Master;
        self.timers = [None; 2];
        if was_master {
            // RFC 5798 6.4.3: resign with priority 0, then drop the VIPs.
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::Log(Note::SentPriorityZero));
            out.push(Action::RemoveVips);
        }
        if self.state != State::Init {
            let from = self.state;
            self.state = State::Init;
            out.push(Action::Transition { from, to: State::Init });
        }
    }
}

/// `a > b` as unsigned integers in network byte order, for same-family
/// addresses (RFC 5798 6.4.3's tie-break); different families never tie.
fn addr_gt(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets() > b.octets(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets() > b.octets(),
        _ => false,
    }
}
