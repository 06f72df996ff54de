//! keepalived.conf's lexical layer: words, quoted strings, braces and
//! newlines, with `#` and `!` comments, and `include` with globs resolved
//! relative to the including file (as keepalived does).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Includes nested too deep (a loop).
    #[error("{loc}: error: includes nested more than {depth} deep (an include loop?)")]
    Depth {
        /// Where.
        loc: Loc,
        /// The limit.
        depth: usize,
    },
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Tokens of `path` and everything it includes, in order.
pub fn lex_file(path: &Path) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    lex_into(path, 0, &mut out)?;
    Ok(out)
}

fn lex_into(path: &Path, depth: usize, out: &mut Vec<Token>) -> Result<(), LexError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| LexError::Read { path: path.display().to_string(), source })?;
    let file = Arc::new(path.to_path_buf());
    let tokens = lex_str(&text, &file)?;
    // `include PATTERN` at the start of a statement is expanded in place.
    let mut i = 0;
    let mut at_start = true;
    while i < tokens.len() {
        let t = &tokens[i];
        if at_start && t.tok == Tok::Word("include".into()) {
            let Some(Token { tok: Tok::Word(pattern), .. }) = tokens.get(i + 1) else {
                return Err(LexError::Include {
                    loc: t.loc.clone(),
                    message: "include needs a file or pattern".into(),
                });
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(LexError::Depth { loc: t.loc.clone(), depth: MAX_INCLUDE_DEPTH });
            }
            let base = path.parent().unwrap_or(Path::new("."));
            let full =
                if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
            let pat = full.to_string_lossy().into_owned();
            let paths = glob::glob(&pat)
                .map_err(|e| LexError::Include { loc: t.loc.clone(), message: e.to_string() })?;
            let mut files: Vec<PathBuf> = paths.flatten().collect();
            files.sort();
            for f in files {
                lex_into(&f, depth + 1, out)?;
            }
            i += 2;
            continue;
        }
        at_start = matches!(t.tok, Tok::Newline | Tok::Open | Tok::Close);
        out.push(t.clone());
        i += 1;
    }
    out.push(Token { tok: Tok::Newline, loc: Loc { file, line: text.lines().count() + 1, col: 1 } });
    Ok(())
}

/// Tokens of one file's text.
pub fn lex_str(text: &str, file: &Arc<PathBuf>) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        let loc = |col: usize| Loc { file: Arc::clone(file), line: n + 1, col: col + 1 };
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
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '"')
                    .ok_or(LexError::Quote { loc: loc(start) })?;
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
        out.push(Token { tok: Tok::Newline, loc: loc(chars.len()) });
    }
    Ok(out)
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
