//! How one epoch's order is split between ranks and batches.
//!
//! The epoch's rows are consumed in *global steps* of `batch_size * world_size` consecutive order
//! positions, starting from the cursor's offset; in each step, rank `r` takes the `batch_size`
//! positions `[r * batch_size, (r + 1) * batch_size)`. Hence:
//!
//! - ranks are disjoint, and together they cover every step;
//! - every rank yields the same number of batches, `(rows - offset) / (batch_size * world_size)`,
//!   so no rank waits forever at a collective; the last `< batch_size * world_size` rows of an
//!   epoch are not read in that epoch (they are different rows every epoch, since the order is
//!   reshuffled);
//! - after any number of lock-step batches, every rank's cursor is the same number of order
//!   positions, so a job can resume with another world size or batch size (elastic): the
//!   remaining rows are split anew.

use std::ops::Range;

/// The batch split of one reader: its rank, the world size and the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub batch_size: u64,
    pub rank: u64,
    pub world_size: u64,
}

impl Split {
    /// Order positions consumed by one global step (all ranks together).
    pub fn step_rows(&self) -> u64 {
        self.batch_size * self.world_size
    }

    /// Global steps left in an epoch of `rows` rows when `offset` positions are consumed.
    pub fn steps(&self, rows: u64, offset: u64) -> u64 {
        rows.saturating_sub(offset) / self.step_rows()
    }

    /// Order positions of this rank's `step`-th batch after `offset`.
    pub fn batch(&self, offset: u64, step: u64) -> Range<u64> {
        let start = offset + step * self.step_rows() + self.rank * self.batch_size;
        start..start + self.batch_size
    }

    /// Whether order position `position` goes to this rank, for an epoch read from `offset` to
    /// `end` (the end of its last full step).
    pub fn owns(&self, offset: u64, end: u64, position: u64) -> bool {
        position >= offset
            && position < end
            && (position - offset) % self.step_rows() / self.batch_size == self.rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_split_each_step_and_drop_only_the_short_tail() {
        let rows = 23;
        let splits: Vec<Split> = (0..3)
            .map(|rank| Split {
                batch_size: 2,
                rank,
                world_size: 3,
            })
            .collect();
        let steps = splits[0].steps(rows, 1);
        assert_eq!(steps, 3);
        let end = 1 + steps * 6;
        let mut seen = Vec::new();
        for split in &splits {
            for step in 0..steps {
                for p in split.batch(1, step) {
                    assert!(split.owns(1, end, p));
                    seen.push(p);
                }
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..end).collect::<Vec<_>>());
        assert!(!splits[0].owns(1, end, 0) && !splits[0].owns(1, end, end));
    }
}
