//! Exit statuses, one table for every subcommand. They are keepalived's
//! (lib/scheduler.h `KEEPALIVED_EXIT_*`), which are the LSB/systemd codes
//! systemd names in `systemctl status` (`status=2/INVALIDARGUMENT`), so
//! units and scripts written for keepalived read them the same way.

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// A runtime failure (EXIT_FAILURE): the agent could not run or stopped
/// on an error it could not recover from.
pub const FAILURE: u8 = 1;
/// The configuration was refused (EXIT_INVALIDARGUMENT; also clap's
/// status for a bad command line): `check-config`, `run`, `-t`.
pub const CONFIG: u8 = 2;
/// `status`: no agent of that name is running (LSB's "program is not
/// running").
pub const NOT_RUNNING: u8 = 3;
/// A privilege `run` needs is missing (EXIT_NOPERMISSION): the message
/// names the capability.
pub const NO_PERMISSION: u8 = 4;
/// The configuration file does not exist (EXIT_NOTCONFIGURED).
pub const NOT_CONFIGURED: u8 = 6;

/// An error that carries its exit status; `main` prints it and exits with
/// the status. Any other error exits with [`FAILURE`].
#[derive(Debug)]
pub struct Coded {
    /// The exit status.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error exiting with `code`.
pub fn coded(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded { code, message: message.into() })
}

/// The exit status for an error from a subcommand.
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Coded>().map_or(FAILURE, |c| c.code)
}
