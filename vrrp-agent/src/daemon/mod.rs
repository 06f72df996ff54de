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

/// One glibc malloc arena for the whole worker. glibc gives a thread that
/// allocates while another holds the main arena's lock an arena of its
/// own (64 MiB reserved, up to 8 × cores of them), and keeps its freed
/// pages: at 4,000 masters, an arena used once at start-up held 6 MiB
/// (3.3 MiB resident) for 3 KiB in use, and the advert thread's another
/// 1.6 MiB. The worker's threads (the loop, the advert thread, tokio's
/// blocking pool) rarely allocate at the same moment, so sharing the main
/// arena's lock costs nothing measurable. Call before any thread starts.
/// (As `MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=131072` would.)
pub fn one_heap_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // A fixed threshold: glibc otherwise raises it to the size of each
        // large block freed, and the next large, short-lived buffers (a
        // status snapshot, a reconcile's plan of 4,000 addresses) come
        // from the heap and stay resident after they are freed.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
