//! vrrp-agent: the userspace side of the eBPF-accelerated VRRP agent.
//!
//! `datapath` loads the XDP program, attaches it and reads its maps;
//! `bpffs` makes sure there is a BPF filesystem to pin the maps in.

pub mod bpffs;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod fallback;
mod fd;
pub mod health;
pub mod instance_lock;
pub mod logbuf;
pub mod machine;
pub mod notify_fifo;
pub mod object;
pub mod sync_group;
