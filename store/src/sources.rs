//! Source files on object storage: glob patterns over a bucket, and local copies to read.
//!
//! A recipe's source `path` may be a URL with a glob (`s3://corpus/llava/*.jsonl`). [`glob`]
//! lists the objects under the pattern's literal prefix and keeps those the pattern matches, in
//! key order, as a local glob returns files in name order.
//!
//! Source formats read a file front to back, some of them (Parquet) by seeking, and a build
//! reads each source once per epoch its draws touch. So a remote source file is downloaded once
//! into a local folder ([`set_download_dir`]; under the index cache by default) and read there:
//! [`local_copy`] streams it to a temporary, renames it into place, and reuses it while the
//! object's size and ETag are unchanged (both are in the copy's name). Disk, not memory, bounds
//! it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use futures_util::StreamExt;
use object_store::ObjectStoreExt;

use crate::location::Location;
use crate::runtime::block_on;
use crate::{StoreError, counters};

static DOWNLOAD_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Where [`local_copy`] keeps downloaded source files (default: `mixtape-objects` in the system's
/// temporary folder).
pub fn set_download_dir(dir: Option<PathBuf>) {
    *DOWNLOAD_DIR.write().unwrap_or_else(|e| e.into_inner()) = dir;
}

fn download_dir() -> PathBuf {
    DOWNLOAD_DIR
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("mixtape-objects"))
}

/// The objects a URL glob pattern matches, sorted; a URL without glob characters is itself,
/// if the object exists. Patterns follow the `glob` crate (`*`, `?`, `[...]`, `**`).
pub fn glob(pattern: &str) -> io::Result<Vec<PathBuf>> {
    let first_special = pattern.find(['*', '?', '[']);
    let Some(special) = first_special else {
        let path = Path::new(pattern);
        return Ok(if crate::is_file(path) {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    };
    let compiled = ::glob::Pattern::new(pattern)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.msg))?;
    // List from the last `/` before the first special character.
    let prefix = &pattern[..pattern[..special].rfind('/').unwrap_or(0)];
    let Location::Remote(remote) = Location::of(Path::new(prefix))? else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pattern} is not a URL"),
        ));
    };
    let root = remote.url.strip_suffix(remote.key()).unwrap_or(&remote.url);
    let root = root.trim_end_matches('/').to_string();
    let prefix_key = (!remote.key().is_empty()).then(|| remote.key.clone());
    let keys = block_on(async {
        let mut listing = remote.store.list(prefix_key.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta?.location.to_string());
        }
        Ok::<_, object_store::Error>(keys)
    })
    .map_err(|error| StoreError::Remote {
        url: prefix.to_string(),
        range: None,
        error,
    })?;
    counters().got(0);
    let mut matched: Vec<PathBuf> = keys
        .into_iter()
        .map(|key| format!("{root}/{key}"))
        .filter(|url| compiled.matches(url))
        .map(PathBuf::from)
        .collect();
    matched.sort();
    Ok(matched)
}

/// A local file holding the bytes of `path`: `path` itself when local, else a downloaded copy
/// (reused while the object's size and ETag are unchanged).
pub fn local_copy(path: &Path) -> io::Result<PathBuf> {
    let Location::Remote(remote) = Location::of(path)? else {
        return Ok(path.to_path_buf());
    };
    let failed = |source| -> io::Error {
        StoreError::Remote {
            url: remote.url.clone(),
            range: None,
            error: source,
        }
        .into()
    };
    let meta = block_on(remote.store.head(&remote.key)).map_err(failed)?;
    let tag = meta.e_tag.clone().unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(remote.url.as_bytes());
    hasher.update(tag.as_bytes());
    hasher.update(&meta.size.to_le_bytes());
    let name = remote.key.filename().unwrap_or("object");
    let dir = download_dir();
    let copy = dir.join(format!("{}-{name}", &hasher.finalize().to_hex()[..16]));
    if std::fs::metadata(&copy).is_ok_and(|m| m.len() == meta.size) {
        return Ok(copy);
    }
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        copy.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    let written = block_on(async {
        let mut stream = remote.store.get(&remote.key).await?.into_stream();
        let mut written = 0u64;
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            file.write_all(&piece)
                .map_err(|e| object_store::Error::Generic {
                    store: "mixtape",
                    source: Box::new(e),
                })?;
            written += piece.len() as u64;
        }
        Ok(written)
    });
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(e));
        }
    };
    counters().got(written);
    file.sync_all()?;
    std::fs::rename(&tmp, &copy)?;
    Ok(copy)
}
