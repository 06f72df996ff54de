mod agent;
mod agent_reload;
pub mod announce;
mod instance;
pub mod link;
pub mod no_accept;
pub mod reconcile;
pub mod reload;
pub mod resume;
pub mod routes;
pub mod run;
pub mod signals;
mod source;
pub mod status;
pub mod timer;
pub mod tx;
pub mod vips;

pub use run::{DaemonError, Options, ReceiveMode, run};
