//! The blocking operations on a path or URL. Local paths go to `std::fs`; URLs go to their store,
//! retried and counted.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::location::{Location, Remote};
use crate::runtime::block_on;
use crate::{StoreError, counters};

/// Objects above this size are uploaded in parts, so a failure costs one part, not the object.
const MULTIPART_ABOVE: usize = 16 << 20;
/// The size of each part of a multipart upload.
const PART_BYTES: usize = 8 << 20;
/// Whole reads mixtape retries itself when a body comes back short or broken, on top of
/// object_store's retries of each request.
const READ_ATTEMPTS: u32 = 6;

/// One child of a folder or prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name within its parent.
    pub name: String,
    /// The size of a file or object; `None` for a folder (a common prefix).
    pub size: Option<u64>,
}

fn remote_error(
    remote: &Remote,
    range: Option<Range<u64>>,
    source: object_store::Error,
) -> io::Error {
    StoreError::Remote {
        url: remote.url.clone(),
        range,
        error: source,
    }
    .into()
}

/// Whether a failed read is worth another try: not when the object is missing or forbidden.
fn transient(source: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        source,
        E::NotFound { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries, backing off between.
fn with_retries<T>(
    mut attempt: impl FnMut() -> Result<T, object_store::Error>,
    mut on_error: impl FnMut(object_store::Error) -> io::Error,
) -> io::Result<T> {
    let mut delay = Duration::from_millis(50);
    for tries in 1.. {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(err) if tries < READ_ATTEMPTS && transient(&err) => {
                counters().retried();
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(on_error(err)),
        }
    }
    unreachable!("the loop returns on its last attempt")
}

fn location(path: &Path) -> io::Result<Location> {
    Ok(Location::of(path)?)
}

/// The whole file or object at `path`.
pub fn read(path: &Path) -> io::Result<Bytes> {
    match location(path)? {
        Location::Local(path) => std::fs::read(path).map(Bytes::from),
        Location::Remote(remote) => {
            let bytes = with_retries(
                || block_on(async { remote.store.get(&remote.key).await?.bytes().await }),
                |e| remote_error(&remote, None, e),
            )?;
            counters().got(bytes.len() as u64);
            Ok(bytes)
        }
    }
}

/// Streams the whole file or object at `path` through `each`, a piece at a time, so memory stays
/// small whatever its size; returns its size. A remote read that fails midway fails (no retry: the
/// pieces already handed over cannot be taken back).
pub fn for_each_chunk(path: &Path, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
    match location(path)? {
        Location::Local(path) => {
            let mut file = std::fs::File::open(path)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0;
            loop {
                let read = file.read(&mut buf)?;
                if read == 0 {
                    return Ok(total);
                }
                each(&buf[..read]);
                total += read as u64;
            }
        }
        Location::Remote(remote) => {
            let total = block_on(async {
                let mut stream = remote.store.get(&remote.key).await?.into_stream();
                let mut total = 0u64;
                while let Some(piece) = stream.next().await {
                    let piece = piece?;
                    each(&piece);
                    total += piece.len() as u64;
                }
                Ok(total)
            })
            .map_err(|e| remote_error(&remote, None, e))?;
            counters().got(total);
            Ok(total)
        }
    }
}

/// Bytes `start..start + len` of the file or object at `path`; an error if it holds fewer.
pub fn read_range(path: &Path, start: u64, len: u64) -> io::Result<Bytes> {
    let range = start..start + len;
    match location(path)? {
        Location::Local(path) => {
            let mut file = std::fs::File::open(path)?;
            file.seek(SeekFrom::Start(start))?;
            let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
            file.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        }
        Location::Remote(remote) => {
            let short = std::cell::Cell::new(None);
            let bytes = with_retries(
                || {
                    let bytes = block_on(remote.store.get_range(&remote.key, range.clone()))?;
                    if bytes.len() as u64 != len {
                        // A body cut short: count it as a transient failure and read again.
                        short.set(Some(bytes.len() as u64));
                        return Err(object_store::Error::Generic {
                            store: "mixtape",
                            source: format!("short body: {} of {len} bytes", bytes.len()).into(),
                        });
                    }
                    Ok(bytes)
                },
                |e| match short.take() {
                    Some(got) => StoreError::Short {
                        url: remote.url.clone(),
                        range: range.clone(),
                        got,
                    }
                    .into(),
                    None => remote_error(&remote, Some(range.clone()), e),
                },
            )?;
            counters().got(len);
            Ok(bytes)
        }
    }
}

/// The size of the file or object at `path`.
pub fn size(path: &Path) -> io::Result<u64> {
    match location(path)? {
        Location::Local(path) => Ok(std::fs::metadata(path)?.len()),
        Location::Remote(remote) => {
            let meta = with_retries(
                || block_on(remote.store.head(&remote.key)),
                |e| remote_error(&remote, None, e),
            )?;
            counters().got(0);
            Ok(meta.size)
        }
    }
}

/// Whether `path` names a file or folder, an object or a non-empty prefix.
pub fn exists(path: &Path) -> io::Result<bool> {
    match location(path)? {
        Location::Local(path) => Ok(path.exists()),
        Location::Remote(remote) => match size(path) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let children = list_remote(&remote)?;
                Ok(!children.is_empty())
            }
            Err(err) => Err(err),
        },
    }
}

