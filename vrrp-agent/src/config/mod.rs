//! keepalived.conf: read the files (with includes), parse the statements,
//! build and check the model. `load` returns the configuration and the
//! warnings, or every error with its file:line:column and a hint.

pub mod diag;
pub mod keywords;
pub mod lexer;
pub mod model;
pub mod preproc;
pub mod routes;
pub mod system;
pub mod trackers;
pub mod tree;

use std::path::{Path, PathBuf};

pub use diag::{Diag, Severity};
pub use model::{Config, Instance, Script, Vip, VmacConf};

/// keepalived's default path.
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
/// Our own, used when present and no `-f` is given.
pub const AGENT_CONF: &str = "/etc/vrrp-agent/vrrp-agent.conf";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or tokenising failed.
    #[error(transparent)]
    Lex(#[from] lexer::LexError),
    /// The file has errors (warnings are included, in file order).
    #[error("{}", .diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Errors and warnings.
        diags: Vec<Diag>,
    },
}

/// The configuration file to read: `explicit`, else ours if present, else
/// keepalived's.
pub fn default_path(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(AGENT_CONF).exists() => PathBuf::from(AGENT_CONF),
        None => PathBuf::from(KEEPALIVED_CONF),
    }
}

/// Read `path` and build the model: the file's own meaning, nothing from
/// the running system (see [`check`] for that). Ok carries the warnings.
pub fn load(path: &Path) -> Result<(Config, Vec<Diag>), ConfigError> {
    // Lexer, tree and model in one pass over the file: ignored top-level
    // blocks are reported and dropped as they end, so memory follows what
    // the model keeps, not the file's size.
    let mut report = model::Report::default();
    let mut stream = lexer::Stream::new(path);
    let parsed = tree::parse_with(&mut stream, |s| model::triage(s, &mut report));
    // A lexing error ends the stream early: it is the error to report.
    let lex_warnings = stream.finish()?;
    let stmts = parsed.map_err(|d| ConfigError::Invalid { diags: vec![d] })?;
    for w in lex_warnings {
        report.push(w);
    }
    let cfg = model::build(&stmts, &mut report);
    drop(stmts);
    let top = lexer::Loc { file: std::sync::Arc::new(path.to_path_buf()), line: 1, col: 1 };
    if cfg.instances.is_empty() && !report.has_errors() {
        // `run` has nothing to do with such a file (an empty one, or one
        // whose instances are all in a missing include).
        report.error(
            &top,
            "no vrrp_instance in this configuration",
            "define at least one `vrrp_instance NAME { ... }`; vrrp-agent runs VRRP instances only",
        );
    }
    let failed = report.has_errors();
    let diags = report.finish(&top);
    if failed {
        return Err(ConfigError::Invalid { diags });
    }
    Ok((cfg, diags))
}

/// What both `check-config` and `run` accept: [`load`], then the checks
/// against this system ([`system::check`]: script users and programs,
/// interfaces, how many VIPs an advert can carry). Ok carries the
/// warnings; the configuration may have been adjusted as the warnings say
/// (VIPs beyond an advert's room moved to the excluded ones).
pub fn check(path: &Path) -> Result<(Config, Vec<Diag>), ConfigError> {
    let (mut cfg, warnings) = load(path)?;
    let mut report = model::Report::with(warnings);
    system::check(&mut cfg, &mut report);
    let failed = report.has_errors();
    let top = lexer::Loc { file: std::sync::Arc::new(path.to_path_buf()), line: 1, col: 1 };
    let diags = report.finish(&top);
    if failed {
        return Err(ConfigError::Invalid { diags });
    }
    Ok((cfg, diags))
}
