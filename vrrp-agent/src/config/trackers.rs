//! keepalived's trackers other than scripts and interfaces, as
//! configured: `track_file` / `vrrp_track_file` and `vrrp_track_process`
//! blocks, and the `track_file { }` / `track_process { }` lists of a
//! `vrrp_instance` (keepalived 2.2.7 `trackers/track_file.c`,
//! `vrrp/vrrp_parser.c`, `vrrp/vrrp_track.c`). Kept apart from `model.rs`
//! so that a sync group can read the same lists.

use std::path::PathBuf;
use std::time::Duration;

use super::lexer::Loc;
use super::model::{Report, duration};
use super::tree::Stmt;

/// `track_file NAME { file PATH; weight W [reverse]; init_file [V] [overwrite] }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    /// Name the instances refer to.
    pub name: String,
    /// The file watched.
    pub path: PathBuf,
    /// Default weight of the entries that track it (keepalived: 1).
    pub weight: i32,
    /// `weight W reverse`: the value counts negated.
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: write VALUE (default 0) at start
    /// if the file is missing, or always with `overwrite`.
    pub init: Option<(i64, bool)>,
    /// Where it is defined.
    pub loc: Loc,
}

/// How a process's parameters must match (`param_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// No parameters given: any parameters match.
    None,
    /// Exactly the parameters given (the default when some are given).
    Exact,
    /// The parameters given, then any more (`partial`).
    Partial,
    /// As partial, but the last one given may be the start of a longer
    /// one (`initial`).
    Initial,
}

/// `vrrp_track_process NAME { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackProcess {
    /// Name the instances refer to.
    pub name: String,
    /// The process name (its comm, or argv\[0] with `full_command` or
    /// parameters).
    pub process: String,
    /// Parameters after the name, if any.
    pub params: Vec<String>,
    /// How they match.
    pub param_match: ParamMatch,
    /// Match the command line rather than the process name.
    pub full_command: bool,
    /// Default weight of the entries that track it. keepalived 2.2.7's
    /// code leaves it 0 (FAULT while the quorum is lost) although its
    /// manual says 1; the code is what runs.
    pub weight: i32,
    /// `weight W reverse`.
    pub reverse: bool,
    /// Fewest matching processes that are up (default 1).
    pub quorum: u32,
    /// Most (default unlimited; 0 means "must not run").
    pub quorum_max: u32,
    /// After the quorum is gained, wait this long before counting it up.
    pub fork_delay: Duration,
    /// After the quorum is lost, wait this long before counting it down.
    pub terminate_delay: Duration,
    /// Where it is defined.
    pub loc: Loc,
}

/// One entry of an instance's `track_file { }` or `track_process { }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRef {
    /// The tracker's name.
    pub name: String,
    /// `weight W`, else the tracker's own.
    pub weight: Option<i32>,
    /// `reverse` / `noreverse` after the weight, else the tracker's own.
    pub reverse: Option<bool>,
    /// Where it is.
    pub loc: Loc,
}

fn first(s: &Stmt) -> Option<&str> {
    s.args.first().map(|(v, _)| v.as_str())
}

/// keepalived's `read_int_strvec`: a whole number in range.
fn whole(v: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
    v.parse::<i64>().ok().filter(|n| range.contains(n))
}

