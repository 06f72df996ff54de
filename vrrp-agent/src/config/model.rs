//! The configuration's meaning: global settings, VRRP instances and
//! scripts, checked value by value. Errors refuse the file; anything
//! accepted but ignored or adjusted is a warning. Never silent.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use vrrp_common::Centis;
use vrrp_common::wire::{Family, Version};

use super::diag::{Diag, Severity};
use super::keywords;
use super::lexer::Loc;
use super::routes::{self, Route, Rule, RulePriorities};
use super::trackers::{self, TrackFile, TrackProcess, TrackRef};
use super::tree::Stmt;

/// keepalived's `state`: the initial wish (see `machine::Machine::start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP` (the default).
    Backup,
}

/// v2 authentication as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthConf {
    /// `auth_type PASS` with its password (keepalived uses 8 bytes).
    Pass(String),
    /// `auth_type AH` (IPsec Authentication Header, HMAC-MD5-96) with its
    /// password, the key (keepalived uses 8 bytes).
    Ah(String),
}

/// One address of `virtual_ipaddress`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (default /32 or /128, as keepalived).
    pub prefix: u8,
    /// `dev IFACE` (default: the instance's interface).
    pub dev: Option<String>,
    /// `label LABEL`.
    pub label: Option<String>,
    /// `scope SCOPE`.
    pub scope: Option<String>,
    /// `no_track`: not put back if someone deletes it (until the instance
    /// next becomes MASTER; a static one until the agent restarts).
    pub no_track: bool,
}

/// A `track_script` or `track_interface` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// Script or interface name.
    pub name: String,
    /// `weight W`, if given.
    pub weight: Option<i32>,
    /// `reverse`.
    pub reverse: bool,
}

/// `vrrp_script NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Name.
    pub name: String,
    /// The command line.
    pub script: String,
    /// Time between runs (default 1 s; fractions to the millisecond, as
    /// keepalived 2.3 reads them).
    pub interval: std::time::Duration,
    /// Time before a run is killed (default: the interval).
    pub timeout: Option<std::time::Duration>,
    /// Weight (default 0) and `reverse`.
    pub weight: i32,
    /// `weight W reverse`.
    pub reverse: bool,
    /// Successes to become good (default 1).
    pub rise: u32,
    /// Failures to become bad (default 1).
    pub fall: u32,
    /// `user USER [GROUP]`.
    pub user: Option<(String, Option<String>)>,
    /// Where `user` is.
    pub user_loc: Option<Loc>,
    /// `init_fail`.
    pub init_fail: bool,
    /// Where it is defined.
    pub loc: Loc,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Name (`VI_1`).
    pub name: String,
    /// Where it is defined.
    pub loc: Loc,
    /// `state`.
    pub state: InitialState,
    /// `interface`.
    pub interface: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority` (default 100).
    pub priority: u8,
    /// `advert_int` (default 1 s).
    pub advert_int: Centis,
    /// `version` (default: `vrrp_version` in global_defs, else 2).
    pub version: Version,
    /// The address family of the VIPs.
    pub family: Family,
    /// `unicast_src_ip`.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { ... }`.
    pub unicast_peers: Vec<IpAddr>,
    /// `authentication { ... }`.
    pub auth: Option<AuthConf>,
    /// `virtual_ipaddress { ... }`.
    pub vips: Vec<Vip>,
    /// `virtual_ipaddress_excluded { ... }`: added and removed, not advertised.
    pub vips_excluded: Vec<Vip>,
    /// Preempt_Mode (`nopreempt` clears it).
    pub preempt: bool,
    /// `preempt_delay` (0-1000 s, keepalived's TIMER_MAX_SEC).
    pub preempt_delay: std::time::Duration,
    /// `garp_master_delay` seconds (default: global, else 5).
    pub garp_master_delay: u32,
    /// `garp_master_repeat` (default: global, else 5).
    pub garp_master_repeat: u32,
    /// `garp_master_refresh` seconds, 0 = off (default: global, else 0).
    pub garp_master_refresh: u32,
    /// `track_interface { ... }`.
    pub track_interface: Vec<Track>,
    /// `track_script { ... }`.
    pub track_script: Vec<Track>,
    /// `track_file { ... }`.
    pub track_file: Vec<TrackRef>,
    /// `track_process { ... }`.
    pub track_process: Vec<TrackRef>,
    /// `dont_track_primary`: the instance's own link going down does not
    /// put it in FAULT (keepalived's VRRP_FLAG_DONT_TRACK_PRIMARY).
    pub dont_track_primary: bool,
    /// `garp_master_refresh_repeat` (default: global, else 1): gratuitous
    /// ARPs / NAs per address at each refresh.
    pub garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval` from global_defs: pause between two
    /// gratuitous ARPs.
    pub garp_interval: std::time::Duration,
    /// `vrrp_gna_interval`: the same for unsolicited NAs.
    pub gna_interval: std::time::Duration,
    /// `garp_lower_prio_repeat`: gratuitous ARPs / NAs per address when a
    /// MASTER hears a lower priority (keepalived's default: the global
    /// setting, else `vrrp_garp_master_repeat`; 0 under strict mode).
    pub garp_lower_prio_repeat: u32,
    /// `garp_lower_prio_delay` seconds: a second such burst this much
    /// later (0: none).
    pub garp_lower_prio_delay: u32,
    /// `notify`, `notify_master`, `notify_backup`, `notify_fault`, `notify_stop`.
    pub notify: Notify,
    /// `v3_checksum_as_v2`: send the RFC 9568 checksum (no pseudo-header).
    pub v3_checksum_as_v2: bool,
    /// `virtual_routes { ... }`: installed while MASTER.
    pub routes: Vec<Route>,
    /// `virtual_rules { ... }`: installed while MASTER.
    pub rules: Vec<Rule>,
    /// `strict_mode` (default: `vrrp_strict` in global_defs): keepalived's
    /// strict RFC compliance, applied to this instance's settings below.
    pub strict: bool,
    /// Accept Mode (RFC 5798 6.1) after keepalived's defaults: `accept` /
    /// `no_accept`, else on unless strict mode, always on for the address
    /// owner (priority 255). See [`Instance::drops_to_vips`].
    pub accept: bool,
    /// `lower_prio_no_advert` (default `vrrp_lower_prio_no_advert`, forced
    /// on by strict mode): a master that hears a lower-priority advert does
    /// not answer it with an advert of its own.
    pub lower_prio_no_advert: bool,
    /// `use_vmac [NAME] [MAC]`: the VIPs live on a macvlan with the
    /// virtual MAC address (RFC 5798 7.3).
    pub vmac: Option<VmacConf>,
    /// `vmac_xmit_base`: adverts go out on the base interface, not the
    /// macvlan.
    pub vmac_xmit_base: bool,
}

impl Instance {
    /// Whether, while MASTER, packets addressed to the VIPs (and excluded
    /// VIPs) are dropped: non-accept mode and not the address owner, as
    /// keepalived's `vrrp_handle_accept_mode` decides (an owner's
    /// `no_accept` has no effect).
    pub fn drops_to_vips(&self) -> bool {
        !self.accept && self.priority != 255
    }
}

/// `use_vmac [NAME] [MAC]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmacConf {
    /// The macvlan's name (default `vrrp.VRID`, keepalived's naming).
    pub name: Option<String>,
    /// A MAC address instead of RFC 5798's 00:00:5e:00:01:VRID
    /// (00:00:5e:00:02:VRID for IPv6); five octets take the VRID as sixth.
    pub mac: Option<[u8; 6]>,
}

impl VmacConf {
    /// The macvlan's MAC address for VRID `vrid` of `family`.
    pub fn mac_for(&self, vrid: u8, family: Family) -> [u8; 6] {
        self.mac.unwrap_or(virtual_mac(vrid, family))
    }
}

/// RFC 5798 7.3: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID}
/// for IPv6.
pub fn virtual_mac(vrid: u8, family: Family) -> [u8; 6] {
    [0, 0, 0x5e, 0, if family == Family::V6 { 2 } else { 1 }, vrid]
}

/// The kernel's `dev_valid_name`, as keepalived checks a VMAC's name.
fn dev_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// `use_vmac`'s MAC argument, as keepalived reads it: six hex octets, or
/// five (the VRID is the sixth; `None` in the last place). Multicast
/// and RFC 5798 addresses are refused (keepalived ignores them).
fn vmac_mac(v: &str) -> Result<[Option<u8>; 6], &'static str> {
    let parts: Vec<&str> = v.trim_end_matches(':').split(':').collect();
    if !(5..=6).contains(&parts.len()) {
        return Err("a MAC address has five or six octets");
    }
    let mut out = [None; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 {
            return Err("each octet is one or two hex digits");
        }
        out[i] = Some(u8::from_str_radix(p, 16).map_err(|_| "each octet is one or two hex digits")?);
    }
    if out[0].is_some_and(|b| b & 1 == 1) {
        return Err("it is a multicast address");
    }
    if out[..4] == [Some(0), Some(0), Some(0x5e), Some(0)] && matches!(out[4], Some(1 | 2)) {
        return Err("it is an RFC 5798 address (the default already)");
    }
    Ok(out)
}

