//! mixtape's packed-shard format (version 1): the last stage of the pipeline
//! (sources -> samples -> encoded samples -> packs -> **shards**).
//!
//! A stage of a build is a folder of Parquet shards (a plain Parquet dataset) plus a
//! `manifest.json` kept with the rest of mixtape's files under the build's `_mixtape/` folder:
//!
//! - [`layout`]: where every file of a build lives ([`BuildLayout`], [`StageLayout`]) and finding
//!   the stages of a folder ([`layout::discover`]);
//! - [`schema`]: the Arrow schema (one row per packed sequence) and the file metadata keys;
//! - [`row`]: [`PackedRow`], the unit written and read, and its validation;
//! - [`writer`]: [`ShardWriter`], one shard, written atomically and deterministically;
//! - [`manifest`]: [`Manifest`], the per-stage index of shards and counts;
//! - [`shard_file`]: [`ShardFile`], reading one shard back row group by row group;
//! - [`qwen2vl`]: the inputs Qwen2-VL-style models take (labels, M-RoPE positions, pixel values),
//!   from the reader's rows;
//! - [`reader`]: [`Reader`], the training-side streaming reader (shuffle, ranks, exact resume, one
//!   reader for a multi-stage schedule), yielding [`RowBatch`]es of [`Row`]s;
//! - [`verify`](mod@verify): [`verify()`](fn@verify), the one integrity pass over a stage or a whole build output, checking it against its manifests;
//! - [`build_record`]: [`BuildRecord`], the checksummed `build.json` saying whose build a folder is;
//! - [`file_hash`]: [`hash_file`], the size and blake3 of a shard (or any file) on disk.
//!
//! FORMAT.md at the repository root documents the format for readers in other languages.
//!
//! This crate knows nothing about recipes, tokenizers or images beyond their bytes and geometry:
//! the engine depends on it, never the reverse, so a training-side reader can link it alone.

mod atomic;
pub mod build_record;
pub mod file_hash;
pub mod layout;
pub mod manifest;
pub mod qwen2vl;
pub mod reader;
mod record_batch;
pub mod row;
pub mod schema;
pub mod shard_file;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod testing;

pub use build_record::{BUILD_RECORD_VERSION, BuildRecord, BuildRecordError, RecordedTokenizer};
pub use file_hash::{FileHash, hash_file};
pub use layout::{
    BUILD_RECORD_FILE, BuildLayout, DATASET_CARD_FILE, Discovered, LayoutError, MANIFEST_FILE,
    MIXTAPE_DIR, REJECTS_FILE, StageLayout, shard_file_name,
};
pub use manifest::{Counts, Manifest, ManifestError, ShardChecksums, ShardInfo, Totals};
pub use reader::{
    Image, ImageDecoder, ImageMode, OptionsError, Pixels, PixelsError, Reader, ReaderError,
    ReaderOptions, ReaderState, ReaderWarning, Row, RowBatch, StateMismatch, Tally,
};
pub use record_batch::{DecodeError, EncodeError};
pub use row::{
    ImageEncoding, PackedRow, PackedSampleMeta, RowChecks, RowError, ShardImage, count_samples,
};
pub use schema::{CREATED_BY, FORMAT_VERSION, MetaError, ShardMeta, shard_schema};
pub use shard_file::{Chunk, ChunkCache, ReadColumns, ReadError, Region, ShardFile, read_rows};
pub use verify::{
    OnRow, Problem, ProblemKind, ShardRecount, StageRecount, StageReport, VerifyError,
    VerifyReport, verify, verify_with_rows,
};
pub use writer::{
    DEFAULT_MAX_ROW_GROUP_BYTES, DEFAULT_MAX_ROWS_PER_ROW_GROUP, DEFAULT_ZSTD_LEVEL, ShardOptions,
    ShardWriter, WriteError,
};

/// The repository README's Rust examples, compiled and run as doctests of this crate (the README is
/// the user's manual: an example that stops compiling fails `cargo test`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
