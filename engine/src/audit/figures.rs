//! The mix figures of a shard that the integrity pass does not compute: per source the draws and
//! category, and exact distributions over packs (sample lengths, samples, tokens and image tokens
//! per pack).
//!
//! They are folded row by row from the rows `mixtape_shards::verify_with_rows` decodes, so the
//! audit reads every shard once: `verify` hashes, decodes and counts (its per-shard and per-stage
//! counts are the audit's totals, per category and per source), and hands each row here. Counting
//! follows FORMAT.md through [`PackedRow::sample_counts`], as the writer and `verify` count.

use std::collections::BTreeMap;

use mixtape_shards::PackedRow;

use super::stats::Distribution;

/// Suffix the builder gives every window of a long text after the first (`key#w1`, `key#w2`, ...):
/// a window that is not a first one is not a separate draw from its source.
const WINDOW_MARK: &str = "#w";

/// What the audit folds from one shard's rows, beyond `verify`'s counts.
#[derive(Clone, Debug, Default)]
pub struct ShardFigures {
    /// Category of each source (the first one seen: a recipe gives a source one category).
    pub source_category: BTreeMap<String, String>,
    /// Draws per source: packed samples that are not a later window of a split long text.
    pub draws: BTreeMap<String, u64>,
    pub sample_lengths: Distribution,
    pub samples_per_pack: Distribution,
    pub tokens_per_pack: Distribution,
    pub image_tokens_per_pack: Distribution,
}

impl ShardFigures {
    /// Folds one decoded row into the figures.
    pub fn add_row(&mut self, row: &PackedRow) {
        let mut pack_image_tokens = 0u64;
        row.sample_counts(|meta, counts| {
            pack_image_tokens += counts.image_tokens;
            self.sample_lengths.add(counts.tokens);
            if !self.source_category.contains_key(&meta.source) {
                self.source_category
                    .insert(meta.source.clone(), meta.category.clone());
            }
            if !is_later_window(&meta.key) {
                *self.draws.entry(meta.source.clone()).or_insert(0) += 1;
            }
        });
        self.samples_per_pack.add(row.seq_lens.len() as u64);
        self.tokens_per_pack.add(row.input_ids.len() as u64);
        self.image_tokens_per_pack.add(pack_image_tokens);
    }

    /// Adds another shard's figures (shards merged in file order keep "first seen" deterministic).
    pub fn merge(&mut self, other: &ShardFigures) {
        for (source, category) in &other.source_category {
            self.source_category
                .entry(source.clone())
                .or_insert_with(|| category.clone());
        }
        for (source, n) in &other.draws {
            *self.draws.entry(source.clone()).or_insert(0) += n;
        }
        self.sample_lengths.merge(&other.sample_lengths);
        self.samples_per_pack.merge(&other.samples_per_pack);
        self.tokens_per_pack.merge(&other.tokens_per_pack);
        self.image_tokens_per_pack
            .merge(&other.image_tokens_per_pack);
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
