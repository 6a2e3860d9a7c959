//! [`ShardWriter`]: packed rows in, one published zstd Parquet shard out.
//!
//! Rows are validated one by one (an invalid row is refused with [`WriteError::InvalidRow`] and the
//! writer stays usable), buffered, and encoded one row group at a time: a row group closes after
//! [`ShardOptions::max_rows_per_row_group`] rows or once its rows reach
//! [`ShardOptions::max_row_group_bytes`] of raw column data, whichever comes first. Row group
//! boundaries, and therefore the file's bytes, depend only on the rows and the options.
//!
//! Threads: a row group that fills up during [`ShardWriter::write`] is encoded on the calling
//! thread, since a caller streaming rows in usually has its other threads busy making them. The last
//! one, encoded by [`ShardWriter::finish`], has its columns encoded in parallel on the current rayon
//! pool (call `finish` inside `ThreadPool::install` to choose it): at the end of a shard nothing else
//! is left to run, and a build's last row group was its longest serial step. Columns are encoded
//! independently and appended in schema order, so the file is the same for any thread count.
//!
//! Determinism: no timestamps or host data reach the file; `created_by` is the fixed
//! [`crate::CREATED_BY`]; metadata keys are written in a fixed order. Same rows + same options =
//! byte-identical file and blake3.
//!
//! Checksums: as the file is written, `crate::atomic::HashingFile` CRC32s each column chunk and
//! the tail (see [`crate::ShardChecksums`]); the writer announces each chunk's byte range before
//! handing its bytes over, so nothing is read back. [`ShardWriter::finish`] checks those ranges
//! against the footer it wrote, the ones a reader will use.
//!
//! Atomicity: the file is written as `.shard-NNNNN.parquet.tmp` (in the same folder, or the one given
//! to [`ShardWriter::try_new_with_temporary_in`]), fsynced, and renamed to `shard-NNNNN.parquet` by
//! [`ShardWriter::finish`] (see `crate::atomic`). A writer
//! dropped before `finish` (an error, a panic elsewhere, a cancelled build) removes its temporary
//! file and never creates the final one. After a Parquet or I/O error the writer is poisoned: every
//! later call fails, and dropping it cleans up.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::atomic::{self, HashingFile};
use crate::manifest::ratio;
use crate::record_batch::{self, EncodeError};
use crate::schema::{IMAGE_BYTES_PATH, LIST_ELEMENT, columns, shard_schema};
use crate::{
    CREATED_BY, Counts, PackedRow, RowChecks, RowError, ShardChecksums, ShardInfo, ShardMeta,
};

/// zstd level of shards. Level 3 compresses token ids at hundreds of MB/s (never the bottleneck
/// of a build) and within a few percent of level 9's size; image bytes are already compressed.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Highest zstd level of the image bytes column. Encoded images leave zstd little to find beyond
/// what its fastest level finds: on the end-to-end bench's 2,000 re-encoded JPEGs (13.6 MB),
/// level 1 stores 2.439x at 528 MB/s where level 3 stores 2.456x at 232 MB/s. At the end of a
/// build that column's compression is serial time, so it never goes above level 1.
pub const MAX_IMAGE_BYTES_ZSTD_LEVEL: i32 = 1;

/// Most rows in one row group. A row group is the unit a streaming reader decodes and shuffles
/// within: smaller groups mean less reader memory and finer random access, larger ones mean
/// better compression and less footer. 256 rows of 8192 tokens is ~19 MB of raw token columns.
pub const DEFAULT_MAX_ROWS_PER_ROW_GROUP: usize = 256;

/// Most raw column bytes (see [`PackedRow::raw_bytes`]) in one row group. Bounds reader memory
/// for image-heavy rows, where 256 rows could hold hundreds of MB of JPEGs.
pub const DEFAULT_MAX_ROW_GROUP_BYTES: usize = 64 << 20;

/// Footer bytes that do not depend on the row count: the Parquet schema, the embedded Arrow
/// schema and the metadata keys (about 3 KiB, measured with parquet-rs 60).
const FOOTER_BYTES_BASE: usize = 3 << 10;

/// Footer bytes per row group: column chunk metadata plus column and offset indexes, about 170
/// bytes for each of the 20 leaf columns (measured with parquet-rs 60). Only matters for
/// rotation estimates of shards with tiny row groups.
const FOOTER_BYTES_PER_ROW_GROUP: usize = 3584;

pub use crate::layout::shard_file_name;

/// How shards are encoded. [`Default`] uses the `DEFAULT_*` constants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardOptions {
    zstd_level: i32,
    max_rows_per_row_group: usize,
    max_row_group_bytes: usize,
    image_pad_token: Option<i32>,
}

