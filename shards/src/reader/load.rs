//! The loader: turns the order into this rank's batches of decoded (not yet image-decoded) rows.
//!
//! It walks the schedule from a cursor, epoch by epoch, window by window (see [`super::order`]).
//! Entering a window, it works out which of the window's rows this rank owns, opens the shards they
//! lie in (footer only, checked against the manifest and its checksums, hashed whole first when
//! `verify` is on), decodes the needed row groups on `decode_threads` scoped threads, and keeps the
//! rows this rank owns in this window or any later window of the epoch ([`EpochPart`]), so that a
//! row group spanning several windows is decoded once per epoch, not at every other window. So it
//! holds about two windows' worth of this rank's rows, or, where row groups are longer than
//! windows, this rank's rows of the row groups the current and next window reach; and it touches
//! only the shards the order reaches: nothing is indexed up front.
//!
//! The first window of each epoch is decoded lazily instead, row group by row group as batches need
//! them, so the first batch costs the footers and row groups of its own rows: with tiny shards a
//! window spans thousands of them, and opening them all before the first batch would make start-up
//! grow with the shard count after all. Each time it decodes, it also takes the next row groups the
//! order will need, one per decode thread, so this window decodes in parallel like the others.
//!
//! A stage on object storage reads ahead: once a window is decoded, a thread of its own opens the
//! next window's shards and decodes its row groups, `remote_requests` at a time, while this window's
//! batches go out; entering the next window takes what it decoded (and decodes whatever it did not).
//! Once the epoch's last window is decoded, the next epoch's first window (of this stage or the
//! next, if that is on object storage) is read ahead the same way, so an epoch or stage change does
//! not wait for the store either. The store's latency is then paid while the trainer works. It is
//! the same work the loader would do on entering that window, only earlier (the chunk cache is told
//! the reader is there already: nothing more of the current window is read), so rows, errors and
//! cache decisions are the same; an error met ahead of a lazy first window is met again in place.
//!
//! Row groups are decoded in parallel but results are placed by key, and the first error in
//! (shard, row group) order is the one reported, so neither rows nor errors depend on thread
//! count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{PackedRow, ReadColumns, ShardFile, ShardInfo};

use super::ReaderError;
use super::cache::ReaderCache;
use super::order::EpochOrder;
use super::partition::Split;
use super::rows::RowOrigin;
use super::schedule::{Schedule, Stage};

/// A position in the schedule (see [`super::ReaderState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub stage: usize,
    pub epoch: u32,
    pub offset: u64,
}

/// A row decoded from its shard, with where it came from (for image errors and for tests).
#[derive(Debug)]
pub(crate) struct RawRow {
    pub row: PackedRow,
    pub origin: RowOrigin,
    pub path: Arc<Path>,
    pub row_group: usize,
    pub row_in_group: usize,
}

/// One rank's batch before image decoding.
#[derive(Debug)]
pub(crate) struct RawBatch {
    pub rows: Vec<RawRow>,
    pub stage: usize,
    pub epoch: u32,
    /// Order position where the batch's global step begins.
    pub offset: u64,
    /// The cursor once this batch is yielded.
    pub after: Cursor,
}

/// What the loader needs to know; cheap to clone and move into its thread.
#[derive(Clone, Debug)]
pub(crate) struct Loader {
    pub schedule: Arc<Schedule>,
    /// The batch split of each stage, in schedule order (stages may have their own batch size).
    pub splits: Vec<Split>,
    pub epochs: u32,
    pub seed: u64,
    pub shuffle: bool,
    pub window: usize,
    pub decode_threads: usize,
    /// Range requests in flight at once for a stage on object storage.
    pub remote_requests: usize,
    /// Whether a stage on object storage reads the next window ahead.
    pub read_ahead: bool,
    pub verify: bool,
    /// Where remote shards' column chunks are kept between epochs, if anywhere.
    pub cache: Option<Arc<ReaderCache>>,
    /// The optional columns read: never the stored position_ids (the reader derives them from
    /// seq_lens, Row::position_ids), and no image bytes when images are skipped.
    pub columns: ReadColumns,
}

