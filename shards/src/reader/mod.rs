//! The streaming reader: shard sets in, shuffled, partitioned, prefetched batches out.
//!
//! [`Reader::try_new`] takes one stage folder or several in schedule order, reads their manifests
//! (and nothing else), and starts background threads; the [`Reader`] is then an iterator of
//! [`Batch`]es. The guarantees, each in its own module:
//!
//! - [`order`]: the order of an epoch is a pure function of (seed, stage name, epoch): shards
//!   permuted, rows permuted within windows of `shuffle_window` rows;
//! - [`partition`]: ranks take disjoint parts of each global step, and every rank yields the same
//!   number of batches;
//! - [`state`]: [`Reader::state`] is a small cursor from which a new reader (with any world size)
//!   yields exactly the rows not yet yielded, across epochs and stages;
//! - `load` + `pipeline`: only the shards the order reaches are opened (footer first), row groups
//!   and images are decoded on background threads connected by bounded channels, and batches come
//!   out in order whatever the thread count;
//! - [`images`]: pixels at the training size for both stored encodings;
//! - [`tally`]: what has been yielded, per category and source.
//!
//! Memory is bounded by the options, not by the data: about two windows of this rank's rows (of
//! `shuffle_window / world_size` rows each), plus `prefetch + 2 * decode_threads + 1` batches
//! (decoded images included), plus one footer per shard the current windows touch, plus up to
//! [`POOL_BYTES`] of idle pixel buffers kept for reuse (see [`Pixels`]).

mod error;
pub mod images;
mod load;
mod options;
pub mod order;
pub mod partition;
mod pipeline;
mod pixels;
mod rows;
mod schedule;
mod state;
mod tally;

use std::path::PathBuf;
use std::sync::Arc;

use crate::ReadColumns;

pub use error::ReaderError;
pub use images::{decode_pixels, patchify};
pub use options::{
    DEFAULT_BATCH_SIZE, DEFAULT_DECODE_THREADS, DEFAULT_EPOCHS, DEFAULT_PREFETCH, DEFAULT_SEED,
    DEFAULT_SHUFFLE_WINDOW, ImageMode, ReaderOptions,
};
pub use pixels::{POOL_BYTES, Pixels};
pub use rows::{Batch, Image, Row, RowOrigin};
pub use state::{ReaderState, STATE_VERSION};
pub use tally::Tally;

use load::{Cursor, Loader};
use partition::Split;
use pipeline::Pipeline;
use schedule::Schedule;

/// Something a reader can do but probably should not be asked to: reported by
/// [`Reader::warnings`], for the caller to print.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderWarning {
    /// The stage has fewer rows than one global step (`batch_size * world_size`), so it yields no
    /// batch at all: every step is full, and an incomplete last step is dropped.
    #[error(
        "stage `{stage}` has {rows} rows, fewer than one global step of {step_rows} (batch_size x world_size): it yields no batch"
    )]
    StageTooSmall {
        stage: String,
        rows: u64,
        step_rows: u64,
    },
}

/// A running reader. Iterate it for batches; ask it for its [`state`](Reader::state) after any
/// batch to checkpoint, and for its [`tally`](Reader::tally).
#[derive(Debug)]
pub struct Reader {
    schedule: Arc<Schedule>,
    state: ReaderState,
    tally: Tally,
    pipeline: Pipeline,
    finished: bool,
    warnings: Vec<ReaderWarning>,
}

impl Reader {
    /// Opens the stages in `stage_dirs` (each a stage folder of a build, whose manifest
    /// [`crate::StageLayout::manifest`] locates; in schedule order)
    /// and starts reading, from the beginning or from `resume`.
    pub fn try_new(
        stage_dirs: &[PathBuf],
        options: ReaderOptions,
        resume: Option<ReaderState>,
    ) -> Result<Self, ReaderError> {
        options.validate()?;
        let schedule = Arc::new(Schedule::open(stage_dirs)?);
        let stages: Vec<String> = schedule
            .stages
            .iter()
            .map(|s| s.name().to_string())
            .collect();
        let fresh = ReaderState {
            version: state::STATE_VERSION,
            seed: options.seed,
            shuffle: options.shuffle,
            shuffle_window: options.shuffle_window as u64,
            stages: stages.clone(),
            schedule: schedule.fingerprint.clone(),
            stage: 0,
            epoch: 0,
            offset: 0,
        };
        let step_rows = (options.batch_size * options.world_size) as u64;
        let warnings = schedule
            .stages
            .iter()
            .filter(|s| s.manifest.totals.rows < step_rows)
            .map(|s| ReaderWarning::StageTooSmall {
                stage: s.name().to_string(),
                rows: s.manifest.totals.rows,
                step_rows,
            })
            .collect();
        let start = match &resume {
            Some(state) => {
                state.check_compatible(&fresh)?;
                if let Some(stage) = schedule.stages.get(state.stage)
                    && state.offset > stage.manifest.totals.rows
                {
                    return Err(ReaderError::StatePastEnd {
                        stage: stage.name().to_string(),
                        offset: state.offset,
                        rows: stage.manifest.totals.rows,
                    });
                }
                Cursor {
                    stage: state.stage,
                    epoch: state.epoch,
                    offset: state.offset,
                }
            }
            None => Cursor {
                stage: 0,
                epoch: 0,
                offset: 0,
            },
        };
        let loader = Loader {
            schedule: schedule.clone(),
            split: Split {
                batch_size: options.batch_size as u64,
                rank: options.rank as u64,
                world_size: options.world_size as u64,
            },
            epochs: options.epochs,
            seed: options.seed,
            shuffle: options.shuffle,
            window: options.shuffle_window,
            decode_threads: options.decode_threads,
            verify: options.verify,
            columns: ReadColumns {
                image_bytes: options.image_mode != ImageMode::Skip,
                position_ids: false,
            },
        };
        let start = loader.normalize(start);
        let state = ReaderState {
            stage: start.stage,
            epoch: start.epoch,
            offset: start.offset,
            ..fresh
        };
        let pipeline = Pipeline::start(
            loader,
            start,
            stages,
            options.prefetch,
            options.decode_threads,
            options.image_mode,
        );
        Ok(Self {
            schedule,
            state,
            tally: Tally::default(),
            pipeline,
            finished: false,
            warnings,
        })
    }

    /// What the reader will do that the caller probably did not mean (a stage too small to yield
    /// any batch), known at start: print them.
    pub fn warnings(&self) -> &[ReaderWarning] {
        &self.warnings
    }

    /// The cursor after the last yielded batch: pass it to [`Reader::try_new`] to continue. In a
    /// data-parallel job every rank's state after the same step is equal: checkpoint rank 0's.
    pub fn state(&self) -> ReaderState {
        self.state.clone()
    }

    /// What has been yielded so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Stage names in schedule order.
    pub fn stages(&self) -> impl Iterator<Item = &str> {
        self.schedule.stages.iter().map(|s| s.name())
    }
}

impl Iterator for Reader {
    type Item = Result<Batch, ReaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.pipeline.next() {
            Some(Ok((batch, after))) => {
                self.state.stage = after.stage;
                self.state.epoch = after.epoch;
                self.state.offset = after.offset;
                self.tally.add_batch(&batch);
                Some(Ok(batch))
            }
            Some(Err(err)) => {
                // The pipeline stops at its first error: so does the reader (fused).
                self.finished = true;
                Some(Err(err))
            }
            None => {
                self.finished = true;
                None
            }
        }
    }
}