/// Notify scripts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// `notify`.
    pub any: Option<String>,
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
    /// Where each one is set, with its keyword.
    pub locs: Vec<(&'static str, Loc)>,
}

impl Notify {
    /// The configured scripts with their keyword and location.
    pub fn scripts(&self) -> impl Iterator<Item = (&'static str, &str, Option<&Loc>)> {
        [
            ("notify", &self.any),
            ("notify_master", &self.master),
            ("notify_backup", &self.backup),
            ("notify_fault", &self.fault),
            ("notify_stop", &self.stop),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            let loc = self.locs.iter().rev().find(|(kk, _)| *kk == k).map(|(_, l)| l);
            v.as_deref().map(|v| (k, v, loc))
        })
    }
}

/// `global_defs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// `router_id`.
    pub router_id: Option<String>,
    /// `vrrp_version`.
    pub vrrp_version: Version,
    /// `vrrp_garp_master_delay`.
    pub garp_master_delay: u32,
    /// `vrrp_garp_master_repeat`.
    pub garp_master_repeat: u32,
    /// `vrrp_garp_master_refresh`.
    pub garp_master_refresh: u32,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`.
    pub script_user: Option<(String, Option<String>)>,
    /// Where `script_user` is.
    pub script_user_loc: Option<Loc>,
    /// `v3_checksum_as_v2` in global_defs: the default for instances.
    pub v3_checksum_as_v2: bool,
    /// `vrrp_strict`: the default of every instance's `strict_mode`.
    pub vrrp_strict: bool,
    /// `vrrp_lower_prio_no_advert`: the default of `lower_prio_no_advert`.
    pub lower_prio_no_advert: bool,
    /// `net_namespace NAME` (top level or in global_defs): the network
    /// namespace (/run/netns/NAME) the agent runs in.
    pub net_namespace: Option<String>,
    /// `vrrp_garp_master_refresh_repeat` (default 1).
    pub garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval`: pause between two gratuitous ARPs on an
    /// interface (default 0: back to back).
    pub garp_interval: std::time::Duration,
    /// `vrrp_gna_interval`: the same for unsolicited NAs.
    pub gna_interval: std::time::Duration,
    /// `vrrp_garp_lower_prio_repeat` (keepalived's default, when unset:
    /// `vrrp_garp_master_repeat`).
    pub garp_lower_prio_repeat: Option<u32>,
    /// `vrrp_garp_lower_prio_delay` seconds (default when unset:
    /// `vrrp_garp_master_delay`).
    pub garp_lower_prio_delay: Option<u32>,
    /// `vrrp_startup_delay`: instances stay in INIT this long at start.
    pub startup_delay: std::time::Duration,
    /// `notify_fifo FILE` / `vrrp_notify_fifo FILE` and their
    /// `*_script`: FIFOs state changes are written to.
    pub fifos: Vec<crate::notify_fifo::FifoConf>,
    /// `vrrp_priority`: the VRRP process's nice value (-20..=19).
    pub vrrp_priority: Option<i8>,
    /// `vrrp_no_swap`: lock the process in memory (mlockall).
    pub vrrp_no_swap: bool,
    /// `vrrp_rt_priority`: SCHED_RR at this priority (1..=99).
    pub vrrp_rt_priority: Option<u8>,
    /// `vrrp_rlimit_rttime` (µs): RLIMIT_RTTIME under `vrrp_rt_priority`
    /// (keepalived's default 10000).
    pub vrrp_rlimit_rttime: u32,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            router_id: None,
            vrrp_version: Version::V2,
            garp_master_delay: 5,
            garp_master_repeat: 5,
            garp_master_refresh: 0,
            enable_script_security: false,
            script_user: None,
            script_user_loc: None,
            v3_checksum_as_v2: false,
            vrrp_strict: false,
            lower_prio_no_advert: false,
            net_namespace: None,
            garp_master_refresh_repeat: 1,
            garp_interval: std::time::Duration::ZERO,
            gna_interval: std::time::Duration::ZERO,
            startup_delay: std::time::Duration::ZERO,
            garp_lower_prio_repeat: None,
            garp_lower_prio_delay: None,
            fifos: Vec::new(),
            vrrp_priority: None,
            vrrp_no_swap: false,
            vrrp_rt_priority: None,
            vrrp_rlimit_rttime: RLIMIT_RTTIME_DEFAULT,
        }
    }
}

/// keepalived's RT_RLIMIT_DEFAULT (lib/process.h): 10 ms of CPU without
/// blocking before SIGKILL, under `vrrp_rt_priority`.
pub const RLIMIT_RTTIME_DEFAULT: u32 = 10_000;