impl Loader {
    /// Moves `cursor` past finished epochs and stages (an epoch is finished when fewer rows than
    /// one global step remain).
    pub fn normalize(&self, mut cursor: Cursor) -> Cursor {
        let stages = &self.schedule.stages;
        while cursor.stage < stages.len() {
            if cursor.epoch >= self.epochs {
                cursor = Cursor {
                    stage: cursor.stage + 1,
                    epoch: 0,
                    offset: 0,
                };
            } else if self.splits[cursor.stage]
                .steps(stages[cursor.stage].manifest.totals.rows, cursor.offset)
                == 0
            {
                cursor = Cursor {
                    stage: cursor.stage,
                    epoch: cursor.epoch + 1,
                    offset: 0,
                };
            } else {
                break;
            }
        }
        cursor
    }

    /// This reader's part of the epoch at `cursor`, `steps_before` of this rank's steps after the
    /// start of the run (the worker phase counts from there).
    fn part(&self, cursor: Cursor, steps_before: u64) -> EpochPart {
        let stage = &self.schedule.stages[cursor.stage];
        let mut split = self.splits[cursor.stage];
        // Worker `w` takes the steps `w, w + workers, ...` counted from the run's start.
        split.phase = (split.phase + split.workers - steps_before % split.workers) % split.workers;
        let order = EpochOrder::new(
            self.seed,
            stage.name(),
            cursor.epoch,
            &stage.shard_rows,
            self.shuffle,
            self.window,
        );
        let steps = split.steps(order.rows(), cursor.offset);
        EpochPart {
            stage_index: cursor.stage,
            shard_starts: order.shard_starts(),
            end: cursor.offset + steps * split.step_rows(),
            order,
            split,
            offset: cursor.offset,
            steps,
        }
    }

    /// Produces every batch from `start` on, handing each to `emit`; stops after the first error
    /// or when `emit` returns `false` (the reader was dropped).
    pub fn run(&self, start: Cursor, mut emit: impl FnMut(Result<RawBatch, ReaderError>) -> bool) {
        let stages = self.schedule.stages.len();
        let mut cursor = self.normalize(start);
        let mut verified: HashSet<(usize, u32)> = HashSet::new();
        // This rank's steps since `start`, taken or left to other workers.
        let mut steps_before = 0u64;
        let mut part = (cursor.stage < stages).then(|| Arc::new(self.part(cursor, steps_before)));
        // A read-ahead of the next epoch's first window, started by the epoch before it.
        let mut handed_over: Option<ReadAhead> = None;
        while let Some(current) = part.take() {
            steps_before += current.steps;
            let next_cursor = self.normalize(Cursor {
                stage: cursor.stage,
                epoch: cursor.epoch + 1,
                offset: 0,
            });
            let following = (next_cursor.stage < stages)
                .then(|| Arc::new(self.part(next_cursor, steps_before)));
            let stage = &self.schedule.stages[cursor.stage];
            let mut epoch = EpochReader {
                loader: self,
                stage,
                remote: mixtape_store::is_url(&stage.dir),
                ahead: handed_over.take(),
                part: current.clone(),
                following: following.clone(),
                verified: &mut verified,
                window: None,
                owned: Owned::default(),
                left_to_decode: HashSet::new(),
                lazy: true,
                rows: HashMap::new(),
                shards: BTreeMap::new(),
            };
            let split = current.split;
            for step in (0..current.steps).filter(|&step| split.takes_step(step)) {
                let positions = split.batch(cursor.offset, step);
                let mut rows = Vec::with_capacity(positions.clone().count());
                for position in positions {
                    match epoch.take(position) {
                        Ok(row) => rows.push(row),
                        Err(err) => {
                            emit(Err(err));
                            return;
                        }
                    }
                }
                let batch_offset = cursor.offset + step * split.step_rows();
                let after = self.normalize(Cursor {
                    stage: cursor.stage,
                    epoch: cursor.epoch,
                    offset: batch_offset + split.step_rows(),
                });
                let batch = RawBatch {
                    rows,
                    stage: cursor.stage,
                    epoch: cursor.epoch,
                    offset: batch_offset,
                    after,
                };
                if !emit(Ok(batch)) {
                    return;
                }
            }
            handed_over = epoch.ahead.take();
            cursor = next_cursor;
            part = following;
        }
    }
}

/// How far ahead (in order positions) the lazy first window looks for row groups to decode
/// alongside the one a batch needs.
const LOOKAHEAD_POSITIONS: u64 = 1024;

