//! keepalived's line-level preprocessing, between reading a line and
//! splitting it into words (keepalived 2.2.7 `lib/parser.c`, `read_line`):
//!
//! - conditional lines: `@ID line` is kept only where the configuration ID
//!   (`-i/--config-id`, default the host name up to its first dot) is ID;
//!   `@^ID line` everywhere else;
//! - definitions: `$NAME=value`, or a multi-line one whose lines end in
//!   `\`; then `$NAME` or `${NAME}` in later lines is replaced (a
//!   multi-line definition only where it is the whole line);
//! - sequences: `~SEQ(VAR, [START,] [STEP,] END) line` repeats `line` with
//!   `$VAR` set to each value (`~SEQx` in hexadecimal);
//! - keepalived's standard definitions `$_PWD`, `$_INSTANCE`, `$_HASH`,
//!   `$_BANG` and `${_RANDOM [MIN [MAX]]}`.
//!
//! Lines come in without their comment; they go out as zero or more lines,
//! each reported at the line it came from.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Why a line cannot be preprocessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreError {
    /// A `~SEQ` keepalived would refuse.
    #[error("invalid ~SEQ: {0}")]
    Seq(String),
    /// Expansion does not end (a definition that uses itself).
    #[error("parameter expansion nested more than {0} deep (does a definition use itself?)")]
    Depth(usize),
    /// A sequence that would make more lines than any configuration needs.
    #[error("~SEQ makes more than {0} lines")]
    TooMany(usize),
    /// A replacement made the line longer than keepalived reads.
    #[error("parameter substitution makes the line longer than {0} bytes")]
    TooLong(usize),
    /// `~LST`, which vrrp-agent does not implement.
    #[error("~LST is not supported by vrrp-agent")]
    Lst,
}

const MAX_DEPTH: usize = 32;
/// Lines one `~SEQ` may make: keepalived has no limit, but the model
/// refuses more than 255 VRIDs per interface long before this.
const MAX_SEQ_LINES: usize = 100_000;

static CONFIG_ID: OnceLock<String> = OnceLock::new();

/// Set the configuration ID (`-i/--config-id`) once, before any load.
pub fn set_config_id(id: String) {
    let _ = CONFIG_ID.set(id);
}

