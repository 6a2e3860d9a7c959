//! A local disk cache of byte ranges of remote objects, bounded in bytes, whose eviction the
//! caller decides by telling it when each range is needed next.
//!
//! Caches that cannot see the future evict the least recently used range, and a data set read in
//! the same order every epoch defeats them: with a limit below the set's size, LRU evicts each
//! range just before it is needed again, and every epoch downloads everything. mixtape's read order
//! is a pure function of (seed, stage, epoch), so its reader knows every future access, and
//! [`RangeCache::offer`] applies Belady's rule with it: when a new range does not fit, the cached
//! ranges needed furthest in the future (or never again) go first, and the new range is kept only
//! if it is needed sooner than every range it would push out; a range is never evicted for one
//! needed later. Free room takes any range, even one never needed again in this run: a later run
//! (the next job of a schedule, a restart) may read it, and such ranges are the first to go.
//!
//! Ranges live in one file each, named by the blake3 of (URL, start, length), written to a
//! temporary name and renamed, so a crash leaves no half range under a real name. A cache folder is
//! reused across runs: files found there are counted against the limit and kept until evicted (as
//! needed never, unless a read finds them first). One cache folder serves one process at a time.
//! The caller checks the bytes it gets back (the shard reader compares every column chunk with its
//! manifest's CRC32) and [`RangeCache::forget`]s a range that fails.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;

use crate::counters;

/// A byte range of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub url: String,
    pub start: u64,
    pub len: u64,
}

impl CacheKey {
    fn file_name(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.url.as_bytes());
        hasher.update(&self.start.to_le_bytes());
        hasher.update(&self.len.to_le_bytes());
        format!("{}.range", &hasher.finalize().to_hex()[..32])
    }
}

/// The cache. `T` is the caller's description of a range, from which its next use is worked out.
#[derive(Debug)]
pub struct RangeCache<T> {
    dir: PathBuf,
    limit: u64,
    inner: Mutex<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    /// Ranges cached by this process, with the caller's tag.
    entries: HashMap<CacheKey, (u64, T)>,
    /// Files found in the folder at open and not claimed since: (file name, size).
    orphans: HashMap<String, u64>,
    /// Bytes of every cached file, orphans included.
    used: u64,
}

impl<T: Clone> RangeCache<T> {
    /// Opens (creating it if needed) the cache folder `dir`, holding at most `limit` bytes.
    pub fn open(dir: impl Into<PathBuf>, limit: u64) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut orphans = HashMap::new();
        let mut used = 0;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A temporary left by a crash.
                std::fs::remove_file(entry.path())?;
            } else if name.ends_with(".range") {
                let len = entry.metadata()?.len();
                used += len;
                orphans.insert(name, len);
            }
        }
        let inner = Inner {
            entries: HashMap::new(),
            orphans,
            used,
        };
        let mut cache = Self {
            dir,
            limit,
            inner: Mutex::new(inner),
        };
        // A folder left over from a run with a larger limit: trim it now.
        cache.trim_orphans();
        Ok(cache)
    }

    fn trim_orphans(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = inner.orphans.keys().cloned().collect();
        names.sort();
        for name in names {
            if inner.used <= self.limit {
                break;
            }
            if let Some(len) = inner.orphans.remove(&name) {
                let _ = std::fs::remove_file(self.dir.join(&name));
                inner.used -= len;
            }
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached bytes of `key`, if held; `tag` replaces the range's tag (a range found on disk
    /// from an earlier run is adopted with it).
    pub fn get(&self, key: &CacheKey, tag: &T) -> Option<Bytes> {
        let name = key.file_name();
        let mut inner = self.lock();
        let known = inner.entries.contains_key(key) || inner.orphans.contains_key(&name);
        if !known {
            return None;
        }
        let bytes = match std::fs::read(self.dir.join(&name)) {
            Ok(bytes) if bytes.len() as u64 == key.len => Bytes::from(bytes),
            // Missing or of the wrong size: drop it and let the caller fetch.
            _ => {
                drop(inner);
                self.forget(key);
                return None;
            }
        };
        if let Some(len) = inner.orphans.remove(&name) {
            inner.entries.insert(key.clone(), (len, tag.clone()));
        } else if let Some(entry) = inner.entries.get_mut(key) {
            entry.1 = tag.clone();
        }
        counters().hit(key.len);
        Some(bytes)
    }

    /// Offers `bytes`, just fetched for `key`, to the cache. `next_use` gives when a range (by its
    /// tag) is needed next, as a point in the caller's schedule (any increasing count), `None` for
    /// never; `tag` is this range's. Returns whether it was kept.
    pub fn offer(
        &self,
        key: &CacheKey,
        tag: T,
        bytes: &Bytes,
        next_use: impl Fn(&T) -> Option<u128>,
    ) -> io::Result<bool> {
        let len = bytes.len() as u64;
        let mine = next_use(&tag);
        let mut inner = self.lock();
        if inner.entries.contains_key(key) {
            return Ok(true);
        }
        // Free room takes anything, even a range this run never reads again (a later run may):
        // such ranges are the first to go when room is needed.
        let fits = inner.used + len <= self.limit;
        let mine = match mine {
            Some(mine) if len <= self.limit => mine,
            _ if fits => u128::MAX,
            _ => return Ok(false),
        };
        let mut victims: Vec<(Option<u128>, Victim)> = Vec::new();
        if !fits {
            victims.extend(
                inner
                    .orphans
                    .iter()
                    .map(|(name, &len)| (None, Victim::Orphan(name.clone(), len))),
            );
            victims.extend(
                inner
                    .entries
                    .iter()
                    .map(|(k, (len, t))| (next_use(t), Victim::Entry(k.clone(), *len))),
            );
            // Never needed again first, then furthest in the future first.
            victims.sort_by(|a, b| match (a.0, b.0) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            });
            let mut freed = 0;
            let mut take = 0;
            for (when, victim) in &victims {
                if inner.used - freed + len <= self.limit {
                    break;
                }
                if when.is_some_and(|when| when <= mine) {
                    break;
                }
                freed += victim.len();
                take += 1;
            }
            if inner.used - freed + len > self.limit {
                return Ok(false);
            }
            victims.truncate(take);
        }
        for (_, victim) in victims {
            let (name, len) = match victim {
                Victim::Orphan(name, len) => {
                    inner.orphans.remove(&name);
                    (name, len)
                }
                Victim::Entry(key, len) => {
                    inner.entries.remove(&key);
                    (key.file_name(), len)
                }
            };
            std::fs::remove_file(self.dir.join(name))?;
            inner.used -= len;
        }
        let name = key.file_name();
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.dir.join(&name))?;
        inner.used += len;
        inner.entries.insert(key.clone(), (len, tag));
        Ok(true)
    }

    /// Drops `key` (its bytes failed the caller's check).
    pub fn forget(&self, key: &CacheKey) {
        let name = key.file_name();
        let mut inner = self.lock();
        let len = inner
            .entries
            .remove(key)
            .map(|(len, _)| len)
            .or_else(|| inner.orphans.remove(&name));
        if let Some(len) = len {
            inner.used -= len;
        }
        let _ = std::fs::remove_file(self.dir.join(name));
    }
}

