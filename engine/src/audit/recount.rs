//! Recounting a shard from its contents: one streaming pass, one row group in memory at a time.
//!
//! Nothing here reads the manifest: the point of an audit is to know what the shards hold, then
//! compare. For each shard the pass yields its size and blake3 (hashed in chunks), its footer
//! metadata, and per category and per source the samples, tokens, loss tokens, image tokens and
//! images of every packed sample, plus exact distributions (sample lengths, samples, tokens and
//! image tokens per pack). Counting follows FORMAT.md: `tokens` is a sample's `seq_lens` entry
//! (image tokens included), `loss_tokens` its `sample_loss_tokens` (which the reader has checked
//! against `loss_mask`), and an image belongs to the sample its `sample` field names.
//!
//! A shard that cannot be read is not fatal: the recount keeps what it counted so far and records
//! the error, and the audit reports it as a problem naming the file and row group.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use mixtape_shards::{Counts, PackedRow, ShardFile, ShardMeta};

use super::stats::Distribution;

/// Suffix the builder gives every window of a long text after the first (`key#w1`, `key#w2`, ...):
/// a window that is not a first one is not a separate draw from its source.
const WINDOW_MARK: &str = "#w";

/// Everything one pass over a shard learns.
#[derive(Clone, Debug, Default)]
pub struct ShardRecount {
    /// File name within the stage folder.
    pub file: String,
    pub path: PathBuf,
    /// Footer metadata, when the footer could be read.
    pub meta: Option<ShardMeta>,
    pub rows: u64,
    pub row_groups: u64,
    pub bytes: u64,
    pub blake3: String,
    pub totals: Counts,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
    /// Category of each source (the first one seen: a recipe gives a source one category).
    pub source_category: BTreeMap<String, String>,
    /// Draws per source: packed samples that are not a later window of a split long text.
    pub draws: BTreeMap<String, u64>,
    pub sample_lengths: Distribution,
    pub samples_per_pack: Distribution,
    pub tokens_per_pack: Distribution,
    pub image_tokens_per_pack: Distribution,
    /// Why the shard could not be read whole (its counts then cover only what was read).
    pub error: Option<String>,
}

impl ShardRecount {
    /// Folds one decoded row into the counts.
    fn add_row(&mut self, row: &PackedRow) {
        self.rows += 1;
        let mut pack_image_tokens = 0u64;
        for (index, (meta, &len)) in row.samples.iter().zip(&row.seq_lens).enumerate() {
            let mut counts = Counts {
                samples: 1,
                tokens: u64::try_from(len).unwrap_or(0),
                loss_tokens: u64::from(meta.loss_tokens),
                ..Counts::default()
            };
            for image in row.images.iter().filter(|i| i.sample as usize == index) {
                counts.images += 1;
                counts.image_tokens += u64::from(image.num_tokens);
            }
            pack_image_tokens += counts.image_tokens;
            self.sample_lengths.add(counts.tokens);
            self.totals += &counts;
            *self.by_category.entry(meta.category.clone()).or_default() += &counts;
            *self.by_source.entry(meta.source.clone()).or_default() += &counts;
            if !self.source_category.contains_key(&meta.source) {
                self.source_category
                    .insert(meta.source.clone(), meta.category.clone());
            }
            if !is_later_window(&meta.key) {
                *self.draws.entry(meta.source.clone()).or_insert(0) += 1;
            }
        }
        self.samples_per_pack.add(row.seq_lens.len() as u64);
        self.tokens_per_pack.add(row.input_ids.len() as u64);
        self.image_tokens_per_pack.add(pack_image_tokens);
    }
}

fn is_later_window(key: &str) -> bool {
    key.rfind(WINDOW_MARK).is_some_and(|at| {
        at + WINDOW_MARK.len() < key.len()
            && key[at + WINDOW_MARK.len()..]
                .bytes()
                .all(|b| b.is_ascii_digit())
    })
}

/// Reads the shard at `path` once: size and hash, then every row group in order.
pub fn recount_shard(path: &Path) -> ShardRecount {
    let mut recount = ShardRecount {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_path_buf(),
        ..ShardRecount::default()
    };
    match hash_file(path) {
        Ok((bytes, hash)) => (recount.bytes, recount.blake3) = (bytes, hash),
        Err(err) => {
            recount.error = Some(format!("cannot read {}: {err}", path.display()));
            return recount;
        }
    }
    let shard = match ShardFile::open(path) {
        Ok(shard) => shard,
        Err(err) => {
            recount.error = Some(err.to_string());
            return recount;
        }
    };
    recount.meta = Some(shard.meta().clone());
    recount.row_groups = shard.row_groups() as u64;
    for row_group in 0..shard.row_groups() {
        match shard.read_row_group(row_group) {
            Ok(rows) => rows.iter().for_each(|row| recount.add_row(row)),
            Err(err) => {
                recount.error = Some(err.to_string());
                break;
            }
        }
    }
    recount
}

/// Size and blake3 of a file, read in fixed-size chunks.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbered_window_suffixes_mark_later_windows() {
        assert!(is_later_window("books/a.jsonl:3#w1"));
        assert!(is_later_window("essays:12#w10"));
        assert!(!is_later_window("books/a.jsonl:3"));
        assert!(!is_later_window("notes#wiki:3"));
        assert!(!is_later_window("x#w"));
    }
}
