//! The one tokio runtime remote calls run on, so blocking callers (reader threads, build workers)
//! need no async code of their own.

use std::future::Future;
use std::sync::OnceLock;

/// Runs `future` to completion on the shared runtime. Many threads may block on it at once: its
/// two worker threads drive the sockets while callers wait.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mixtape-store")
            .enable_all()
            .build()
            // Building a runtime fails only when the OS refuses threads or an epoll instance.
            .unwrap_or_else(|e| panic!("cannot start the object-store runtime: {e}"))
    });
    runtime.block_on(future)
}
