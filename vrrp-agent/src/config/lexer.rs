//! keepalived.conf's lexical layer: words, quoted strings, braces and
//! newlines, with `#` and `!` comments, and `include` with globs resolved
//! relative to the including file (as keepalived does).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::Diag;

/// Where a token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The file.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A word or a quoted string (quotes removed).
    Word(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// End of a line: ends a statement.
    Newline,
}

/// A token with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What.
    pub tok: Tok,
    /// Where.
    pub loc: Loc,
}

/// A problem reading the files.
#[derive(Debug, thiserror::Error)]
pub enum LexError {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An unterminated quote.
    #[error("{loc}: error: unterminated quoted string\n  hint: close it with a '\"' on the same line")]
    Quote {
        /// Where it started.
        loc: Loc,
    },
    /// `include` without a pattern, or a bad pattern.
    #[error("{loc}: error: {message}\n  hint: write `include /path/to/file.conf` (globs allowed)")]
    Include {
        /// Where.
        loc: Loc,
        /// What.
        message: String,
    },
    /// Bytes outside comments that are not UTF-8.
    #[error(
        "{loc}: error: byte 0x{byte:02x} is not UTF-8\n  hint: keywords and values must be UTF-8 (or ASCII); other encodings, such as Latin-1, are accepted in comments only"
    )]
    Encoding {
        /// Where.
        loc: Loc,
        /// The first bad byte.
        byte: u8,
    },
    /// A line longer than keepalived reads.
    #[error(
        "{loc}: error: line is {len} bytes long, more than keepalived's {MAX_LINE}\n  hint: keepalived would split it in two; break it into several lines (a block lists one item per line)"
    )]
    LineTooLong {
        /// Where.
        loc: Loc,
        /// Its length.
        len: usize,
    },
    /// keepalived's preprocessing (`@ID`, `$NAME`, `~SEQ`) failed.
    #[error(
        "{loc}: error: {source}\n  hint: see PARAMETER SUBSTITUTION and CONDITIONAL CONFIGURATION in keepalived.conf(5)"
    )]
    Pre {
        /// Where.
        loc: Loc,
        /// What.
        source: super::preproc::PreError,
    },
    /// Includes nested too deep (a loop).
    #[error("{loc}: error: includes nested more than {depth} deep (an include loop?)")]
    Depth {
        /// Where.
        loc: Loc,
        /// The limit.
        depth: usize,
    },
}

impl LexError {
    /// Where in the configuration, when it is about a place in it.
    pub fn loc(&self) -> Option<&Loc> {
        match self {
            LexError::Read { .. } => None,
            LexError::Quote { loc }
            | LexError::Include { loc, .. }
            | LexError::Encoding { loc, .. }
            | LexError::LineTooLong { loc, .. }
            | LexError::Pre { loc, .. }
            | LexError::Depth { loc, .. } => Some(loc),
        }
    }
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// keepalived reads its configuration with `fgets` into a 1024-byte buffer
/// (lib/parser.h MAXBUF): a longer line is silently split in two there, so
/// no line keepalived parses as written is longer than this. Refusing such
/// a line also bounds the per-line work (a 10 MB single-line file used to
/// take 834 MB).
pub const MAX_LINE: usize = 1023;

/// Tokens of `path` and everything it includes, in order, with the
/// warnings found on the way (a glob that matches no file).
pub fn lex_file(path: &Path) -> Result<(Vec<Token>, Vec<Diag>), LexError> {
    let mut st = Stream::new(path);
    let tokens: Vec<Token> = st.by_ref().collect();
    st.finish().map(|w| (tokens, w))
}

/// At most this many files are read for one configuration: each level of
/// a glob include that matches its own directory multiplies the reads,
/// and sixteen levels of that would never end.
pub const MAX_FILES: usize = 1000;

/// keepalived's include checks (keepalived.conf(5), "include"): which
/// problems with an included file are errors rather than logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IncludeChecks {
    /// A file that cannot be read, or is not a regular non-executable file.
    readable: bool,
    /// A named file that does not exist.
    match_: bool,
    /// A wildcard that matches nothing.
    wildcard_match: bool,
}

impl IncludeChecks {
    /// The checks of an include keyword, or None for another word.
    fn of(word: &str) -> Option<IncludeChecks> {
        let all = IncludeChecks { readable: true, match_: true, wildcard_match: true };
        Some(match word {
            "include" => IncludeChecks::default(),
            "includer" => IncludeChecks { readable: true, ..Default::default() },
            // keepalived's `b` (brace match) is a match check on the
            // alternatives of `{a,b}`, which glob expands as files here.
            "includem" | "includeb" => IncludeChecks { readable: true, match_: true, ..Default::default() },
            "includew" => IncludeChecks { readable: true, match_: true, wildcard_match: true },
            "includea" => all,
            _ => return None,
        })
    }
}