impl Default for ShardOptions {
    fn default() -> Self {
        Self {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            max_rows_per_row_group: DEFAULT_MAX_ROWS_PER_ROW_GROUP,
            max_row_group_bytes: DEFAULT_MAX_ROW_GROUP_BYTES,
            image_pad_token: None,
        }
    }
}

impl ShardOptions {
    /// zstd level, 1 (fastest) to 22 (smallest); negative levels are zstd's fast modes.
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    pub fn with_max_rows_per_row_group(mut self, rows: usize) -> Self {
        self.max_rows_per_row_group = rows;
        self
    }

    pub fn with_max_row_group_bytes(mut self, bytes: usize) -> Self {
        self.max_row_group_bytes = bytes;
        self
    }

    /// Also check that every image's token span holds only this token id (`<|image_pad|>`).
    pub fn with_image_pad_token(mut self, token: i32) -> Self {
        self.image_pad_token = Some(token);
        self
    }

    pub fn zstd_level(&self) -> i32 {
        self.zstd_level
    }

    pub fn max_rows_per_row_group(&self) -> usize {
        self.max_rows_per_row_group
    }

    pub fn max_row_group_bytes(&self) -> usize {
        self.max_row_group_bytes
    }

    pub fn image_pad_token(&self) -> Option<i32> {
        self.image_pad_token
    }

    fn properties(&self, meta: &ShardMeta) -> Result<WriterProperties, WriteError> {
        let invalid = |option, value: String, fix| WriteError::InvalidOption { option, value, fix };
        let level = ZstdLevel::try_new(self.zstd_level).map_err(|_| {
            invalid(
                "zstd_level",
                self.zstd_level.to_string(),
                "use a zstd level from 1 to 22",
            )
        })?;
        let image_level = ZstdLevel::try_new(self.zstd_level.min(MAX_IMAGE_BYTES_ZSTD_LEVEL))
            .map_err(|_| {
                invalid(
                    "zstd_level",
                    self.zstd_level.to_string(),
                    "use a zstd level from 1 to 22",
                )
            })?;
        if self.max_rows_per_row_group == 0 {
            return Err(invalid(
                "max_rows_per_row_group",
                "0".into(),
                "use at least 1",
            ));
        }
        if self.max_row_group_bytes == 0 {
            return Err(invalid("max_row_group_bytes", "0".into(), "use at least 1"));
        }
        if meta.seq_len == 0 {
            return Err(invalid(
                "seq_len",
                "0".into(),
                "a stage packs at least 1 token per row",
            ));
        }
        let image_bytes = ColumnPath::from(IMAGE_BYTES_PATH.map(String::from).to_vec());
        let element = |column: &str| {
            ColumnPath::from(vec![column.to_string(), "list".into(), LIST_ELEMENT.into()])
        };
        let metadata = meta
            .to_key_values()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), v))
            .collect();
        Ok(WriterProperties::builder()
            .set_created_by(CREATED_BY.to_string())
            .set_compression(Compression::ZSTD(level))
            // Row groups are cut by this writer; parquet's own limits must never cut first.
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(None)
            .set_key_value_metadata(Some(metadata))
            // Plain + zstd beats dictionary + zstd on token ids (measured 0.78 vs 1.04 bytes per
            // token on word ids of real text, a 167k vocabulary): bit-packed dictionary indices hide
            // the repeated n-grams zstd would find. Position ids count up, which zstd likes too.
            .set_column_dictionary_enabled(element(columns::INPUT_IDS), false)
            .set_column_dictionary_enabled(element(columns::POSITION_IDS), false)
            .set_column_dictionary_enabled(image_bytes.clone(), false)
            .set_column_compression(image_bytes.clone(), Compression::ZSTD(image_level))
            .set_column_statistics_enabled(image_bytes, EnabledStatistics::None)
            .build())
    }
}

/// Why a shard could not be written. Every variant but `InvalidOption` names the shard file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("invalid shard option {option} = {value}: {fix}")]
    InvalidOption {
        option: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("{}: row {row} refused: {source}", path.display())]
    InvalidRow {
        path: PathBuf,
        row: u64,
        source: RowError,
    },
    #[error("{}: cannot encode row group {row_group}: {source}", path.display())]
    Encode {
        path: PathBuf,
        row_group: u64,
        source: EncodeError,
    },
    #[error("{}: Parquet writing failed at row group {row_group}: {source}; the shard was not published (check disk space and permissions, then rebuild it)", path.display())]
    Parquet {
        path: PathBuf,
        row_group: u64,
        source: ParquetError,
    },
    #[error("{}: the writer failed earlier and cannot continue: drop it and rebuild the shard", path.display())]
    Poisoned { path: PathBuf },
}

