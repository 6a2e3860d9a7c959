//! The streaming reader: shard sets in, shuffled, partitioned, prefetched batches out.
//!
//! [`Reader::try_new`] takes one stage folder or several in schedule order, reads their manifests
//! (and nothing else), and starts background threads; the [`Reader`] is then an iterator of
//! [`RowBatch`]es. Stages may differ in batch size ([`ReaderOptions::with_stage_batch_size`]), and
//! a trainer that caps a stage's steps moves on with [`Reader::skip_to_stage`], so one reader
//! serves a whole multi-stage schedule. The guarantees, each in its own module:
//!
//! - [`order`]: the order of an epoch is a pure function of (seed, stage name, epoch): shards
//!   permuted, rows permuted within windows of `shuffle_window` rows;
//! - [`partition`]: ranks take disjoint parts of each global step, and every rank yields the same
//!   number of batches;
//! - `state`: [`Reader::state`] is a small cursor from which a new reader (with any world size)
//!   yields exactly the rows not yet yielded, across epochs and stages;
//! - `load` + `pipeline`: only the shards the order reaches are opened (footer first), row groups
//!   and images are decoded on background threads connected by bounded channels, and batches come
//!   out in order whatever the thread count;
//! - [`images`]: pixels at the training size for both stored encodings;
//! - `tally`: what has been yielded, per category and source;
//! - [`read_rows_at`]: chosen rows of a stage (held-back evaluation rows), converted as the
//!   reader converts its rows, outside any order.
//!
//! Memory is bounded by the options, not by the data: about two windows of this rank's rows (of
//! `shuffle_window / world_size` rows each; three for a stage on object storage, which reads one
//! window ahead unless `read_ahead` is off; where row groups are longer than windows, this rank's
//! rows of the row groups those windows reach, since a row group is decoded once an epoch), plus `prefetch + 2 * decode_threads + 1` batches
//! (decoded images included), plus one footer per shard the current windows touch, plus up to
//! [`POOL_BYTES`] of idle pixel buffers kept for reuse (see [`Pixels`]).

mod cache;
mod error;
mod held_back;
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

pub use cache::CacheOptions;
pub use error::{OptionsError, PixelsError, ReaderError, StateMismatch};
pub use held_back::read_rows_at;
pub use images::{ImageDecoder, decode_pixels, patchify};
pub use options::{
    DEFAULT_BATCH_SIZE, DEFAULT_DECODE_THREADS, DEFAULT_EPOCHS, DEFAULT_PREFETCH,
    DEFAULT_REMOTE_REQUESTS, DEFAULT_SEED, DEFAULT_SHUFFLE_WINDOW, ImageMode, ReaderOptions,
};
pub use pixels::{POOL_BYTES, Pixels};
pub use rows::{Image, Row, RowBatch, RowOrigin};
pub use state::{ReaderState, STATE_VERSION};
pub use tally::Tally;

use cache::ReaderCache;
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

