//! Health checks: `vrrp_script`/`track_script` (rise, fall, weights), the
//! effective priority they give an instance, and notify scripts.

pub mod runner;
pub mod status;
pub mod user;

pub use status::{Health, Status, Tracked, effective};