/// This reader's part of one epoch of one stage: the epoch's order, the rank's (and worker's)
/// split of it, and so which rows it owns, window by window. A decoded row group's rows are kept if
/// this reader owns them in the window being read or any later one.
#[derive(Debug)]
struct EpochPart {
    stage_index: usize,
    order: EpochOrder,
    split: Split,
    /// Order positions `offset..end`: from the cursor to the end of this reader's last step.
    offset: u64,
    end: u64,
    /// Global steps from `offset`, this reader's or not.
    steps: u64,
    /// The layout position of each shard's first row, by shard index.
    shard_starts: Vec<u64>,
}

impl EpochPart {
    /// Locations of the rows of `window` this rank owns, and the window's permutation.
    fn owned(&self, window: u64) -> (HashSet<(u32, u64)>, Vec<u32>) {
        let perm = self.order.window_permutation(window);
        let (start, end) = self.order.window_span(window);
        let mut owned = HashSet::new();
        for position in start.max(self.offset)..end.min(self.end) {
            if self.split.owns(self.offset, self.end, position)
                && let Some(location) = self
                    .order
                    .locate(start + u64::from(perm[(position - start) as usize]))
            {
                owned.insert(location);
            }
        }
        (owned, perm)
    }

    /// The window holding `(shard, row)`: windows cut layout positions as they cut order positions.
    fn window_of(&self, (shard, row): (u32, u64)) -> u64 {
        (self.shard_starts[shard as usize] + row) / self.order.window_rows()
    }

    /// The windows from `from` on, up to the last of this reader's part of the epoch, that hold a
    /// row of one of `groups` (their shards open in `shards`).
    fn windows_reached(
        &self,
        shards: &BTreeMap<u32, OpenShard>,
        groups: &BTreeSet<(u32, usize)>,
        from: u64,
    ) -> BTreeSet<u64> {
        let Some(last_position) = self.end.checked_sub(1) else {
            return BTreeSet::new();
        };
        let last_window = self.order.window_of(last_position);
        let mut windows = BTreeSet::new();
        for &(shard, group) in groups {
            let Some(open) = shards.get(&shard) else {
                continue;
            };
            let (first_row, end_row) = (open.starts[group], open.starts[group + 1]);
            if first_row == end_row {
                continue;
            }
            let first = self.window_of((shard, first_row)).max(from);
            let last = self.window_of((shard, end_row - 1)).min(last_window);
            windows.extend(first..=last);
        }
        windows
    }
}

/// The rows this rank owns, for the windows worked out so far, by window.
#[derive(Debug, Default)]
struct Owned(BTreeMap<u64, HashSet<(u32, u64)>>);

impl Owned {
    fn insert(&mut self, window: u64, rows: HashSet<(u32, u64)>) {
        self.0.insert(window, rows);
    }

    /// Works out the windows of `windows` not known yet.
    fn cover(&mut self, part: &EpochPart, windows: impl IntoIterator<Item = u64>) {
        for window in windows {
            self.0.entry(window).or_insert_with(|| part.owned(window).0);
        }
    }

    /// Adds the windows `other` worked out that this does not know.
    fn merge(&mut self, other: Owned) {
        for (window, rows) in other.0 {
            self.0.entry(window).or_insert(rows);
        }
    }

    /// The rows owned in `window` (none if it was not worked out).
    fn of(&self, window: u64) -> &HashSet<(u32, u64)> {
        static NONE: std::sync::LazyLock<HashSet<(u32, u64)>> =
            std::sync::LazyLock::new(HashSet::new);
        self.0.get(&window).unwrap_or(&NONE)
    }

    /// Whether this rank owns `location`, in a window worked out.
    fn contains(&self, part: &EpochPart, location: &(u32, u64)) -> bool {
        self.0
            .get(&part.window_of(*location))
            .is_some_and(|rows| rows.contains(location))
    }

    /// Forgets the windows before `window`: the reader is past them.
    fn forget_before(&mut self, window: u64) {
        self.0 = self.0.split_off(&window);
    }
}

/// An open shard: its footer and the first row of each row group.
#[derive(Clone, Debug)]
struct OpenShard {
    file: Arc<ShardFile>,
    path: Arc<Path>,
    /// `starts[g]`: first row of row group `g`; one extra entry, the row count.
    starts: Vec<u64>,
}