/// A `track_file` / `vrrp_track_file` block. keepalived drops a block
/// without `file` with an error; so do we.
pub fn track_file(s: &Stmt, r: &mut Report) -> Option<TrackFile> {
    let Some(name) = first(s) else {
        r.error(&s.loc, format!("{} needs a name", s.key), "as in `track_file maintenance {`");
        return None;
    };
    let mut t = TrackFile {
        name: name.to_owned(),
        path: PathBuf::new(),
        weight: 1,
        reverse: false,
        init: None,
        loc: s.loc.clone(),
    };
    let mut weight_set = false;
    for st in s.block.as_deref().unwrap_or_default() {
        match st.key.as_str() {
            "file" => match first(st) {
                Some(p) if t.path.as_os_str().is_empty() => t.path = PathBuf::from(p),
                Some(p) => r.warn(
                    &st.loc,
                    format!("File already set for track file {} - ignoring {p}", t.name),
                    "one `file` per track_file",
                ),
                None => r.error(&st.loc, "track file file name missing", "as in `file /run/maintenance`"),
            },
            "weight" => {
                if weight_set {
                    r.warn(
                        &st.loc,
                        format!("Weight already set for track file {} - ignoring", t.name),
                        "one `weight` per track_file",
                    );
                    continue;
                }
                weight_set = true;
                match first(st).and_then(|v| whole(v, -254..=254)) {
                    Some(w) => t.weight = w as i32,
                    None => r.error(
                        &st.loc,
                        format!("weight for track_file {} must be between [-254..254] inclusive", t.name),
                        "as in `weight -10` or `weight 0` (a non-zero value then means FAULT)",
                    ),
                }
                match st.args.get(1).map(|(v, l)| (v.as_str(), l)) {
                    None => {}
                    Some(("reverse", _)) => t.reverse = true,
                    Some((o, l)) => r.error(
                        l,
                        format!("track_file {} unknown weight option {o}", t.name),
                        "the only option is `reverse`",
                    ),
                }
            }
            "init_file" => {
                let mut value = 0;
                let mut overwrite = false;
                for (w, l) in &st.args {
                    if w == "overwrite" {
                        overwrite = true;
                    } else if let Some(v) = whole(w, i64::from(i32::MIN)..=i64::from(i32::MAX)) {
                        if !(-254..=254).contains(&v) {
                            r.warn(
                                l,
                                format!(
                                    "Track file {} init value {v} is outside sensible range [-254, 254]",
                                    t.name
                                ),
                                "it is written as given",
                            );
                        }
                        value = v;
                    } else {
                        r.error(
                            l,
                            format!("Track file {} init value {w} is invalid", t.name),
                            "init_file [VALUE] [overwrite], VALUE a whole number",
                        );
                    }
                }
                t.init = Some((value, overwrite));
            }
            k => r.warn(
                &st.loc,
                format!("unknown track_file keyword `{k}` ignored"),
                "file, weight, init_file",
            ),
        }
    }
    if t.path.as_os_str().is_empty() {
        r.error(
            &s.loc,
            format!("No file set for track_file {}", t.name),
            "add `file /path/to/file` (keepalived ignores the block without it)",
        );
        return None;
    }
    Some(t)
}

