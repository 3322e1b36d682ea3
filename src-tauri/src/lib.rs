//! dsmon: a distributed systems monitor over Netdata agents.
//!
//! This package is the shell: the `dsmon` command line ([`cli`] in the binary) and, with the `gui`
//! feature, the Tauri desktop app ([`desktop`]). Everything else lives in the crates under
//! `src-tauri/crates/` (see docs/architecture.md); they are re-exported here under short names for
//! the integration tests and benchmarks.

pub use dsmon_alerts as alerts;
pub use dsmon_app as app;
pub use dsmon_auth as auth;
pub use dsmon_config as config;
pub use dsmon_core as core;
pub use dsmon_engine as engine;
pub use dsmon_netdata as netdata;
pub use dsmon_server as server;
pub use dsmon_store as store;

#[cfg(feature = "gui")]
pub mod desktop;

/// Every agent costs up to four sockets during a poll; lifts the soft open-files limit to the hard
/// one so that hundreds of nodes do not run into the usual 1024.
pub fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// Makes glibc's malloc use one arena for the whole process, to be called before any other thread
/// starts.
///
/// By default glibc gives the threads that allocate their own arenas (up to eight per core) and
/// each arena keeps the room freed in it for its own later use. In `dsmon serve` the runtime's
/// threads take turns with the same agents' connections and answers, so every arena grows to its
/// share of the peak and the room freed in one is never used by another: with 100 nodes polled
/// every 2 s, four arenas held 26.7 MB after 10 minutes where one heap holds 22.6 MB
/// (docs/performance.md, "Memory of dsmon serve"). The threads' own malloc caches still serve most small allocations without taking
/// the arena's lock. Other C libraries have no such arenas: there it does nothing.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a parameter of the allocator; no memory is touched.
        let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } == 1;
        if !applied {
            tracing::debug!("malloc arena limit not applied");
        }
    }
}

/// Hands the free pages inside the heap back to the system every `every` until `stop` turns true
/// (glibc's `malloc_trim`; elsewhere it only waits).
///
/// glibc gives freed memory back by itself only from the top of its heap. When many requests run
/// at once for a while (at start the first live round and the newest log tick poll every node
/// together, and the extra connections idle for 90 s before they close), the room they leave
/// between memory still in use stays resident for good, though nothing uses it. Trimming returns
/// it; the next round faults back in only the pages it reuses. It runs off the async threads.
pub async fn release_free_heap(
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: malloc_trim only releases free memory of the allocator; nothing in use moves.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        }
    }
}