/// `vrrp_sync_group NAME { group { ... } ... }`: instances that change
/// state together (keepalived's vrrp_sync.c). The group's tracking is
/// already merged into its members' `track_script` / `track_interface`
/// (keepalived applies it to every member the same way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    /// Name.
    pub name: String,
    /// Where it is defined.
    pub loc: Loc,
    /// The member instances' names, in `group { }` order (only instances
    /// that exist and are in no other group).
    pub members: Vec<String>,
    /// The group's `track_interface`, as written.
    pub track_interface: Vec<Track>,
    /// The group's `track_script`, as written.
    pub track_script: Vec<Track>,
    /// The group's notify scripts (`notify` gets `GROUP NAME STATE 0`).
    pub notify: Notify,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`):
    /// members keep their own tracking weights.
    pub tracking_weight: bool,
    /// The group's `track_file`, applied to every member.
    pub track_file: Vec<TrackRef>,
    /// The group's `track_process`, applied to every member.
    pub track_process: Vec<TrackRef>,
}

/// A whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `global_defs`.
    pub global: Global,
    /// Instances, in file order.
    pub instances: Vec<Instance>,
    /// Scripts, in file order.
    pub scripts: Vec<Script>,
    /// `static_ipaddress { ... }`: installed while the agent runs.
    pub static_addresses: Vec<Vip>,
    /// `static_routes { ... }`: installed while the agent runs.
    pub static_routes: Vec<Route>,
    /// `static_rules { ... }`: installed while the agent runs.
    pub static_rules: Vec<Rule>,
    /// `vrrp_sync_group`s, in file order.
    pub sync_groups: Vec<SyncGroup>,
    /// `track_file` / `vrrp_track_file` blocks, in file order.
    pub track_files: Vec<TrackFile>,
    /// `vrrp_track_process` blocks, in file order.
    pub track_processes: Vec<TrackProcess>,
}

/// At most this many diagnostics are kept; the rest are counted. A
/// hostile or generated file (a million unknown keywords) would otherwise
/// hold a message per line, and nobody reads past the first screens.
pub const MAX_DIAGS: usize = 1000;

/// Collects diagnostics while building the model.
#[derive(Default)]
pub struct Report {
    /// What was found, in file order (at most MAX_DIAGS).
    pub diags: Vec<Diag>,
    /// Errors and warnings beyond MAX_DIAGS, counted only.
    pub dropped_errors: usize,
    /// Warnings beyond MAX_DIAGS.
    pub dropped_warnings: usize,
}

impl Report {
    /// Start from diagnostics found earlier (the lexer's warnings).
    pub fn with(diags: Vec<Diag>) -> Report {
        Report { diags, ..Report::default() }
    }
    /// Record `d`.
    pub fn push(&mut self, d: Diag) {
        if self.diags.len() < MAX_DIAGS {
            self.diags.push(d);
        } else if d.severity == Severity::Error {
            self.dropped_errors += 1;
        } else {
            self.dropped_warnings += 1;
        }
    }
    /// Record an error.
    pub fn error(&mut self, loc: &Loc, msg: impl Into<String>, hint: impl Into<String>) {
        self.push(Diag::error(loc, msg, hint));
    }
    /// Record a warning.
    pub fn warn(&mut self, loc: &Loc, msg: impl Into<String>, hint: impl Into<String>) {
        self.push(Diag::warning(loc, msg, hint));
    }
    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.dropped_errors > 0 || self.diags.iter().any(|d| d.severity == Severity::Error)
    }
    /// Errors found since `mark` (a length of `diags` taken earlier), or
    /// any error once the cap is reached (the cut is then unknown).
    fn errors_since(&self, mark: usize, dropped_mark: usize) -> bool {
        self.dropped_errors > dropped_mark
            || self.diags.get(mark..).unwrap_or_default().iter().any(|d| d.severity == Severity::Error)
    }
    /// The diagnostics, with a last line counting those not kept.
    pub fn finish(mut self, at: &Loc) -> Vec<Diag> {
        if self.dropped_errors + self.dropped_warnings > 0 {
            let sev = if self.dropped_errors > 0 { Severity::Error } else { Severity::Warning };
            self.diags.push(Diag {
                loc: at.clone(),
                severity: sev,
                message: format!(
                    "{} more error(s) and {} more warning(s) not shown (only the first {MAX_DIAGS} are kept)",
                    self.dropped_errors, self.dropped_warnings
                ),
                hint: "fix the ones above first".into(),
            });
        }
        self.diags
    }
}

fn arg<'a>(s: &'a Stmt, r: &mut Report, hint: &str) -> Option<&'a (String, Loc)> {
    let a = s.args.first();
    if a.is_none() {
        r.error(&s.loc, format!("`{}` needs a value", s.key), hint);
    }
    a
}

pub(super) fn int<T: std::str::FromStr>(
    s: &Stmt,
    r: &mut Report,
    range: std::ops::RangeInclusive<i64>,
    hint: &str,
) -> Option<T> {
    let (v, loc) = arg(s, r, hint)?;
    match v.parse::<i64>() {
        Ok(n) if range.contains(&n) => v.parse().ok(),
        _ => {
            r.error(
                loc,
                format!("`{} {v}`: expected a whole number in {}..={}", s.key, range.start(), range.end()),
                hint,
            );
            None
        }
    }
}

/// Seconds, possibly fractional, as centiseconds.
fn seconds(s: &Stmt, r: &mut Report, hint: &str) -> Option<Centis> {
    let (v, loc) = arg(s, r, hint)?;
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=655.0).contains(&x) => Some(Centis((x * 100.0).round() as u16)),
        _ => {
            r.error(loc, format!("`{} {v}`: expected seconds, such as 1 or 0.5", s.key), hint);
            None
        }
    }
}

/// Seconds, possibly fractional (to the microsecond, as keepalived's
/// timers), within `range`.
pub(super) fn duration(
    s: &Stmt,
    r: &mut Report,
    range: std::ops::RangeInclusive<f64>,
    hint: &str,
) -> Option<std::time::Duration> {
    let (v, loc) = arg(s, r, hint)?;
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && range.contains(&x) => {
            Some(std::time::Duration::from_micros((x * 1e6).round() as u64))
        }
        _ => {
            r.error(
                loc,
                format!("`{} {v}`: expected seconds from {} to {}", s.key, range.start(), range.end()),
                hint,
            );
            None
        }
    }
}

/// keepalived's optional boolean argument (`strict_mode`,
/// `lower_prio_no_advert`, ...): absent means true; otherwise one of
/// on/off, true/false, yes/no.
pub(super) fn flag(s: &Stmt, r: &mut Report) -> Option<bool> {
    match s.args.first().map(|(v, l)| (v.to_ascii_lowercase(), l)) {
        None => Some(true),
        Some((v, l)) => match v.as_str() {
            "on" | "true" | "yes" => Some(true),
            "off" | "false" | "no" => Some(false),
            _ => {
                r.error(
                    l,
                    format!("`{} {v}`: expected on, off, true, false, yes or no", s.key),
                    "or no value, which means on",
                );
                None
            }
        },
    }
}

pub(super) fn user(s: &Stmt) -> Option<(String, Option<String>)> {
    s.args.first().map(|(u, _)| (u.clone(), s.args.get(1).map(|(g, _)| g.clone())))
}

/// Sort a top-level statement as it is parsed: kept when the model needs
/// it, else reported (an ignored or unknown block) and dropped.
pub fn triage(s: Stmt, r: &mut Report) -> Option<Stmt> {
    match s.key.as_str() {
        "global_defs" | "vrrp_instance" | "vrrp_script" | "vrrp_sync_group" | "net_namespace"
        | "static_ipaddress" | "static_routes" | "static_rules" | "track_file" | "vrrp_track_file"
        | "vrrp_track_process" => Some(s),
        k => {
            ignored_top(k, &s.loc, r);
            None
        }
    }
}

fn ignored_top(k: &str, loc: &Loc, r: &mut Report) {
    keywords::report_unread(keywords::Ctx::Top, k, loc, r);
}

/// Build the model from statements; diagnostics go to `r`.
pub fn build(stmts: &[Stmt], r: &mut Report) -> Config {
    let mut cfg = Config::default();
    // Name and (VRID, interface, family) -> index, so that duplicates are
    // found in one pass (a linear search made 37,000 instances take 14 s).
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut vrids: HashMap<(u8, String, Family), usize> = HashMap::new();
    // global_defs first, whatever its position: instances default to it.
    for s in stmts.iter().filter(|s| s.key == "global_defs") {
        global(s, &mut cfg.global, r);
    }
    // Rules without a preference are numbered in file order across
    // static_rules and virtual_rules, as keepalived does.
    let mut rule_prio = RulePriorities::default();
    for s in stmts {
        match s.key.as_str() {
            "global_defs" => {}
            "net_namespace" => net_namespace(s, &mut cfg.global, r),
            "static_ipaddress" => {
                for a in s.block.as_deref().unwrap_or_default() {
                    if let Some(mut v) = vip(a, r) {
                        // keepalived adds a static address without `dev` to
                        // the default interface (global_defs
                        // default_interface, which defaults to eth0).
                        v.dev.get_or_insert_with(|| "eth0".to_owned());
                        cfg.static_addresses.push(v);
                    }
                }
            }
            "static_routes" => {
                for a in s.block.as_deref().unwrap_or_default() {
                    cfg.static_routes.extend(routes::route(a, "static_routes", r));
                }
            }
            "static_rules" => {
                for a in s.block.as_deref().unwrap_or_default() {
                    cfg.static_rules.extend(routes::rule(a, "static_rules", &mut rule_prio, r));
                }
            }
            "vrrp_instance" => {
                if let Some(i) = instance(s, &cfg.global, &mut rule_prio, r) {
                    if let Some(other) = names.get(&i.name).map(|n| &cfg.instances[*n]) {
                        r.error(
                            &s.loc,
                            format!("instance {} is defined twice (first at {})", i.name, other.loc),
                            "rename one of them",
                        );
                    } else if let Some(other) =
                        vrids.get(&(i.vrid, i.interface.clone(), i.family)).map(|n| &cfg.instances[*n])
                    {
                        r.error(
                            &s.loc,
                            format!(
                                "VRID {} on {} is already used by {} ({})",
                                i.vrid, i.interface, other.name, other.loc
                            ),
                            "each virtual router needs its own virtual_router_id per interface and family",
                        );
                    } else {
                        names.insert(i.name.clone(), cfg.instances.len());
                        vrids.insert((i.vrid, i.interface.clone(), i.family), cfg.instances.len());
                        cfg.instances.push(i);
                    }
                }
            }
            "vrrp_script" => {
                if let Some(sc) = script(s, r) {
                    cfg.scripts.push(sc);
                }
            }
            // After the instances, which they name wherever they are.
            "vrrp_sync_group" => {}
            "track_file" | "vrrp_track_file" => {
                if let Some(t) = trackers::track_file(s, r) {
                    if cfg.track_files.iter().any(|o| o.name == t.name) {
                        r.error(
                            &s.loc,
                            format!("track_file {} is defined twice", t.name),
                            "rename one of them",
                        );
                    } else {
                        cfg.track_files.push(t);
                    }
                }
            }
            "vrrp_track_process" => {
                if let Some(t) = trackers::track_process(s, r) {
                    if cfg.track_processes.iter().any(|o| o.name == t.name) {
                        r.error(
                            &s.loc,
                            format!("vrrp_track_process {} is defined twice", t.name),
                            "rename one of them",
                        );
                    } else {
                        cfg.track_processes.push(t);
                    }
                }
            }
            k => ignored_top(k, &s.loc, r),
        }
    }
    sync_groups(stmts, &mut cfg, r);
    let scripts: HashSet<&str> = cfg.scripts.iter().map(|s| s.name.as_str()).collect();
    for i in &cfg.instances {
        for t in &i.track_script {
            if !scripts.contains(t.name.as_str()) {
                r.error(
                    &i.loc,
                    format!("instance {} tracks script `{}`, which no vrrp_script defines", i.name, t.name),
                    "define it with `vrrp_script NAME { script ... }`",
                );
            }
        }
        // keepalived logs "track file X not found, ignoring..." and runs
        // without it; a tracker that silently does nothing is what the
        // operator least expects, so it is an error here, as a missing
        // vrrp_script is.
        for t in &i.track_file {
            if !cfg.track_files.iter().any(|f| f.name == t.name) {
                r.error(
                    &t.loc,
                    format!("({}) track file {} not found", i.name, t.name),
                    "define it with `track_file NAME { file PATH }`",
                );
            }
        }
        for t in &i.track_process {
            if !cfg.track_processes.iter().any(|f| f.name == t.name) {
                r.error(
                    &t.loc,
                    format!("({}) track process {} not found", i.name, t.name),
                    "define it with `vrrp_track_process NAME { process NAME }`",
                );
            }
        }
    }
    cfg
}

fn global(s: &Stmt, g: &mut Global, r: &mut Report) {
    for st in s.block.as_deref().unwrap_or_default() {
        match st.key.as_str() {
            "router_id" => g.router_id = st.args.first().map(|(v, _)| v.clone()),
            "vrrp_version" => match int::<u8>(st, r, 2..=3, "2 or 3") {
                Some(3) => g.vrrp_version = Version::V3,
                Some(_) => g.vrrp_version = Version::V2,
                None => {}
            },
            "vrrp_garp_master_delay" => {
                g.garp_master_delay = int(st, r, 0..=3600, "seconds").unwrap_or(g.garp_master_delay)
            }
            "vrrp_garp_master_repeat" => {
                g.garp_master_repeat = int(st, r, 0..=1000, "a count").unwrap_or(g.garp_master_repeat)
            }
            "vrrp_garp_master_refresh" => {
                g.garp_master_refresh =
                    int(st, r, 0..=86400, "seconds, 0 for off").unwrap_or(g.garp_master_refresh)
            }
            "enable_script_security" => g.enable_script_security = true,
            "script_user" => {
                if st.args.is_empty() {
                    r.error(
                        &st.loc,
                        "`script_user` needs a user name",
                        "as in `script_user keepalived_script`",
                    );
                }
                g.script_user = user(st);
                g.script_user_loc = Some(st.loc.clone());
            }
            "v3_checksum_as_v2" | "vrrp_v3_checksum_as_v2" => g.v3_checksum_as_v2 = true,
            "vrrp_strict" => g.vrrp_strict = true,
            "net_namespace" => net_namespace(st, g, r),
            "vrrp_lower_prio_no_advert" => {
                g.lower_prio_no_advert = flag(st, r).unwrap_or(g.lower_prio_no_advert)
            }
            "vrrp_garp_master_refresh_repeat" => {
                // keepalived: 0 is read as 1, with its message.
                let n: u32 = int(st, r, 0..=1000, "a count").unwrap_or(g.garp_master_refresh_repeat);
                if n == 0 {
                    r.warn(
                        &st.loc,
                        "vrrp_garp_master_refresh_repeat must be greater than 0, setting to 1",
                        "as keepalived",
                    );
                }
                g.garp_master_refresh_repeat = n.max(1);
            }
            k @ ("vrrp_garp_interval" | "vrrp_gna_interval") => {
                // 0 (no pacing, the default) is accepted: keepalived's own
                // default keepalived.conf sets it; keepalived logs it as
                // invalid and keeps its default, which is the same 0.
                if let Some(d) = duration(st, r, 0.0..=4294.0, "seconds, such as 0.01") {
                    if k == "vrrp_garp_interval" {
                        g.garp_interval = d;
                    } else {
                        g.gna_interval = d;
                    }
                }
            }
            "vrrp_garp_lower_prio_repeat" => {
                g.garp_lower_prio_repeat = int(st, r, 0..=86400, "a count").or(g.garp_lower_prio_repeat)
            }
            "vrrp_garp_lower_prio_delay" => {
                g.garp_lower_prio_delay = int(st, r, 0..=86400, "seconds").or(g.garp_lower_prio_delay)
            }
            "vrrp_startup_delay" => {
                g.startup_delay =
                    duration(st, r, 0.001..=4294.0, "seconds, such as 5").unwrap_or(g.startup_delay)
            }
            "vrrp_min_garp" => {
                // keepalived: one gratuitous ARP/NA, no second batch, no
                // refresh, without overriding what was already set.
                if flag(st, r) == Some(true) {
                    let d = Global::default();
                    if g.garp_master_repeat == d.garp_master_repeat {
                        g.garp_master_repeat = 1;
                    }
                    if g.garp_master_delay == d.garp_master_delay {
                        g.garp_master_delay = 0;
                    }
                    if g.garp_master_refresh_repeat == d.garp_master_refresh_repeat {
                        g.garp_master_refresh_repeat = 1;
                    }
                }
            }
            // keepalived's global_parser.c: a nice value, mlockall, SCHED_RR
            // and its CPU limit for the VRRP process (set_process_priorities).
            "vrrp_priority" => {
                g.vrrp_priority = int(st, r, -20..=19, "a nice value, -20 to 19").or(g.vrrp_priority)
            }
            "vrrp_no_swap" => g.vrrp_no_swap = true,
            "vrrp_rt_priority" => {
                g.vrrp_rt_priority = int(st, r, 1..=99, "a SCHED_RR priority, 1 to 99").or(g.vrrp_rt_priority)
            }
            "vrrp_rlimit_rttime" | "vrrp_rlimit_rtime" => {
                // keepalived: the soft limit is half of it and must not be
                // 0, so 1 counts as 2.
                if let Some(us) = int::<u32>(st, r, 1..=i64::from(u32::MAX), "microseconds, such as 10000") {
                    g.vrrp_rlimit_rttime = us.max(2);
                }
            }
            k @ ("notify_fifo" | "vrrp_notify_fifo" | "notify_fifo_script" | "vrrp_notify_fifo_script") => {
                crate::notify_fifo::keyword(k, st, g, r)
            }
            k => keywords::report_unread(keywords::Ctx::Global, k, &st.loc, r),
        }
    }
}

/// `net_namespace NAME`: keepalived joins /run/netns/NAME (made by `ip
/// netns add`) before anything else.
fn net_namespace(s: &Stmt, g: &mut Global, r: &mut Report) {
    match s.args.first() {
        Some((n, l)) if n.is_empty() || n.contains('/') || n == "." || n == ".." => {
            r.error(l, format!("`net_namespace {n}`: not a namespace name"), "a name under /run/netns")
        }
        Some((n, _)) => g.net_namespace = Some(n.clone()),
        None => r.error(&s.loc, "`net_namespace` needs a name", "as made by `ip netns add NAME`"),
    }
}