/// The configuration ID: as set, else the host name up to its first dot
/// (keepalived's default, `core/main.c`).
pub fn config_id() -> String {
    CONFIG_ID.get().cloned().unwrap_or_else(|| {
        let host = nix_hostname();
        host.split('.').next().unwrap_or_default().to_owned()
    })
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[derive(Clone, Debug)]
struct Def {
    lines: Vec<String>,
    multiline: bool,
}

/// The preprocessor's state across the lines of a configuration and its
/// includes (definitions made in one file hold in the files after it).
#[derive(Debug)]
pub struct Pre {
    id: String,
    defs: HashMap<String, Def>,
    /// The multi-line definition being read.
    collecting: Option<String>,
    /// `$_PWD`: the directory of the file being read.
    pwd: String,
    seed: u64,
}

impl Pre {
    /// A preprocessor for configuration ID `id`.
    pub fn new(id: String) -> Pre {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1);
        Pre { id, defs: HashMap::new(), collecting: None, pwd: String::new(), seed }
    }

    /// The directory `$_PWD` stands for.
    pub fn set_pwd(&mut self, dir: &str) {
        dir.clone_into(&mut self.pwd);
    }

    /// Preprocess one line (comment removed); the lines to parse are
    /// appended to `out`.
    pub fn feed(&mut self, line: &str, out: &mut Vec<String>) -> Result<(), PreError> {
        let line = line.trim();
        if let Some(name) = self.collecting.clone() {
            // keepalived: a blank line, or one without a final `\`, ends a
            // multi-line definition.
            let (text, more) = match line.strip_suffix('\\') {
                Some(t) => (t.trim_end(), true),
                None => (line, false),
            };
            if let Some(d) = self.defs.get_mut(&name) {
                if !text.is_empty() {
                    d.lines.push(text.to_owned());
                }
                if !more || line.is_empty() {
                    if d.lines.is_empty() {
                        d.multiline = false;
                    }
                    self.collecting = None;
                }
            }
            return Ok(());
        }
        if line.is_empty() {
            return Ok(());
        }
        self.process(line.to_owned(), 0, out)
    }

    fn process(&mut self, mut line: String, depth: usize, out: &mut Vec<String>) -> Result<(), PreError> {
        if depth > MAX_DEPTH {
            return Err(PreError::Depth(MAX_DEPTH));
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > MAX_DEPTH {
                return Err(PreError::Depth(MAX_DEPTH));
            }
            if let Some(rest) = line.strip_prefix('@') {
                let (rev, rest) = match rest.strip_prefix('^') {
                    Some(r) => (true, r),
                    None => (false, rest),
                };
                // Something must follow the ID, else the line is dropped.
                let Some(sp) = rest.find([' ', '\t']) else { return Ok(()) };
                if (rest[..sp] == self.id) == rev {
                    return Ok(());
                }
                line = rest[sp..].trim_start().to_owned();
            }
            if line.starts_with('$') && self.define(&line) {
                return Ok(());
            }
            if let Some(rest) = line.strip_prefix("~SEQ") {
                return self.seq(rest, depth, out);
            }
            if line.starts_with("~LST") {
                return Err(PreError::Lst);
            }
            if line.starts_with('~') || !line.contains('$') {
                break;
            }
            // A multi-line definition stands for whole lines only.
            if let Some(d) = self.whole_line_multiline(&line) {
                for l in d.lines {
                    self.process(l, depth + 1, out)?;
                }
                return Ok(());
            }
            match self.replace(&line) {
                Some(new) if new.len() > super::lexer::MAX_LINE => {
                    return Err(PreError::TooLong(super::lexer::MAX_LINE));
                }
                Some(new) => line = new,
                None => break,
            }
            if !line.starts_with('@') && !line.contains('$') {
                break;
            }
        }
        if !line.is_empty() {
            out.push(line);
        }
        Ok(())
    }

    /// `$NAME=value`: record it; false if the line is not a definition.
    fn define(&mut self, line: &str) -> bool {
        let body = &line[1..];
        let Some(eq) = body.find('=') else { return false };
        let name = &body[..eq];
        if !is_name(name) {
            return false;
        }
        let value = body[eq + 1..].trim_start();
        let (first, multiline) = match value.strip_suffix('\\') {
            Some(v) => (v.trim_end(), true),
            None => (value, false),
        };
        let lines = if first.is_empty() && multiline { Vec::new() } else { vec![first.to_owned()] };
        self.defs.insert(name.to_owned(), Def { lines, multiline });
        if multiline {
            self.collecting = Some(name.to_owned());
        }
        true
    }

    fn whole_line_multiline(&self, line: &str) -> Option<Def> {
        let name =
            line.strip_prefix("${").and_then(|r| r.strip_suffix('}')).or_else(|| line.strip_prefix('$'))?;
        self.defs.get(name).filter(|d| d.multiline).cloned()
    }

    /// The value of a single-line definition, standard ones included.
    fn value(&mut self, name: &str, params: Option<&str>) -> Option<String> {
        if let Some(d) = self.defs.get(name) {
            // keepalived: a definition takes no parameters (only _RANDOM does).
            return (!d.multiline && params.is_none()).then(|| d.lines.concat());
        }
        match (name, params) {
            ("_PWD", None) => Some(self.pwd.clone()),
            ("_INSTANCE", None) => Some(self.id.clone()),
            ("_HASH", None) => Some("#".into()),
            ("_BANG", None) => Some("!".into()),
            ("_RANDOM", p) => {
                let mut nums = p.unwrap_or_default().split_whitespace().map(|n| n.parse::<u64>().ok());
                let min = nums.next().flatten().unwrap_or(0);
                let max = nums.next().flatten().unwrap_or(32767).max(min);
                // xorshift: keepalived's random() is no better, and the
                // value only needs to differ between runs.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                Some((min + self.seed % (max - min + 1)).to_string())
            }
            _ => None,
        }
    }

    /// Replace each `$NAME` / `${NAME}` that is defined; None when nothing
    /// was replaced.
    fn replace(&mut self, line: &str) -> Option<String> {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        let mut changed = false;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, params, used) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(end) => {
                        let inner = &b[..end];
                        let (n, p) = match inner.find(' ') {
                            Some(sp) => (&inner[..sp], Some(inner[sp..].trim())),
                            None => (inner, None),
                        };
                        (n, p, end + 2)
                    }
                    None => ("", None, 0),
                }
            } else {
                let end =
                    after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                // keepalived: `$NAME` must be followed by a blank, `,`, `)`
                // or the end of the line.
                let ok = after[end..].chars().next().is_none_or(|c| matches!(c, ' ' | '\t' | ',' | ')'));
                (if ok { &after[..end] } else { "" }, None, end)
            };
            let params_ok = params.is_none_or(|p| p.chars().all(|c| c == ' ' || c.is_ascii_digit()));
            match (is_name(name) && params_ok).then(|| self.value(name, params)).flatten() {
                Some(v) => {
                    out.push_str(&v);
                    rest = &after[used..];
                    changed = true;
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// `~SEQ(VAR, ...) text`, `rest` being what follows `~SEQ`.
    fn seq(&mut self, rest: &str, depth: usize, out: &mut Vec<String>) -> Result<(), PreError> {
        let (hex, rest) = match rest.strip_prefix('x') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let bad = || PreError::Seq(format!("`~SEQ{}{rest}`", if hex { "x" } else { "" }));
        let rest = rest.trim_start().strip_prefix('(').ok_or_else(bad)?;
        let close = rest.find(')').ok_or_else(bad)?;
        let args = self.replace(&rest[..close]).unwrap_or_else(|| rest[..close].to_owned());
        let text = rest[close + 1..].trim_start().to_owned();
        let mut parts = args.split(',').map(str::trim);
        let var = parts.next().filter(|v| is_name(v)).ok_or_else(bad)?.to_owned();
        let nums: Vec<i64> = parts.map(parse_c_long).collect::<Option<_>>().ok_or_else(bad)?;
        // keepalived's add_seq: (END), (START, END) or (START, STEP, END).
        let (start, step, end) = match nums[..] {
            [end] => (if end < 0 { -1 } else { 1 }, if end < 1 { -1 } else { 1 }, end),
            [start, end] => (start, if start <= end { 1 } else { -1 }, end),
            [start, step, end] => {
                if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
                    return Err(PreError::Seq(format!("values {start}, {step}, {end} never reach the end")));
                }
                (start, step, end)
            }
            _ => return Err(bad()),
        };
        if hex && (start < 0 || end < 0) {
            return Err(PreError::Seq("~SEQx is only valid for positive numbers".into()));
        }
        let count = (end - start) / step + 1;
        if count as usize > MAX_SEQ_LINES {
            return Err(PreError::TooMany(MAX_SEQ_LINES));
        }
        let mut v = start;
        while (step > 0 && v <= end) || (step < 0 && v >= end) {
            let val = if hex { format!("{v:x}") } else { v.to_string() };
            self.defs.insert(var.clone(), Def { lines: vec![val], multiline: false });
            self.process(text.clone(), depth + 1, out)?;
            v += step;
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// strtol(.., 0): decimal, 0x hexadecimal or 0 octal.
fn parse_c_long(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, text: &str) -> Vec<String> {
        let mut p = Pre::new(id.into());
        let mut out = Vec::new();
        for l in text.lines() {
            p.feed(l, &mut out).expect("preprocesses");
        }
        out
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@lb1 priority 200\n@lb2 priority 100\n@^lb1 state BACKUP\n@lb1\nplain";
        assert_eq!(run("lb1", text), ["priority 200", "plain"]);
        assert_eq!(run("lb2", text), ["priority 100", "state BACKUP", "plain"]);
    }

    #[test]
    fn definitions_are_replaced_where_they_end_a_word() {
        let text = "$IF=eth0\n$PRIO=150\ninterface $IF\npriority ${PRIO}\nx $IFx $IF,y\nscript \"$1 $HOME\"";
        assert_eq!(
            run("a", text),
            ["interface eth0", "priority 150", "x $IFx eth0,y", "script \"$1 $HOME\""]
        );
    }

    #[test]
    fn a_definition_can_carry_a_conditional() {
        // keepalived rechecks a line for `@` after a replacement.
        let text = "$ONLY_A=@a\n$ONLY_A priority 1";
        assert_eq!(run("a", text), ["priority 1"]);
        assert!(run("b", text).is_empty());
    }

    #[test]
    fn multi_line_definitions_expand_to_their_lines() {
        let text =
            "$VIPS=192.0.2.1/24 \\\n  192.0.2.2/24 \\\n  192.0.2.3/24\n\nvirtual_ipaddress {\n  $VIPS\n}";
        assert_eq!(
            run("a", text),
            ["virtual_ipaddress {", "192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24", "}"]
        );
    }

    #[test]
    fn sequences_repeat_a_line() {
        assert_eq!(run("a", "~SEQ(N, 3) x $N"), ["x 1", "x 2", "x 3"]);
        assert_eq!(run("a", "~SEQ(N, 10, -5, 0) x $N"), ["x 10", "x 5", "x 0"]);
        assert_eq!(run("a", "~SEQx(N, 9, 11) 2001:db8::$N"), ["2001:db8::9", "2001:db8::a", "2001:db8::b"]);
        assert_eq!(run("a", "$MAX=2\n~SEQ(N, 1, $MAX) a$N"), ["a1", "a2"]);
        let mut p = Pre::new("a".into());
        let mut out = Vec::new();
        assert!(matches!(p.feed("~SEQ(N, 1, -1, 5) x", &mut out), Err(PreError::Seq(_))));
        assert!(matches!(p.feed("~SEQ(N 5) x", &mut out), Err(PreError::Seq(_))));
        assert!(matches!(p.feed("~SEQ(N, 1, 10000000) x", &mut out), Err(PreError::TooMany(_))));
    }

    #[test]
    fn standard_definitions() {
        let mut p = Pre::new("node7".into());
        p.set_pwd("/etc/keepalived");
        let mut out = Vec::new();
        p.feed("a $_INSTANCE $_PWD x${_HASH}y", &mut out).expect("ok");
        p.feed("r ${_RANDOM 5 6}", &mut out).expect("ok");
        assert_eq!(out[0], "a node7 /etc/keepalived x#y");
        assert!(out[1] == "r 5" || out[1] == "r 6", "{}", out[1]);
    }

    #[test]
    fn a_definition_that_uses_itself_is_an_error_not_a_hang() {
        let mut p = Pre::new("a".into());
        let mut out = Vec::new();
        p.feed("$A=$A $A", &mut out).expect("defines");
        let e = p.feed("x $A", &mut out).expect_err("refused");
        assert!(matches!(e, PreError::Depth(_) | PreError::TooLong(_)), "{e}");
    }
}
