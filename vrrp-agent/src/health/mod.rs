//! Health checks: `vrrp_script`/`track_script` (rise, fall, weights),
//! `track_file`, `vrrp_track_process`, the effective priority they give an
//! instance, and notify scripts.

pub mod runner;
pub mod status;
pub mod track_file;
pub mod track_process;
pub mod trackers;
pub mod user;

pub use status::{Health, Status, Tracked, effective, effective_with};