fn parse_addr(v: &str, loc: &Loc, r: &mut Report, what: &str) -> Option<IpAddr> {
    match v.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.error(
                loc,
                format!("`{v}` is not an IP address ({what})"),
                "write an IPv4 or IPv6 address, such as 192.0.2.10 or 2001:db8::10",
            );
            None
        }
    }
}

fn vip(s: &Stmt, r: &mut Report) -> Option<Vip> {
    let (addr, prefix) = match s.key.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s.key.as_str(), None),
    };
    let addr = parse_addr(addr, &s.loc, r, "virtual_ipaddress")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                r.error(
                    &s.loc,
                    format!("`{}`: prefix length must be 0-{max}", s.key),
                    "write ADDRESS/PREFIX, such as 192.0.2.130/24",
                );
                return None;
            }
        },
    };
    let mut v = Vip { addr, prefix, dev: None, label: None, scope: None, no_track: false };
    let mut it = s.args.iter();
    while let Some((k, loc)) = it.next() {
        let val = |it: &mut std::slice::Iter<'_, (String, Loc)>, r: &mut Report| {
            let v = it.next().map(|(v, _)| v.clone());
            if v.is_none() {
                r.error(loc, format!("`{k}` needs a value"), "as in `192.0.2.130/24 dev eth0 label eth0:1`");
            }
            v
        };
        match k.as_str() {
            "dev" => v.dev = val(&mut it, r),
            "label" => v.label = val(&mut it, r),
            "scope" => v.scope = val(&mut it, r),
            "brd" | "broadcast" | "preferred_lft" | "metric" => {
                let _ = val(&mut it, r);
                r.warn(
                    loc,
                    format!("`{k}` on a virtual address ignored"),
                    "vrrp-agent adds addresses with address, prefix, dev, label and scope",
                );
            }
            "no_track" => v.no_track = true,
            "track_group" => {
                let _ = val(&mut it, r);
                r.warn(
                    loc,
                    "`track_group` on an address not supported",
                    "the address is not tied to the group's interfaces (it stays while the agent runs)",
                );
            }
            "use_vmac" => r.warn(
                loc,
                "`use_vmac` on a virtual address is not supported: it gets no macvlan of its own",
                "it is added to its `dev` (or the instance's macvlan with the instance's use_vmac), answering with that interface's MAC address",
            ),
            "home" | "noprefixroute" | "nodad" | "autojoin" => {
                r.warn(
                    loc,
                    format!("`{k}` on a virtual address ignored"),
                    "vrrp-agent adds addresses with address, prefix, dev, label and scope",
                );
            }
            other => r.error(
                loc,
                format!("unknown option `{other}` on a virtual address"),
                "options are dev, label, scope",
            ),
        }
    }
    Some(v)
}

fn tracks(s: &Stmt, r: &mut Report) -> Vec<Track> {
    let mut out = Vec::new();
    for st in s.block.as_deref().unwrap_or_default() {
        let mut t = Track { name: st.key.clone(), weight: None, reverse: false };
        let mut it = st.args.iter();
        while let Some((k, loc)) = it.next() {
            match k.as_str() {
                "weight" => match it.next().map(|(v, _)| v.parse::<i32>()) {
                    Some(Ok(w)) if (-253..=253).contains(&w) => t.weight = Some(w),
                    _ => r.error(
                        loc,
                        "`weight` needs a number in -253..=253",
                        "as in `check_nginx weight 100`",
                    ),
                },
                "reverse" => t.reverse = true,
                other => {
                    r.error(loc, format!("unknown option `{other}`"), "options are `weight W` and `reverse`")
                }
            }
        }
        out.push(t);
    }
    out
}

/// One of `notify`, `notify_master`, `notify_backup`, `notify_fault`,
/// `notify_stop` (an instance's or a sync group's).
fn notify_stmt(st: &Stmt, n: &mut Notify, r: &mut Report) {
    let v = st.args.first().map(|(v, _)| v.clone());
    // keepalived reads `SCRIPT [USER [GROUP]]`: a command with arguments
    // is quoted, the words after it name who runs it.
    if let Some((u, loc)) = st.args.get(1) {
        r.warn(
            loc,
            format!("`{} ... {u}`: running a notify script as its own user is not supported", st.key),
            format!("it runs as script_user (else keepalived_script, else root); quote the command if `{u}` is one of its arguments"),
        );
    }
    let (key, slot) = match st.key.as_str() {
        "notify" => ("notify", &mut n.any),
        "notify_master" => ("notify_master", &mut n.master),
        "notify_backup" => ("notify_backup", &mut n.backup),
        "notify_fault" => ("notify_fault", &mut n.fault),
        _ => ("notify_stop", &mut n.stop),
    };
    *slot = v;
    n.locs.push((key, st.loc.clone()));
}

