//! Reading a shard back into [`PackedRow`]s, one row group at a time.
//!
//! [`ShardFile::open`] reads only the footer: it checks the format version and parses the
//! [`ShardMeta`], so a shard of another version or another tool is refused before any data is
//! decoded. [`ShardFile::read_row_group`] decodes one row group (the unit a streaming reader
//! shuffles and prefetches) and validates every row exactly as the writer did, so a damaged or
//! hand-edited shard fails loudly instead of feeding misaligned tokens to training.
//!
//! [`ShardFile::open_checked`] opens a shard of a stage with its manifest entry: every byte it then
//! uses is checked against the entry's [`ShardChecksums`] as it is read, before it is decoded
//! (see `checked`): the leading magic and the tail (footer) at open, each column chunk when its
//! row group is read. Column chunks a read leaves out (the image bytes when images are skipped)
//! are not read, so not checked; `position_ids`, never decoded by the streaming reader, is still
//! read and checked, so that no byte of the columns a read asks for can change silently.
//! [`ShardFile::open`] reads a lone file, with no checksums to check against.
//!
//! Every error names the file, and the row group (and row, or column) where it applies. Nothing
//! here panics on bad input: columns are looked up by name and type-checked (see `crate::record_batch`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Type as PhysicalType;
use parquet::errors::ParquetError;

mod checked;
mod lists;

pub use checked::Region;

use checked::{RangeFetch, Source};

use crate::record_batch::{self, DecodeError, DirectColumns};
use crate::schema::{IMAGE_BYTES_PATH, LIST_ELEMENT, MetaError, columns as schema_columns};
use crate::{PackedRow, RowChecks, RowError, ShardChecksums, ShardInfo, ShardMeta};
use checked::Loaded;

/// Rows decoded per Arrow batch. Bounds the size of one batch's binary column (Arrow's int32
/// offsets cap it at 2 GiB) even for row groups written by other tools.
const READ_BATCH_ROWS: usize = 128;

/// The name errors give the image bytes leaf (`images.list.element.bytes`).
const IMAGE_BYTES: &str = "images.bytes";

/// Why a shard cannot be read. Shards are rebuilt, never repaired: each message says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("cannot open shard {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: not a readable Parquet shard: {source} (the file is truncated or corrupt: delete it and rebuild the stage)", path.display(), at(*row_group))]
    Parquet {
        path: PathBuf,
        row_group: Option<usize>,
        source: ParquetError,
    },
    #[error("{}: {source}", path.display())]
    Meta { path: PathBuf, source: MetaError },
    #[error("{}, row group {row_group}: {source} (not a mixtape shard of format 1, or corrupt: rebuild it)", path.display())]
    Decode {
        path: PathBuf,
        row_group: usize,
        source: DecodeError,
    },
    #[error("{}, row group {row_group}, row {row}: {source} (the shard is corrupt: rebuild it)", path.display())]
    InvalidRow {
        path: PathBuf,
        row_group: usize,
        row: usize,
        source: RowError,
    },
    #[error("{}: has no row group {row_group} (it has {row_groups})", path.display())]
    NoSuchRowGroup {
        path: PathBuf,
        row_group: usize,
        row_groups: usize,
    },
    /// A region's bytes differ from what the build wrote (its CRC32, or the magic itself).
    #[error("{}, {region}: damaged: its CRC32 is {found:08x}, the manifest records {expected:08x} (the shard changed after it was built: delete it and rebuild the stage)", path.display())]
    Corrupt {
        path: PathBuf,
        region: Region,
        expected: u32,
        found: u32,
    },
    /// The file's size is not the manifest's.
    #[error("{}: is {found} bytes, the manifest says {expected} (the shard was truncated, extended or replaced: delete it and rebuild the stage)", path.display())]
    Size {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// The checksums of the manifest entry do not describe this file's layout.
    #[error("{}: its manifest entry's checksums do not match its layout: {detail} (the shard was replaced or the manifest edited: rebuild the stage)", path.display())]
    ChecksumLayout { path: PathBuf, detail: String },
}

fn at(row_group: Option<usize>) -> String {
    row_group
        .map(|g| format!(", row group {g}"))
        .unwrap_or_default()
}

/// A byte range of a remote shard (a column chunk, its magic or tail), as a [`ChunkCache`] sees it.
#[derive(Clone, Debug)]
pub struct Chunk<'a> {
    pub path: &'a Path,
    /// Where the shard is in the reader's schedule (see [`ShardFile::open_checked_cached`]).
    pub stage: usize,
    pub shard: u32,
    /// The row group of a column chunk; `None` for the leading magic and the tail (footer).
    pub row_group: Option<usize>,
    /// The rows the bytes serve, within the shard: the row group's, or the first row for the magic
    /// and tail (read when the shard is opened).
    pub rows: std::ops::Range<u64>,
    /// The chunk's bytes in the object.
    pub start: u64,
    pub len: u64,
}

