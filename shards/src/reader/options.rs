//! [`ReaderOptions`]: everything that shapes what a [`super::Reader`] yields and how fast.
//!
//! Two kinds of settings live here and the difference matters for resuming:
//!
//! - **Order settings** (`seed`, `shuffle_window`, `shuffle`) decide *which* rows come in *which*
//!   order. They are recorded in [`super::ReaderState`], and a reader resumed with different ones
//!   is refused, because it would duplicate or skip rows.
//! - **Split and speed settings** (`batch_size` and the per-stage batch sizes, `rank`, `world_size`, `prefetch`,
//!   `decode_threads`, `remote_requests`, `read_ahead`, `image_mode`, `verify`) may change between runs: the cursor counts rows of
//!   the epoch's global order, so a resumed job can use a new world size or batch size (elastic),
//!   and the order never depends on the thread count.
//!
//! Every default is a documented `DEFAULT_*` constant that states its trade-off.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ReaderError;
use super::cache::CacheOptions;
use super::error::OptionsError;

/// Packed rows per batch, per rank. One packed row already holds `seq_len` tokens, so a batch of
/// 1 is a full micro-batch for most trainers; raise it for short `seq_len`s.
pub const DEFAULT_BATCH_SIZE: usize = 1;

/// Seed of the shard order and of the row shuffle.
pub const DEFAULT_SEED: u64 = 0;

/// Epochs over each stage. The order of every epoch is a fresh function of (seed, epoch).
pub const DEFAULT_EPOCHS: u32 = 1;

/// Rows shuffled together: the epoch's rows (shards in shuffled order, rows in file order) are cut
/// into consecutive windows of this many rows, and each window is permuted. Larger windows mix
/// better but keep more decoded rows in memory: at most this many of the rank's rows plus the row
/// groups straddling a window edge. 2048 rows is 8 row groups of the builder's default 256 rows,
/// about 75 MB of token columns at `seq_len` 4096 (before images), divided by the world size.
pub const DEFAULT_SHUFFLE_WINDOW: usize = 2048;

/// Batches decoded ahead of the trainer. Two hide the decode time of one batch behind the step of
/// the previous one; more only help when decode time varies a lot from batch to batch.
pub const DEFAULT_PREFETCH: usize = 4;

/// Threads decoding Parquet row groups and images. Images dominate decode time; 4 threads keep a
/// GPU fed at a few hundred images per step on most hosts without starving the trainer's own
/// threads. The order of the rows never depends on it.
pub const DEFAULT_DECODE_THREADS: usize = 4;

/// Range requests in flight at once when a stage lives on object storage. A request's time is mostly
/// the store's latency (tens of milliseconds on S3), not bandwidth or CPU, so a window's shards are
/// opened and its row groups fetched this many at a time, more than the decode threads, with at most
/// this many requests' bytes arriving at once. Against a local server behind 20 ms of latency, one
/// at a time took 1.7x as long as 8, and 32 gained nothing over 8.
pub const DEFAULT_REMOTE_REQUESTS: usize = 8;

/// What the reader does with each row's images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageMode {
    /// Geometry only (size, grid, token span): no bytes, no pixels. For text-only trainers and for
    /// measuring the token path alone.
    Skip,
    /// The stored bytes as they are ([`super::Image::bytes`]): JPEG/PNG at the training size, or
    /// the unresized source file for `encoding: "source"` shards.
    Raw,
    /// Pixels at the training size, RGB u8, height x width x 3 ([`super::Image::rgb`]); source
    /// images are resized with the builder's bicubic resampler, so both encodings give the same
    /// pixels up to JPEG loss.
    #[default]
    Decoded,
}

