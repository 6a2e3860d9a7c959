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
            self.total += &counts;
            add(&mut self.by_category, &meta.category, &counts);
            add(&mut self.by_source, &meta.source, &counts);
        }
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