/// Writes one shard. See the module documentation.
#[derive(Debug)]
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    meta: ShardMeta,
    options: ShardOptions,
    checks: RowChecks,
    /// `None` once finished or poisoned.
    writer: Option<ParquetFile>,
    buffer: Vec<PackedRow>,
    buffered_bytes: usize,
    rows: u64,
    row_groups: u64,
    totals: Counts,
    by_category: BTreeMap<String, Counts>,
    by_source: BTreeMap<String, Counts>,
    published: bool,
}

impl ShardWriter {
    /// Starts shard `meta.shard_index` in `dir` (created if missing), its temporary file beside
    /// it. Nothing appears under the final name until [`ShardWriter::finish`].
    pub fn try_new(
        dir: impl AsRef<Path>,
        meta: ShardMeta,
        options: ShardOptions,
    ) -> Result<Self, WriteError> {
        let dir = dir.as_ref();
        Self::try_new_with_temporary_in(dir, dir, meta, options)
    }

    /// As [`ShardWriter::try_new`], with the temporary file in `temporary_dir` (created if
    /// missing; on the same file system as `dir`, since the shard is renamed from it): a build
    /// keeps it in the stage's `_mixtape/` folder, so that the stage folder never holds anything
    /// but shards (DuckDB and polars would try to read a hidden temporary there).
    pub fn try_new_with_temporary_in(
        dir: impl AsRef<Path>,
        temporary_dir: impl AsRef<Path>,
        meta: ShardMeta,
        options: ShardOptions,
    ) -> Result<Self, WriteError> {
        let (dir, temporary_dir) = (dir.as_ref(), temporary_dir.as_ref());
        let properties = options.properties(&meta)?;
        let path = dir.join(shard_file_name(meta.shard_index));
        let tmp = atomic::tmp_path(&temporary_dir.join(shard_file_name(meta.shard_index)));
        fn io(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> WriteError {
            move |source| WriteError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        }
        mixtape_store::create_dir_all(dir).map_err(io(dir, "create the shard folder"))?;
        std::fs::create_dir_all(temporary_dir)
            .map_err(io(temporary_dir, "create the temporary shard folder"))?;
        let mut file = HashingFile::create(&tmp).map_err(io(&tmp, "create temporary shard"))?;
        // After the leading magic: the first column chunk, or the tail of a shard without rows.
        file.cut_at(4).map_err(io(&tmp, "create temporary shard"))?;
        let writer = ArrowWriter::try_new(file, shard_schema(), Some(properties))
            .and_then(ArrowWriter::into_serialized_writer)
            .map(|(file, columns)| ParquetFile {
                file,
                columns,
                chunk_ranges: Vec::new(),
            })
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                WriteError::Parquet {
                    path: path.clone(),
                    row_group: 0,
                    source,
                }
            })?;
        let checks = RowChecks {
            max_tokens: Some(meta.seq_len),
            image_pad_token: options.image_pad_token,
            without_image_bytes: false,
        };
        Ok(Self {
            path,
            tmp,
            meta,
            options,
            checks,
            writer: Some(writer),
            buffer: Vec::new(),
            buffered_bytes: 0,
            rows: 0,
            row_groups: 0,
            totals: Counts::default(),
            by_category: BTreeMap::new(),
            by_source: BTreeMap::new(),
            published: false,
        })
    }

    /// The final path of the shard (it exists only after [`ShardWriter::finish`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Estimated size of the finished file: bytes of the row groups already encoded, plus the raw
    /// size of the buffered rows (an overestimate, since they are not compressed yet), plus an
    /// estimate of the footer. Depends only on the rows written, never on timing.
    pub fn estimated_bytes(&self) -> u64 {
        let encoded = self.writer.as_ref().map_or(0, |w| w.file.bytes_written());
        let row_groups = self.row_groups as usize + usize::from(!self.buffer.is_empty());
        (encoded
            + self.buffered_bytes
            + FOOTER_BYTES_BASE
            + row_groups * FOOTER_BYTES_PER_ROW_GROUP) as u64
    }

    /// Validates and appends one row. An invalid row is refused and leaves the writer unchanged.
    pub fn write(&mut self, row: PackedRow) -> Result<(), WriteError> {
        if self.writer.is_none() {
            return Err(WriteError::Poisoned {
                path: self.path.clone(),
            });
        }
        row.validate(&self.checks)
            .map_err(|source| WriteError::InvalidRow {
                path: self.path.clone(),
                row: self.rows,
                source,
            })?;
        crate::manifest::count_row(
            &row,
            &mut self.totals,
            &mut self.by_category,
            &mut self.by_source,
        );
        self.rows += 1;
        self.buffered_bytes += row.raw_bytes();
        self.buffer.push(row);
        if self.buffer.len() >= self.options.max_rows_per_row_group
            || self.buffered_bytes >= self.options.max_row_group_bytes
        {
            self.flush_row_group(Threads::Caller)?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self, threads: Threads) -> Result<(), WriteError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let row_group = self.row_groups;
        let result = (|| {
            let writer = self.writer.as_mut().ok_or_else(|| WriteError::Poisoned {
                path: self.path.clone(),
            })?;
            let batch =
                record_batch::encode(&self.buffer).map_err(|source| WriteError::Encode {
                    path: self.path.clone(),
                    row_group,
                    source,
                })?;
            let parquet = |source| WriteError::Parquet {
                path: self.path.clone(),
                row_group,
                source,
            };
            writer
                .write_row_group(row_group, &batch, threads)
                .map_err(parquet)
        })();
        if result.is_err() {
            self.writer = None;
        }
        result?;
        self.row_groups += 1;
        self.buffer.clear();
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Encodes the remaining rows (their columns in parallel on the current rayon pool), writes the
    /// footer, fsyncs, and publishes the shard under its final name (replacing any previous file of
    /// that name in one step).
    pub fn finish(mut self) -> Result<ShardInfo, WriteError> {
        self.flush_row_group(Threads::Pool)?;
        let writer = self.writer.take().ok_or_else(|| WriteError::Poisoned {
            path: self.path.clone(),
        })?;
        let parquet = |source| WriteError::Parquet {
            path: self.path.clone(),
            row_group: self.row_groups,
            source,
        };
        writer.check_chunk_ranges().map_err(parquet)?;
        let chunk_ranges = writer.chunk_ranges;
        let file = writer.file.into_inner().map_err(parquet)?;
        let hashed = file.sync().map_err(|source| WriteError::Io {
            path: self.tmp.clone(),
            action: "sync temporary shard",
            source,
        })?;
        let checksums = checksums(&chunk_ranges, &hashed.segments).map_err(parquet)?;
        let (bytes, blake3) = (hashed.bytes, hashed.blake3);
        mixtape_store::publish(&self.tmp, &self.path).map_err(|source| WriteError::Io {
            path: self.path.clone(),
            action: "publish shard",
            source,
        })?;
        self.published = true;
        let padded_capacity = self.rows * u64::from(self.meta.seq_len);
        Ok(ShardInfo {
            index: self.meta.shard_index,
            file: shard_file_name(self.meta.shard_index),
            rows: self.rows,
            row_groups: self.row_groups,
            bytes,
            blake3,
            totals: self.totals,
            padded_capacity,
            efficiency: ratio(self.totals.tokens, padded_capacity),
            by_category: std::mem::take(&mut self.by_category),
            by_source: std::mem::take(&mut self.by_source),
            checksums,
        })
    }
}