/// Whether `path` is a folder, or a prefix with objects under it.
pub fn is_dir(path: &Path) -> bool {
    match Location::of(path) {
        Ok(Location::Local(path)) => path.is_dir(),
        Ok(Location::Remote(remote)) => list_remote(&remote).is_ok_and(|e| !e.is_empty()),
        Err(_) => false,
    }
}

/// Whether `path` is a file, or an object.
pub fn is_file(path: &Path) -> bool {
    match Location::of(path) {
        Ok(Location::Local(path)) => path.is_file(),
        Ok(Location::Remote(_)) => size(path).is_ok(),
        Err(_) => false,
    }
}

/// The children of folder or prefix `dir`, sorted by name. A missing local folder is an error; a
/// prefix without objects is empty.
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    match location(dir)? {
        Location::Local(dir) => {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                // Follows symbolic links, as `Path::is_dir` does. An entry gone since the folder was
                // read (another process's temporary, renamed) is no longer a child.
                let meta = match std::fs::metadata(entry.path()) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    meta => meta?,
                };
                entries.push(Entry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    size: meta.is_file().then_some(meta.len()),
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        }
        Location::Remote(remote) => list_remote(&remote),
    }
}

fn list_remote(remote: &Remote) -> io::Result<Vec<Entry>> {
    let prefix = (!remote.key.as_ref().is_empty()).then_some(&remote.key);
    let listing = with_retries(
        || block_on(remote.store.list_with_delimiter(prefix)),
        |e| remote_error(remote, None, e),
    )?;
    counters().got(0);
    let name = |path: &object_store::path::Path| path.filename().unwrap_or_default().to_string();
    let mut entries: Vec<Entry> = listing
        .objects
        .iter()
        .map(|meta| Entry {
            name: name(&meta.location),
            size: Some(meta.size),
        })
        .chain(listing.common_prefixes.iter().map(|prefix| Entry {
            name: name(prefix),
            size: None,
        }))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Writes `bytes` as the whole file or object at `path`, atomically and durably: readers see the
/// old contents or the new, never part, and a crash leaves at worst a hidden temporary. A local
/// file is written to `.NAME.tmp-PID-NANOS` beside it (unique to this process, so writers on
/// several machines sharing the folder never write one temporary), fsynced, renamed into place and
/// its folder fsynced; missing folders are created. An object is one PUT, or a multipart upload
/// above 16 MiB, which the store publishes only when it completes.
pub fn write(path: &Path, bytes: Bytes) -> io::Result<()> {
    match location(path)? {
        Location::Local(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = temporary_beside(&path);
            let result = (|| {
                let mut file = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()?;
                drop(file);
                std::fs::rename(&tmp, &path)?;
                sync_dir(dir.unwrap_or(Path::new(".")))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        Location::Remote(remote) => put(&remote, bytes, PutMode::Overwrite).map(|_| ()),
    }
}

/// A hidden temporary name beside `path`, unique to this process and moment.
fn temporary_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
}

/// Makes a rename in `dir` durable: on POSIX systems a new directory entry survives a crash only
/// once the directory itself is synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Publishes the finished local file `tmp` as `path`: a rename (and a sync of the folder) for a
/// local path; for a URL an upload, streamed from the file in parts, which the store makes visible
/// only once complete, after which `tmp` is removed.
pub fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    match location(path)? {
        Location::Local(path) => {
            std::fs::rename(tmp, &path)?;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            sync_dir(dir.unwrap_or(Path::new(".")))
        }
        Location::Remote(remote) => {
            let len = std::fs::metadata(tmp)?.len();
            if len <= MULTIPART_ABOVE as u64 {
                put(
                    &remote,
                    Bytes::from(std::fs::read(tmp)?),
                    PutMode::Overwrite,
                )?;
            } else {
                upload_parts(&remote, tmp)?;
            }
            std::fs::remove_file(tmp)
        }
    }
}

/// Uploads the file `local` to `remote` in parts of [`PART_BYTES`], at most four in flight, so
/// memory stays bounded whatever the file's size. A failed upload is never completed, so nothing
/// appears under the key.
fn upload_parts(remote: &Remote, local: &Path) -> io::Result<()> {
    let mut file = std::fs::File::open(local)?;
    let failed = |e| remote_error(remote, None, e);
    block_on(async {
        let upload = remote
            .store
            .put_multipart(&remote.key)
            .await
            .map_err(failed)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; PART_BYTES];
        loop {
            let read = read_full(&mut file, &mut buf)?;
            if read == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(failed)?;
            writer.write(&buf[..read]);
        }
        writer.finish().await.map(drop).map_err(failed)
    })
}

/// Fills `buf` from `file` as far as it goes; the bytes read (0 at the end).
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Creates the folder `dir` and its parents; nothing for a URL (prefixes exist by their objects).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    match location(dir)? {
        Location::Local(dir) => std::fs::create_dir_all(dir),
        Location::Remote(_) => Ok(()),
    }
}

