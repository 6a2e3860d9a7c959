//! Process-wide counts of remote reads, for `stream`'s report, benchmarks and tests of what was
//! fetched.

use std::sync::atomic::{AtomicU64, Ordering};

/// Remote reads since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    get_requests: AtomicU64,
    bytes_downloaded: AtomicU64,
    retries: AtomicU64,
    cache_hit_bytes: AtomicU64,
}

/// The process's counters.
pub fn counters() -> &'static Counters {
    static COUNTERS: Counters = Counters {
        get_requests: AtomicU64::new(0),
        bytes_downloaded: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        cache_hit_bytes: AtomicU64::new(0),
    };
    &COUNTERS
}

impl Counters {
    /// GET (and HEAD, LIST) requests that succeeded.
    pub fn get_requests(&self) -> u64 {
        self.get_requests.load(Ordering::Relaxed)
    }
    /// Body bytes received from stores.
    pub fn bytes_downloaded(&self) -> u64 {
        self.bytes_downloaded.load(Ordering::Relaxed)
    }
    /// Reads retried by mixtape after a short or failed body (object_store's own retries of
    /// requests are not seen here).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Bytes served from a [`crate::RangeCache`] instead of the store.
    pub fn cache_hit_bytes(&self) -> u64 {
        self.cache_hit_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn got(&self, bytes: u64) {
        self.get_requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_downloaded.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn hit(&self, bytes: u64) {
        self.cache_hit_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}
