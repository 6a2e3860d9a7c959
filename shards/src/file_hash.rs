//! [`hash_file`]: the size and blake3 of a file on disk, the one way every layer hashes a file
//! (`verify` and the audit against a manifest entry, the reader's `verify_blake3` option, the
//! engine's source index).
//!
//! The file (or object, streamed as it downloads) goes through the hasher in 1 MiB chunks, so memory stays constant whatever
//! the file's size. The writer does not use it: it hashes bytes as it writes them
//! (`atomic::HashingFile`), and both produce the same lowercase hex digest.

use std::path::Path;

/// Size and blake3 of a file's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHash {
    pub bytes: u64,
    /// blake3 of the whole file, lowercase hex (as the manifest's `blake3`).
    pub blake3: String,
}

/// Hashes the file at `path` (an [`std::io::ErrorKind::NotFound`] error when it does not exist).
pub fn hash_file(path: &Path) -> std::io::Result<FileHash> {
    let mut hasher = blake3::Hasher::new();
    // Pieces of 1 MiB from a file: blake3 hashes several KiB-chunks at once with SIMD, so bigger
    // reads hash faster.
    let bytes = mixtape_store::for_each_chunk(path, |piece| {
        hasher.update(piece);
    })?;
    Ok(FileHash {
        bytes,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_to_the_blake3_of_its_bytes_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Not a multiple of blake3's 1 KiB chunks.
        let content: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let hash = hash_file(&path).unwrap();
        assert_eq!(hash.bytes, 20_000);
        assert_eq!(hash.blake3, blake3::hash(&content).to_hex().to_string());
        let missing = hash_file(&dir.path().join("absent")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