/// Why keepalived would skip `f` as an included file.
fn skip_reason(f: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(f) {
        Err(_) => Some("cannot be read"),
        Ok(m) if m.is_dir() => Some("is a directory"),
        Ok(m) if !m.is_file() => Some("is not a regular file"),
        Ok(m) if m.permissions().mode() & 0o111 != 0 => Some("is executable, not a configuration file"),
        Ok(_) => None,
    }
}

fn has_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// One file being read.
struct Source {
    path: PathBuf,
    file: Arc<PathBuf>,
    /// Read on first use, so a glob of many files holds one at a time.
    bytes: Option<Vec<u8>>,
    pos: usize,
    line: usize,
    depth: usize,
    /// Tokens of the current line not handed out yet.
    pending: std::collections::VecDeque<Token>,
    at_start: bool,
    ended: bool,
}

/// The tokens of a configuration and its includes, produced a line at a
/// time: the whole token list is never held (the parser builds the tree
/// as they come). The first error stops the stream; [`Stream::finish`]
/// returns it, or the warnings.
pub struct Stream {
    stack: Vec<Source>,
    pre: super::preproc::Pre,
    files: usize,
    warnings: Vec<Diag>,
    error: Option<LexError>,
}

impl Stream {
    /// Start reading `path`.
    pub fn new(path: &Path) -> Stream {
        let mut st = Stream {
            stack: Vec::new(),
            pre: super::preproc::Pre::new(super::preproc::config_id()),
            files: 0,
            warnings: Vec::new(),
            error: None,
        };
        if let Err(e) = st.open(path, 0, None) {
            st.error = Some(e);
        }
        st
    }

