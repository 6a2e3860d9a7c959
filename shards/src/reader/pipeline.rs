//! The background pipeline: a loader thread, `decode_threads` image workers, and an in-order
//! hand-over to the consumer, connected by bounded crossbeam channels.
//!
//! ```text
//! loader (1 thread + scoped row-group decoders)
//!   --[bounded: decode_threads raw batches]--> image workers (decode_threads threads)
//!   --[bounded: prefetch batches]--> Reader::next (reorders by sequence number)
//! ```
//!
//! Batches carry a sequence number given by the loader, and the consumer hands them out strictly
//! in that order, so the output never depends on which worker finishes first. Memory is bounded:
//! at most `decode_threads` raw batches queued, one per worker, `prefetch` finished ones queued,
//! plus the few that arrive out of order (at most one per worker), besides the loader's window.
//!
//! Dropping the reader drops the receivers: every thread's next send fails and it returns; the
//! reader joins them. A thread that panics disconnects its channel, which the consumer reports as
//! [`ReaderError::Stopped`] rather than waiting forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};

use super::images::convert_batch;
use super::load::{Cursor, Loader, RawBatch};
use super::options::ImageMode;
use super::pixels::PixelPool;
use super::{ReaderError, RowBatch};

enum Raw {
    Batch(u64, Result<RawBatch, ReaderError>),
    End(u64),
}

enum Done {
    Batch(u64, Result<(RowBatch, Cursor), ReaderError>),
    End(u64),
}

/// The running pipeline, as the reader sees it.
#[derive(Debug)]
pub(crate) struct Pipeline {
    rx: Option<Receiver<Done>>,
    threads: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Result<(RowBatch, Cursor), ReaderError>>,
    next: u64,
    end: Option<u64>,
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Batch(seq, _) => write!(f, "Batch({seq})"),
            Done::End(n) => write!(f, "End({n})"),
        }
    }
}

impl Pipeline {
    pub fn start(
        loader: Loader,
        start: Cursor,
        stage_names: Vec<String>,
        prefetch: usize,
        workers: usize,
        mode: ImageMode,
    ) -> Self {
        let (raw_tx, raw_rx) = bounded::<Raw>(workers);
        let (done_tx, done_rx) = bounded::<Done>(prefetch);
        let pool = Arc::new(PixelPool::default());
        let mut threads = Vec::with_capacity(workers + 1);
        threads.push(
            std::thread::Builder::new()
                .name("mixtape-reader-load".into())
                .spawn(move || {
                    let mut seq = 0u64;
                    let mut open = true;
                    loader.run(start, |batch| {
                        open = raw_tx.send(Raw::Batch(seq, batch)).is_ok();
                        seq += 1;
                        open
                    });
                    if open {
                        let _ = raw_tx.send(Raw::End(seq));
                    }
                })
                .ok(),
        );
        for index in 0..workers {
            let raw_rx = raw_rx.clone();
            let done_tx = done_tx.clone();
            let names = stage_names.clone();
            let pool = Arc::clone(&pool);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("mixtape-reader-decode-{index}"))
                    .spawn(move || {
                        for message in raw_rx {
                            let done = match message {
                                Raw::Batch(seq, batch) => Done::Batch(
                                    seq,
                                    batch.and_then(|b| convert_batch(b, &names, mode, &pool)),
                                ),
                                Raw::End(n) => Done::End(n),
                            };
                            if done_tx.send(done).is_err() {
                                return;
                            }
                        }
                    })
                    .ok(),
            );
        }
        // A thread that could not be spawned shows up as a disconnected channel: Stopped.
        let threads = threads.into_iter().flatten().collect();
        Self {
            rx: Some(done_rx),
            threads,
            pending: BTreeMap::new(),
            next: 0,
            end: None,
        }
    }

    /// The next batch in sequence order, `None` at the end.
    pub fn next(&mut self) -> Option<Result<(RowBatch, Cursor), ReaderError>> {
        loop {
            if let Some(item) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(item);
            }
            if self.end == Some(self.next) {
                return None;
            }
            match self.rx.as_ref()?.recv() {
                Ok(Done::Batch(seq, item)) => {
                    self.pending.insert(seq, item);
                }
                Ok(Done::End(n)) => self.end = Some(n),
                Err(_) => return Some(Err(ReaderError::Stopped)),
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Receivers first, so blocked senders wake up and return.
        self.rx = None;
        self.pending.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
