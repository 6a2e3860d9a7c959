//! The reader's cache of remote column chunks, evicting by the reader's own future order.
//!
//! The order of every epoch is a pure function of (seed, stage, epoch) (see [`super::order`]), so
//! when a chunk is fetched the reader can say when it is needed next: rows `r` of shard `s` lie at
//! order positions `start(s) + r` of an epoch's layout, where `start(s)` follows from the epoch's
//! shard permutation and the manifest's row counts alone, and a window holds a contiguous run of
//! layout positions. So a chunk's next use is the first window, after the one being read, that
//! holds one of its row group's rows, found without opening any footer (the loader keeps the rows
//! of later windows of each row group it decodes, so a row group spanning windows `a..=b` is read
//! at window `a` of each epoch, and not again in `a + 1..=b`). Time is counted in windows across
//! the whole schedule: stage by stage, epoch by epoch.
//!
//! [`mixtape_store::RangeCache`] then applies Belady's rule with it: the chunks needed furthest in
//! the future leave first, and a chunk needed later than everything cached is not kept. Windows
//! are the unit because a window's row groups are all decoded when the reader enters it.
//!
//! With several ranks or workers a chunk is counted as needed in every window holding one of its
//! rows, whichever rank owns them: a rank then keeps a little more than it needs, never less.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mixtape_store::{CacheKey, RangeCache};

use crate::{Chunk, ChunkCache};

use super::order::EpochOrder;
use super::schedule::Schedule;

/// Where the reader keeps remote column chunks, and how many bytes at most.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// A local folder. Each reader keeps its ranges in its own subfolder, `rank-R-worker-W`, so
    /// the ranks of a node and their DataLoader workers can be given one folder.
    pub dir: PathBuf,
    pub limit_bytes: u64,
}

/// What a cached chunk is to the schedule: which rows of which shard it holds.
#[derive(Clone, Debug)]
struct Tag {
    stage: usize,
    shard: u32,
    /// `None` for the magic and tail, read when the shard is opened.
    row_group: Option<usize>,
    rows: Range<u64>,
    /// The window it was last read in.
    read_at: u64,
}

/// The layout position of each shard's first row in one epoch, by shard index.
type ShardStarts = Arc<Vec<u64>>;

/// The reader's chunk cache.
#[derive(Debug)]
pub(crate) struct ReaderCache {
    ranges: RangeCache<Tag>,
    future: Future,
}

/// When rows are read: the schedule's orders, computed as needed.
#[derive(Debug)]
struct Future {
    schedule: Arc<Schedule>,
    seed: u64,
    shuffle: bool,
    window: u64,
    epochs: u32,
    /// Windows per epoch of each stage.
    windows: Vec<u64>,
    /// The window count before each stage's first window.
    stage_base: Vec<u64>,
    /// The window the reader is in, counted across the schedule.
    now: AtomicU64,
    /// `starts[(stage, epoch)][shard]`: the layout position of the shard's first row.
    starts: Mutex<HashMap<(usize, u32), ShardStarts>>,
}

impl ReaderCache {
    pub(crate) fn open(
        options: &CacheOptions,
        (rank, worker): (usize, usize),
        schedule: Arc<Schedule>,
        seed: u64,
        shuffle: bool,
        window: usize,
        epochs: u32,
    ) -> std::io::Result<Self> {
        let window = window.max(1) as u64;
        let windows: Vec<u64> = schedule
            .stages
            .iter()
            .map(|s| s.manifest.totals.rows.div_ceil(window))
            .collect();
        let mut stage_base = Vec::with_capacity(windows.len());
        let mut total = 0;
        for &w in &windows {
            stage_base.push(total);
            total += w * u64::from(epochs);
        }
        Ok(Self {
            ranges: RangeCache::open(
                options.dir.join(format!("rank-{rank}-worker-{worker}")),
                options.limit_bytes,
            )?,
            future: Future {
                schedule,
                seed,
                shuffle,
                window,
                epochs,
                windows,
                stage_base,
                now: AtomicU64::new(0),
                starts: Mutex::new(HashMap::new()),
            },
        })
    }