    /// The warnings, or the error that stopped the stream.
    pub fn finish(self) -> Result<Vec<Diag>, LexError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.warnings),
        }
    }

    /// Whether the stream stopped on an error.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    fn open(&mut self, path: &Path, depth: usize, from: Option<Loc>) -> Result<(), LexError> {
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(LexError::Include {
                loc: from.unwrap_or_else(|| Loc { file: Arc::new(path.to_path_buf()), line: 1, col: 1 }),
                message: format!("more than {MAX_FILES} files read (an include loop through a glob?)"),
            });
        }
        let read = |source| LexError::Read { path: path.display().to_string(), source };
        // keepalived skips anything but a regular file ("is not a regular
        // non-executable file"); reading a FIFO or /dev/zero would never end.
        let meta = std::fs::metadata(path).map_err(read)?;
        if !meta.is_file() {
            let what = if meta.is_dir() { "a directory" } else { "not a regular file" };
            let msg = format!("{} is {what}", path.display());
            return match from {
                Some(loc) => Err(LexError::Include { loc, message: msg }),
                None => Err(read(std::io::Error::other(msg))),
            };
        }
        self.stack.push(Source {
            path: path.to_path_buf(),
            file: Arc::new(path.to_path_buf()),
            bytes: None,
            pos: 0,
            line: 0,
            depth,
            pending: std::collections::VecDeque::new(),
            at_start: true,
            ended: false,
        });
        Ok(())
    }

    /// `include PATTERN` (or one of keepalived's checked variants, see
    /// [`IncludeChecks`]): push the matching files, first one on top.
    fn include(&mut self, at: Loc, checks: IncludeChecks) -> Result<(), LexError> {
        let Some(src) = self.stack.last_mut() else { return Ok(()) };
        let next_is_word = matches!(src.pending.front(), Some(Token { tok: Tok::Word(_), .. }));
        let Some(Token { tok: Tok::Word(pattern), .. }) = src.pending.pop_front().filter(|_| next_is_word)
        else {
            return Err(LexError::Include { loc: at, message: "include needs a file or pattern".into() });
        };
        if src.depth >= MAX_INCLUDE_DEPTH {
            return Err(LexError::Depth { loc: at, depth: MAX_INCLUDE_DEPTH });
        }
        let depth = src.depth;
        let base = src.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let full =
            if Path::new(&pattern).is_absolute() { PathBuf::from(&pattern) } else { base.join(&pattern) };
        let pat = full.to_string_lossy().into_owned();
        let paths =
            glob::glob(&pat).map_err(|e| LexError::Include { loc: at.clone(), message: e.to_string() })?;
        let mut files: Vec<PathBuf> = paths.flatten().collect();
        files.sort();
        if files.is_empty() {
            // keepalived (lib/parser.c open_and_check_glob): a missing
            // file is an error only under `includem`/`includeb`/`includea`,
            // a wildcard matching nothing only under `includew`/`includea`;
            // plain `include` logs it and goes on without the file.
            let (wild, fatal) =
                if has_glob(&pattern) { (true, checks.wildcard_match) } else { (false, checks.match_) };
            let message = if wild {
                format!("no configuration file matches `{pattern}` (looked for {pat})")
            } else {
                format!("included file `{pattern}` does not exist (looked for {pat})")
            };
            if fatal {
                return Err(LexError::Include { loc: at, message });
            }
            self.warnings.push(Diag::warning(
                &at,
                message,
                "nothing is included, as keepalived does with `include`; use `includem` to make a missing file an error",
            ));
        }
        let mut readable = Vec::new();
        for f in files {
            // keepalived skips anything but a regular non-executable file
            // (check_glob_file); an error only under `includer`/`includea`.
            match skip_reason(&f) {
                None => readable.push(f),
                Some(why) if checks.readable => {
                    return Err(LexError::Include { loc: at, message: format!("{} {why}", f.display()) });
                }
                Some(why) => self.warnings.push(Diag::warning(
                    &at,
                    format!("{} {why}: skipped", f.display()),
                    "keepalived skips it too; use `includer` to make this an error",
                )),
            }
        }
        for f in readable.iter().rev() {
            self.open(f, depth + 1, Some(at.clone()))?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Token>, LexError> {
        loop {
            let Some(src) = self.stack.last_mut() else { return Ok(None) };
            if let Some(t) = src.pending.pop_front() {
                if let (true, Tok::Word(w)) = (src.at_start, &t.tok)
                    && let Some(checks) = IncludeChecks::of(w)
                {
                    self.include(t.loc, checks)?;
                    continue;
                }
                src.at_start = matches!(t.tok, Tok::Newline | Tok::Open | Tok::Close);
                return Ok(Some(t));
            }
            if src.bytes.is_none() {
                let path = src.path.clone();
                src.bytes = Some(
                    std::fs::read(&path)
                        .map_err(|source| LexError::Read { path: path.display().to_string(), source })?,
                );
            }
            let bytes = src.bytes.as_deref().unwrap_or_default();
            if src.pos < bytes.len() {
                let rest = &bytes[src.pos..];
                let end = rest.iter().position(|b| *b == b'\n');
                let raw = &rest[..end.unwrap_or(rest.len())];
                src.pos += raw.len() + 1;
                src.line += 1;
                let text = decode_line(raw, src.line, &src.file)?;
                let loc = Loc { file: Arc::clone(&src.file), line: src.line, col: 1 };
                self.pre.set_pwd(&src.path.parent().unwrap_or(Path::new("/")).to_string_lossy());
                let mut lines = Vec::new();
                self.pre
                    .feed(text, &mut lines)
                    .map_err(|source| LexError::Pre { loc: loc.clone(), source })?;
                let mut toks = Vec::new();
                for l in &lines {
                    // An untouched line, or one whose `@ID` was removed,
                    // keeps its columns.
                    let body = text.trim_end();
                    let pad = if body.ends_with(l.as_str()) { body.len() - l.len() } else { 0 };
                    let padded = format!("{}{l}", " ".repeat(pad));
                    lex_line(&padded, loc.line, &loc.file, &mut toks)?;
                    toks.push(Token {
                        tok: Tok::Newline,
                        loc: Loc { col: padded.chars().count() + 1, ..loc.clone() },
                    });
                }
                src.pending.extend(toks);
                continue;
            }
            if !src.ended {
                // The end of a file ends its last statement.
                src.ended = true;
                let loc = Loc { file: Arc::clone(&src.file), line: src.line + 1, col: 1 };
                src.at_start = true;
                return Ok(Some(Token { tok: Tok::Newline, loc }));
            }
            self.stack.pop();
        }
    }
}

impl Iterator for Stream {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if self.error.is_some() {
            return None;
        }
        match self.step() {
            Ok(t) => t,
            Err(e) => {
                self.error = Some(e);
                self.stack.clear();
                None
            }
        }
    }
}

/// Where the comment of `line` starts (a `#` or `!` outside quotes), or
/// its length.
fn code_end(line: &[u8]) -> usize {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'#' | b'!' => return i,
            b'"' => match line[i + 1..].iter().position(|b| *b == b'"') {
                Some(n) => i += n + 2,
                // Unterminated: the lexer reports it.
                None => return line.len(),
            },
            _ => i += 1,
        }
    }
    line.len()
}

