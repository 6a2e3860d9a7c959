//! The bytes a read uses, read once into memory and checked there before anything decodes them.
//!
//! A [`Loaded`] holds some byte ranges of a shard (its tail, or a row group's column chunks) and
//! serves them to parquet's readers as a [`ChunkReader`]; a request for bytes it does not hold is
//! an error, never a silent read from disk. So whatever parquet decodes was read by [`load`] and,
//! when the shard's manifest records checksums, compared with them first: a changed byte is
//! reported with its region (shard, row group, column) and nothing of that region is decoded.
//! Reading each range whole (one `read` of a chunk's size) also replaces the many small reads of
//! parquet's page-by-page reader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// Where in a shard a byte lies, for errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Region {
    /// The leading `PAR1`.
    Magic,
    /// One column chunk (its page headers and pages).
    ColumnChunk { row_group: usize, column: String },
    /// From the end of the last column chunk to the end of the file: page indexes, the footer
    /// (with the embedded Arrow schema), its length and the trailing `PAR1`.
    Tail,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Magic => f.write_str("the leading magic PAR1"),
            Self::ColumnChunk { row_group, column } => {
                write!(f, "row group {row_group}, column {column}")
            }
            Self::Tail => f.write_str(
                "the footer (page indexes, footer and its Arrow schema, trailing magic)",
            ),
        }
    }
}

/// Byte ranges of one file held in memory, sorted by offset; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    /// The file's size (what parquet's footer reader starts from).
    file_len: u64,
    parts: Arc<Vec<(u64, Bytes)>>,
}

impl Loaded {
    pub(crate) fn new(file_len: u64, mut parts: Vec<(u64, Bytes)>) -> Self {
        parts.sort_by_key(|&(start, _)| start);
        Self {
            file_len,
            parts: Arc::new(parts),
        }
    }

    /// The held bytes from `start` to the end of the part holding it.
    fn from(&self, start: u64) -> Result<Bytes, ParquetError> {
        let index = self.parts.partition_point(|&(s, _)| s <= start);
        let held = index
            .checked_sub(1)
            .map(|i| &self.parts[i])
            .and_then(|(s, bytes)| {
                let skip = usize::try_from(start - s).ok()?;
                (skip <= bytes.len()).then(|| bytes.slice(skip..))
            });
        held.ok_or_else(|| {
            ParquetError::General(format!(
                "byte {start} of the shard was not read and checked"
            ))
        })
    }
}

impl Length for Loaded {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for Loaded {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        let bytes = self.from(start)?;
        if bytes.len() < length {
            return Err(ParquetError::General(format!(
                "bytes {start}..{} of the shard cross the end of a region read and checked",
                start + length as u64
            )));
        }
        Ok(bytes.slice(..length))
    }
}

/// Where a shard's bytes come from: a local file, read in place, or a remote object, fetched a
/// range at a time (through the reader's cache when it has one, see [`RangeFetch`]).
#[derive(Debug)]
pub(crate) enum Source {
    Local(File),
    Remote {
        path: std::path::PathBuf,
        fetch: Option<RangeFetch>,
    },
}

/// A cache a remote shard's column chunks go through, and what they are to it.
#[derive(Clone, Debug)]
pub(crate) struct RangeFetch {
    pub cache: Arc<dyn crate::shard_file::ChunkCache>,
    /// The stage and shard the file is, in the reader's schedule.
    pub stage: usize,
    pub shard: u32,
}

impl Source {
    /// Opens the shard at `path`: a local file, or a remote object (nothing is fetched yet), whose
    /// column chunks go through `fetch`'s cache when given.
    pub(crate) fn open(path: &std::path::Path, fetch: Option<RangeFetch>) -> std::io::Result<Self> {
        if mixtape_store::is_url(path) {
            Ok(Self::Remote {
                path: path.to_path_buf(),
                fetch,
            })
        } else {
            File::open(path).map(Self::Local)
        }
    }

    /// The file's or object's size (a HEAD request for an object).
    pub(crate) fn len(&self) -> std::io::Result<u64> {
        match self {
            Self::Local(file) => Ok(Length::len(file)),
            Self::Remote { path, .. } => mixtape_store::size(path),
        }
    }

    /// `len` bytes at `start`.
    pub(crate) fn load(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
        match self {
            Self::Local(file) => load(file, start, len),
            Self::Remote { path, .. } => mixtape_store::read_range(path, start, len),
        }
    }