/// The shard's checksums from the chunks' byte ranges and the CRC32 segments the file was cut
/// into: the magic, one segment per chunk, the tail.
fn checksums(
    chunk_ranges: &[Vec<(u64, u64)>],
    segments: &[(u64, u32)],
) -> Result<ShardChecksums, ParquetError> {
    let crcs: BTreeMap<u64, u32> = segments.iter().copied().collect();
    let mut column_chunks = Vec::with_capacity(chunk_ranges.len());
    let mut tail_offset = 4;
    for (row_group, ranges) in chunk_ranges.iter().enumerate() {
        let mut crc32s = Vec::with_capacity(ranges.len());
        for (leaf, &(start, len)) in ranges.iter().enumerate() {
            // Every chunk starts a segment and ends where the next one starts (see `write_row_group`).
            let crc = crcs.get(&start).filter(|_| start == tail_offset).ok_or_else(|| {
                ParquetError::General(format!(
                    "row group {row_group}, leaf {leaf}: no checksum segment starts at its byte {start}"
                ))
            })?;
            crc32s.push(*crc);
            tail_offset = start + len;
        }
        column_chunks.push(crc32s);
    }
    let tail_crc32 = match segments.last() {
        Some(&(start, crc)) if start == tail_offset => crc,
        // No bytes after the last chunk cannot happen (the footer follows), but say so if it does.
        _ => {
            return Err(ParquetError::General(format!(
                "no checksum segment starts at the tail, byte {tail_offset}"
            )));
        }
    };
    Ok(ShardChecksums {
        column_chunks,
        tail_offset,
        tail_crc32,
    })
}