/// Parse the `vrrp_sync_group`s, check them as keepalived does
/// (vrrp_parser.c, vrrp_sync.c vrrp_sync_set_group) and apply their
/// tracking to the members (vrrp.c vrrp_complete_instance,
/// sync_group_tracking_init).
fn sync_groups(stmts: &[Stmt], cfg: &mut Config, r: &mut Report) {
    // Whether mail is configured at all: without smtp_server keepalived
    // sends no alert either, so `smtp_alert` loses nothing here.
    let mail = stmts
        .iter()
        .filter(|s| s.key == "global_defs")
        .flat_map(|s| s.block.as_deref().unwrap_or_default())
        .any(|st| st.key == "smtp_server");
    let mut in_group: HashMap<String, String> = HashMap::new();
    for s in stmts.iter().filter(|s| s.key == "vrrp_sync_group") {
        let [(name, _)] = s.args.as_slice() else {
            r.error(&s.loc, "vrrp_sync_group must have a name (one word)", "as in `vrrp_sync_group G1 {`");
            continue;
        };
        if let Some(other) = cfg.sync_groups.iter().find(|g| &g.name == name) {
            r.error(
                &s.loc,
                format!("vrrp sync group {name} already defined (at {})", other.loc),
                "rename one of them",
            );
            continue;
        }
        let mut g = SyncGroup {
            name: name.clone(),
            loc: s.loc.clone(),
            members: Vec::new(),
            track_interface: Vec::new(),
            track_script: Vec::new(),
            notify: Notify::default(),
            tracking_weight: false,
            track_file: Vec::new(),
            track_process: Vec::new(),
        };
        let mut listed: Option<Vec<&Stmt>> = None;
        for st in s.block.as_deref().unwrap_or_default() {
            match st.key.as_str() {
                "group" => {
                    if listed.is_some() {
                        r.error(
                            &st.loc,
                            format!("Group list already specified for sync group {name}"),
                            "list every member in one `group { }` block",
                        );
                        continue;
                    }
                    listed = Some(st.block.as_deref().unwrap_or_default().iter().collect());
                }
                "track_interface" => g.track_interface = tracks(st, r),
                "track_script" => g.track_script = tracks(st, r),
                "track_file" => g.track_file = trackers::refs(st, "track file", r),
                "track_process" => g.track_process = trackers::refs(st, "track process", r),
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                    notify_stmt(st, &mut g.notify, r)
                }
                "sync_group_tracking_weight" => g.tracking_weight = true,
                "global_tracking" => {
                    g.tracking_weight = true;
                    r.warn(
                        &st.loc,
                        format!("({name}) global_tracking is deprecated. Use track_interface/script/file on the sync group"),
                        "it is taken as sync_group_tracking_weight (members keep their own tracking weights), as keepalived does",
                    );
                }
                "smtp_alert" => {
                    let on =
                        st.args.first().is_none_or(|(v, _)| !matches!(v.as_str(), "no" | "false" | "off"));
                    if on && mail {
                        r.warn(
                            &st.loc,
                            "`smtp_alert` is not supported by vrrp-agent",
                            "no e-mail is sent on the group's transitions; a group `notify` script can send them",
                        );
                    }
                }
                k => keywords::report_unread(keywords::Ctx::SyncGroup, k, &st.loc, r),
            }
        }
        let Some(listed) = listed.filter(|l| !l.is_empty()) else {
            // keepalived (vrrp.c) logs this and removes the group; its
            // instances run on their own there, and so here. keepalived's
            // own lvs_syncd sample lists members without `group { }`.
            r.warn(
                &s.loc,
                format!("Sync group {name} has no virtual router(s). removing"),
                "its instances fail over on their own, as under keepalived; list them in `group { VI_1 VI_2 }` to sync them",
            );
            continue;
        };
        for m in listed {
            if !cfg.instances.iter().any(|i| i.name == m.key) {
                r.error(
                    &m.loc,
                    format!("Virtual router {} specified in sync group {name} doesn't exist", m.key),
                    "name a vrrp_instance of this configuration (keepalived drops it from the group)",
                );
            } else if let Some(other) = in_group.get(&m.key) {
                r.error(
                    &m.loc,
                    format!(
                        "Virtual router {} cannot exist in more than one sync group (it is in {other})",
                        m.key
                    ),
                    "remove it from one of the groups (keepalived ignores it in this one)",
                );
            } else if g.members.contains(&m.key) {
                r.warn(&m.loc, format!("{} is listed twice in sync group {name}", m.key), "list it once");
            } else {
                in_group.insert(m.key.clone(), name.clone());
                g.members.push(m.key.clone());
            }
        }
        if g.members.len() == 1 {
            r.warn(
                &s.loc,
                format!("Sync group {name} has only 1 virtual router(s) - this probably isn't what you want"),
                "a group syncs two or more instances; with one it behaves as the instance alone",
            );
        }
        sync_tracking(&g, cfg, r);
        cfg.sync_groups.push(g);
    }
}

/// keepalived's tracking rules for group `g`'s members: their own weighted
/// tracking is dropped (scripts) or made unweighted (interfaces) unless
/// the group has `sync_group_tracking_weight`, since members of one group
/// must not get different priorities; then the group's tracking is added
/// to every member (with no weights if a member is an address owner).
fn sync_tracking(g: &SyncGroup, cfg: &mut Config, r: &mut Report) {
    let script_weight = |scripts: &[Script], t: &Track| {
        t.weight.or_else(|| scripts.iter().find(|s| s.name == t.name).map(|s| s.weight)).unwrap_or(0)
    };
    let owner = cfg.instances.iter().any(|i| g.members.contains(&i.name) && i.priority == 255);
    let owners: Vec<&str> = cfg
        .instances
        .iter()
        .filter(|i| g.members.contains(&i.name))
        .map(|i| if i.priority == 255 { "owner" } else { "other" })
        .collect();
    if owners.contains(&"owner") && owners.contains(&"other") {
        r.warn(
            &g.loc,
            format!(
                "Sync group {} has some member(s) as address owner and some not as address owner. This won't work.",
                g.name
            ),
            "give every member priority 255 on the node that owns the addresses, or none",
        );
    }
    let mut group_scripts = g.track_script.clone();
    for t in &mut group_scripts {
        if owner && script_weight(&cfg.scripts, t) != 0 {
            r.warn(
                &g.loc,
                format!(
                    "({}) Cannot have weighted track script '{}' with member having priority 255 - clearing weight",
                    g.name, t.name
                ),
                "an address owner's priority never changes",
            );
            t.weight = Some(0);
        }
    }
    let mut group_ifs = g.track_interface.clone();
    for t in &mut group_ifs {
        if owner && t.weight.is_some_and(|w| w != 0) {
            t.weight = Some(0);
        }
    }
    for t in &g.track_script {
        if !cfg.scripts.iter().any(|s| s.name == t.name) {
            r.error(
                &g.loc,
                format!("sync group {} tracks script `{}`, which no vrrp_script defines", g.name, t.name),
                "define it with `vrrp_script NAME { script ... }`",
            );
        }
    }
    group_trackers(g, owner, cfg, r);
    let Config { instances, scripts, .. } = cfg;
    for i in instances.iter_mut().filter(|i| g.members.contains(&i.name)) {
        if !g.tracking_weight && i.priority != 255 {
            for t in &mut i.track_interface {
                if t.weight.is_some_and(|w| w != 0) {
                    r.warn(
                        &i.loc,
                        format!("({}) ignoring {} tracked interface weight due to SYNC group", i.name, t.name),
                        "members of a sync group go to FAULT when it is down; add sync_group_tracking_weight to the group to keep weights",
                    );
                    t.weight = Some(0);
                }
            }
            i.track_script.retain(|t| {
                let weighted = script_weight(scripts, t) != 0;
                if weighted {
                    r.warn(
                        &i.loc,
                        format!("({}) ignoring tracked script {} with weights due to SYNC group", i.name, t.name),
                        "keepalived drops it; track it unweighted, on the sync group, or add sync_group_tracking_weight",
                    );
                }
                !weighted
            });
        }
        for t in &group_scripts {
            match i.track_script.iter_mut().find(|o| o.name == t.name) {
                Some(own) => {
                    r.warn(
                        &i.loc,
                        format!("({}) track_script {} is configured on VRRP instance and sync group. Remove vrrp instance config", i.name, t.name),
                        "the sync group's weight applies unless the instance's is 0",
                    );
                    if script_weight(scripts, own) != 0 {
                        *own = t.clone();
                    }
                }
                None => i.track_script.push(t.clone()),
            }
        }
        for t in &group_ifs {
            match i.track_interface.iter_mut().find(|o| o.name == t.name) {
                Some(own) => {
                    r.warn(
                        &i.loc,
                        format!("({}) track_interface {} is configured on VRRP instance and sync group. Remove vrrp instance or sync group config", i.name, t.name),
                        "the sync group's weight applies unless the instance's is 0",
                    );
                    if own.weight.is_some_and(|w| w != 0) {
                        *own = t.clone();
                    }
                }
                None => i.track_interface.push(t.clone()),
            }
        }
    }
}

