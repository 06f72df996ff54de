pub mod announce;
pub mod link;
pub mod run;
pub mod status;
pub mod timer;
pub mod tx;
pub mod vips;

pub use run::{DaemonError, Options, ReceiveMode, run};
