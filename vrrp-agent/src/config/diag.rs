//! Diagnostics: file:line:column, what is wrong, and a hint.

use std::fmt;

use super::lexer::Loc;

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// Accepted; something is ignored or adjusted, and the operator is told.
    Warning,
}

/// One finding about the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    /// Where.
    pub loc: Loc,
    /// How bad.
    pub severity: Severity,
    /// What.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Diag {
    /// An error.
    pub fn error(loc: &Loc, message: impl Into<String>, hint: impl Into<String>) -> Diag {
        Diag { loc: loc.clone(), severity: Severity::Error, message: message.into(), hint: hint.into() }
    }

    /// A warning.
    pub fn warning(loc: &Loc, message: impl Into<String>, hint: impl Into<String>) -> Diag {
        Diag { loc: loc.clone(), severity: Severity::Warning, message: message.into(), hint: hint.into() }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {sev}: {}", self.loc, self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}
