//! [`ReaderOptions`]: everything that shapes what a [`super::Reader`] yields and how fast.
//!
//! Two kinds of settings live here and the difference matters for resuming:
//!
//! - **Order settings** (`seed`, `shuffle_window`, `shuffle`) decide *which* rows come in *which*
//!   order. They are recorded in [`super::ReaderState`], and a reader resumed with different ones
//!   is refused, because it would duplicate or skip rows.
//! - **Split and speed settings** (`batch_size`, `rank`, `world_size`, `prefetch`,
//!   `decode_threads`, `image_mode`, `verify`) may change between runs: the cursor counts rows of
//!   the epoch's global order, so a resumed job can use a new world size or batch size (elastic),
//!   and the order never depends on the thread count.
//!
//! Every default is a documented `DEFAULT_*` constant that states its trade-off.

use super::ReaderError;

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
/// [`ReaderOptions::from_env`] and chain `with_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderOptions {
    pub seed: u64,
    pub batch_size: usize,
    pub rank: usize,
    pub world_size: usize,
    pub epochs: u32,
    pub shuffle: bool,
    pub shuffle_window: usize,
    pub prefetch: usize,
    pub decode_threads: usize,
    pub image_mode: ImageMode,
    pub verify: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            batch_size: DEFAULT_BATCH_SIZE,
            rank: 0,
            world_size: 1,
            epochs: DEFAULT_EPOCHS,
            shuffle: true,
            shuffle_window: DEFAULT_SHUFFLE_WINDOW,
            prefetch: DEFAULT_PREFETCH,
            decode_threads: DEFAULT_DECODE_THREADS,
            image_mode: ImageMode::Decoded,
            verify: false,
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
                    .map_err(|_| ReaderError::InvalidOptions {
                        detail: format!(
                            "environment variable {name}={value:?} is not a non-negative integer"
                        ),
                    })?;
            }
        }
        options.validate()?;
        Ok(options)
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// This process's part: `rank` in `0..world_size`.
    pub fn with_rank(mut self, rank: usize, world_size: usize) -> Self {
        self.rank = rank;
        self.world_size = world_size;
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

    pub fn with_image_mode(mut self, mode: ImageMode) -> Self {
        self.image_mode = mode;
        self
    }

    /// Hash every shard with blake3 and compare with the manifest before its first row is read.
    pub fn with_verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Refuses settings that cannot work, each with what to change.
    pub fn validate(&self) -> Result<(), ReaderError> {
        let invalid = |detail: String| Err(ReaderError::InvalidOptions { detail });
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if self.world_size == 0 {
            return invalid("world_size must be at least 1".into());
        }
        if self.rank >= self.world_size {
            return invalid(format!(
                "rank {} is not below world_size {}",
                self.rank, self.world_size
            ));
        }
        if self.shuffle_window == 0 {
            return invalid(
                "shuffle_window must be at least 1 (1 disables the row shuffle)".into(),
            );
        }
        if self.prefetch == 0 {
            return invalid("prefetch must be at least 1 batch".into());
        }
        if self.decode_threads == 0 {
            return invalid("decode_threads must be at least 1".into());
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
            ReaderOptions::default().with_rank(0, 0),
            ReaderOptions::default().with_shuffle_window(0),
            ReaderOptions::default().with_prefetch(0),
            ReaderOptions::default().with_decode_threads(0),
        ] {
            assert!(
                matches!(bad.validate(), Err(ReaderError::InvalidOptions { .. })),
                "{bad:?}"
            );
        }
    }
}
