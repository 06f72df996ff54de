//! keepalived.conf: read the files (with includes), parse the statements,
//! build and check the model. `load` returns the configuration and the
//! warnings, or every error with its file:line:column and a hint.

pub mod diag;
pub mod lexer;
pub mod model;
pub mod tree;

use std::path::{Path, PathBuf};

pub use diag::{Diag, Severity};
pub use model::{Config, Instance, Script, Vip};

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

/// Read and check `path`. Ok carries the warnings.
pub fn load(path: &Path) -> Result<(Config, Vec<Diag>), ConfigError> {
    let tokens = lexer::lex_file(path)?;
    let stmts = tree::parse(&tokens).map_err(|d| ConfigError::Invalid { diags: vec![d] })?;
    let mut report = model::Report::default();
    let cfg = model::build(&stmts, &mut report);
    if report.has_errors() {
        return Err(ConfigError::Invalid { diags: report.diags });
    }
    Ok((cfg, report.diags))
}
