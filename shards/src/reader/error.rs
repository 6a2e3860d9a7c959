//! [`ReaderError`]: why a [`super::Reader`] cannot start or cannot go on.
//!
//! Every variant that concerns data names the shard file, and the row group (and row) when the
//! problem is inside one, so a trainer's log says exactly which file to rebuild. Errors from the
//! shard layer ([`ReadError`], [`ManifestError`]) keep their own messages, which already carry the
//! path and row group.

use std::path::PathBuf;

use crate::{ManifestError, ReadError};

/// Why the reader stopped or refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// An option cannot work (zero batch size, rank outside the world, a malformed RANK variable).
    #[error("invalid reader options: {0}")]
    InvalidOptions(#[from] OptionsError),
    /// [`super::ReaderOptions::with_stage_batch_size`] names a stage the reader does not read.
    #[error(
        "invalid reader options: a batch size is set for stage `{stage}`, which is not among the stages read ({})",
        stages.join(", ")
    )]
    UnknownStage { stage: String, stages: Vec<String> },
    /// [`super::Reader::skip_to_stage`] was given an index past the schedule.
    #[error("cannot skip to stage {index}: the reader has {stages} stages")]
    NoSuchStage { index: usize, stages: usize },
    /// No stage directory was given.
    #[error("no stage to read: pass at least one stage folder of a build")]
    NoStages,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A shard could not be opened or one of its row groups could not be decoded or validated.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The shard's footer disagrees with the manifest (a shard replaced after the build).
    #[error("{}: the footer says {footer} {what}, the manifest {manifest} (the shard was replaced or the manifest edited: rebuild the stage)", path.display())]
    ShardMismatch {
        path: PathBuf,
        what: &'static str,
        manifest: u64,
        footer: u64,
    },
    /// `verify` found a shard whose blake3 differs from the manifest's.
    #[error("{}: blake3 {found} does not match the manifest's {expected} (the shard is damaged: rebuild the stage)", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The chunk cache's folder could not be opened.
    #[error("cannot use {} as the reader's cache folder: {source} (pass a writable local folder)", dir.display())]
    Cache {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A shard could not be read for verification.
    #[error("cannot read shard {} to verify it: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image of a row could not be decoded or resized.
    #[error("{}, row group {row_group}, row {row}, image {image}: {source} (the shard is corrupt: rebuild it)", path.display())]
    Image {
        path: PathBuf,
        row_group: usize,
        row: usize,
        image: usize,
        source: PixelsError,
    },
    /// [`super::read_rows_at`] was asked for a row past the end of its stage.
    #[error("stage `{stage}` has {rows} rows: there is no row {row}")]
    NoSuchRow { stage: String, row: u64, rows: u64 },
    /// The resume state belongs to another schedule or order.
    #[error("cannot resume from this state")]
    StateMismatch(#[from] StateMismatch),
    /// The resume state's offset lies past the end of its stage's epoch: it was not written by a
    /// reader of these stages (a reader's state never points past the end), so reading it as
    /// "nothing left" would silently skip data.
    #[error(
        "cannot resume from this state: offset {offset} of stage `{stage}` is past its end ({rows} rows): the state was edited or belongs to other data"
    )]
    StatePastEnd {
        stage: String,
        offset: u64,
        rows: u64,
    },
    /// A background thread ended without finishing (it panicked): a bug in mixtape, not in the data.
    #[error(
        "the reader's background thread stopped unexpectedly (a bug in mixtape: please report it)"
    )]
    Stopped,
}

/// Why [`super::ReaderOptions`] cannot work, with what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// A count that must be at least 1 is 0 (`batch_size`, `world_size`, `workers`, `shuffle_window`,
    /// `prefetch`, `decode_threads`, `remote_requests`).
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("the batch size of stage `{stage}` must be at least 1")]
    ZeroStageBatchSize { stage: String },
    #[error("rank {rank} is not below world_size {world_size}")]
    RankOutsideWorld { rank: usize, world_size: usize },
    #[error("worker {worker} is not below workers {workers}")]
    WorkerOutsideWorkers { worker: usize, workers: usize },
    /// `RANK` or `WORLD_SIZE` is set but is not a number.
    #[error("environment variable {name}={value:?} is not a non-negative integer")]
    NotANumber { name: &'static str, value: String },
}

/// Why a [`super::ReaderState`] cannot be resumed by this reader: its order would differ, so rows
/// would be read twice or never.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateMismatch {
    #[error("state version {found} (this mixtape writes {expected})")]
    Version { found: u32, expected: u32 },
    #[error("it was written for stages {state:?}, the reader has {reader:?}")]
    Stages {
        state: Vec<String>,
        reader: Vec<String>,
    },
    #[error("the stages were rebuilt since (schedule {state} in the state, {reader} now)")]
    Schedule { state: String, reader: String },
    #[error(
        "it was written with seed {}, shuffle {}, shuffle window {}; the reader has seed {}, shuffle {}, shuffle window {} (the order would differ)",
        state.0, state.1, state.2, reader.0, reader.1, reader.2
    )]
    Order {
        /// `(seed, shuffle, shuffle_window)` of the state.
        state: (u64, bool, u64),
        /// `(seed, shuffle, shuffle_window)` of the reader.
        reader: (u64, bool, u64),
    },
    #[error("stage index {stage} is past the last stage")]
    StagePastLast { stage: usize },
}

/// Why an image's pixels cannot be had from its stored bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PixelsError {
    #[error(transparent)]
    Decode(#[from] mixtape_image::DecodeError),
    #[error(transparent)]
    Resample(#[from] mixtape_image::ResampleError),
    /// A source image (`encoding: "source"`) decodes to another size than the shard records.
    #[error(
        "source image decodes to {}x{} (HxW), the shard says {}x{}",
        decoded.0, decoded.1, stored.0, stored.1
    )]
    SourceSize {
        decoded: (u32, u32),
        stored: (u32, u32),
    },
    /// An image decodes (or resizes) to another size than its stored training size.
    #[error(
        "image decodes to {}x{} (HxW), the shard says {}x{}",
        decoded.0, decoded.1, stored.0, stored.1
    )]
    Size {
        decoded: (u32, u32),
        stored: (u32, u32),
    },
}