#[derive(Debug)]
enum Victim {
    Orphan(String, u64),
    Entry(CacheKey, u64),
}

impl Victim {
    fn len(&self) -> u64 {
        match self {
            Self::Orphan(_, len) | Self::Entry(_, len) => *len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> CacheKey {
        CacheKey {
            url: "s3://b/x".into(),
            start: i * 10,
            len: 10,
        }
    }

    /// Replays `accesses` (range ids) through a cache of `slots` ranges with Belady's rule, and
    /// returns the misses.
    fn misses(accesses: &[u64], slots: u64) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let cache: RangeCache<usize> = RangeCache::open(dir.path(), slots * 10).unwrap();
        let mut misses = 0;
        for (now, &id) in accesses.iter().enumerate() {
            let next_use = |&at: &usize| -> Option<u128> {
                let id = accesses[at];
                accesses[now + 1..]
                    .iter()
                    .position(|&x| x == id)
                    .map(|p| (now + 1 + p) as u128)
            };
            if cache.get(&key(id), &now).is_none() {
                misses += 1;
                cache
                    .offer(&key(id), now, &Bytes::from(vec![id as u8; 10]), next_use)
                    .unwrap();
            }
            assert!(cache.used() <= slots * 10);
        }
        misses
    }

    #[test]
    fn a_cyclic_scan_larger_than_the_cache_keeps_what_lru_would_lose() {
        // 3 epochs over 8 ranges with room for 2: LRU misses all 24; the optimum misses the 8
        // cold ones and then 6 of 8 per epoch after.
        let accesses: Vec<u64> = (0..3).flat_map(|_| 0..8).collect();
        assert_eq!(misses(&accesses, 2), 8 + 6 + 6);
    }

    #[test]
    fn a_range_needed_sooner_than_all_cached_pushes_out_the_one_needed_furthest() {
        // Room for 2: after 1, 2 the range 3 is needed before 2, so 2 goes (Belady's classic case).
        let accesses = [1, 2, 3, 1, 3, 2];
        assert_eq!(misses(&accesses, 2), 4);
    }

    #[test]
    fn files_from_an_earlier_run_are_found_again_and_trimmed_to_a_smaller_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache: RangeCache<()> = RangeCache::open(dir.path(), 100).unwrap();
        for i in 0..5 {
            let kept = cache
                .offer(&key(i), (), &Bytes::from(vec![1; 10]), |_| Some(1))
                .unwrap();
            assert!(kept);
        }
        drop(cache);
        let again: RangeCache<()> = RangeCache::open(dir.path(), 100).unwrap();
        assert_eq!(again.used(), 50);
        assert_eq!(again.get(&key(3), &()).unwrap(), Bytes::from(vec![1; 10]));
        let smaller: RangeCache<()> = RangeCache::open(dir.path(), 20).unwrap();
        assert_eq!(smaller.used(), 20);
    }
}
