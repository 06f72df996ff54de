//! Lab helpers for the integration tests and `cargo xtask demo`: network
//! namespaces and veths that clean up after themselves, and crafted VRRP
//! adverts sent from inside a namespace.
//!
//! Everything here stays inside namespaces it created: no host interface
//! is touched, and test traffic uses 192.0.2.0/24, 198.51.100.0/24 and
//! 2001:db8::/32.

pub mod advert;
pub mod capture;
pub mod frame;
pub mod frr;
pub mod holders;
pub mod lab;
pub mod netns;
pub mod privilege;
pub mod process;

pub use netns::Netns;
