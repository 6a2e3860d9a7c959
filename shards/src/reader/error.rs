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
    #[error("invalid reader options: {detail}")]
    InvalidOptions { detail: String },
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
    /// A shard could not be read for verification.
    #[error("cannot read shard {} to verify it: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An image of a row could not be decoded or resized.
    #[error("{}, row group {row_group}, row {row}, image {image}: {detail} (the shard is corrupt: rebuild it)", path.display())]
    Image {
        path: PathBuf,
        row_group: usize,
        row: usize,
        image: usize,
        detail: String,
    },
    /// The resume state belongs to another schedule or order.
    #[error("cannot resume from this state: {detail}")]
    StateMismatch { detail: String },
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
