//! What the XDP program and the agent must agree on: the VRRP header checks
//! (`classify`), the stable verdict numbering (`verdict`), the BPF map
//! layouts (`maps`) and Accept Mode's drop rule (`accept`).
//!
//! `no_std` so the same code runs in the kernel (built for
//! `bpfel-unknown-none`) and is unit-tested on the host. The `user` feature
//! adds `aya::Pod` for the map types so the agent can read the maps.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod accept;
pub mod checksum;
pub mod classify;
pub mod maps;
pub mod rx;
pub mod units;
pub mod verdict;
pub mod wire;

pub use units::Centis;
pub use verdict::Verdict;

/// IP protocol number of VRRP (RFC 5798 5.1.1.3, RFC 3768 5.2.4).
pub const IPPROTO_VRRP: u8 = 112;