/// Options of a [`super::Reader`]; start from [`ReaderOptions::default`] or
/// [`ReaderOptions::from_env`] and chain `with_*`. The fields are private so that a new option
/// cannot break callers; read them back with the getters of the same names.
///
/// ```
/// use mixtape_shards::{ImageMode, ReaderOptions};
///
/// let options = ReaderOptions::default()
///     .with_seed(7)
///     .with_batch_size(8)
///     .with_stage_batch_size("sft", 2) // the `sft` stage's rows are longer: fewer per batch
///     .with_rank(1, 4)
///     .with_image_mode(ImageMode::Skip);
/// assert_eq!(options.batch_size(), 8);
/// assert_eq!(options.batch_size_of("sft"), 2);
/// assert_eq!((options.rank(), options.world_size()), (1, 4));
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaderOptions {
    seed: u64,
    batch_size: usize,
    stage_batch_sizes: BTreeMap<String, usize>,
    rank: usize,
    world_size: usize,
    worker: usize,
    workers: usize,
    epochs: u32,
    shuffle: bool,
    shuffle_window: usize,
    prefetch: usize,
    decode_threads: usize,
    image_mode: ImageMode,
    verify: bool,
    cache: Option<CacheOptions>,
    remote_requests: usize,
    read_ahead: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            batch_size: DEFAULT_BATCH_SIZE,
            stage_batch_sizes: BTreeMap::new(),
            rank: 0,
            world_size: 1,
            worker: 0,
            workers: 1,
            epochs: DEFAULT_EPOCHS,
            shuffle: true,
            shuffle_window: DEFAULT_SHUFFLE_WINDOW,
            prefetch: DEFAULT_PREFETCH,
            decode_threads: DEFAULT_DECODE_THREADS,
            image_mode: ImageMode::Decoded,
            verify: false,
            cache: None,
            remote_requests: DEFAULT_REMOTE_REQUESTS,
            read_ahead: true,
        }
    }
}