/// A `vrrp_track_process` block.
pub fn track_process(s: &Stmt, r: &mut Report) -> Option<TrackProcess> {
    let Some(name) = first(s) else {
        r.error(&s.loc, "vrrp_track_process needs a name", "as in `vrrp_track_process nginx {`");
        return None;
    };
    let mut t = TrackProcess {
        name: name.to_owned(),
        process: String::new(),
        params: Vec::new(),
        param_match: ParamMatch::None,
        full_command: false,
        weight: 0,
        reverse: false,
        quorum: 1,
        quorum_max: u32::MAX,
        fork_delay: Duration::ZERO,
        terminate_delay: Duration::ZERO,
        loc: s.loc.clone(),
    };
    let delay_range = 0.000_001..=3600.0;
    let delay_hint = "seconds, 0.000001 to 3600";
    for st in s.block.as_deref().unwrap_or_default() {
        match st.key.as_str() {
            "process" => {
                let Some((p, rest)) = st.args.split_first() else {
                    r.error(&st.loc, "`process` needs a process name", "as in `process nginx`");
                    continue;
                };
                if !t.process.is_empty() {
                    r.warn(
                        &st.loc,
                        format!("Process already set for track process {} - ignoring {}", t.name, p.0),
                        "one `process` per vrrp_track_process",
                    );
                    continue;
                }
                t.process = p.0.clone();
                if !rest.is_empty() {
                    t.params = rest.iter().map(|(a, _)| a.clone()).collect();
                    if t.param_match == ParamMatch::None {
                        t.param_match = ParamMatch::Exact;
                    }
                    t.full_command = true;
                }
            }
            "param_match" => {
                t.param_match = match first(st) {
                    None => ParamMatch::Exact,
                    Some("initial") => ParamMatch::Initial,
                    Some("partial") => ParamMatch::Partial,
                    Some(o) => {
                        r.error(&st.loc, format!("Invalid param_match type {o}"), "initial or partial");
                        continue;
                    }
                };
                t.full_command = true;
            }
            "weight" => {
                match first(st).and_then(|v| whole(v, -254..=254)) {
                    Some(w) => t.weight = w as i32,
                    None => r.error(
                        &st.loc,
                        format!("Weight for vrrp_track_process {} must be between [-254..254] inclusive", t.name),
                        "as in `weight -20`, or `weight 0` for FAULT while the quorum is lost",
                    ),
                }
                match st.args.get(1).map(|(v, l)| (v.as_str(), l)) {
                    None => {}
                    Some(("reverse", _)) => t.reverse = true,
                    Some((o, l)) => r.error(
                        l,
                        format!("vrrp_track_process {} unknown weight option {o}", t.name),
                        "the only option is `reverse`",
                    ),
                }
            }
            "quorum" => match first(st).and_then(|v| whole(v, 1..=65535)) {
                Some(q) if q as u32 > t.quorum_max => {
                    r.error(&st.loc, "Quorum is greater than quorum_max", "put quorum before quorum_max")
                }
                Some(q) => t.quorum = q as u32,
                None => r.error(
                    &st.loc,
                    format!("Quorum for vrrp_track_process {} must be between [1..65535] inclusive", t.name),
                    "the fewest matching processes for the tracker to be up",
                ),
            },
            "quorum_max" => match first(st).and_then(|v| whole(v, 0..=65535)) {
                // keepalived: quorum_max 0 (with no quorum above 1) means
                // the process must not run at all.
                Some(q) if (q != 0 || t.quorum > 1) && (q as u32) < t.quorum => {
                    r.error(&st.loc, "quorum_max is less than quorum", "quorum_max >= quorum")
                }
                Some(q) => {
                    t.quorum_max = q as u32;
                    if q == 0 {
                        t.quorum = 0;
                    } else if t.quorum == 0 {
                        t.quorum = 1;
                    }
                }
                None => r.error(
                    &st.loc,
                    format!("quorum_max for vrrp_track_process {} must be between [0..65535] inclusive", t.name),
                    "the most matching processes for the tracker to be up",
                ),
            },
            k @ ("delay" | "fork_delay" | "terminate_delay") => {
                if let Some(d) = duration(st, r, delay_range.clone(), delay_hint) {
                    if k != "fork_delay" {
                        t.terminate_delay = d;
                    }
                    if k != "terminate_delay" {
                        t.fork_delay = d;
                    }
                }
            }
            "full_command" => t.full_command = true,
            k => r.warn(
                &st.loc,
                format!("unknown vrrp_track_process keyword `{k}` ignored"),
                "process, param_match, weight, quorum, quorum_max, delay, fork_delay, terminate_delay, full_command",
            ),
        }
    }
    if t.process.is_empty() {
        r.error(
            &s.loc,
            format!("track process '{}' process name not specified", t.name),
            "add `process NAME` (keepalived drops the block without it)",
        );
        return None;
    }
    Some(t)
}

/// An instance's `track_file { NAME [weight W [reverse|noreverse]] }` or
/// `track_process { ... }` list (the weight range is keepalived's
/// -254..254).
pub fn refs(s: &Stmt, what: &str, r: &mut Report) -> Vec<TrackRef> {
    let mut out: Vec<TrackRef> = Vec::new();
    for st in s.block.as_deref().unwrap_or_default() {
        if out.iter().any(|t| t.name == st.key) {
            r.warn(&st.loc, format!("duplicate {what} {} - ignoring", st.key), "list each tracker once");
            continue;
        }
        let mut t = TrackRef { name: st.key.clone(), weight: None, reverse: None, loc: st.loc.clone() };
        let args: Vec<&str> = st.args.iter().map(|(a, _)| a.as_str()).collect();
        match args.as_slice() {
            [] => {}
            ["weight", w, rest @ ..] => {
                match whole(w, -254..=254) {
                    Some(w) => t.weight = Some(w as i32),
                    None => r.error(
                        &st.loc,
                        format!("weight for {what} {} must be in [-254..254] inclusive", t.name),
                        "as in `maintenance weight -20`",
                    ),
                }
                match rest {
                    [] => {}
                    ["reverse"] => t.reverse = Some(true),
                    ["noreverse"] => t.reverse = Some(false),
                    [o, ..] => r.error(
                        &st.loc,
                        format!("unknown {what} {} weight option {o}", t.name),
                        "reverse or noreverse",
                    ),
                }
            }
            ["weight"] => r.error(
                &st.loc,
                format!("weight without value specified for {what} {}", t.name),
                "as in `weight -20`",
            ),
            [o, ..] => r.error(
                &st.loc,
                format!("unknown {what} option {o}"),
                "entries are `NAME [weight W [reverse]]`",
            ),
        }
        out.push(t);
    }
    out
}
