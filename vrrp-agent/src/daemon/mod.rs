mod agent;
mod agent_reload;
pub mod announce;
mod checks;
pub mod crash;
mod instance;
pub mod link;
pub mod live;
pub mod metrics;
pub mod no_accept;
pub mod reconcile;
pub mod reload;
pub mod resume;
mod resume_start;
pub mod routes;
pub mod run;
mod sched;
pub mod sd;
pub mod signals;
mod source;
pub mod status;
pub mod timer;
pub mod tx;
mod tx_thread;
pub mod vips;
pub mod vmac;

pub use run::{DaemonError, Options, ReceiveMode, run};

/// Give the heap's free memory back to the kernel. Parsing and checking a
/// large configuration (4,000 instances) leaves megabytes of freed
/// allocations that glibc keeps and RSS counts for the process's life: the
/// supervisor, which only parsed the file for `net_namespace`, held 21 MiB.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free pages of glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}
