//! Rows for training and evaluation, from mixtape shard sets.
//!
//! Training rows stream through one [`mixtape_shards::Reader`] over the whole schedule
//! ([`TrainRows`]): each stage reads at its own batch size
//! ([`ReaderOptions::with_stage_batch_size`]), and a stage whose steps are capped leaves the rest of
//! its rows unread ([`Reader::skip_to_stage`]). The reader shuffles, prefetches, decodes images to
//! RGB on background threads, counts what it yields (the realized mix) and gives the resume cursor a
//! checkpoint stores. The rows are the reader's own [`Row`]s: the model input is built from them
//! directly, with no copy.
//!
//! Held-back rows ([`Holdout`]) are rows spread evenly over a stage, read by
//! [`mixtape_shards::reader::read_rows_at`]: they are never trained on. A training row that shares
//! any sample (by source and key) with the held-back rows is skipped too, so a sample repeated under
//! `max_repeat` cannot leak into training through another row. Every [`Image`](mixtape_shards::Image)
//! keeps its source size, so evaluation can re-resize held-back images under another pixel budget
//! (test-time resolution search).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mixtape_shards::reader::read_rows_at;
use mixtape_shards::{ImageMode, Manifest, Reader, ReaderOptions, ReaderState, Row, Tally};

/// Why rows cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error(transparent)]
    Reader(#[from] mixtape_shards::ReaderError),
    #[error(transparent)]
    Manifest(#[from] mixtape_shards::ManifestError),
    #[error(
        "stage {stage}: holding back {holdout} rows leaves {left} to train on (it has {rows}): lower --holdout-rows"
    )]
    HoldoutTooLarge {
        stage: String,
        holdout: usize,
        rows: u64,
        left: u64,
    },
}

/// `(source, key)` of each packed sample of a row.
fn sample_keys(row: &Row) -> impl Iterator<Item = (String, String)> + '_ {
    row.samples
        .iter()
        .map(|s| (s.source.clone(), s.key.clone()))
}

/// A stage's held-back rows.
#[derive(Debug)]
pub struct Holdout {
    pub rows: Vec<Row>,
    keys: BTreeSet<(String, String)>,
}

impl Holdout {
    /// `rows` rows spread evenly over the stage in `dir` (row `floor((j + 1/2) x total / rows)` in
    /// file order, for `j < rows`): the builder sorts by length within a pack buffer, so a contiguous
    /// tail would hold only one kind of row. `rows == 0` holds nothing back.
    pub fn read(dir: &Path, rows: usize) -> Result<Self, DataError> {
        let manifest = Manifest::read(mixtape_shards::StageLayout::of_dir(dir).manifest())?;
        let total = manifest.totals.rows;
        if rows as u64 >= total && rows > 0 {
            return Err(DataError::HoldoutTooLarge {
                stage: manifest.stage,
                holdout: rows,
                rows: total,
                left: 0,
            });
        }
        let wanted = (0..rows as u64).map(|j| ((2 * j + 1) * total) / (2 * rows as u64));
        let picked = read_rows_at(dir, wanted, ImageMode::Decoded)?;
        let keys = picked.iter().flat_map(sample_keys).collect();
        Ok(Self { rows: picked, keys })
    }

    /// Whether a training row shares a sample with the held-back rows.
    pub fn overlaps(&self, row: &Row) -> bool {
        sample_keys(row).any(|s| self.keys.contains(&s))
    }
}

/// Training rows of every stage of a schedule: one reader, held-back samples removed.
#[derive(Debug)]
pub struct TrainRows {
    reader: Reader,
    /// Rows skipped because they overlap the held-back rows, over all stages.
    pub skipped: u64,
}

impl TrainRows {
    /// Starts reading the stages in `stages` (`(folder, stage name, batch size)` in schedule order),
    /// from the beginning or from `resume` (a state this reader gave).
    pub fn try_new(
        stages: &[(PathBuf, String, usize)],
        seed: u64,
        resume: Option<ReaderState>,
    ) -> Result<Self, DataError> {
        let mut options = ReaderOptions::default().with_seed(seed);
        let mut dirs = Vec::with_capacity(stages.len());
        for (dir, name, batch_size) in stages {
            options = options.with_stage_batch_size(name.clone(), *batch_size);
            dirs.push(dir.clone());
        }
        let reader = Reader::try_new(&dirs, options, resume)?;
        for warning in reader.warnings() {
            eprintln!("warning: {warning}");
        }
        Ok(Self { reader, skipped: 0 })
    }

    /// Leaves the rest of the stages before `stage` unread (a capped stage's remaining rows); does
    /// nothing when the reader is already there.
    pub fn start_stage(&mut self, stage: usize) -> Result<(), DataError> {
        Ok(self.reader.skip_to_stage(stage)?)
    }

    /// The next batch of stage `stage` without held-back samples (possibly shorter than its batch
    /// size, even empty when every row overlapped), or `None` at the end of that stage.
    pub fn next_batch(
        &mut self,
        stage: usize,
        holdout: &Holdout,
    ) -> Option<Result<Vec<Row>, DataError>> {
        if self.reader.current_stage() != stage {
            return None;
        }
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e.into())),
        };
        let before = batch.rows.len();
        let rows: Vec<Row> = batch
            .rows
            .into_iter()
            .filter(|row| !holdout.overlaps(row))
            .collect();
        self.skipped += (before - rows.len()) as u64;
        Some(Ok(rows))
    }

    /// The resume cursor after the last batch returned.
    pub fn state(&self) -> ReaderState {
        self.reader.state()
    }

    /// What the reader has yielded so far (held-back overlaps included: they were read).
    pub fn tally(&self) -> &Tally {
        self.reader.tally()
    }
}

/// Rows in a stage's manifest.
pub fn stage_rows(dir: &Path) -> Result<u64, DataError> {
    Ok(
        Manifest::read(mixtape_shards::StageLayout::of_dir(dir).manifest())?
            .totals
            .rows,
    )
}