/// keepalived's rules for track files and processes in sync group `g`
/// (vrrp.c vrrp_complete_instance, sync_group_tracking_init): without
/// `sync_group_tracking_weight`, a member's own tracker with the default
/// weight becomes unweighted (FAULT only) and one with an explicit weight
/// is dropped, so that members never get different priorities; then the
/// group's trackers are added to every member (unweighted if a member is
/// an address owner).
fn group_trackers(g: &SyncGroup, owner: bool, cfg: &mut Config, r: &mut Report) {
    let Config { instances, track_files, track_processes, .. } = cfg;
    let file_weight = |t: &TrackRef| {
        t.weight.or_else(|| track_files.iter().find(|f| f.name == t.name).map(|f| f.weight)).unwrap_or(1)
    };
    let proc_weight = |t: &TrackRef| {
        t.weight.or_else(|| track_processes.iter().find(|p| p.name == t.name).map(|p| p.weight)).unwrap_or(0)
    };
    for (list, what, known) in [
        (&g.track_file, "track_file", track_files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>()),
        (&g.track_process, "vrrp_track_process", track_processes.iter().map(|p| p.name.as_str()).collect()),
    ] {
        for t in list {
            if !known.contains(&t.name.as_str()) {
                r.error(
                    &t.loc,
                    format!("sync group {} tracks {what} `{}`, which is not defined", g.name, t.name),
                    format!("define it with `{what} {} {{ ... }}`", t.name),
                );
            }
        }
    }
    for i in instances.iter_mut().filter(|i| g.members.contains(&i.name)) {
        if !g.tracking_weight && i.priority != 255 {
            let mut keep = Vec::new();
            for mut t in std::mem::take(&mut i.track_file) {
                match (t.weight, file_weight(&t)) {
                    (_, 0) => keep.push(t),
                    (None, 1) => {
                        r.warn(
                            &t.loc,
                            format!("({}) ignoring weight from tracked file {} due to SYNC group. specify weight 0", i.name, t.name),
                            "a member's own track file only puts it in FAULT; add sync_group_tracking_weight to the group to keep weights",
                        );
                        t.weight = Some(0);
                        keep.push(t);
                    }
                    (_, w) => r.warn(
                        &t.loc,
                        format!(
                            "({}) ignoring tracked file {} with weight {w} due to SYNC group",
                            i.name, t.name
                        ),
                        "keepalived drops it; track it on the sync group, or add sync_group_tracking_weight",
                    ),
                }
            }
            i.track_file = keep;
            let before = i.track_process.len();
            i.track_process.retain(|t| proc_weight(t) == 0);
            if i.track_process.len() != before {
                r.warn(
                    &i.loc,
                    format!("({}) ignoring weighted tracked process(es) due to SYNC group", i.name),
                    "keepalived drops them; track them unweighted, on the sync group, or add sync_group_tracking_weight",
                );
            }
        }
        for (group_list, own_list, weight) in [
            (&g.track_file, &mut i.track_file, &file_weight as &dyn Fn(&TrackRef) -> i32),
            (&g.track_process, &mut i.track_process, &proc_weight),
        ] {
            for t in group_list {
                if own_list.iter().any(|o| o.name == t.name) {
                    continue;
                }
                let mut t = t.clone();
                if owner && weight(&t) != 0 {
                    r.warn(
                        &g.loc,
                        format!(
                            "({}) Cannot have weighted tracker '{}' with member having priority 255 - setting weight 0",
                            g.name, t.name
                        ),
                        "an address owner's priority never changes",
                    );
                    t.weight = Some(0);
                }
                own_list.push(t);
            }
        }
    }
}

