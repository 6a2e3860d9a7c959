//! [`Tally`]: what a reader has yielded so far, per category and per source.
//!
//! The audit compares it with the recipe's intended mix, and a trainer logs it: it is the realized
//! mix, counted on the rows that actually reached training (not on the manifest). It counts exactly
//! what [`crate::Manifest`] counts (samples, tokens, loss tokens, image tokens, images), so a tally
//! of a full epoch of one rank equals the manifest's counts when world size is 1 and no tail is
//! dropped. It covers this reader's lifetime; a resumed job starts a fresh tally.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Counts;

use super::{Row, RowBatch};

/// Consumed counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Batches yielded.
    pub batches: u64,
    /// Rows yielded.
    pub rows: u64,
    /// All samples together.
    pub total: Counts,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
}

impl Tally {
    /// Adds a yielded batch.
    pub fn add_batch(&mut self, batch: &RowBatch) {
        self.batches += 1;
        for row in &batch.rows {
            self.add_row(row);
        }
    }

    /// Adds one row's samples.
    pub fn add_row(&mut self, row: &Row) {
        self.rows += 1;
        let images = row.images.iter().map(|i| (i.sample, i.num_tokens));
        crate::row::count_samples(&row.samples, &row.seq_lens, images, |meta, counts| {
            self.total += &counts;
            add(&mut self.by_category, &meta.category, &counts);
            add(&mut self.by_source, &meta.source, &counts);
        });
    }
}

fn add(map: &mut BTreeMap<String, Counts>, name: &str, counts: &Counts) {
    // get_mut first: no String allocation per sample once the name is known.
    match map.get_mut(name) {
        Some(c) => *c += counts,
        None => {
            map.insert(name.to_string(), *counts);
        }
    }
}