/// Where a row group's columns are encoded.
#[derive(Clone, Copy, Debug)]
enum Threads {
    /// One after another on the calling thread.
    Caller,
    /// In parallel on the current rayon pool.
    Pool,
}

/// The Parquet file being written: its footer-keeping writer and a factory of column encoders
/// (what `ArrowWriter` does in one piece, split so that columns can be encoded in parallel).
struct ParquetFile {
    file: SerializedFileWriter<HashingFile>,
    columns: ArrowRowGroupWriterFactory,
    /// (offset, length) of each row group's column chunks, as announced to the [`HashingFile`].
    chunk_ranges: Vec<Vec<(u64, u64)>>,
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("bytes_written", &self.file.bytes_written())
            .finish_non_exhaustive()
    }
}

impl ParquetFile {
    /// Encodes `batch` as row group `index` and appends it to the file.
    fn write_row_group(
        &mut self,
        index: u64,
        batch: &RecordBatch,
        threads: Threads,
    ) -> Result<(), ParquetError> {
        let writers = self.columns.create_column_writers(index as usize)?;
        let mut leaves = Vec::with_capacity(writers.len());
        for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        if leaves.len() != writers.len() {
            return Err(ParquetError::General(format!(
                "the batch has {} leaf columns, the schema {}",
                leaves.len(),
                writers.len()
            )));
        }
        let jobs = writers.into_iter().zip(leaves);
        let encode =
            |(mut writer, leaf): (ArrowColumnWriter, _)| -> Result<ArrowColumnChunk, ParquetError> {
                writer.write(&leaf)?;
                writer.close()
            };
        let chunks: Vec<ArrowColumnChunk> = match threads {
            Threads::Caller => jobs.map(encode).collect::<Result<_, _>>()?,
            // One column per task: the image bytes column alone can outweigh all the others.
            Threads::Pool => {
                let jobs: Vec<_> = jobs.collect();
                jobs.into_par_iter()
                    .with_max_len(1)
                    .map(encode)
                    .collect::<Result<_, _>>()?
            }
        };
        // Each chunk is copied whole at the current end of the file: cut the CRC32 segments at its
        // ends before any of its bytes go through parquet's buffer.
        let mut offset = self.file.bytes_written() as u64;
        let mut ranges = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let len = u64::try_from(chunk.close().metadata.compressed_size())
                .map_err(|_| ParquetError::General("a column chunk has a negative size".into()))?;
            let file = self.file.inner_mut();
            file.cut_at(offset)
                .and_then(|()| file.cut_at(offset + len))?;
            ranges.push((offset, len));
            offset += len;
        }
        self.chunk_ranges.push(ranges);
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Checks that the ranges the checksums cover are the ones the footer gives readers.
    fn check_chunk_ranges(&self) -> Result<(), ParquetError> {
        let groups = self.file.flushed_row_groups();
        let footer = groups.iter().map(|g| {
            g.columns()
                .iter()
                .map(|c| c.byte_range())
                .collect::<Vec<_>>()
        });
        if !footer.eq(self.chunk_ranges.iter().cloned()) {
            return Err(ParquetError::General(
                "the column chunks did not land where their checksums were cut (a bug in mixtape)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Drop for ShardWriter {
    /// An unfinished shard is abandoned: its temporary file is removed and the final name is
    /// never created.
    fn drop(&mut self) {
        if !self.published {
            // Close the file before removing it.
            drop(self.writer.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_file::ShardFile;
    use crate::testing::{IMAGE_PAD, arb_row, row, row_with_seed};
    use proptest::prelude::*;

    fn meta(index: u32) -> ShardMeta {
        ShardMeta {
            recipe_fingerprint: "fp-abc".into(),
            stage: "sft".into(),
            seq_len: 256,
            shard_index: index,
        }
    }

    fn rows(n: usize, with_images: bool) -> Vec<PackedRow> {
        (0..n)
            .map(|i| {
                let images = if with_images { i % 3 } else { 0 };
                row_with_seed(
                    &[
                        (20 + i % 7, images),
                        (30, if with_images { 1 } else { 0 }),
                        (5 + i % 11, 0),
                    ],
                    i as u64,
                )
            })
            .collect()
    }

    fn write(dir: &Path, index: u32, options: ShardOptions, rows: &[PackedRow]) -> ShardInfo {
        let mut writer = ShardWriter::try_new(dir, meta(index), options).unwrap();
        for row in rows {
            writer.write(row.clone()).unwrap();
        }
        writer.finish().unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rows_round_trip_over_row_group_sizes_compression_levels_and_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = 0;
        for rows_per_group in [1, 7, 256] {
            for level in [1, 3, 19] {
                for with_images in [false, true] {
                    let rows = rows(23, with_images);
                    let options = ShardOptions::default()
                        .with_zstd_level(level)
                        .with_max_rows_per_row_group(rows_per_group)
                        .with_image_pad_token(IMAGE_PAD);
                    let info = write(dir.path(), index, options, &rows);
                    let case =
                        format!("rows/group {rows_per_group}, zstd {level}, images {with_images}");
                    assert_eq!(
                        info.row_groups,
                        23u64.div_ceil(rows_per_group as u64),
                        "{case}"
                    );
                    let shard = ShardFile::open(dir.path().join(&info.file)).unwrap();
                    assert_eq!(shard.meta(), &meta(index), "{case}");
                    assert_eq!(shard.row_groups(), info.row_groups as usize, "{case}");
                    assert_eq!(shard.read_all().unwrap(), rows, "{case}");
                    index += 1;
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn any_valid_rows_round_trip(
            rows in prop::collection::vec(arb_row(40, true), 1..30),
            rows_per_group in 1usize..10,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let options = ShardOptions::default().with_max_rows_per_row_group(rows_per_group);
            let info = write(dir.path(), 0, options, &rows);
            prop_assert_eq!(info.rows, rows.len() as u64);
            prop_assert_eq!(crate::shard_file::read_rows(dir.path().join(info.file)).unwrap(), rows);
        }
    }

    #[test]
    fn the_stored_position_ids_restart_at_each_packed_sample() {
        use arrow_array::{Array, Int32Array, ListArray};
        let dir = tempfile::tempdir().unwrap();
        let mut packed = row(&[(3, 0), (2, 0), (4, 0)]);
        packed.seq_lens = vec![3, 2, 4];
        let info = write(dir.path(), 0, ShardOptions::default(), &[packed]);
        let file = std::fs::File::open(dir.path().join(info.file)).unwrap();
        let mut reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 16).unwrap();
        let batch = reader.next().unwrap().unwrap();
        let column = batch
            .column_by_name("position_ids")
            .unwrap()
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let positions = column.value(0);
        let positions = positions.as_any().downcast_ref::<Int32Array>().unwrap();
        assert_eq!(positions.values().as_ref(), [0, 1, 2, 0, 1, 0, 1, 2, 3]);
    }

    #[test]
    fn identical_rows_give_byte_identical_shards() {
        let rows = rows(40, true);
        let options = ShardOptions::default().with_max_rows_per_row_group(9);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let info_a = write(a.path(), 3, options.clone(), &rows);
        let info_b = write(b.path(), 3, options, &rows);
        assert_eq!(info_a, info_b);
        let bytes = std::fs::read(a.path().join(&info_a.file)).unwrap();
        assert_eq!(bytes, std::fs::read(b.path().join(&info_b.file)).unwrap());
        assert_eq!(info_a.bytes, bytes.len() as u64);
        assert_eq!(info_a.blake3, blake3::hash(&bytes).to_hex().to_string());
    }

    #[test]
    fn the_shard_is_the_same_whatever_the_pool_that_finishes_it() {
        let rows = rows(40, true);
        // 40 rows, 9 per row group: four are encoded by `write`, the fifth by `finish`.
        let options = ShardOptions::default().with_max_rows_per_row_group(9);
        let in_pool = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let info = pool.install(|| write(dir.path(), 0, options.clone(), &rows));
            assert_eq!(info.row_groups, 5);
            (
                info,
                std::fs::read(dir.path().join(shard_file_name(0))).unwrap(),
            )
        };
        let (one, bytes_one) = in_pool(1);
        for threads in [2, 5] {
            let (many, bytes_many) = in_pool(threads);
            assert_eq!(many, one, "{threads} threads");
            assert!(
                bytes_many == bytes_one,
                "{threads} threads: the files differ"
            );
        }
        // And what was written reads back, in order, from the parallel path too.
        let dir = tempfile::tempdir().unwrap();
        let single_group = ShardOptions::default();
        let info = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| write(dir.path(), 0, single_group, &rows));
        let file = ShardFile::open(dir.path().join(info.file)).unwrap();
        assert_eq!(file.read_all().unwrap(), rows);
    }

    #[test]
    fn the_footer_holds_the_fixed_created_by_and_the_mixtape_keys_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let info = write(dir.path(), 5, ShardOptions::default(), &rows(3, false));
        let file = std::fs::File::open(dir.path().join(info.file)).unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        let footer = reader.metadata().file_metadata();
        assert_eq!(footer.created_by(), Some(CREATED_BY));
        let keys: Vec<(&str, &str)> = footer
            .key_value_metadata()
            .unwrap()
            .iter()
            .filter(|kv| kv.key.starts_with("mixtape."))
            .map(|kv| (kv.key.as_str(), kv.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            keys,
            [
                ("mixtape.format_version", "1"),
                ("mixtape.recipe_fingerprint", "fp-abc"),
                ("mixtape.stage", "sft"),
                ("mixtape.seq_len", "256"),
                ("mixtape.shard_index", "5"),
            ]
        );
    }

    #[test]
    fn token_ids_positions_and_image_bytes_skip_dictionary_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let info = write(dir.path(), 0, ShardOptions::default(), &rows(10, true));
        let file = std::fs::File::open(dir.path().join(info.file)).unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        let group = reader.metadata().row_group(0);
        let column = |path: &str| {
            group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == path)
                .unwrap()
        };
        for path in [
            "input_ids.list.element",
            "position_ids.list.element",
            "images.list.element.bytes",
        ] {
            assert!(column(path).dictionary_page_offset().is_none(), "{path}");
            // The codec is recorded per column chunk; the level is not (any zstd decoder reads any level).
            assert!(
                matches!(column(path).compression(), Compression::ZSTD(_)),
                "{path}"
            );
        }
        assert!(column("images.list.element.bytes").statistics().is_none());
        // Small-cardinality columns keep the dictionary: a 0/1 mask becomes runs.
        assert!(
            column("loss_mask.list.element")
                .dictionary_page_offset()
                .is_some()
        );
    }

    #[test]
    fn image_bytes_are_compressed_at_level_one_whatever_the_shard_level() {
        use parquet::file::reader::FileReader;
        let sizes = |level: i32| {
            let dir = tempfile::tempdir().unwrap();
            let info = write(
                dir.path(),
                0,
                ShardOptions::default().with_zstd_level(level),
                &rows(10, true),
            );
            let file = std::fs::File::open(dir.path().join(info.file)).unwrap();
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
            let group = reader.metadata().row_group(0);
            let column = |path: &str| {
                group
                    .columns()
                    .iter()
                    .find(|c| c.column_path().string() == path)
                    .unwrap()
            };
            let size = |path: &str| column(path).compressed_size();
            (
                size("images.list.element.bytes"),
                size("input_ids.list.element"),
            )
        };
        let (images_1, ids_1) = sizes(1);
        let (images_19, ids_19) = sizes(19);
        assert_eq!(
            images_19, images_1,
            "image bytes ignore levels above {MAX_IMAGE_BYTES_ZSTD_LEVEL}"
        );
        assert!(
            ids_19 < ids_1,
            "token ids follow the shard level: {ids_19} vs {ids_1} bytes"
        );
    }

    #[test]
    fn invalid_rows_are_refused_with_the_file_and_row_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            ShardWriter::try_new(dir.path(), meta(0), ShardOptions::default()).unwrap();
        writer.write(row(&[(10, 0)])).unwrap();
        let mut bad = row(&[(10, 0)]);
        bad.seq_lens = vec![9];
        let err = writer.write(bad).unwrap_err();
        assert!(
            matches!(
                err,
                WriteError::InvalidRow {
                    row: 1,
                    source: RowError::SeqLensSum { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("shard-00000.parquet"), "{err}");
        let err = writer.write(row(&[(200, 0), (100, 0)])).unwrap_err();
        assert!(matches!(
            err,
            WriteError::InvalidRow {
                source: RowError::TooLong {
                    tokens: 300,
                    max: 256
                },
                ..
            }
        ));
        writer.write(row(&[(12, 1)])).unwrap();
        let info = writer.finish().unwrap();
        assert_eq!(info.rows, 2);
        assert_eq!(
            crate::shard_file::read_rows(dir.path().join(info.file)).unwrap(),
            [row(&[(10, 0)]), row(&[(12, 1)])]
        );
    }

    #[test]
    fn the_image_pad_check_applies_only_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let mut shifted = row(&[(20, 1)]);
        shifted.images[0].token_offset = 1;
        let mut lenient =
            ShardWriter::try_new(dir.path(), meta(0), ShardOptions::default()).unwrap();
        lenient.write(shifted.clone()).unwrap();
        let mut strict = ShardWriter::try_new(
            dir.path(),
            meta(1),
            ShardOptions::default().with_image_pad_token(IMAGE_PAD),
        )
        .unwrap();
        let err = strict.write(shifted).unwrap_err();
        assert!(
            matches!(
                err,
                WriteError::InvalidRow {
                    source: RowError::ImageToken { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_options_are_refused_before_any_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        for (options, option) in [
            (ShardOptions::default().with_zstd_level(99), "zstd_level"),
            (
                ShardOptions::default().with_max_rows_per_row_group(0),
                "max_rows_per_row_group",
            ),
            (
                ShardOptions::default().with_max_row_group_bytes(0),
                "max_row_group_bytes",
            ),
        ] {
            let err = ShardWriter::try_new(dir.path(), meta(0), options).unwrap_err();
            assert!(
                matches!(err, WriteError::InvalidOption { option: o, .. } if o == option),
                "{err}"
            );
        }
        let err = ShardWriter::try_new(
            dir.path(),
            ShardMeta {
                seq_len: 0,
                ..meta(0)
            },
            ShardOptions::default(),
        );
        assert!(matches!(
            err,
            Err(WriteError::InvalidOption {
                option: "seq_len",
                ..
            })
        ));
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing_under_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ShardWriter::try_new(
            dir.path(),
            meta(0),
            ShardOptions::default().with_max_rows_per_row_group(2),
        )
        .unwrap();
        for row in rows(5, true) {
            writer.write(row).unwrap();
        }
        // Two row groups are already on disk, under the temporary name only.
        assert_eq!(files(dir.path()), [".shard-00000.parquet.tmp"]);
        assert!(!writer.path().exists());
        drop(writer);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn a_temporary_kept_in_another_folder_never_appears_in_the_shard_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (shards, bookkeeping) = (dir.path().join("sft"), dir.path().join("_mixtape/sft"));
        let mut writer = ShardWriter::try_new_with_temporary_in(
            &shards,
            &bookkeeping,
            meta(0),
            ShardOptions::default().with_max_rows_per_row_group(2),
        )
        .unwrap();
        for row in rows(5, true) {
            writer.write(row).unwrap();
        }
        assert!(files(&shards).is_empty());
        assert_eq!(files(&bookkeeping), [".shard-00000.parquet.tmp"]);
        let info = writer.finish().unwrap();
        assert_eq!(files(&shards), ["shard-00000.parquet"]);
        assert!(files(&bookkeeping).is_empty());
        assert_eq!(
            crate::shard_file::read_rows(shards.join(info.file)).unwrap(),
            rows(5, true)
        );
    }

    #[test]
    fn finishing_replaces_a_stale_temporary_and_a_previous_shard() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".shard-00000.parquet.tmp"),
            b"left by a killed build",
        )
        .unwrap();
        std::fs::write(dir.path().join("shard-00000.parquet"), b"an older shard").unwrap();
        let info = write(dir.path(), 0, ShardOptions::default(), &rows(4, false));
        assert_eq!(files(dir.path()), ["shard-00000.parquet"]);
        assert_eq!(
            crate::shard_file::read_rows(dir.path().join(info.file)).unwrap(),
            rows(4, false)
        );
    }

    #[test]
    fn shard_info_counts_per_category_and_source() {
        let dir = tempfile::tempdir().unwrap();
        // Seed 0: samples 0, 1 get (laion, caption), (llava, vqa).
        let packed = row_with_seed(&[(20, 2), (30, 1)], 0);
        let info = write(
            dir.path(),
            0,
            ShardOptions::default(),
            &[packed.clone(), packed],
        );
        assert_eq!(info.rows, 2);
        assert_eq!(info.totals.samples, 4);
        assert_eq!(info.totals.tokens, 100);
        assert_eq!(info.totals.images, 6);
        assert_eq!(info.totals.image_tokens, 24);
        assert_eq!(info.padded_capacity, 512);
        assert_eq!(info.efficiency, 0.195313);
        assert_eq!(info.by_category["caption"].images, 4);
        assert_eq!(info.by_category["vqa"].tokens, 60);
        assert_eq!(info.by_source["llava"].samples, 2);
        let loss: u64 = info.by_source.values().map(|c| c.loss_tokens).sum();
        assert_eq!(loss, info.totals.loss_tokens);
    }

    #[test]
    fn an_empty_shard_is_a_valid_file_with_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let info = write(dir.path(), 0, ShardOptions::default(), &[]);
        assert_eq!((info.rows, info.row_groups, info.efficiency), (0, 0, 0.0));
        assert!(
            crate::shard_file::read_rows(dir.path().join(info.file))
                .unwrap()
                .is_empty()
        );
    }
}