fn instance(s: &Stmt, g: &Global, rule_prio: &mut RulePriorities, r: &mut Report) -> Option<Instance> {
    let Some((name, _)) = s.args.first() else {
        r.error(&s.loc, "vrrp_instance needs a name", "as in `vrrp_instance VI_1 {`");
        return None;
    };
    let errors_before = r.diags.len();
    let dropped_before = r.dropped_errors;
    let mut interface = None;
    let mut vrid = None;
    let mut i = Instance {
        name: name.clone(),
        loc: s.loc.clone(),
        state: InitialState::Backup,
        interface: String::new(),
        vrid: 0,
        priority: 100,
        advert_int: Centis(100),
        version: g.vrrp_version,
        family: Family::V4,
        unicast_src_ip: None,
        unicast_peers: Vec::new(),
        auth: None,
        vips: Vec::new(),
        vips_excluded: Vec::new(),
        preempt: true,
        preempt_delay: std::time::Duration::ZERO,
        garp_master_delay: g.garp_master_delay,
        garp_master_repeat: g.garp_master_repeat,
        garp_master_refresh: g.garp_master_refresh,
        track_interface: Vec::new(),
        track_script: Vec::new(),
        track_file: Vec::new(),
        track_process: Vec::new(),
        dont_track_primary: false,
        garp_master_refresh_repeat: g.garp_master_refresh_repeat,
        garp_interval: g.garp_interval,
        gna_interval: g.gna_interval,
        // keepalived (vrrp.c, vrrp_complete_init): unset globally, these
        // follow vrrp_garp_master_repeat / _delay.
        garp_lower_prio_repeat: g.garp_lower_prio_repeat.unwrap_or(g.garp_master_repeat),
        garp_lower_prio_delay: g.garp_lower_prio_delay.unwrap_or(g.garp_master_delay),
        notify: Notify::default(),
        v3_checksum_as_v2: g.v3_checksum_as_v2,
        strict: g.vrrp_strict,
        accept: true,
        lower_prio_no_advert: g.lower_prio_no_advert,
        routes: Vec::new(),
        rules: Vec::new(),
        vmac: None,
        vmac_xmit_base: false,
    };
    let mut vmac_mac_arg: Option<[Option<u8>; 6]> = None;
    let mut advert_loc = None;
    // keepalived's PARAMETER_UNSET: what was set explicitly, and where.
    let mut strict_mode = None;
    let mut accept: Option<(bool, Loc)> = None;
    let mut lower_prio_no_advert: Option<(bool, Loc)> = None;
    let mut garp_lower_prio: Vec<(String, Loc)> = Vec::new();
    let mut preempt_delay_loc = None;
    let mut state_loc = None;
    let mut auth_loc = None;
    let mut version_set = false;
    for st in s.block.as_deref().unwrap_or_default() {
        match st.key.as_str() {
            "state" => match st.args.first().map(|(v, l)| {
                state_loc = Some(st.loc.clone());
                (v.as_str(), l)
            }) {
                Some(("MASTER", _)) => i.state = InitialState::Master,
                Some(("BACKUP", _)) => i.state = InitialState::Backup,
                Some((v, l)) => r.error(
                    l,
                    format!("`state {v}`: expected MASTER or BACKUP"),
                    "keepalived's states are MASTER and BACKUP",
                ),
                None => r.error(&st.loc, "`state` needs a value", "MASTER or BACKUP"),
            },
            "interface" => interface = st.args.first().map(|(v, _)| v.clone()),
            "virtual_router_id" => {
                vrid = int::<u8>(st, r, 1..=255, "VRID 1-255, the same on every node of the virtual router")
            }
            "priority" => {
                if let Some(p) = int::<u8>(st, r, 1..=255, "1-255; 255 is the address owner") {
                    i.priority = p;
                }
            }
            "advert_int" => {
                if let Some(c) = seconds(st, r, "seconds; fractions (down to 0.01) need version 3") {
                    i.advert_int = c;
                    advert_loc = Some(st.loc.clone());
                }
            }
            "version" => match int::<u8>(st, r, 2..=3, "2 or 3") {
                Some(3) => {
                    i.version = Version::V3;
                    version_set = true;
                }
                Some(_) => {
                    i.version = Version::V2;
                    version_set = true;
                }
                None => {}
            },
            "unicast_src_ip" | "mcast_src_ip" => {
                if let Some((v, l)) = arg(st, r, "an address of this node") {
                    i.unicast_src_ip = parse_addr(v, l, r, &st.key);
                }
            }
            "unicast_peer" => {
                for p in st.block.as_deref().unwrap_or_default() {
                    if let Some(a) = parse_addr(&p.key, &p.loc, r, "unicast_peer") {
                        i.unicast_peers.push(a);
                    }
                    if !p.args.is_empty() {
                        r.warn(
                            &p.loc,
                            format!("options after unicast peer {} ignored", p.key),
                            "vrrp-agent takes the peer address only",
                        );
                    }
                }
            }
            "authentication" => {
                let mut kind = None;
                let mut pass = None;
                for a in st.block.as_deref().unwrap_or_default() {
                    match a.key.as_str() {
                        "auth_type" => kind = a.args.first().cloned(),
                        "auth_pass" => pass = a.args.first().map(|(p, _)| p.clone()),
                        k => r.error(
                            &a.loc,
                            format!("unknown keyword `{k}` in authentication"),
                            "auth_type and auth_pass",
                        ),
                    }
                }
                match kind {
                    Some((k, _)) if k == "PASS" || k == "AH" => match pass {
                        Some(p) => {
                            if p.len() > 8 {
                                r.warn(
                                    &st.loc,
                                    "auth_pass longer than 8 characters: only the first 8 are used",
                                    "keepalived does the same",
                                );
                            }
                            i.auth = Some(if k == "AH" { AuthConf::Ah(p) } else { AuthConf::Pass(p) });
                            auth_loc = Some(st.loc.clone());
                        }
                        None => r.error(
                            &st.loc,
                            format!("auth_type {k} without auth_pass"),
                            "add `auth_pass SECRET`",
                        ),
                    },
                    Some((k, l)) => r.error(&l, format!("unknown auth_type `{k}`"), "PASS or AH"),
                    None => r.error(&st.loc, "authentication without auth_type", "add `auth_type PASS`"),
                }
            }
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                for a in st.block.as_deref().unwrap_or_default() {
                    if let Some(v) = vip(a, r) {
                        if st.key == "virtual_ipaddress" {
                            // keepalived (vrrp_data.c alloc_vrrp_vip): the
                            // first address sets the instance's family; one
                            // of the other family is dropped.
                            if i.vips.first().is_some_and(|f| f.addr.is_ipv4() != v.addr.is_ipv4()) {
                                r.warn(
                                    &a.loc,
                                    format!("({}): address family must match VRRP instance [{}] - ignoring", i.name, v.addr),
                                    "as keepalived: one family per instance; put it in virtual_ipaddress_excluded or in an instance of its own",
                                );
                            } else if i.vips.iter().any(|o| o.addr == v.addr) {
                                r.warn(
                                    &a.loc,
                                    format!(
                                        "instance {}: virtual address {} is listed twice; kept once",
                                        i.name, v.addr
                                    ),
                                    "remove one of the lines",
                                );
                            } else {
                                i.vips.push(v);
                            }
                        } else {
                            i.vips_excluded.push(v);
                        }
                    }
                }
            }
            "virtual_routes" => {
                for a in st.block.as_deref().unwrap_or_default() {
                    i.routes.extend(routes::route(a, "virtual_routes", r));
                }
            }
            "virtual_rules" => {
                for a in st.block.as_deref().unwrap_or_default() {
                    i.rules.extend(routes::rule(a, "virtual_rules", rule_prio, r));
                }
            }
            "nopreempt" => i.preempt = false,
            "preempt" => i.preempt = true,
            "preempt_delay" => {
                if let Some(d) = duration(st, r, 0.0..=1000.0, "seconds, 0 to 1000 (fractions allowed)") {
                    i.preempt_delay = d;
                    preempt_delay_loc = Some(st.loc.clone());
                }
            }
            "garp_master_delay" => {
                i.garp_master_delay = int(st, r, 0..=3600, "seconds").unwrap_or(i.garp_master_delay)
            }
            "garp_master_repeat" => {
                i.garp_master_repeat = int(st, r, 0..=1000, "a count").unwrap_or(i.garp_master_repeat)
            }
            "garp_master_refresh" => {
                i.garp_master_refresh =
                    int(st, r, 0..=86400, "seconds, 0 for off").unwrap_or(i.garp_master_refresh)
            }
            "track_interface" => i.track_interface = tracks(st, r),
            "track_script" => i.track_script = tracks(st, r),
            "track_file" => i.track_file = trackers::refs(st, "track file", r),
            "track_process" => i.track_process = trackers::refs(st, "track process", r),
            "dont_track_primary" => i.dont_track_primary = true,
            "garp_master_refresh_repeat" => {
                let n: u32 = int(st, r, 0..=1000, "a count").unwrap_or(i.garp_master_refresh_repeat);
                i.garp_master_refresh_repeat = n.max(1);
            }
            "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                notify_stmt(st, &mut i.notify, r)
            }
            "v3_checksum_as_v2" => i.v3_checksum_as_v2 = true,
            "use_vmac" => {
                let vm = i.vmac.get_or_insert_with(VmacConf::default);
                // keepalived: up to two arguments, a MAC address (it has a
                // ':') and a name, in either order.
                for (a, l) in st.args.iter().take(2) {
                    if a.contains(':') {
                        match vmac_mac(a) {
                            Ok(m) => vmac_mac_arg = Some(m),
                            Err(why) => r.warn(
                                l,
                                format!("use_vmac MAC address `{a}` ignored: {why}"),
                                "keepalived ignores it too; the macvlan gets 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID)",
                            ),
                        }
                    } else if !dev_name_valid(a) {
                        r.warn(
                            l,
                            format!(
                                "use_vmac interface name `{a}` too long or with invalid characters: ignored"
                            ),
                            "at most 15 characters, no '/', ':' or spaces; the macvlan is named vrrp.VRID",
                        );
                    } else {
                        vm.name = Some(a.clone());
                    }
                }
                if let Some((a, l)) = st.args.get(2) {
                    r.warn(l, format!("extra argument `{a}` to use_vmac ignored"), "use_vmac [NAME] [MAC]");
                }
            }
            "vmac_xmit_base" => i.vmac_xmit_base = true,
            "accept" => accept = Some((true, st.loc.clone())),
            "no_accept" => accept = Some((false, st.loc.clone())),
            "strict_mode" => strict_mode = flag(st, r).or(strict_mode),
            "lower_prio_no_advert" => {
                lower_prio_no_advert = flag(st, r).map(|b| (b, st.loc.clone())).or(lower_prio_no_advert)
            }
            k @ ("garp_lower_prio_delay" | "garp_lower_prio_repeat") => {
                if let Some(n) = int::<u32>(st, r, 0..=86400, "a count, or seconds for the delay") {
                    if k == "garp_lower_prio_repeat" {
                        i.garp_lower_prio_repeat = n;
                    } else {
                        i.garp_lower_prio_delay = n;
                    }
                }
                if st.args.first().is_some_and(|(v, _)| v != "0") {
                    garp_lower_prio.push((k.to_string(), st.loc.clone()));
                }
            }
            k => keywords::report_unread(keywords::Ctx::Instance, k, &st.loc, r),
        }
    }
    let _ = version_set;
    if let Some(vm) = &mut i.vmac
        && let Some(m) = vmac_mac_arg
    {
        vm.mac = Some(m.map(|b| b.unwrap_or(0)));
        if m[5].is_none() {
            // Filled with the VRID once it is known, below.
            vm.mac = vm.mac.map(|mut a| {
                a[5] = vrid.unwrap_or(0);
                a
            });
        }
    }
    if i.vmac.is_some() && !i.unicast_peers.is_empty() && !i.vmac_xmit_base {
        // keepalived (vrrp_parser.c): unicast adverts cannot go out on the
        // macvlan, whose MAC the peers would learn for our own address.
        r.warn(
            &s.loc,
            format!("({}) unicast with use_vmac requires vmac_xmit_base - setting", i.name),
            "add `vmac_xmit_base` to say so",
        );
        i.vmac_xmit_base = true;
    }
    if i.vmac_xmit_base && i.vmac.is_none() {
        r.warn(
            &s.loc,
            format!("instance {}: `vmac_xmit_base` without `use_vmac` has no effect", i.name),
            "add `use_vmac`, or drop `vmac_xmit_base`",
        );
        i.vmac_xmit_base = false;
    }
    match interface {
        Some(ifc) => i.interface = ifc,
        None => r.error(
            &s.loc,
            format!("instance {} has no `interface`", i.name),
            "add `interface eth0` (the interface the adverts go out on)",
        ),
    }
    match vrid {
        Some(v) => i.vrid = v,
        None if !r.diags[errors_before..].iter().any(|d| d.message.contains("virtual_router_id")) => r.error(
            &s.loc,
            format!("instance {} has no `virtual_router_id`", i.name),
            "add `virtual_router_id N` (1-255, the same on every node)",
        ),
        None => {}
    }
    if let Some(first) = i.vips.first() {
        i.family = if first.addr.is_ipv4() { Family::V4 } else { Family::V6 };
    }
    let v6 = i.family == Family::V6;
    i.strict = strict_mode.unwrap_or(g.vrrp_strict);
    if v6 && i.version == Version::V2 && version_set && i.strict {
        // keepalived's vrrp_complete_instance, in its order from here on.
        r.warn(
            &s.loc,
            format!("({}) cannot use IPv6 with VRRP version 2; setting version 3", i.name),
            "strict mode (vrrp_strict): IPv6 instances are VRRPv3",
        );
        i.version = Version::V3;
    }
    if v6 && i.version == Version::V2 {
        if version_set {
            r.error(
                &s.loc,
                format!("instance {}: VRRPv2 has no IPv6", i.name),
                "use `version 3` for IPv6 virtual addresses",
            );
        } else {
            // keepalived does the same: IPv6 instances are VRRPv3.
            i.version = Version::V3;
        }
    }
    if i.strict {
        strict_rules(&mut i, s, r, &state_loc, &auth_loc, &preempt_delay_loc, &garp_lower_prio);
        if i.auth.is_none() {
            auth_loc = None;
        }
    }
    // Accept Mode's default, keepalived's: the owner accepts; otherwise
    // accept unless strict. Strict mode refuses it for VRRPv2, which
    // RFC 3768 does not define it for.
    i.accept = match &accept {
        Some((a, _)) => *a,
        None => i.priority == 255 || !i.strict,
    };
    if let Some((true, loc)) = &accept
        && i.priority != 255
        && i.strict
        && i.version == Version::V2
    {
        r.warn(
            loc,
            format!("({}) warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting", i.name),
            "strict mode (vrrp_strict): packets to the VIPs are dropped while MASTER; use version 3 for accept",
        );
        i.accept = false;
    }
    match &lower_prio_no_advert {
        Some((false, loc)) if i.strict => r.warn(
            loc,
            format!("({}) Strict mode requires no lower priority advert. resetting", i.name),
            "strict mode (vrrp_strict) keeps lower_prio_no_advert on",
        ),
        Some((b, _)) => i.lower_prio_no_advert = *b,
        None => {}
    }
    if i.strict {
        i.lower_prio_no_advert = true;
    }
    if i.vips.is_empty() {
        // keepalived (vrrp.c vrrp_complete_instance): without a VIP a
        // VRRPv2 instance runs with a warning (cloud setups move the
        // address from notify_master); VRRPv3 requires one.
        if i.version == Version::V3 || i.strict {
            r.error(
                &s.loc,
                format!("({}) No VIP specified; at least one is required", i.name),
                "VRRPv3 and strict-mode instances need a virtual_ipaddress (keepalived refuses them too); use version 2 to run without one",
            );
        } else {
            r.warn(
                &s.loc,
                format!("({}) No VIP specified; at least one is sensible", i.name),
                "the instance elects a master and runs its notify scripts, but no address moves",
            );
        }
    }
    if let (Some(loc), Version::V3) = (&auth_loc, i.version) {
        r.error(
            loc,
            format!("instance {}: authentication with version 3", i.name),
            "RFC 5798 removed authentication; drop the block or use version 2",
        );
    }
    // keepalived (vrrp_complete_instance): an AH instance needs an advert
    // to learn the sequence number before it takes over, so it starts as
    // BACKUP unless it owns the addresses.
    if let (Some(AuthConf::Ah(_)), InitialState::Master, Some(loc)) = (&i.auth, i.state, &auth_loc)
        && i.priority != 255
    {
        r.warn(
            loc,
            format!("({}) Initial state master is incompatible with AH authentication - clearing", i.name),
            "keepalived does the same: the instance starts as BACKUP and learns the sequence number from the master's adverts",
        );
        i.state = InitialState::Backup;
    }
    if i.version == Version::V2 && !i.advert_int.0.is_multiple_of(100) {
        let up = Centis((i.advert_int.0 / 100 + 1) * 100);
        if let Some(l) = &advert_loc {
            r.warn(
                l,
                format!("VRRPv2 advertises whole seconds: advert_int rounded up to {} s", up.0 / 100),
                "use version 3 for sub-second intervals",
            );
        }
        i.advert_int = up;
    }
    if i.advert_int.0 == 0
        || (i.version == Version::V3 && i.advert_int > Centis::MAX_V3)
        || (i.version == Version::V2 && i.advert_int.0 > 25500)
    {
        r.error(
            advert_loc.as_ref().unwrap_or(&s.loc),
            format!("instance {}: advert_int out of range", i.name),
            "v2: 1-255 s; v3: 0.01-40.95 s",
        );
    }
    for p in &i.unicast_peers {
        if p.is_ipv6() != v6 {
            r.error(
                &s.loc,
                format!(
                    "instance {}: unicast peer {p} is not of the family of its virtual addresses",
                    i.name
                ),
                "peers and VIPs must all be IPv4 or all IPv6",
            );
        }
    }
    if let Some(src) = i.unicast_src_ip.filter(|a| a.is_ipv6() != v6) {
        r.error(
            &s.loc,
            format!(
                "instance {}: unicast_src_ip {src} is not of the family of its virtual addresses",
                i.name
            ),
            "use an address of the same family",
        );
    }
    if r.errors_since(errors_before, dropped_before) { None } else { Some(i) }
}