    /// The reader entered window `window` of `epoch` of stage `stage`.
    pub(crate) fn enter(&self, stage: usize, epoch: u32, window: u64) {
        let tick = self.future.tick(stage, epoch, window);
        self.future.now.store(tick, Ordering::Relaxed);
    }

    fn key(chunk: &Chunk<'_>) -> CacheKey {
        CacheKey {
            url: chunk.path.to_string_lossy().into_owned(),
            start: chunk.start,
            len: chunk.len,
        }
    }

    fn tag(&self, chunk: &Chunk<'_>) -> Tag {
        Tag {
            stage: chunk.stage,
            shard: chunk.shard,
            row_group: chunk.row_group,
            rows: chunk.rows.clone(),
            read_at: self.future.now.load(Ordering::Relaxed),
        }
    }
}

impl ChunkCache for ReaderCache {
    fn cached(&self, chunk: &Chunk<'_>) -> Option<Bytes> {
        self.ranges.get(&Self::key(chunk), &self.tag(chunk))
    }

    fn fetched(&self, chunk: &Chunk<'_>, bytes: &Bytes) {
        // A cache that cannot write (a full disk) costs speed, never data: the chunk was read.
        let _ = self
            .ranges
            .offer(&Self::key(chunk), self.tag(chunk), bytes, |tag| {
                self.future.next_use(tag)
            });
    }

    fn forget(&self, chunk: &Chunk<'_>) {
        self.ranges.forget(&Self::key(chunk));
    }
}

impl Future {
    fn tick(&self, stage: usize, epoch: u32, window: u64) -> u64 {
        self.stage_base[stage] + u64::from(epoch) * self.windows[stage] + window
    }

    /// When `tag` is read next: the first window after the current one that reads it, then, within
    /// the window, in the order the loader reads (the footers of the shards it opens, then row
    /// groups by shard and index); `None` if no later window of the schedule reads it.
    fn next_use(&self, tag: &Tag) -> Option<u128> {
        let window = self.next_window(tag)?;
        let within = match tag.row_group {
            None => u64::from(tag.shard) << 24,
            Some(group) => 1 << 63 | u64::from(tag.shard) << 24 | group.min(0xff_ffff) as u64,
        };
        Some(u128::from(window) << 64 | u128::from(within))
    }

    /// The first window after the current one that reads `tag`.
    fn next_window(&self, tag: &Tag) -> Option<u64> {
        let now = self.now.load(Ordering::Relaxed);
        if tag.rows.is_empty() || tag.stage >= self.windows.len() {
            return None;
        }
        // A range not read yet in the current window may still be, later in it.
        let from = if tag.read_at >= now { now + 1 } else { now };
        for epoch in 0..self.epochs {
            let first_tick = self.tick(tag.stage, epoch, 0);
            if first_tick + self.windows[tag.stage] <= from {
                // The whole epoch is before `from`.
                continue;
            }
            let start = *self.starts(tag.stage, epoch).get(tag.shard as usize)?;
            let first = first_tick + (start + tag.rows.start) / self.window;
            // Decoding a row group, the loader keeps its rows of every later window of the epoch:
            // a row group spanning windows `first..=last` is read at `first` only.
            if first >= from {
                return Some(first);
            }
        }
        None
    }

    fn starts(&self, stage: usize, epoch: u32) -> ShardStarts {
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        starts
            .entry((stage, epoch))
            .or_insert_with(|| {
                let stage = &self.schedule.stages[stage];
                let order = EpochOrder::new(
                    self.seed,
                    stage.name(),
                    epoch,
                    &stage.shard_rows,
                    self.shuffle,
                    self.window as usize,
                );
                Arc::new(order.shard_starts())
            })
            .clone()
    }
}