/// Where a remote shard's column chunks are kept between reads: the reader's cache, which knows
/// when each chunk is needed next. Bytes it hands back are checked against the manifest like
/// fetched ones; a chunk that fails is [`forget`](ChunkCache::forget)ten and fetched again.
pub trait ChunkCache: Send + Sync + std::fmt::Debug {
    /// The chunk's bytes, if cached.
    fn cached(&self, chunk: &Chunk<'_>) -> Option<bytes::Bytes>;
    /// The chunk was just fetched (and checked): keep it or not.
    fn fetched(&self, chunk: &Chunk<'_>, bytes: &bytes::Bytes);
    /// The cached copy failed its check.
    fn forget(&self, chunk: &Chunk<'_>);
}

/// An open shard: its footer and metadata, ready to decode row groups.
#[derive(Debug)]
pub struct ShardFile {
    path: PathBuf,
    meta: ShardMeta,
    metadata: ArrowReaderMetadata,
    /// What every byte read is checked against; `None` for a lone file ([`ShardFile::open`]).
    checksums: Option<Arc<ShardChecksums>>,
    /// The file's size.
    len: u64,
    /// The cache a remote shard's column chunks go through, if any.
    fetch: Option<RangeFetch>,
}

/// The magic a Parquet file starts and ends with.
const MAGIC: [u8; 4] = *b"PAR1";

impl ShardFile {
    /// Reads and checks the footer of the shard at `path`, a file on its own: nothing records what
    /// its bytes should be, so they are decoded unchecked. Shards of a stage are opened with
    /// [`ShardFile::open_checked`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| ReadError::Io {
            path: path.clone(),
            source,
        };
        let source = Source::open(&path, None).map_err(io)?;
        let len = source.len().map_err(io)?;
        let parquet = |source| ReadError::Parquet {
            path: path.clone(),
            row_group: None,
            source,
        };
        let metadata = match &source {
            Source::Local(file) => ArrowReaderMetadata::load(file, ArrowReaderOptions::new()),
            Source::Remote { .. } => {
                // The footer's length, then the footer: two ranged reads, nothing else.
                let tail = source.load(len.saturating_sub(8), len.min(8)).map_err(io)?;
                let footer = tail
                    .get(..4)
                    .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .unwrap_or(0);
                let start = len.saturating_sub(8 + footer);
                let footer = source.load(start, len - start).map_err(io)?;
                ArrowReaderMetadata::load(
                    &Loaded::new(len, vec![(start, footer)]),
                    ArrowReaderOptions::new(),
                )
            }
        }
        .map_err(parquet)?;
        Self::with_metadata(path, metadata, None, len)
    }

    /// Opens the shard at `path`, listed in its manifest as `info`: checks its size, its leading
    /// magic and its tail (footer included) against `info` before parsing the footer, and keeps
    /// `info`'s checksums to check each column chunk as a row group is read.
    pub fn open_checked(path: impl AsRef<Path>, info: &ShardInfo) -> Result<Self, ReadError> {
        Self::open_checked_with(path.as_ref(), info, None)
    }

    /// Like [`ShardFile::open_checked`], for a reader that keeps a remote shard's bytes (its
    /// magic, tail and column chunks) in `cache`, as shard `shard` of stage `stage` of its
    /// schedule. A local shard is read in place, as by [`ShardFile::open_checked`].
    pub fn open_checked_cached(
        path: impl AsRef<Path>,
        info: &ShardInfo,
        cache: Arc<dyn ChunkCache>,
        stage: usize,
        shard: u32,
    ) -> Result<Self, ReadError> {
        let fetch = RangeFetch {
            cache,
            stage,
            shard,
        };
        Self::open_checked_with(path.as_ref(), info, Some(fetch))
    }

    fn open_checked_with(
        path: &Path,
        info: &ShardInfo,
        fetch: Option<RangeFetch>,
    ) -> Result<Self, ReadError> {
        let path = path.to_path_buf();
        let io = |source| ReadError::Io {
            path: path.clone(),
            source,
        };
        let source = Source::open(&path, fetch.clone()).map_err(io)?;
        // The magic and tail are read when a reader opens the shard, which it does at its first
        // row and keeps open while it reads on: to a cache they serve the first row.
        let opening = 0..info.rows.min(1);
        // A remote shard is taken at its manifest size: no HEAD request per shard (a changed
        // object fails the tail's checksum instead).
        let len = match &source {
            Source::Local(_) => source.len().map_err(io)?,
            Source::Remote { .. } => info.bytes,
        };
        if len != info.bytes {
            return Err(ReadError::Size {
                path: path.clone(),
                expected: info.bytes,
                found: len,
            });
        }
        let checksums = &info.checksums;
        let magic = source
            .load_checked(None, opening.clone(), 0, len.min(4), |b| b[..] == MAGIC[..])
            .map_err(io)?;
        if magic[..] != MAGIC[..] {
            let mut found = [0u8; 4];
            found[..magic.len()].copy_from_slice(&magic);
            let (expected, found) = (u32::from_le_bytes(MAGIC), u32::from_le_bytes(found));
            return Err(ReadError::Corrupt {
                path: path.clone(),
                region: Region::Magic,
                expected,
                found,
            });
        }
        // The magic is there, so the file has at least 4 bytes.
        let tail_offset = checksums.tail_offset.clamp(4, len.max(4));
        let tail_crc = |bytes: &bytes::Bytes| crc32fast::hash(bytes);
        let tail = source
            .load_checked(None, opening, tail_offset, len - tail_offset, |b| {
                tail_crc(b) == checksums.tail_crc32
            })
            .map_err(io)?;
        let found = tail_crc(&tail);
        if found != checksums.tail_crc32 || tail_offset != checksums.tail_offset {
            let expected = checksums.tail_crc32;
            return Err(ReadError::Corrupt {
                path: path.clone(),
                region: Region::Tail,
                expected,
                found,
            });
        }
        let tail = Loaded::new(len, vec![(tail_offset, tail)]);
        let metadata =
            ArrowReaderMetadata::load(&tail, ArrowReaderOptions::new()).map_err(|source| {
                ReadError::Parquet {
                    path: path.clone(),
                    row_group: None,
                    source,
                }
            })?;
        check_layout(&metadata, checksums).map_err(|detail| ReadError::ChecksumLayout {
            path: path.clone(),
            detail,
        })?;
        let mut file = Self::with_metadata(path, metadata, Some(Arc::new(checksums.clone())), len)?;
        file.fetch = fetch;
        Ok(file)
    }

    fn with_metadata(
        path: PathBuf,
        metadata: ArrowReaderMetadata,
        checksums: Option<Arc<ShardChecksums>>,
        len: u64,
    ) -> Result<Self, ReadError> {
        let kv: HashMap<String, String> = metadata
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
            .collect();
        let meta = ShardMeta::from_key_values(&kv).map_err(|source| ReadError::Meta {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            meta,
            metadata,
            checksums,
            len,
            fetch: None,
        })
    }

    /// Whether the bytes read are checked against a manifest's checksums.
    pub fn is_checked(&self) -> bool {
        self.checksums.is_some()
    }

    /// Reads the column chunks `leaves` of row group `row_group` into memory, each checked against
    /// its CRC32 when the shard has checksums.
    fn load(&self, row_group: usize, leaves: &[usize]) -> Result<Loaded, ReadError> {
        let group = self.metadata.metadata().row_group(row_group);
        let io = |source| ReadError::Io {
            path: self.path.clone(),
            source,
        };
        let source = Source::open(&self.path, self.fetch.clone()).map_err(io)?;
        let mut ranges = Vec::with_capacity(leaves.len());
        for &leaf in leaves {
            let (start, len) = group.column(leaf).byte_range();
            if start.checked_add(len).is_none_or(|end| end > self.len) {
                // Only a footer nobody checked can say so; never allocate what it claims.
                let column = group.column(leaf).column_path().string();
                let detail = format!(
                    "column {column} claims bytes {start}..+{len}, past the end of the file"
                );
                return Err(ReadError::Parquet {
                    path: self.path.clone(),
                    row_group: Some(row_group),
                    source: ParquetError::General(detail),
                });
            }
            ranges.push((leaf, start, len));
        }
        let Some(checksums) = &self.checksums else {
            let mut parts = Vec::with_capacity(ranges.len());
            for (_, start, len) in ranges {
                parts.push((start, source.load(start, len).map_err(io)?));
            }
            return Ok(Loaded::new(self.len, parts));
        };
        // `check_layout` made sure every (row group, leaf) has one.
        let expected = |leaf: usize| checksums.column_chunks[row_group][leaf];
        let corrupt = |leaf: usize, found: u32| {
            let column = group.column(leaf).column_path().string();
            ReadError::Corrupt {
                path: self.path.clone(),
                region: Region::ColumnChunk { row_group, column },
                expected: expected(leaf),
                found,
            }
        };
        let mut parts = Vec::with_capacity(ranges.len());
        if let Source::Local(file) = &source {
            for (leaf, start, len) in ranges {
                let (bytes, found) = checked::load_hashed(file, start, len).map_err(io)?;
                if found != expected(leaf) {
                    return Err(corrupt(leaf, found));
                }
                parts.push((start, bytes));
            }
            return Ok(Loaded::new(self.len, parts));
        }
        // The rows the row group serves, for the reader's cache.
        let first_row: u64 = (0..row_group)
            .map(|g| self.row_group_rows(g).unwrap_or(0))
            .sum();
        let rows = first_row..first_row + self.row_group_rows(row_group).unwrap_or(0);
        // A remote shard: chunks that lie end to end (every wanted column of a row group, but for
        // skipped image bytes) come in one request, and are checked (and cached) as one run.
        ranges.sort_by_key(|&(_, start, _)| start);
        let mut runs: Vec<Vec<(usize, u64, u64)>> = Vec::new();
        for range in ranges {
            match runs.last_mut() {
                Some(run) if run.last().is_some_and(|&(_, s, l)| s + l == range.1) => {
                    run.push(range)
                }
                _ => runs.push(vec![range]),
            }
        }
        for run in runs {
            let run_start = run[0].1;
            let run_len = run.iter().map(|&(_, _, len)| len).sum();
            let piece = |bytes: &bytes::Bytes, start: u64, len: u64| {
                let at = (start - run_start) as usize;
                bytes.slice(at..at + len as usize)
            };
            let all_match = |bytes: &bytes::Bytes| {
                run.iter().all(|&(leaf, start, len)| {
                    crc32fast::hash(&piece(bytes, start, len)) == expected(leaf)
                })
            };
            let bytes = source
                .load_checked(Some(row_group), rows.clone(), run_start, run_len, all_match)
                .map_err(io)?;
            for &(leaf, start, len) in &run {
                let chunk = piece(&bytes, start, len);
                let found = crc32fast::hash(&chunk);
                if found != expected(leaf) {
                    return Err(corrupt(leaf, found));
                }
                parts.push((start, chunk));
            }
        }
        Ok(Loaded::new(self.len, parts))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the footer says about the shard.
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// Rows in the shard, from the footer.
    pub fn rows(&self) -> u64 {
        u64::try_from(self.metadata.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    pub fn row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// Rows in row group `row_group`, from the footer; `None` past the last row group.
    pub fn row_group_rows(&self, row_group: usize) -> Option<u64> {
        let metadata = self.metadata.metadata();
        (row_group < metadata.num_row_groups())
            .then(|| u64::try_from(metadata.row_group(row_group).num_rows()).unwrap_or(0))
    }

    /// Decodes and validates the rows of row group `row_group`.
    pub fn read_row_group(&self, row_group: usize) -> Result<Vec<PackedRow>, ReadError> {
        self.read_row_group_columns(row_group, ReadColumns::ALL)
    }

    /// Like [`ShardFile::read_row_group`], reading only the columns `columns` asks for (the others
    /// are always read): a reader that skips images leaves out the image bytes, most of a shard.
    pub fn read_row_group_columns(
        &self,
        row_group: usize,
        columns: ReadColumns,
    ) -> Result<Vec<PackedRow>, ReadError> {
        self.read_row_group_with(row_group, columns, false)
    }

    /// Like [`ShardFile::read_row_group_columns`], decoding `input_ids` on a second thread while
    /// this one decodes the other columns. Parquet decodes column by column, so both cores work on
    /// one row group where one would otherwise sit idle (a reader with fewer row
    /// groups to decode than threads: shards of one or two row groups). Same rows, same errors.
    pub fn read_row_group_columns_split(
        &self,
        row_group: usize,
        columns: ReadColumns,
    ) -> Result<Vec<PackedRow>, ReadError> {
        self.read_row_group_with(row_group, columns, true)
    }

    fn read_row_group_with(
        &self,
        row_group: usize,
        columns: ReadColumns,
        split: bool,
    ) -> Result<Vec<PackedRow>, ReadError> {
        let path = || self.path.clone();
        if row_group >= self.row_groups() {
            return Err(ReadError::NoSuchRowGroup {
                path: path(),
                row_group,
                row_groups: self.row_groups(),
            });
        }
        let mut checks = RowChecks::default().with_max_tokens(self.meta.seq_len);
        if !columns.image_bytes {
            checks = checks.without_image_bytes();
        }
        let wanted = |parts: &[String]| {
            let path = || parts.iter().map(String::as_str);
            (columns.image_bytes || !path().eq(IMAGE_BYTES_PATH))
                && (columns.position_ids || path().next() != Some(schema_columns::POSITION_IDS))
        };
        if self.checksums.is_some() {
            // Chunks this read does not decode but a reader still stands on (position_ids, which
            // seq_lens imply): checked, not decoded. Only the image bytes a read skips go unread.
            let schema = self.metadata.metadata().file_metadata().schema_descr();
            let unread: Vec<usize> = (0..schema.num_columns())
                .filter(|&i| {
                    let leaf = schema.column(i);
                    let parts = leaf.path().parts();
                    !wanted(parts)
                        && (columns.image_bytes
                            || !parts.iter().map(String::as_str).eq(IMAGE_BYTES_PATH))
                })
                .collect();
            self.load(row_group, &unread)?;
        }
        let is_input_ids =
            |parts: &[String]| parts.first().map(String::as_str) == Some(schema_columns::INPUT_IDS);
        let add = |rows: &mut Vec<PackedRow>, part: Part| -> Result<(), ReadError> {
            let decoded = part.decode().map_err(|source| ReadError::Decode {
                path: path(),
                row_group,
                source,
            })?;
            for row in decoded {
                row.validate(&checks)
                    .map_err(|source| ReadError::InvalidRow {
                        path: path(),
                        row_group,
                        row: rows.len(),
                        source,
                    })?;
                rows.push(row);
            }
            Ok(())
        };
        let mut rows = Vec::new();
        if !split {
            for part in self.columns(row_group, &wanted)? {
                add(&mut rows, part?)?;
            }
            return Ok(rows);
        }
        let ids = |p: &[String]| wanted(p) && is_input_ids(p);
        let rest = |p: &[String]| wanted(p) && !is_input_ids(p);
        std::thread::scope(|scope| {
            // Batches stream from the input_ids thread to this one two at a time, so memory stays
            // at a few batches whatever the row group's size.
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            scope.spawn(move || match self.columns(row_group, &ids) {
                Ok(batches) => {
                    for batch in batches {
                        if tx.send(batch).is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            });
            let mut ids = rx.into_iter();
            for rest in self.columns(row_group, &rest)? {
                let rest = rest?;
                let ids = ids
                    .next()
                    .ok_or_else(|| split_mismatch(path(), row_group, "ends early"))??;
                let part = ids.merge(rest).map_err(|source| ReadError::Decode {
                    path: path(),
                    row_group,
                    source,
                })?;
                add(&mut rows, part)?;
            }
            match ids.next() {
                None => Ok(rows),
                Some(Err(err)) => Err(err),
                Some(Ok(_)) => Err(split_mismatch(path(), row_group, "has more batches")),
            }
        })
    }

    /// Decodes the columns of row group `row_group` whose leaf paths `keep` accepts, batch by batch:
    /// `input_ids`, `loss_mask` and the image bytes straight from their pages when they have
    /// mixtape's shape (see [`lists`]), the others through arrow's reader; every part holds all of
    /// them.
    fn columns<'a>(
        &'a self,
        row_group: usize,
        keep: &(dyn Fn(&[String]) -> bool + Sync),
    ) -> Result<Box<dyn Iterator<Item = Result<Part, ReadError>> + Send + 'a>, ReadError> {
        let path = || self.path.clone();
        let metadata = self.metadata.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let (input_ids, loss_mask) = (schema_columns::INPUT_IDS, schema_columns::LOSS_MASK);
        let direct: Vec<(usize, &str)> = [
            (
                &[input_ids, "list", LIST_ELEMENT][..],
                PhysicalType::INT32,
                input_ids,
            ),
            (
                &[loss_mask, "list", LIST_ELEMENT][..],
                PhysicalType::INT32,
                loss_mask,
            ),
            (&IMAGE_BYTES_PATH[..], PhysicalType::BYTE_ARRAY, IMAGE_BYTES),
        ]
        .into_iter()
        .filter_map(|(leaf, physical, column)| {
            lists::direct_leaf(schema, leaf, physical).map(|leaf| (leaf, column))
        })
        .filter(|&(leaf, _)| keep(schema.column(leaf).path().parts()))
        .collect();
        let rest: Vec<usize> = (0..schema.num_columns())
            .filter(|&i| {
                keep(schema.column(i).path().parts()) && !direct.iter().any(|&(leaf, _)| leaf == i)
            })
            .collect();
        // Every chunk this read decodes, read once and checked before any of it is decoded.
        let leaves: Vec<usize> = direct
            .iter()
            .map(|&(leaf, _)| leaf)
            .chain(rest.iter().copied())
            .collect();
        let loaded = self.load(row_group, &leaves)?;
        let mut parts: Vec<Box<dyn Iterator<Item = Result<Part, ReadError>> + Send + 'a>> =
            Vec::new();
        for &(leaf, column) in &direct {
            let parquet = move |source| ReadError::Parquet {
                path: path(),
                row_group: Some(row_group),
                source,
            };
            let output = if column == IMAGE_BYTES {
                lists::Output::Binary
            } else {
                let field = self
                    .metadata
                    .schema()
                    .field_with_name(column)
                    .map_err(|e| ReadError::Decode {
                        path: path(),
                        row_group,
                        source: DecodeError {
                            column: column.to_string(),
                            row: None,
                            detail: e.to_string(),
                        },
                    })?;
                lists::Output::of_int_list(field).map_err(parquet)?
            };
            let list = lists::DirectList::try_new(
                Arc::new(loaded.clone()),
                metadata,
                row_group,
                leaf,
                column,
                output,
                READ_BATCH_ROWS,
            )
            .map_err(parquet)?;
            let decode = move |source| ReadError::Decode {
                path: path(),
                row_group,
                source,
            };
            let part = move |lists: Result<_, _>| {
                Part::from_lists(column, lists.map_err(parquet)?).map_err(decode)
            };
            parts.push(Box::new(list.map(part)));
        }
        if !rest.is_empty() || parts.is_empty() {
            let batches = self.batches(loaded, row_group, ProjectionMask::leaves(schema, rest))?;
            parts.push(Box::new(batches.map(|batch| batch.map(Part::from_arrow))));
        }
        if parts.len() == 1
            && let Some(only) = parts.pop()
        {
            return Ok(only);
        }
        let mismatch = move || ReadError::Decode {
            path: self.path.clone(),
            row_group,
            source: DecodeError {
                column: "(row group)".into(),
                row: None,
                detail: "its columns end at different rows".into(),
            },
        };
        Ok(Box::new(std::iter::from_fn(move || {
            let next: Vec<Option<Result<Part, ReadError>>> =
                parts.iter_mut().map(Iterator::next).collect();
            if next.iter().all(Option::is_none) {
                return None;
            }
            let merged = (|| {
                let mut merged: Option<Part> = None;
                for part in next {
                    let part = part.ok_or_else(mismatch)??;
                    merged = Some(match merged {
                        None => part,
                        Some(left) => left.merge(part).map_err(|source| ReadError::Decode {
                            path: self.path.clone(),
                            row_group,
                            source,
                        })?,
                    });
                }
                merged.ok_or_else(mismatch)
            })();
            Some(merged)
        })))
    }

    /// Decodes the leaves `projection` of row group `row_group`, batch by batch.
    /// Decodes the leaves `projection` of row group `row_group`, batch by batch, from `loaded`.
    fn batches(
        &self,
        loaded: Loaded,
        row_group: usize,
        projection: ProjectionMask,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, ReadError>> + Send + '_, ReadError> {
        let path = || self.path.clone();
        let parquet = move |source| ReadError::Parquet {
            path: path(),
            row_group: Some(row_group),
            source,
        };
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(loaded, self.metadata.clone())
                .with_row_groups(vec![row_group])
                .with_batch_size(READ_BATCH_ROWS)
                .with_projection(projection)
                .build()
                .map_err(parquet)?;
        Ok(reader
            .map(move |batch| batch.map_err(|e| parquet(ParquetError::ArrowError(e.to_string())))))
    }

    /// Decodes every row group in order.
    pub fn read_all(&self) -> Result<Vec<PackedRow>, ReadError> {
        let mut rows = Vec::new();
        for row_group in 0..self.row_groups() {
            rows.extend(self.read_row_group(row_group)?);
        }
        Ok(rows)
    }
}

/// The columns a read may leave out; every other column is always read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadColumns {
    /// `images.bytes`; without it, every image's `bytes` is empty (its geometry and placement are
    /// read).
    pub image_bytes: bool,
    /// `position_ids`: redundant by construction (they count 0, 1, 2, ... within each packed sample,
    /// as `seq_lens` imply, and [`PackedRow::position_ids`] derives them). Read, they are checked
    /// against `seq_lens`; left out, that check is `mixtape verify`'s hashes' job.
    pub position_ids: bool,
}

impl ReadColumns {
    /// Every column, every check.
    pub const ALL: Self = Self {
        image_bytes: true,
        position_ids: true,
    };
}

/// One batch of a row group's columns: those decoded through arrow, and those decoded straight
/// from their pages (see [`lists`]), split into rows.
struct Part {
    arrow: Option<RecordBatch>,
    direct: DirectColumns,
}

impl Part {
    fn from_arrow(batch: RecordBatch) -> Self {
        Self {
            arrow: Some(batch),
            direct: DirectColumns::default(),
        }
    }

    /// Rows of directly decoded column `column`, which must be of that column's type.
    fn from_lists(column: &str, lists: lists::RowLists) -> Result<Self, DecodeError> {
        let mut direct = DirectColumns::default();
        match (column, lists) {
            (schema_columns::INPUT_IDS, lists::RowLists::Int32(rows)) => {
                direct.input_ids = Some(rows)
            }
            (schema_columns::LOSS_MASK, lists::RowLists::UInt8(rows)) => {
                direct.loss_mask = Some(rows)
            }
            (IMAGE_BYTES, lists::RowLists::Binary(rows)) => direct.image_bytes = Some(rows),
            (_, lists) => {
                let detail =
                    format!("decoded as {lists}, which is not its type in the shard schema");
                return Err(DecodeError {
                    column: column.to_string(),
                    row: None,
                    detail,
                });
            }
        }
        Ok(Self {
            arrow: None,
            direct,
        })
    }

    /// The columns of `other` beside these (the same rows, read apart).
    fn merge(self, other: Part) -> Result<Part, DecodeError> {
        let arrow = match (self.arrow, other.arrow) {
            (Some(left), Some(right)) => Some(merge_columns(&left, &right)?),
            (left, right) => left.or(right),
        };
        let (a, b) = (self.direct, other.direct);
        let direct = DirectColumns {
            input_ids: a.input_ids.or(b.input_ids),
            loss_mask: a.loss_mask.or(b.loss_mask),
            image_bytes: a.image_bytes.or(b.image_bytes),
        };
        Ok(Part { arrow, direct })
    }

    /// The rows, checked column by column (see [`record_batch::decode_with`]).
    fn decode(self) -> Result<Vec<PackedRow>, DecodeError> {
        let arrow = self
            .arrow
            .unwrap_or_else(|| RecordBatch::new_empty(Arc::new(Schema::empty())));
        record_batch::decode_with(&arrow, self.direct)
    }
}

/// One batch with the columns of `right` beside those of `left` (the same rows, read apart).
fn merge_columns(left: &RecordBatch, right: &RecordBatch) -> Result<RecordBatch, DecodeError> {
    let fields = left
        .schema()
        .fields()
        .iter()
        .chain(right.schema().fields())
        .cloned()
        .collect::<Vec<_>>();
    let arrays = left
        .columns()
        .iter()
        .chain(right.columns())
        .cloned()
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| DecodeError {
        column: "(row group)".into(),
        row: None,
        detail: e.to_string(),
    })
}

/// The two halves of a split read disagree on the row group's batches (never for a readable file).
fn split_mismatch(path: PathBuf, row_group: usize, what: &str) -> ReadError {
    let detail = format!("the input_ids column {what} than the other columns");
    ReadError::Decode {
        path,
        row_group,
        source: DecodeError {
            column: "input_ids".into(),
            row: None,
            detail,
        },
    }
}

/// Checks that `checksums` has one CRC32 per column chunk of `metadata` and that the chunks tile
/// the file from the magic to the tail, so that no byte a reader uses lies outside a checked region.
fn check_layout(metadata: &ArrowReaderMetadata, checksums: &ShardChecksums) -> Result<(), String> {
    let groups = metadata.metadata().row_groups();
    if groups.len() != checksums.column_chunks.len() {
        return Err(format!(
            "{} row groups, checksums for {}",
            groups.len(),
            checksums.column_chunks.len()
        ));
    }
    let mut end = MAGIC.len() as u64;
    for (index, (group, crcs)) in groups.iter().zip(&checksums.column_chunks).enumerate() {
        if group.num_columns() != crcs.len() {
            return Err(format!(
                "row group {index} has {} column chunks, checksums for {}",
                group.num_columns(),
                crcs.len()
            ));
        }
        for column in group.columns() {
            let (start, len) = column.byte_range();
            if start != end {
                return Err(format!(
                    "row group {index}, column {} starts at byte {start}, not {end}",
                    column.column_path().string()
                ));
            }
            end = start + len;
        }
    }
    if end != checksums.tail_offset {
        return Err(format!(
            "the column chunks end at byte {end}, the tail starts at {}",
            checksums.tail_offset
        ));
    }
    Ok(())
}

/// Reads every row of the shard at `path`.
pub fn read_rows(path: impl AsRef<Path>) -> Result<Vec<PackedRow>, ReadError> {
    ShardFile::open(path)?.read_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::row;
    use crate::{ShardOptions, ShardWriter};
    use std::fs::File;

    fn write_shard(dir: &Path) -> PathBuf {
        let meta = ShardMeta {
            recipe_fingerprint: "fp".into(),
            stage: "sft".into(),
            seq_len: 64,
            shard_index: 0,
        };
        let mut writer = ShardWriter::try_new(
            dir,
            meta,
            ShardOptions::default().with_max_rows_per_row_group(2),
        )
        .unwrap();
        for n in 0..5 {
            writer.write(row(&[(10 + n, 1), (8, 0)])).unwrap();
        }
        dir.join(writer.finish().unwrap().file)
    }

    #[test]
    fn row_groups_are_read_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let shard = ShardFile::open(write_shard(dir.path())).unwrap();
        assert_eq!((shard.rows(), shard.row_groups()), (5, 3));
        assert_eq!(shard.read_row_group(2).unwrap(), [row(&[(14, 1), (8, 0)])]);
        let err = shard.read_row_group(3).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::NoSuchRowGroup {
                    row_group: 3,
                    row_groups: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_row_group_read_without_image_bytes_and_position_ids_is_the_same_rows_with_empty_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let shard = ShardFile::open(write_shard(dir.path())).unwrap();
        for group in 0..shard.row_groups() {
            let full = shard.read_row_group(group).unwrap();
            let mut expected = full.clone();
            for image in expected.iter_mut().flat_map(|r| r.images.iter_mut()) {
                assert!(!image.bytes.is_empty());
                image.bytes.clear();
            }
            let lean = ReadColumns {
                image_bytes: false,
                position_ids: false,
            };
            assert_eq!(shard.read_row_group_columns(group, lean).unwrap(), expected);
        }
    }

    #[test]
    fn a_split_read_decodes_the_same_rows_as_a_plain_one() {
        let dir = tempfile::tempdir().unwrap();
        let shard = ShardFile::open(write_shard(dir.path())).unwrap();
        for columns in [
            ReadColumns::ALL,
            ReadColumns {
                image_bytes: false,
                position_ids: false,
            },
        ] {
            for group in 0..shard.row_groups() {
                let plain = shard.read_row_group_columns(group, columns).unwrap();
                assert_eq!(plain.len(), shard.row_group_rows(group).unwrap() as usize);
                assert_eq!(
                    shard.read_row_group_columns_split(group, columns).unwrap(),
                    plain
                );
            }
        }
    }

    #[test]
    fn lists_of_another_shape_are_read_through_arrow_with_the_same_rows() {
        // The same rows as a mixtape shard, but written by plain ArrowWriter with nullable list
        // elements (as another tool might): input_ids, loss_mask and the image bytes cannot be
        // decoded directly.
        use arrow_array::{Array, ListArray};
        use arrow_schema::Field;
        let rows: Vec<PackedRow> = (0..5).map(|n| row(&[(10 + n, 1), (8, 0)])).collect();
        let batch = record_batch::encode(&rows).unwrap();
        let nullable = |name: &str| -> (Arc<Field>, Arc<dyn Array>) {
            let list = batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<ListArray>()
                .unwrap();
            let element = Arc::new(Field::new(
                "element",
                list.values().data_type().clone(),
                true,
            ));
            let array =
                ListArray::try_new(element, list.offsets().clone(), list.values().clone(), None)
                    .unwrap();
            (
                Arc::new(Field::new(name, array.data_type().clone(), false)),
                Arc::new(array),
            )
        };
        let (fields, columns): (Vec<_>, Vec<_>) = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| match field.name().as_str() {
                name @ (schema_columns::INPUT_IDS
                | schema_columns::LOSS_MASK
                | schema_columns::IMAGES) => nullable(name),
                _ => (field.clone(), column.clone()),
            })
            .unzip();
        let other = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let meta = ShardMeta {
            recipe_fingerprint: "fp".into(),
            stage: "sft".into(),
            seq_len: 64,
            shard_index: 0,
        };
        let metadata = meta
            .to_key_values()
            .into_iter()
            .map(|(k, v)| parquet::file::metadata::KeyValue::new(k.to_string(), v))
            .collect();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_key_value_metadata(Some(metadata))
            .build();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other-tool.parquet");
        let file = File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, other.schema(), Some(props)).unwrap();
        writer.write(&other).unwrap();
        writer.close().unwrap();

        let schema = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(
                File::open(&path).unwrap(),
            )
            .unwrap(),
        )
        .file_metadata()
        .schema_descr_ptr();
        let input_ids = [schema_columns::INPUT_IDS, "list", LIST_ELEMENT];
        assert_eq!(
            lists::direct_leaf(&schema, &input_ids, PhysicalType::INT32),
            None
        );
        assert_eq!(
            lists::direct_leaf(&schema, &IMAGE_BYTES_PATH, PhysicalType::BYTE_ARRAY),
            None
        );
        let shard = ShardFile::open(&path).unwrap();
        assert_eq!(shard.read_row_group(0).unwrap(), rows);
        assert_eq!(
            shard
                .read_row_group_columns_split(0, ReadColumns::ALL)
                .unwrap(),
            rows
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ShardFile::open("/nonexistent/shard-00000.parquet").unwrap_err();
        assert!(matches!(err, ReadError::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/shard-00000.parquet"),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_shard_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_shard(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = ShardFile::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::Parquet {
                    row_group: None,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("shard-00000.parquet"), "{err}");
    }

    #[test]
    fn a_corrupt_row_group_is_reported_with_the_row_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_shard(dir.path());
        let shard = ShardFile::open(&path).unwrap();
        // Overwrite the middle of row group 1's first column chunk with garbage.
        let column = shard.metadata.metadata().row_group(1).column(0);
        let (start, len) = column.byte_range();
        let mut bytes = std::fs::read(&path).unwrap();
        for b in &mut bytes[start as usize + 4..(start + len) as usize] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(shard.read_row_group(0).is_ok());
        let split = |group| shard.read_row_group_columns_split(group, ReadColumns::ALL);
        assert!(split(0).is_ok());
        for err in [shard.read_row_group(1).unwrap_err(), split(1).unwrap_err()] {
            let message = err.to_string();
            assert!(message.contains("row group 1"), "{message}");
            assert!(message.contains("shard-00000.parquet"), "{message}");
        }
    }

    #[test]
    fn a_parquet_file_without_mixtape_metadata_is_refused_at_open() {
        use arrow_array::{ArrayRef, Int32Array, RecordBatch};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.parquet");
        let ids: ArrayRef = std::sync::Arc::new(Int32Array::from(vec![1, 2, 3]));
        let batch = RecordBatch::try_from_iter([("input_ids", ids)]).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let err = ShardFile::open(&path).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Meta {
                source: MetaError::Missing {
                    key: "mixtape.format_version"
                },
                ..
            }
        ));
        assert!(err.to_string().contains("other.parquet"), "{err}");
    }
}
