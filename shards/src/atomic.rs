//! Publishing files atomically: write under a hidden temporary name, `fsync`, rename, `fsync` the
//! folder.
//!
//! Invariant: a file under its final name is always complete. A crash (even `kill -9` or power
//! loss) leaves at worst a stale `.NAME.tmp` (a shard; the next writer of the same shard truncates
//! and reuses it) or `.NAME.tmp-PID-NANOS` (a manifest or record, see [`mixtape_store::write`]);
//! it never leaves a truncated file under `NAME`. A shard bound for object storage is written to a
//! local temporary and uploaded whole ([`mixtape_store::publish`]): the store shows it only once
//! the upload completes. The rename replaces an existing file of
//! the same name in one step, so rebuilding a shard never exposes a moment without one.
//!
//! Temporary names start with a dot, which pyarrow and HF `datasets` skip when they list a dataset
//! folder (DuckDB's `read_parquet('dir/*')` and polars' folder scan do not: a build keeps its shard
//! temporaries in `_mixtape/`, [`crate::layout`]).
//!
//! [`HashingFile`] hashes bytes as they are written, so publishing a shard never re-reads it to
//! compute its blake3 or the CRC32s of its regions.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling a file is written to before it is renamed to `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` (a file or an object) atomically: see [`mixtape_store::write`], the
/// one atomic write every layer uses.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    mixtape_store::write(path, bytes::Bytes::copy_from_slice(bytes))
}

/// A file that counts and blake3-hashes every byte written to it, and CRC32s it in segments cut at
/// offsets announced ahead with [`HashingFile::cut_at`].
///
/// Cuts are announced by offset, not by time, because bytes reach this file late: parquet's writer
/// buffers them. The writer knows where each column chunk will start and end before it hands the
/// chunk's bytes over, so the cuts always arrive before the bytes they split.
#[derive(Debug)]
pub(crate) struct HashingFile {
    file: File,
    hasher: blake3::Hasher,
    bytes: u64,
    /// CRC32 of the bytes since `segment_start`.
    crc: crc32fast::Hasher,
    segment_start: u64,
    /// Offsets where a segment ends, ascending, all at or after `bytes`.
    cuts: VecDeque<u64>,
    /// Finished segments: (start offset, CRC32), in file order.
    segments: Vec<(u64, u32)>,
}

/// What a [`HashingFile`] hashed, once synced.
#[derive(Debug)]
pub(crate) struct Hashed {
    pub bytes: u64,
    /// blake3 of the whole file, lowercase hex.
    pub blake3: String,
    /// (start offset, CRC32) of each segment, in file order; they tile the file, the last one
    /// running to its end.
    pub segments: Vec<(u64, u32)>,
}

impl HashingFile {
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::create(path)?,
            hasher: blake3::Hasher::new(),
            bytes: 0,
            crc: crc32fast::Hasher::new(),
            segment_start: 0,
            cuts: VecDeque::new(),
            segments: Vec::new(),
        })
    }

    /// Ends the current CRC32 segment at `offset` (and starts the next one there). A cut at the
    /// start of the current segment or at the last announced cut is a no-op; one behind the bytes
    /// already hashed is refused.
    pub(crate) fn cut_at(&mut self, offset: u64) -> io::Result<()> {
        let last = self.cuts.back().copied().unwrap_or(self.segment_start);
        if offset == last {
            return Ok(());
        }
        if offset < last || offset < self.bytes {
            return Err(io::Error::other(format!(
                "checksum segment cut at byte {offset} announced after byte {} was hashed",
                self.bytes.max(last)
            )));
        }
        self.cuts.push_back(offset);
        Ok(())
    }

    /// Syncs the file to disk and returns what was hashed.
    pub(crate) fn sync(mut self) -> io::Result<Hashed> {
        self.file.flush()?;
        self.file.sync_all()?;
        if let Some(cut) = self.cuts.front() {
            return Err(io::Error::other(format!(
                "checksum segment cut at byte {cut}, past the end ({})",
                self.bytes
            )));
        }
        self.segments
            .push((self.segment_start, self.crc.finalize()));
        Ok(Hashed {
            bytes: self.bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
            segments: self.segments,
        })
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        let mut data = &buf[..written];
        self.hasher.update(data);
        while let Some(&cut) = self.cuts.front() {
            let before = cut - self.bytes;
            if before > data.len() as u64 {
                break;
            }
            let (head, rest) = data.split_at(before as usize);
            self.crc.update(head);
            let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
            self.segments.push((self.segment_start, crc));
            self.segment_start = cut;
            self.bytes = cut;
            self.cuts.pop_front();
            data = rest;
        }
        self.crc.update(data);
        self.bytes += data.len() as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_name_is_a_hidden_sibling() {
        assert_eq!(
            tmp_path(Path::new("out/sft/shard-00003.parquet")),
            Path::new("out/sft/.shard-00003.parquet.tmp")
        );
    }

    #[test]
    fn write_file_publishes_the_bytes_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["manifest.json"]);
    }

    #[test]
    fn hashing_file_reports_the_blake3_of_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = HashingFile::create(&path).unwrap();
        file.write_all(b"hello ").unwrap();
        file.write_all(b"world").unwrap();
        let hashed = file.sync().unwrap();
        assert_eq!(hashed.bytes, 11);
        assert_eq!(
            hashed.blake3,
            blake3::hash(&std::fs::read(&path).unwrap())
                .to_hex()
                .to_string()
        );
    }

    #[test]
    fn hashing_file_crcs_the_segments_between_cuts_whatever_the_write_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for step in [1, 3, 64, 1000] {
            let mut file = HashingFile::create(&dir.path().join("f")).unwrap();
            for cut in [4, 4, 100, 101, 640] {
                file.cut_at(cut).unwrap();
            }
            for part in data.chunks(step) {
                file.write_all(part).unwrap();
            }
            assert!(
                file.cut_at(10).is_err(),
                "a cut behind the hashed bytes is refused"
            );
            let segments = file.sync().unwrap().segments;
            let crc = |range: std::ops::Range<usize>| crc32fast::hash(&data[range]);
            let expected = [
                (0, crc(0..4)),
                (4, crc(4..100)),
                (100, crc(100..101)),
                (101, crc(101..640)),
                (640, crc(640..1000)),
            ];
            assert_eq!(segments, expected, "writes of {step} bytes");
        }
    }
}