/// What keepalived's strict mode (`vrrp_strict`, `strict_mode`) refuses
/// or resets in an instance, with its messages (vrrp.c,
/// `vrrp_complete_instance`). Resets are warnings, as keepalived carries
/// on; an instance keepalived drops (unicast peers) is an error.
fn strict_rules(
    i: &mut Instance,
    s: &Stmt,
    r: &mut Report,
    state_loc: &Option<Loc>,
    auth_loc: &Option<Loc>,
    preempt_delay_loc: &Option<Loc>,
    garp_lower_prio: &[(String, Loc)],
) {
    let why = "strict mode (vrrp_strict or strict_mode) enforces RFC 5798";
    let owner = i.priority == 255;
    if state_loc.is_some() && (i.state == InitialState::Master) != owner {
        r.warn(
            state_loc.as_ref().unwrap_or(&s.loc),
            format!("({}) State MASTER must match being address owner", i.name),
            format!("{why}: the instance starts as {}", if owner { "MASTER" } else { "BACKUP" }),
        );
        i.state = if owner { InitialState::Master } else { InitialState::Backup };
    }
    if i.auth.is_some() {
        r.warn(
            auth_loc.as_ref().unwrap_or(&s.loc),
            format!("({}) Strict mode does not support authentication. Ignoring.", i.name),
            format!("{why}: adverts are sent and accepted without authentication"),
        );
        i.auth = None;
    }
    if !i.unicast_peers.is_empty() {
        r.error(
            &s.loc,
            format!("({}) Unicast peers are not supported in strict mode", i.name),
            "remove unicast_peer (adverts go to the multicast group) or set `strict_mode off` in the instance",
        );
    }
    if i.family == Family::V6 && i.unicast_peers.is_empty() {
        if let Some(first) = i.vips.first().filter(|v| match v.addr {
            IpAddr::V6(a) => !a.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        }) {
            r.warn(
                &s.loc,
                format!("({}) the first IPv6 VIP address must be link local", i.name),
                format!("{why} 5.2.9: {} is not fe80::/10; keepalived carries on", first.addr),
            );
        }
    }
    if !i.preempt_delay.is_zero() {
        r.warn(
            preempt_delay_loc.as_ref().unwrap_or(&s.loc),
            format!("({}) preempt_delay is incompatible with strict mode - resetting", i.name),
            why,
        );
        i.preempt_delay = std::time::Duration::ZERO;
    }
    // keepalived: strict mode sends none (an explicit setting is reset
    // with the warning below).
    i.garp_lower_prio_repeat = 0;
    i.garp_lower_prio_delay = 0;
    for (k, loc) in garp_lower_prio {
        let msg = if k == "garp_lower_prio_repeat" {
            "Strict mode requires no repeat garps. resetting"
        } else {
            "Strict mode requires no repeat garp delay. resetting"
        };
        r.warn(loc, format!("({}) {msg}", i.name), why);
    }
}

fn script(s: &Stmt, r: &mut Report) -> Option<Script> {
    let Some((name, _)) = s.args.first() else {
        r.error(&s.loc, "vrrp_script needs a name", "as in `vrrp_script check_nginx {`");
        return None;
    };
    let before = r.diags.len();
    let dropped_before = r.dropped_errors;
    let mut sc = Script {
        name: name.clone(),
        script: String::new(),
        interval: std::time::Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        user: None,
        user_loc: None,
        init_fail: false,
        loc: s.loc.clone(),
    };
    for st in s.block.as_deref().unwrap_or_default() {
        match st.key.as_str() {
            // keepalived joins the words of an unquoted command line.
            "script" => sc.script = st.args.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(" "),
            "interval" => {
                sc.interval =
                    duration(st, r, 0.001..=86400.0, "seconds, 0.001 to 86400").unwrap_or(sc.interval)
            }
            "timeout" => sc.timeout = duration(st, r, 0.001..=86400.0, "seconds, 0.001 to 86400"),
            "weight" => {
                sc.weight = int(st, r, -253..=253, "-253..=253").unwrap_or(0);
                sc.reverse = st.args.iter().skip(1).any(|(a, _)| a == "reverse");
            }
            "rise" => sc.rise = int(st, r, 1..=1000, "a count").unwrap_or(sc.rise),
            "fall" => sc.fall = int(st, r, 1..=1000, "a count").unwrap_or(sc.fall),
            "user" => {
                sc.user = user(st);
                sc.user_loc = Some(st.loc.clone());
            }
            "init_fail" => sc.init_fail = true,
            k => r.warn(
                &st.loc,
                format!("unknown vrrp_script keyword `{k}` ignored"),
                "script, interval, timeout, weight, rise, fall, user, init_fail",
            ),
        }
    }
    if sc.script.is_empty() {
        r.error(
            &s.loc,
            format!("vrrp_script {} has no `script`", sc.name),
            "add `script \"/path/to/check args\"`",
        );
    }
    if r.errors_since(before, dropped_before) { None } else { Some(sc) }
}