/// Removes the folder `dir` if it is empty; nothing for a URL.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    match location(dir)? {
        Location::Local(dir) => std::fs::remove_dir(dir),
        Location::Remote(_) => Ok(()),
    }
}

/// Writes `bytes` at `path` only if nothing is there yet: `Ok(false)` when something is. Atomic
/// on the store (a conditional PUT), so of two racing writers exactly one gets `true`.
pub fn create_new(path: &Path, bytes: Bytes) -> io::Result<bool> {
    match location(path)? {
        Location::Local(path) => {
            use std::io::Write;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(&bytes)?;
                    file.sync_all()?;
                    Ok(true)
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(err) => Err(err),
            }
        }
        Location::Remote(remote) => put(&remote, bytes, PutMode::Create),
    }
}

/// Uploads `bytes` to `remote`; `Ok(false)` when `mode` is `Create` and the object exists.
fn put(remote: &Remote, bytes: Bytes, mode: PutMode) -> io::Result<bool> {
    let create = matches!(mode, PutMode::Create);
    let result = if bytes.len() > MULTIPART_ABOVE && !create {
        block_on(async {
            let upload = remote.store.put_multipart(&remote.key).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            writer.put(bytes);
            writer.finish().await
        })
    } else {
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        block_on(
            remote
                .store
                .put_opts(&remote.key, PutPayload::from_bytes(bytes), options),
        )
    };
    match result {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) if create => Ok(false),
        Err(err) => Err(remote_error(remote, None, err)),
    }
}

/// Removes the file or object at `path`; a missing one is not an error.
pub fn delete(path: &Path) -> io::Result<()> {
    match location(path)? {
        Location::Local(path) => match std::fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        },
        Location::Remote(remote) => match block_on(remote.store.delete(&remote.key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(remote_error(&remote, None, err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_read_write_list_and_range_like_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        write(&file, Bytes::from_static(b"0123456789")).unwrap();
        assert_eq!(read(&file).unwrap(), Bytes::from_static(b"0123456789"));
        assert_eq!(read_range(&file, 2, 3).unwrap(), Bytes::from_static(b"234"));
        assert_eq!(size(&file).unwrap(), 10);
        assert!(
            read_range(&file, 8, 5).is_err(),
            "a range past the end is an error"
        );
        assert!(!create_new(&file, Bytes::new()).unwrap());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let names: Vec<Entry> = list(dir.path()).unwrap();
        assert_eq!(
            names,
            [
                Entry {
                    name: "a.bin".into(),
                    size: Some(10)
                },
                Entry {
                    name: "sub".into(),
                    size: None
                },
            ]
        );
        delete(&file).unwrap();
        delete(&file).unwrap();
        assert!(!exists(&file).unwrap());
    }
}