impl ReaderOptions {
    /// Defaults, with `rank` and `world_size` from the `RANK` and `WORLD_SIZE` environment
    /// variables (as torchrun sets them) when present. A variable that is set but not a number is an
    /// error, not silently rank 0: two ranks reading the same rows would go unnoticed.
    pub fn from_env() -> Result<Self, ReaderError> {
        let mut options = Self::default();
        for (name, slot) in [
            ("RANK", &mut options.rank),
            ("WORLD_SIZE", &mut options.world_size),
        ] {
            if let Ok(value) = std::env::var(name) {
                *slot = value
                    .trim()
                    .parse()
                    .map_err(|_| OptionsError::NotANumber { name, value })?;
            }
        }
        options.validate()?;
        Ok(options)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Rows per batch for every stage without its own [`with_stage_batch_size`](Self::with_stage_batch_size).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Rows per batch for the stage named `stage` (its manifest's `stage`), so that one reader
    /// serves a schedule whose stages train at different batch sizes. A name that is not one of
    /// the reader's stages is refused when the reader starts.
    pub fn with_stage_batch_size(mut self, stage: impl Into<String>, rows: usize) -> Self {
        self.stage_batch_sizes.insert(stage.into(), rows);
        self
    }

    /// This process's part: `rank` in `0..world_size`.
    pub fn with_rank(mut self, rank: usize, world_size: usize) -> Self {
        self.rank = rank;
        self.world_size = world_size;
        self
    }

    /// One of `workers` readers sharing this rank's batches (a PyTorch `DataLoader`'s workers):
    /// this one yields the rank's batches `worker, worker + workers, ...` counted from where it
    /// starts, so taking a batch from each worker in turn (as the `DataLoader` does) gives the
    /// rank's order unchanged. Each batch's state is the rank's state after that batch.
    pub fn with_worker(mut self, worker: usize, workers: usize) -> Self {
        self.worker = worker;
        self.workers = workers;
        self
    }

    pub fn with_epochs(mut self, epochs: u32) -> Self {
        self.epochs = epochs;
        self
    }

    /// `false` reads shards in index order and rows in file order (for debugging data orders).
    pub fn with_shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    pub fn with_shuffle_window(mut self, rows: usize) -> Self {
        self.shuffle_window = rows;
        self
    }

    pub fn with_prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }

    pub fn with_decode_threads(mut self, threads: usize) -> Self {
        self.decode_threads = threads;
        self
    }

    /// Range requests in flight at once for a stage on object storage (see
    /// [`DEFAULT_REMOTE_REQUESTS`]).
    pub fn with_remote_requests(mut self, requests: usize) -> Self {
        self.remote_requests = requests;
        self
    }

    /// For a stage on object storage, fetch and decode the row groups of the next shuffle window
    /// while this window's batches go out (the default), so the store's latency is paid while the
    /// trainer works rather than when it waits; memory then holds one window more of this rank's
    /// rows (not yet image-decoded). Off, a window is fetched when the reader enters it.
    pub fn with_read_ahead(mut self, read_ahead: bool) -> Self {
        self.read_ahead = read_ahead;
        self
    }

    pub fn with_image_mode(mut self, mode: ImageMode) -> Self {
        self.image_mode = mode;
        self
    }

    /// Hash every shard with blake3 and compare with the manifest before its first row is read.
    pub fn with_verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Keep the column chunks of remote shards in the local folder `dir`, up to `limit_bytes`,
    /// evicting by the reader's future order (see `reader::cache`): with a limit below the data
    /// set's size, later epochs download only what the cache could not hold. Local shards are read
    /// in place and never cached.
    pub fn with_cache(mut self, dir: impl Into<PathBuf>, limit_bytes: u64) -> Self {
        self.cache = Some(CacheOptions {
            dir: dir.into(),
            limit_bytes,
        });
        self
    }

    pub fn cache(&self) -> Option<&CacheOptions> {
        self.cache.as_ref()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Rows per batch of stages without a batch size of their own.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Rows per batch of the stage named `stage`.
    pub fn batch_size_of(&self, stage: &str) -> usize {
        self.stage_batch_sizes
            .get(stage)
            .copied()
            .unwrap_or(self.batch_size)
    }

    /// The stages given their own batch size, by name.
    pub fn stage_batch_sizes(&self) -> &BTreeMap<String, usize> {
        &self.stage_batch_sizes
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn epochs(&self) -> u32 {
        self.epochs
    }

    pub fn shuffle(&self) -> bool {
        self.shuffle
    }

    pub fn shuffle_window(&self) -> usize {
        self.shuffle_window
    }

    pub fn prefetch(&self) -> usize {
        self.prefetch
    }

    pub fn decode_threads(&self) -> usize {
        self.decode_threads
    }

    pub fn image_mode(&self) -> ImageMode {
        self.image_mode
    }

    pub fn remote_requests(&self) -> usize {
        self.remote_requests
    }

    pub fn read_ahead(&self) -> bool {
        self.read_ahead
    }

    pub fn verify(&self) -> bool {
        self.verify
    }

    /// Refuses settings that cannot work, each with what to change.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.batch_size == 0 {
            return Err(OptionsError::Zero("batch_size"));
        }
        if let Some(stage) = self.stage_batch_sizes.iter().find(|(_, rows)| **rows == 0) {
            return Err(OptionsError::ZeroStageBatchSize {
                stage: stage.0.clone(),
            });
        }
        if self.world_size == 0 {
            return Err(OptionsError::Zero("world_size"));
        }
        if self.rank >= self.world_size {
            return Err(OptionsError::RankOutsideWorld {
                rank: self.rank,
                world_size: self.world_size,
            });
        }
        if self.workers == 0 {
            return Err(OptionsError::Zero("workers"));
        }
        if self.worker >= self.workers {
            return Err(OptionsError::WorkerOutsideWorkers {
                worker: self.worker,
                workers: self.workers,
            });
        }
        if self.shuffle_window == 0 {
            return Err(OptionsError::Zero("shuffle_window"));
        }
        if self.prefetch == 0 {
            return Err(OptionsError::Zero("prefetch"));
        }
        if self.decode_threads == 0 {
            return Err(OptionsError::Zero("decode_threads"));
        }
        if self.remote_requests == 0 {
            return Err(OptionsError::Zero("remote_requests"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_say_what_to_change() {
        assert!(ReaderOptions::default().validate().is_ok());
        let err = ReaderOptions::default()
            .with_rank(4, 4)
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("rank 4 is not below world_size 4"),
            "{err}"
        );
        for bad in [
            ReaderOptions::default().with_batch_size(0),
            ReaderOptions::default().with_stage_batch_size("sft", 0),
            ReaderOptions::default().with_rank(0, 0),
            ReaderOptions::default().with_worker(0, 0),
            ReaderOptions::default().with_worker(2, 2),
            ReaderOptions::default().with_shuffle_window(0),
            ReaderOptions::default().with_prefetch(0),
            ReaderOptions::default().with_decode_threads(0),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