/// The state of reading one epoch of one stage.
struct EpochReader<'a> {
    loader: &'a Loader,
    stage: &'a Stage,
    /// Whether the stage is on object storage (it then reads ahead, see [`ReadAhead`]).
    remote: bool,
    /// The next window (of this epoch, or the next epoch's first), being decoded in the background.
    ahead: Option<ReadAhead>,
    /// The epoch's order and this reader's part of it.
    part: Arc<EpochPart>,
    /// The next epoch's, if the run goes on.
    following: Option<Arc<EpochPart>>,
    verified: &'a mut HashSet<(usize, u32)>,
    /// The loaded window and its permutation.
    window: Option<(u64, Vec<u32>)>,
    /// The rows it owns in the loaded window, the next one, and the later ones decoded row groups
    /// reach.
    owned: Owned,
    /// In a lazy last window of the epoch, the rows owned there not decoded yet: once none is
    /// left, the next epoch's first window is read ahead.
    left_to_decode: HashSet<(u32, u64)>,
    /// While true (the epoch's first window), row groups are decoded when a batch needs them
    /// rather than the whole window at once: the first batch then costs a few row groups, not a
    /// window's worth of shards, however small the shards are.
    lazy: bool,
    /// Owned rows decoded and not yet taken, by (shard, row).
    rows: HashMap<(u32, u64), RawRow>,
    shards: BTreeMap<u32, OpenShard>,
}