/// A running reader. Ask it for batches with [`Iterator::next`]; ask it for its
/// [`state`](Reader::state) after any batch to checkpoint, and for its [`tally`](Reader::tally).
///
/// A `while let` loop keeps the reader free between batches, so the loop body can checkpoint it
/// (a `for batch in &mut reader` loop borrows it for the whole loop):
///
/// ```no_run
/// use std::path::PathBuf;
///
/// use mixtape_shards::{Reader, ReaderOptions, ReaderState};
///
/// let stages = [PathBuf::from("out/warmup"), PathBuf::from("out/sft")];
/// let options = ReaderOptions::default().with_batch_size(4).with_stage_batch_size("sft", 2);
/// let mut reader = Reader::try_new(&stages, options, None)?;
/// while let Some(batch) = reader.next() {
///     let batch = batch?;
///     println!("{} rows, {} tokens", batch.rows.len(), batch.tokens());
///     let checkpoint: ReaderState = reader.state();
///     # let _ = checkpoint;
/// }
/// # Ok::<(), mixtape_shards::ReaderError>(())
/// ```
#[derive(Debug)]
pub struct Reader {
    schedule: Arc<Schedule>,
    /// The loader the pipeline was started from: [`Reader::skip_to_stage`] restarts it.
    loader: Loader,
    options: ReaderOptions,
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
        if let Some(stage) = options
            .stage_batch_sizes()
            .keys()
            .find(|name| !stages.contains(*name))
        {
            return Err(ReaderError::UnknownStage {
                stage: stage.clone(),
                stages,
            });
        }
        let fresh = ReaderState {
            version: state::STATE_VERSION,
            seed: options.seed(),
            shuffle: options.shuffle(),
            shuffle_window: options.shuffle_window() as u64,
            stages: stages.clone(),
            schedule: schedule.fingerprint.clone(),
            stage: 0,
            epoch: 0,
            offset: 0,
        };
        let splits: Vec<Split> = stages
            .iter()
            .map(|name| Split {
                batch_size: options.batch_size_of(name) as u64,
                rank: options.rank() as u64,
                world_size: options.world_size() as u64,
                workers: options.workers() as u64,
                phase: options.worker() as u64,
            })
            .collect();
        let warnings = schedule
            .stages
            .iter()
            .zip(&splits)
            .filter(|(s, split)| s.manifest.totals.rows < split.step_rows())
            .map(|(s, split)| ReaderWarning::StageTooSmall {
                stage: s.name().to_string(),
                rows: s.manifest.totals.rows,
                step_rows: split.step_rows(),
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
            splits,
            epochs: options.epochs(),
            seed: options.seed(),
            shuffle: options.shuffle(),
            window: options.shuffle_window(),
            decode_threads: options.decode_threads(),
            remote_requests: options.remote_requests(),
            read_ahead: options.read_ahead(),
            verify: options.verify(),
            cache: match options.cache() {
                Some(cache) => Some(Arc::new(
                    ReaderCache::open(
                        cache,
                        (options.rank(), options.worker()),
                        schedule.clone(),
                        options.seed(),
                        options.shuffle(),
                        options.shuffle_window(),
                        options.epochs(),
                    )
                    .map_err(|source| ReaderError::Cache {
                        dir: cache.dir.clone(),
                        source,
                    })?,
                )),
                None => None,
            },
            columns: ReadColumns {
                image_bytes: options.image_mode() != ImageMode::Skip,
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
        let pipeline = start_pipeline(&loader, start, &options, &state);
        Ok(Self {
            schedule,
            loader,
            options,
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

    /// Index (in [`Reader::stages`]) of the stage the next batch comes from; the number of stages
    /// once everything is read. A trainer that runs a fixed number of steps per stage checks it to
    /// see where a stage ends, before asking for a batch of the next one.
    pub fn current_stage(&self) -> usize {
        self.state.stage
    }

    /// Leaves the rest of the stages before `index` unread: the next batch is the first of stage
    /// `index` (epoch 0), or the end when `index` is the number of stages. For a trainer that caps
    /// a stage's steps. Does nothing when the reader is already at or past `index`, and nothing
    /// once the reader has ended (at the end of the schedule or at an error: it stays ended).
    pub fn skip_to_stage(&mut self, index: usize) -> Result<(), ReaderError> {
        let stages = self.schedule.stages.len();
        if index > stages {
            return Err(ReaderError::NoSuchStage { index, stages });
        }
        if self.finished || index <= self.state.stage {
            return Ok(());
        }
        let start = self.loader.normalize(Cursor {
            stage: index,
            epoch: 0,
            offset: 0,
        });
        self.state.stage = start.stage;
        self.state.epoch = start.epoch;
        self.state.offset = start.offset;
        // The old pipeline's threads stop at their next send once it is dropped.
        self.pipeline = start_pipeline(&self.loader, start, &self.options, &self.state);
        Ok(())
    }

    /// What has been yielded so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Stage names in schedule order.
    pub fn stages(&self) -> impl Iterator<Item = &str> {
        self.schedule.stages.iter().map(|s| s.name())
    }

    /// The options the reader was started with.
    pub fn options(&self) -> &ReaderOptions {
        &self.options
    }
}

fn start_pipeline(
    loader: &Loader,
    start: Cursor,
    options: &ReaderOptions,
    state: &ReaderState,
) -> Pipeline {
    Pipeline::start(
        loader.clone(),
        start,
        state.stages.clone(),
        options.prefetch(),
        options.decode_threads(),
        options.image_mode(),
    )
}

impl Iterator for Reader {
    type Item = Result<RowBatch, ReaderError>;

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
                // The pipeline stops at its first error: so does the reader.
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

/// Once `next` has returned `None` (the end, or after an error), it always does.
impl std::iter::FusedIterator for Reader {}