/// Tokens of one file's bytes. Comments may hold any bytes (keepalived,
/// written in C, never looks at them: Latin-1 comments are common); the
/// rest must be UTF-8, else an error at the first bad byte.
pub fn lex_bytes(bytes: &[u8], file: &Arc<PathBuf>) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    let mut n = 0;
    while let Some(raw) = lines.next() {
        // A final newline does not start another line (as str::lines).
        if raw.is_empty() && lines.peek().is_none() {
            break;
        }
        n += 1;
        lex_one_line(raw, n, file, &mut out)?;
    }
    Ok(out)
}

/// Tokens of line `n` (without its '\n'), then a Newline token.
fn lex_one_line(raw: &[u8], n: usize, file: &Arc<PathBuf>, out: &mut Vec<Token>) -> Result<(), LexError> {
    let text = decode_line(raw, n, file)?;
    let chars = text.chars().count();
    lex_line(text, n, file, out)?;
    out.push(Token { tok: Tok::Newline, loc: Loc { file: Arc::clone(file), line: n, col: chars + 1 } });
    Ok(())
}

/// Line `n` (without its '\n') as text, its comment removed.
fn decode_line<'a>(raw: &'a [u8], n: usize, file: &Arc<PathBuf>) -> Result<&'a str, LexError> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > MAX_LINE {
        return Err(LexError::LineTooLong {
            loc: Loc { file: Arc::clone(file), line: n, col: 1 },
            len: raw.len(),
        });
    }
    let code = &raw[..code_end(raw)];
    let text = std::str::from_utf8(code).map_err(|e| {
        let good = &code[..e.valid_up_to()];
        let col = std::str::from_utf8(good).map_or(good.len(), |s| s.chars().count()) + 1;
        LexError::Encoding {
            loc: Loc { file: Arc::clone(file), line: n, col },
            byte: code.get(e.valid_up_to()).copied().unwrap_or_default(),
        }
    })?;
    Ok(text)
}

/// Tokens of one file's text.
pub fn lex_str(text: &str, file: &Arc<PathBuf>) -> Result<Vec<Token>, LexError> {
    lex_bytes(text.as_bytes(), file)
}

fn lex_line(line: &str, n: usize, file: &Arc<PathBuf>, out: &mut Vec<Token>) -> Result<(), LexError> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let loc = |col: usize| Loc { file: Arc::clone(file), line: n, col: col + 1 };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || c == '!' {
            break;
        } else if c == '{' {
            out.push(Token { tok: Tok::Open, loc: loc(i) });
            i += 1;
        } else if c == '}' {
            out.push(Token { tok: Tok::Close, loc: loc(i) });
            i += 1;
        } else if c == '"' {
            let start = i;
            let end =
                chars[i + 1..].iter().position(|c| *c == '"').ok_or(LexError::Quote { loc: loc(start) })?;
            let word: String = chars[i + 1..i + 1 + end].iter().collect();
            out.push(Token { tok: Tok::Word(word), loc: loc(start) });
            i += end + 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"{}#!\"".contains(chars[i]) {
                i += 1;
            }
            out.push(Token { tok: Tok::Word(chars[start..i].iter().collect()), loc: loc(start) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        lex_str(text, &Arc::new(PathBuf::from("t.conf")))
            .expect("lexes")
            .into_iter()
            .map(|t| match t.tok {
                Tok::Word(w) => w,
                Tok::Open => "{".into(),
                Tok::Close => "}".into(),
                Tok::Newline => "NL".into(),
            })
            .collect()
    }

    #[test]
    fn comments_braces_and_quotes() {
        assert_eq!(
            words("vrrp_instance VI_1 { # comment\n  script \"/bin/check x\" ! more\n}"),
            ["vrrp_instance", "VI_1", "{", "NL", "script", "/bin/check x", "NL", "}", "NL"]
        );
        assert_eq!(words("a{b}c"), ["a", "{", "b", "}", "c", "NL"]);
    }

    #[test]
    fn locations_are_one_based() {
        let t = lex_str("\n  priority 100", &Arc::new(PathBuf::from("k.conf"))).expect("lexes");
        assert_eq!(t[1].loc.to_string(), "k.conf:2:3");
        assert_eq!(t[2].loc.col, 12);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let e = lex_str("script \"abc", &Arc::new(PathBuf::from("k.conf"))).expect_err("fails");
        assert!(e.to_string().starts_with("k.conf:1:8: error: unterminated"), "{e}");
    }
}
