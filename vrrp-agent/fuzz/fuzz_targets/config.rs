//! The keepalived.conf reader on arbitrary bytes: lexer (with includes,
//! confined to a scratch directory), statement tree and model. Nothing
//! may panic, and every diagnostic must point into the input: a line that
//! exists and a column within it (or just past its end).
//! Run: `cargo xtask fuzz --target config` (see the README).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use vrrp_agent::config::{self, ConfigError, Diag, lexer};

/// A scratch directory per process with one file to include.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vrrp-config-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        std::fs::write(
            d.join("inc.conf"),
            "vrrp_script chk {\n  script \"/bin/true\"\n}\n",
        )
        .expect("include file");
        d
    })
}

/// Lines of each file, as the lexer numbers them: (file, line) -> chars.
fn line_chars(file: &Path, main: &[u8]) -> Option<Vec<usize>> {
    let bytes = if file.ends_with("main.conf") { main.to_vec() } else { std::fs::read(file).ok()? };
    let mut v: Vec<usize> = bytes
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).chars().count())
        .collect();
    if bytes.ends_with(b"\n") {
        v.pop();
    }
    Some(v)
}

fn assert_located(d: &Diag, main: &[u8]) {
    let lines = line_chars(&d.loc.file, main).unwrap_or_else(|| panic!("diagnostic in an unreadable file: {d}"));
    // One past the last line is the end of the file ("never closed" at EOF
    // points at the keyword, but the file's closing newline is there too).
    assert!(d.loc.line >= 1 && d.loc.line <= lines.len() + 1, "line out of range ({} lines): {d}", lines.len());
    let width = lines.get(d.loc.line - 1).copied().unwrap_or(0);
    // Column 1 is always valid; otherwise within the line or one past it
    // (the end-of-line token).
    assert!(d.loc.col >= 1 && d.loc.col <= width + 1, "column out of range (width {width}): {d}");
}

fuzz_target!(|data: &[u8]| {
    // The in-memory path: every byte string through lexer, tree and model.
    let name = Arc::new(PathBuf::from("main.conf"));
    if let Ok(tokens) = lexer::lex_bytes(data, &name) {
        for t in &tokens {
            assert!(t.loc.line >= 1 && t.loc.col >= 1);
        }
        // Absolute includes could reach any file of the host (/proc,
        // devices): only relative ones go through the file path below.
        let escapes = tokens.windows(2).any(|w| {
            matches!((&w[0].tok, &w[1].tok), (lexer::Tok::Word(k), lexer::Tok::Word(p))
                if k == "include" && (p.starts_with('/') || p.contains("..") || p.starts_with('~')))
        });
        if escapes {
            return;
        }
    }
    let path = scratch().join("main.conf");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    match config::load(&path) {
        Ok((_, diags)) | Err(ConfigError::Invalid { diags }) => {
            for d in &diags {
                assert_located(d, data);
                assert!(!d.message.is_empty(), "empty message at {}", d.loc);
            }
        }
        Err(ConfigError::Lex(e)) => {
            if let Some(loc) = e.loc() {
                assert_located(&Diag::error(loc, "lex", ""), data);
            }
        }
    }
});