impl EpochReader<'_> {
    /// The row at order position `position` (owned by this rank).
    fn take(&mut self, position: u64) -> Result<RawRow, ReaderError> {
        let window = self.part.order.window_of(position);
        if self.window.as_ref().is_none_or(|(w, _)| *w != window) {
            self.load(window)?;
        }
        let location = self.locate(position).ok_or(ReaderError::Stopped)?;
        if !self.rows.contains_key(&location) {
            let wanted = self.upcoming(position, location)?;
            self.decode(wanted)?;
        }
        self.rows.remove(&location).ok_or(ReaderError::Stopped)
    }

    /// `location` (the row at `position`, not decoded yet) plus, with several decode threads, one
    /// row of each of the next row groups this rank will need after it in the window, up to one row
    /// group per thread, so that the lazy first window decodes in parallel too (for a set smaller
    /// than one window, the whole epoch is that window). Looks at most [`LOOKAHEAD_POSITIONS`]
    /// positions ahead, and opens only the footers of the row groups it picks.
    fn upcoming(
        &mut self,
        position: u64,
        location: (u32, u64),
    ) -> Result<Vec<(u32, u64)>, ReaderError> {
        let threads = self.loader.decode_threads;
        let mut wanted = vec![location];
        if threads <= 1 {
            return Ok(wanted);
        }
        let mut groups = BTreeSet::from([self.group_of(location)?]);
        let window = self.part.order.window_of(position);
        let (_, window_end) = self.part.order.window_span(window);
        let last = window_end
            .min(self.part.end)
            .min(position.saturating_add(LOOKAHEAD_POSITIONS));
        for ahead in position + 1..last {
            if groups.len() >= threads {
                break;
            }
            if !self.part.split.owns(self.part.offset, self.part.end, ahead) {
                continue;
            }
            let Some(next) = self.locate(ahead) else {
                continue;
            };
            if !self.rows.contains_key(&next) && groups.insert(self.group_of(next)?) {
                wanted.push(next);
            }
        }
        Ok(wanted)
    }

    /// The row group holding `location`, opening its shard if needed.
    fn group_of(&mut self, (shard, row): (u32, u64)) -> Result<(u32, usize), ReaderError> {
        let open = self.open(shard)?;
        Ok((shard, open.starts.partition_point(|&s| s <= row) - 1))
    }

    fn locate(&self, position: u64) -> Option<(u32, u64)> {
        let (window, perm) = self.window.as_ref()?;
        let (start, _) = self.part.order.window_span(*window);
        debug_assert_eq!(*window, self.part.order.window_of(position));
        let offset = *perm.get(usize::try_from(position - start).ok()?)?;
        self.part.order.locate(start + u64::from(offset))
    }

    fn load(&mut self, window: u64) -> Result<(), ReaderError> {
        if let Some(cache) = &self.loader.cache {
            cache.enter(self.part.stage_index, self.part.order.epoch(), window);
        }
        let (now, perm) = self.part.owned(window);
        self.owned.forget_before(window);
        self.owned.insert(window, now);
        self.owned.cover(&self.part, [window + 1]);
        // Keep footers only of shards this or the next window still reads (rows of later windows
        // are decoded already).
        let (now, next) = (self.owned.of(window), self.owned.of(window + 1));
        self.shards
            .retain(|shard, _| now.iter().chain(next).any(|(s, _)| s == shard));
        self.lazy = self.window.is_none();
        self.window = Some((window, perm));
        if let Some(ahead) = self.ahead.take()
            && Arc::ptr_eq(&ahead.part, &self.part)
            && ahead.window == window
        {
            match ahead.finish() {
                Ok(decoded) => {
                    for (shard, open) in decoded.shards {
                        self.shards.entry(shard).or_insert(open);
                    }
                    for (location, row) in decoded.rows {
                        self.rows.entry(location).or_insert(row);
                    }
                    self.owned.merge(decoded.owned);
                }
                // Its error is the one decoding this window here would meet first.
                Err(err) if !self.lazy => return Err(err),
                // A lazy window meets errors batch by batch: decoding it in place meets this one
                // where it lies, after the batches before it.
                Err(_) => {}
            }
        }
        if !self.lazy {
            self.decode(self.undecoded(self.owned.of(window)))?;
            self.read_ahead(window + 1);
        } else if self.reads_following_ahead() && self.is_last(window) {
            self.left_to_decode = self.undecoded(self.owned.of(window)).into_iter().collect();
            if self.left_to_decode.is_empty() {
                self.read_ahead_following();
            }
        }
        Ok(())
    }

    /// The locations of `set` not decoded yet.
    fn undecoded(&self, set: &HashSet<(u32, u64)>) -> Vec<(u32, u64)> {
        set.iter()
            .filter(|l| !self.rows.contains_key(l))
            .copied()
            .collect()
    }

    /// Whether `window` is the last this reader reads of the epoch.
    fn is_last(&self, window: u64) -> bool {
        let (_, end) = self.part.order.window_span(window);
        end >= self.part.end
    }

    /// Whether the next epoch's first window is to be read ahead: it is on object storage, and
    /// read-ahead is on (verification hashes whole shards once per run, on the loader's thread).
    fn reads_following_ahead(&self) -> bool {
        self.loader.read_ahead
            && !self.loader.verify
            && self.following.as_ref().is_some_and(|part| {
                mixtape_store::is_url(&self.loader.schedule.stages[part.stage_index].dir)
            })
    }

    /// Starts decoding window `window` in the background (this window decoded): the next window
    /// of a remote stage, or past this reader's last window, the next epoch's first.
    fn read_ahead(&mut self, window: u64) {
        let (start, _) = self.part.order.window_span(window);
        if start >= self.part.end {
            self.read_ahead_following();
            return;
        }
        // Verification hashes whole shards once per run, on the loader's thread.
        if !self.remote || !self.loader.read_ahead || self.loader.verify {
            return;
        }
        let wanted = self.undecoded(self.owned.of(window));
        if !wanted.is_empty() {
            let owned = self.owned.of(window).clone();
            self.spawn_ahead(self.part.clone(), window, owned, wanted);
        }
    }

    /// Starts decoding the next epoch's first window in the background (this epoch's last window
    /// decoded), so that a stage or epoch change on object storage does not wait for the store.
    fn read_ahead_following(&mut self) {
        if self.ahead.is_some() || !self.reads_following_ahead() {
            return;
        }
        let Some(part) = self.following.clone() else {
            return;
        };
        let window = part.order.window_of(part.offset);
        let (owned, _) = part.owned(window);
        let wanted: Vec<(u32, u64)> = owned.iter().copied().collect();
        if !wanted.is_empty() {
            self.spawn_ahead(part, window, owned, wanted);
        }
    }

    /// Decodes `wanted`, rows of window `window` of `part`, on a thread of its own, keeping
    /// `owned` (the rows this reader owns there) and the rows it owns in the later windows the row
    /// groups reach.
    fn spawn_ahead(
        &mut self,
        part: Arc<EpochPart>,
        window: u64,
        owned: HashSet<(u32, u64)>,
        wanted: Vec<(u32, u64)>,
    ) {
        // The footers open already, if the window is of this stage.
        let wanted_shards: BTreeSet<u32> = wanted.iter().map(|&(shard, _)| shard).collect();
        let open: BTreeMap<u32, OpenShard> = if part.stage_index == self.part.stage_index {
            self.shards
                .iter()
                .filter(|(shard, _)| wanted_shards.contains(shard))
                .map(|(&shard, open)| (shard, open.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        // Nothing more of this window is read: to the cache, the reader is in that one.
        if let Some(cache) = &self.loader.cache {
            cache.enter(part.stage_index, part.order.epoch(), window);
        }
        let mut kept = Owned::default();
        kept.insert(window, owned);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = AheadJob {
            loader: self.loader.clone(),
            part: part.clone(),
            shards: open,
            wanted,
            window,
            owned: kept,
            cancel: cancel.clone(),
        };
        // A thread that cannot be spawned only means no read-ahead: the window is decoded on entry.
        self.ahead = std::thread::Builder::new()
            .name("mixtape-reader-ahead".into())
            .spawn(move || job.run())
            .ok()
            .map(|handle| ReadAhead {
                part,
                window,
                cancel,
                handle: Some(handle),
            });
    }

    /// Decodes the row groups holding `wanted` (in parallel), keeping the rows of `wanted` and
    /// every other row this rank owns in this window or a later one.
    fn decode(&mut self, mut wanted: Vec<(u32, u64)>) -> Result<(), ReaderError> {
        wanted.sort_unstable();
        if self.remote && !self.loader.verify {
            open_missing(
                self.loader,
                self.part.stage_index,
                &mut self.shards,
                &wanted,
                None,
            )?;
        }
        for &(shard, _) in &wanted {
            self.open(shard)?;
        }
        let groups = row_groups(&self.shards, &wanted)?;
        let window = self.window.as_ref().map_or(0, |(w, _)| *w);
        let reached = self.part.windows_reached(&self.shards, &groups, window);
        self.owned.cover(&self.part, reached);
        let (part, owned) = (&self.part, &self.owned);
        decode_rows(
            self.loader,
            self.part.stage_index,
            self.remote,
            &self.shards,
            &groups,
            &wanted,
            |location| owned.contains(part, location),
            &mut self.rows,
            None,
        )?;
        if !self.left_to_decode.is_empty() {
            let rows = &self.rows;
            self.left_to_decode
                .retain(|location| !rows.contains_key(location));
            if self.left_to_decode.is_empty() {
                self.read_ahead_following();
            }
        }
        Ok(())
    }

    /// Opens shard `shard` (footer only) unless already open, checking it against the manifest.
    fn open(&mut self, shard: u32) -> Result<&OpenShard, ReaderError> {
        if !self.shards.contains_key(&shard) {
            if self.loader.verify && self.verified.insert((self.part.stage_index, shard)) {
                let info = &self.stage.manifest.shards[shard as usize];
                verify_blake3(&self.stage.shard_path(shard), &info.blake3)?;
            }
            let open = open_shard(self.loader, self.part.stage_index, shard)?;
            self.shards.insert(shard, open);
        }
        self.shards.get(&shard).ok_or(ReaderError::Stopped)
    }
}

/// Opens shard `shard` of stage `stage_index` (footer only), checked against its manifest entry.
fn open_shard(loader: &Loader, stage_index: usize, shard: u32) -> Result<OpenShard, ReaderError> {
    let stage = &loader.schedule.stages[stage_index];
    let path: PathBuf = stage.shard_path(shard);
    let info = &stage.manifest.shards[shard as usize];
    let cache = loader.cache.clone().map(|c| (c, stage_index, shard));
    let file = open_listed_shard(&path, info, cache)?;
    let mut starts = Vec::with_capacity(file.row_groups() + 1);
    let mut total = 0u64;
    for group in 0..file.row_groups() {
        starts.push(total);
        total += file.row_group_rows(group).unwrap_or(0);
    }
    starts.push(total);
    Ok(OpenShard {
        file: Arc::new(file),
        path: Arc::from(path.as_path()),
        starts,
    })
}

/// The row groups, as (shard, row group), holding `wanted` (their shards open in `shards`).
fn row_groups(
    shards: &BTreeMap<u32, OpenShard>,
    wanted: &[(u32, u64)],
) -> Result<BTreeSet<(u32, usize)>, ReaderError> {
    let mut groups = BTreeSet::new();
    for &(shard, row) in wanted {
        let open = shards.get(&shard).ok_or(ReaderError::Stopped)?;
        groups.insert((shard, open.starts.partition_point(|&s| s <= row) - 1));
    }
    Ok(groups)
}

/// Decodes `groups`, the row groups holding `wanted` (sorted; their shards open in `shards`), and
/// puts into `rows` those of `wanted` and those `keep` accepts. A stage on object storage fetches
/// `remote_requests` row groups at a time, a local one `decode_threads`; `cancel` stops it between
/// row groups.
#[allow(clippy::too_many_arguments)]
fn decode_rows(
    loader: &Loader,
    stage_index: usize,
    remote: bool,
    shards: &BTreeMap<u32, OpenShard>,
    groups: &BTreeSet<(u32, usize)>,
    wanted: &[(u32, u64)],
    keep: impl Fn(&(u32, u64)) -> bool,
    rows: &mut HashMap<(u32, u64), RawRow>,
    cancel: Option<&AtomicBool>,
) -> Result<(), ReaderError> {
    let jobs: Vec<(Arc<ShardFile>, Arc<Path>, u32, usize)> = groups
        .iter()
        .map(|&(shard, group)| {
            let open = &shards[&shard];
            (open.file.clone(), open.path.clone(), shard, group)
        })
        .collect();
    let threads = if remote {
        loader.remote_requests.max(loader.decode_threads)
    } else {
        loader.decode_threads
    };
    let decoded = decode_row_groups(
        &jobs,
        threads,
        loader.decode_threads,
        loader.columns,
        cancel,
    );
    for ((_, path, shard, group), result) in jobs.iter().zip(decoded) {
        let decoded = result?;
        let first = shards[shard].starts[*group];
        for (index, row) in decoded.into_iter().enumerate() {
            let location = (*shard, first + index as u64);
            if keep(&location) || wanted.binary_search(&location).is_ok() {
                let origin = RowOrigin {
                    stage: stage_index,
                    shard: *shard,
                    row: location.1,
                };
                let raw = RawRow {
                    row,
                    origin,
                    path: path.clone(),
                    row_group: *group,
                    row_in_group: index,
                };
                rows.insert(location, raw);
            }
        }
    }
    Ok(())
}

/// A window being decoded ahead (see the module's doc): dropping it stops the work after the row
/// groups in flight and waits for them.
struct ReadAhead {
    /// The epoch the window is of.
    part: Arc<EpochPart>,
    window: u64,
    cancel: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Decoded, ReaderError>>>,
}

/// What a read-ahead decoded: the shards it opened, the rows it kept, and the windows whose owned
/// rows it worked out to keep them.
struct Decoded {
    shards: BTreeMap<u32, OpenShard>,
    rows: HashMap<(u32, u64), RawRow>,
    owned: Owned,
}

impl ReadAhead {
    /// Waits for the decoding to end.
    fn finish(mut self) -> Result<Decoded, ReaderError> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(decoded)) => decoded,
            // A panic in the read-ahead thread.
            Some(Err(_)) | None => Err(ReaderError::Stopped),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The read-ahead's work, moved to its thread.
struct AheadJob {
    loader: Loader,
    /// The epoch the window is of.
    part: Arc<EpochPart>,
    /// The shards of `wanted` already open.
    shards: BTreeMap<u32, OpenShard>,
    /// The window's rows not decoded yet.
    wanted: Vec<(u32, u64)>,
    /// The window read ahead.
    window: u64,
    /// The rows this rank owns in `window` (and, once worked out, in the later windows the
    /// decoded row groups reach): the rows kept.
    owned: Owned,
    cancel: Arc<AtomicBool>,
}

impl AheadJob {
    /// Opens the shards (errors in shard order), then decodes, as entering the window would.
    fn run(mut self) -> Result<Decoded, ReaderError> {
        self.wanted.sort_unstable();
        open_missing(
            &self.loader,
            self.part.stage_index,
            &mut self.shards,
            &self.wanted,
            Some(&self.cancel),
        )?;
        let groups = row_groups(&self.shards, &self.wanted)?;
        let reached = self
            .part
            .windows_reached(&self.shards, &groups, self.window);
        self.owned.cover(&self.part, reached);
        let mut rows = HashMap::new();
        decode_rows(
            &self.loader,
            self.part.stage_index,
            true,
            &self.shards,
            &groups,
            &self.wanted,
            |location| self.owned.contains(&self.part, location),
            &mut rows,
            Some(&self.cancel),
        )?;
        Ok(Decoded {
            shards: self.shards,
            rows,
            owned: self.owned,
        })
    }
}

/// Decodes `jobs` on up to `threads` threads; results in job order. With fewer row groups than
/// half the `decode_threads` (shards of one row group, the lazy window's first batch), each row
/// group's columns are split over two threads instead, so no core idles. Once `cancel` is set, the
/// jobs not started yet are left undone (their results: `Stopped`).
fn decode_row_groups(
    jobs: &[(Arc<ShardFile>, Arc<Path>, u32, usize)],
    threads: usize,
    decode_threads: usize,
    columns: ReadColumns,
    cancel: Option<&AtomicBool>,
) -> Vec<Result<Vec<PackedRow>, ReaderError>> {
    let split = decode_threads >= 2 * jobs.len();
    parallel_map(jobs, threads, cancel, |(file, _, _, group)| {
        if split {
            file.read_row_group_columns_split(*group, columns)
        } else {
            file.read_row_group_columns(*group, columns)
        }
    })
    .into_iter()
    .map(|done| done.ok_or(ReaderError::Stopped)?.map_err(ReaderError::from))
    .collect()
}

/// Opens the shards of `wanted` not in `shards` yet, `remote_requests` at a time: for a remote
/// stage each opening is two requests (magic and tail) of the store's latency, and a window of small
/// shards opens many. Errors come in shard order, so the one reported is the serial one.
fn open_missing(
    loader: &Loader,
    stage_index: usize,
    shards: &mut BTreeMap<u32, OpenShard>,
    wanted: &[(u32, u64)],
    cancel: Option<&AtomicBool>,
) -> Result<(), ReaderError> {
    let missing: BTreeSet<u32> = wanted
        .iter()
        .map(|&(shard, _)| shard)
        .filter(|shard| !shards.contains_key(shard))
        .collect();
    let missing: Vec<u32> = missing.into_iter().collect();
    let opened = parallel_map(&missing, loader.remote_requests, cancel, |&shard| {
        open_shard(loader, stage_index, shard)
    });
    for (shard, open) in missing.into_iter().zip(opened) {
        shards.insert(shard, open.ok_or(ReaderError::Stopped)??);
    }
    Ok(())
}

/// `work` of every item on up to `threads` scoped threads, results in item order whichever thread
/// finishes first; once `cancel` is set, items not started yet are left `None`.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    cancel: Option<&AtomicBool>,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    if threads <= 1 || items.len() <= 1 {
        return items
            .iter()
            .map(|item| (!cancelled()).then(|| work(item)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    // One slot per item, filled by whichever thread takes it.
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    if cancelled() {
                        break;
                    }
                    let result = work(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    // Every slot is filled once the scope ends, but for items left after `cancel`: a thread that
    // panicked re-raises its panic here (the reader then reports `Stopped`).
    slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// Hashes the shard at `path` and compares with the manifest's blake3.
fn verify_blake3(path: &Path, expected: &str) -> Result<(), ReaderError> {
    let io = |source| ReaderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let found = crate::hash_file(path).map_err(io)?.blake3;
    if found != expected {
        return Err(ReaderError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

/// Opens a shard its stage's manifest lists (its remote bytes through `cache`, if given), checked
/// against that entry: size, magic and footer
/// now (and each column chunk as its row group is read), then the footer's rows and row groups
/// against the manifest's.
pub(super) fn open_listed_shard(
    path: &Path,
    info: &ShardInfo,
    cache: Option<(Arc<ReaderCache>, usize, u32)>,
) -> Result<ShardFile, ReaderError> {
    let file = match cache {
        Some((cache, stage, shard)) => {
            ShardFile::open_checked_cached(path, info, cache, stage, shard)?
        }
        None => ShardFile::open_checked(path, info)?,
    };
    let mismatch = |what, manifest, footer| ReaderError::ShardMismatch {
        path: path.to_path_buf(),
        what,
        manifest,
        footer,
    };
    if file.rows() != info.rows {
        return Err(mismatch("rows", info.rows, file.rows()));
    }
    if file.row_groups() as u64 != info.row_groups {
        return Err(mismatch(
            "row groups",
            info.row_groups,
            file.row_groups() as u64,
        ));
    }
    Ok(file)
}
