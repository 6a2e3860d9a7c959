//! Rows for training and evaluation, from mixtape shard sets.
//!
//! Training rows stream through [`mixtape_shards::Reader`] (one reader per stage, because each stage
//! has its own batch size): it shuffles, prefetches, decodes images to RGB on background threads,
//! counts what it yields (the realized mix) and gives the resume cursor a checkpoint stores.
//!
//! Held-back rows ([`Holdout`]) are rows spread evenly over a stage, read directly from the shards:
//! they are never trained on. A training row that shares any sample (by source and key)
//! with the held-back rows is skipped too, so a sample repeated under `max_repeat` cannot leak into
//! training through another row. Held-back images keep their source size so evaluation can re-resize
//! them under another pixel budget (test-time resolution search).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mixtape_shards::{Manifest, PackedRow, Reader, ReaderOptions, ReaderState, ShardFile, Tally};

/// One image of a row, at its training size.
#[derive(Clone, PartialEq, Eq)]
pub struct TrainImage {
    /// `height x width x 3` RGB bytes (from a [`Reader`], they go back to it when dropped).
    pub rgb: mixtape_shards::Pixels,
    pub height: u32,
    pub width: u32,
    /// Size of the image before the builder resized it (the trained size when unknown).
    pub source_height: u32,
    pub source_width: u32,
    /// Index in the row's tokens of the first `<|image_pad|>`, and how many there are.
    pub token_offset: u32,
    pub num_tokens: u32,
}

impl std::fmt::Debug for TrainImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrainImage({}x{} from {}x{}, tokens {}+{})",
            self.height,
            self.width,
            self.source_height,
            self.source_width,
            self.token_offset,
            self.num_tokens
        )
    }
}

/// One packed sequence, as the model consumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainRow {
    pub input_ids: Vec<i32>,
    pub loss_mask: Vec<u8>,
    pub position_ids: Vec<i32>,
    pub seq_lens: Vec<i32>,
    /// `(source, key)` of each packed sample.
    pub samples: Vec<(String, String)>,
    pub images: Vec<TrainImage>,
}

/// Why rows cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error(transparent)]
    Reader(#[from] mixtape_shards::ReaderError),
    #[error(transparent)]
    Manifest(#[from] mixtape_shards::ManifestError),
    #[error(transparent)]
    Read(#[from] mixtape_shards::ReadError),
    #[error("{}, row {row}, image {image}: {detail} (the shard is corrupt: rebuild the stage)", shard.display())]
    Image {
        shard: PathBuf,
        row: u64,
        image: usize,
        detail: String,
    },
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

impl TrainRow {
    fn from_reader(row: mixtape_shards::Row) -> Self {
        let images = row
            .images
            .into_iter()
            .map(|i| TrainImage {
                rgb: i.rgb,
                height: i.height,
                width: i.width,
                source_height: i.height,
                source_width: i.width,
                token_offset: i.token_offset,
                num_tokens: i.num_tokens,
            })
            .collect();
        let samples = row.samples.into_iter().map(|s| (s.source, s.key)).collect();
        Self {
            input_ids: row.input_ids,
            loss_mask: row.loss_mask,
            position_ids: row.position_ids,
            seq_lens: row.seq_lens,
            samples,
            images,
        }
    }

    fn from_shard(row: PackedRow, shard: &Path, index: u64) -> Result<Self, DataError> {
        let position_ids = row.position_ids();
        let mut images = Vec::with_capacity(row.images.len());
        for (i, image) in row.images.iter().enumerate() {
            let rgb = mixtape_shards::reader::decode_pixels(image).map_err(|detail| {
                DataError::Image {
                    shard: shard.to_path_buf(),
                    row: index,
                    image: i,
                    detail,
                }
            })?;
            images.push(TrainImage {
                rgb: rgb.into(),
                height: image.height,
                width: image.width,
                source_height: image.source_height,
                source_width: image.source_width,
                token_offset: image.token_offset,
                num_tokens: image.num_tokens,
            });
        }
        let samples = row.samples.into_iter().map(|s| (s.source, s.key)).collect();
        Ok(Self {
            input_ids: row.input_ids,
            loss_mask: row.loss_mask,
            position_ids,
            seq_lens: row.seq_lens,
            samples,
            images,
        })
    }

    /// Tokens in the row.
    pub fn tokens(&self) -> usize {
        self.input_ids.len()
    }
}

/// A stage's held-back rows.
#[derive(Debug)]
pub struct Holdout {
    pub rows: Vec<TrainRow>,
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
        let wanted: BTreeSet<u64> = (0..rows as u64)
            .map(|j| ((2 * j + 1) * total) / (2 * rows as u64))
            .collect();
        let mut picked = Vec::with_capacity(rows);
        let mut first = 0u64;
        for info in &manifest.shards {
            let end = first + info.rows;
            if wanted.range(first..end).next().is_some() {
                let path = dir.join(&info.file);
                let shard = ShardFile::open_checked(&path, info)?;
                let mut index = first;
                for group in 0..shard.row_groups() {
                    let packed = shard.read_row_group(group)?;
                    let group_end = index + packed.len() as u64;
                    if wanted.range(index..group_end).next().is_some() {
                        for (k, row) in packed.into_iter().enumerate() {
                            let at = index + k as u64;
                            if wanted.contains(&at) {
                                picked.push(TrainRow::from_shard(row, &path, at - first)?);
                            }
                        }
                    }
                    index = group_end;
                }
            }
            first = end;
        }
        let keys = picked
            .iter()
            .flat_map(|r| r.samples.iter().cloned())
            .collect();
        Ok(Self { rows: picked, keys })
    }

    /// Whether a training row shares a sample with the held-back rows.
    pub fn overlaps(&self, row: &TrainRow) -> bool {
        row.samples.iter().any(|s| self.keys.contains(s))
    }
}

/// Rows of one stage for training: `batch_size` rows per batch, held-back samples removed.
#[derive(Debug)]
pub struct StageRows {
    reader: Reader,
    /// Rows skipped because they overlap the held-back rows.
    pub skipped: u64,
}

impl StageRows {
    /// Starts reading the stage in `dir` (from the beginning, or from `resume`).
    pub fn try_new(
        dir: &Path,
        seed: u64,
        batch_size: usize,
        resume: Option<ReaderState>,
    ) -> Result<Self, DataError> {
        let options = ReaderOptions::default()
            .with_seed(seed)
            .with_batch_size(batch_size);
        let reader = Reader::try_new(&[dir.to_path_buf()], options, resume)?;
        for warning in reader.warnings() {
            eprintln!("warning: {warning}");
        }
        Ok(Self { reader, skipped: 0 })
    }

    /// The next batch without held-back samples (possibly shorter than `batch_size`, even empty when
    /// every row overlapped), or `None` at the end of the stage.
    pub fn next_batch(&mut self, holdout: &Holdout) -> Option<Result<Vec<TrainRow>, DataError>> {
        let batch = match self.reader.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e.into())),
        };
        let mut rows = Vec::with_capacity(batch.rows.len());
        for row in batch.rows {
            let row = TrainRow::from_reader(row);
            if holdout.overlaps(&row) {
                self.skipped += 1;
            } else {
                rows.push(row);
            }
        }
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
