//! Publishing files atomically: write under a hidden temporary name, `fsync`, rename, `fsync` the
//! folder.
//!
//! Invariant: a file under its final name is always complete. A crash (even `kill -9` or power
//! loss) leaves at worst a stale `.NAME.tmp`, which the next writer of the same file truncates and
//! reuses; it never leaves a truncated file under `NAME`. The rename replaces an existing file of
//! the same name in one step, so rebuilding a shard never exposes a moment without one.
//!
//! Temporary names start with a dot, which pyarrow, DuckDB and polars skip when they list a
//! dataset folder, so a half-written file is invisible to readers too.
//!
//! [`HashingFile`] hashes bytes as they are written, so publishing a shard never re-reads it to
//! compute its blake3.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling a file is written to before it is renamed to `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Makes a completed rename durable: on POSIX systems the new directory entry survives a crash
/// only once the directory itself is synced.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Renames `tmp` (whose contents the caller has synced) to `path` and syncs the folder.
pub(crate) fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        publish(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A file that counts and blake3-hashes every byte written to it.
#[derive(Debug)]
pub(crate) struct HashingFile {
    file: File,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl HashingFile {
    pub(crate) fn create(path: &Path) -> io::Result<Self> {
        Ok(Self { file: File::create(path)?, hasher: blake3::Hasher::new(), bytes: 0 })
    }

    /// Syncs the file to disk and returns (bytes written, blake3 hex).
    pub(crate) fn sync(mut self) -> io::Result<(u64, String)> {
        self.file.flush()?;
        self.file.sync_all()?;
        Ok((self.bytes, self.hasher.finalize().to_hex().to_string()))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
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
        assert_eq!(tmp_path(Path::new("out/sft/shard-00003.parquet")), Path::new("out/sft/.shard-00003.parquet.tmp"));
    }

    #[test]
    fn write_file_publishes_the_bytes_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn hashing_file_reports_the_blake3_of_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = HashingFile::create(&path).unwrap();
        file.write_all(b"hello ").unwrap();
        file.write_all(b"world").unwrap();
        let (bytes, hash) = file.sync().unwrap();
        assert_eq!(bytes, 11);
        assert_eq!(hash, blake3::hash(&std::fs::read(&path).unwrap()).to_hex().to_string());
    }
}