    /// Bytes `(start, len)` (column chunks of `row_group`, or the magic or tail), serving `rows`,
    /// which must pass `check` (their checksums): read through the reader's cache for a remote
    /// shard that has one (a cached copy that fails `check` is dropped and fetched again; a fetched
    /// one that fails is not kept), else read directly. The caller checks the bytes returned and
    /// reports a mismatch.
    pub(crate) fn load_checked(
        &self,
        row_group: Option<usize>,
        rows: std::ops::Range<u64>,
        start: u64,
        len: u64,
        check: impl Fn(&Bytes) -> bool,
    ) -> std::io::Result<Bytes> {
        let Self::Remote {
            path,
            fetch: Some(fetch),
        } = self
        else {
            return self.load(start, len);
        };
        let chunk = crate::shard_file::Chunk {
            path,
            stage: fetch.stage,
            shard: fetch.shard,
            row_group,
            rows,
            start,
            len,
        };
        if let Some(bytes) = fetch.cache.cached(&chunk) {
            if check(&bytes) {
                return Ok(bytes);
            }
            fetch.cache.forget(&chunk);
        }
        let bytes = mixtape_store::read_range(path, start, len)?;
        if check(&bytes) {
            fetch.cache.fetched(&chunk, &bytes);
        }
        Ok(bytes)
    }
}

/// Reads `len` bytes of `file` at `start`, without zeroing a buffer first.
pub(crate) fn load(file: &File, start: u64, len: u64) -> std::io::Result<Bytes> {
    load_pieces(file, start, len, len, |_| {})
}

/// Like [`load`], with the CRC32 of the bytes read, computed piece by piece as they land: each
/// piece is hashed while it is still in the CPU's cache, instead of in a second pass over the
/// whole range once it is read (an image chunk is megabytes, more than a core's cache holds).
pub(crate) fn load_hashed(file: &File, start: u64, len: u64) -> std::io::Result<(Bytes, u32)> {
    let mut crc = crc32fast::Hasher::new();
    let bytes = load_pieces(file, start, len, PIECE, |piece| crc.update(piece))?;
    Ok((bytes, crc.finalize()))
}

/// How much [`load_hashed`] reads at a time: small enough to stay in a core's L2 cache.
const PIECE: u64 = 512 << 10;

/// Reads `len` bytes of `file` at `start`, `piece` bytes at a time, handing each piece to `each`
/// once it is read.
fn load_pieces(
    mut file: &File,
    start: u64,
    len: u64,
    piece: u64,
    mut each: impl FnMut(&[u8]),
) -> std::io::Result<Bytes> {
    let size = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(size);
    file.seek(SeekFrom::Start(start))?;
    let mut left = len;
    while left > 0 {
        let before = buf.len();
        let read = file.take(left.min(piece)).read_to_end(&mut buf)?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ends {} bytes into the {len} bytes at byte {start}",
                    buf.len()
                ),
            ));
        }
        each(&buf[before..]);
        left -= read as u64;
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_loaded_ranges_are_served() {
        let loaded = Loaded::new(
            100,
            vec![
                (50, Bytes::from_static(b"0123456789")),
                (4, Bytes::from_static(b"abcd")),
            ],
        );
        assert_eq!(loaded.len(), 100);
        assert_eq!(loaded.get_bytes(52, 3).unwrap(), Bytes::from_static(b"234"));
        assert_eq!(loaded.get_bytes(4, 4).unwrap(), Bytes::from_static(b"abcd"));
        let mut rest = String::new();
        loaded
            .get_read(57)
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        assert_eq!(rest, "789");
        for (start, len) in [(0, 1), (8, 1), (58, 3), (49, 2), (99, 1)] {
            let err = loaded.get_bytes(start, len).unwrap_err().to_string();
            assert!(
                err.contains("not read and checked") || err.contains("cross the end"),
                "{start}: {err}"
            );
        }
    }

    #[test]
    fn a_range_read_in_pieces_is_the_files_bytes_and_their_crc32() {
        let data: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i * 31 % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &data).unwrap();
        for (start, len) in [
            (0, 0),
            (5, 1),
            (1, PIECE),
            (3, 2 * PIECE + 9),
            (0, 3 * PIECE + 17),
        ] {
            let range = start as usize..(start + len) as usize;
            let (bytes, crc) = load_hashed(&file, start, len).unwrap();
            assert_eq!(bytes[..], data[range.clone()]);
            assert_eq!(crc, crc32fast::hash(&data[range]));
            assert_eq!(load(&file, start, len).unwrap(), bytes);
        }
        let past_the_end = load_hashed(&file, 2 * PIECE, 2 * PIECE).unwrap_err();
        assert_eq!(past_the_end.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
