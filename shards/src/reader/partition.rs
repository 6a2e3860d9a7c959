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
//!
//! A rank's batches can be split further between `workers` readers (a PyTorch `DataLoader`'s
//! worker processes): worker `w` takes the rank's batches `w, w + workers, ...`, counted from where
//! the readers start, so taking one batch from each worker in turn gives the rank's order back.

use std::ops::Range;

/// The batch split of one reader: its rank, the world size and the batch size, and which of a
/// rank's steps it takes when `workers` readers share the rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub batch_size: u64,
    pub rank: u64,
    pub world_size: u64,
    /// Readers sharing this rank's batches (1: this one takes them all).
    pub workers: u64,
    /// Of the epoch's steps (counted from the reader's offset), this reader takes those with
    /// `step % workers == phase`.
    pub phase: u64,
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

    /// Whether this reader takes the epoch's `step`-th step (counted from its offset).
    pub fn takes_step(&self, step: u64) -> bool {
        step % self.workers == self.phase
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
            && self.takes_step((position - offset) / self.step_rows())
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
                workers: 1,
                phase: 0,
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

    #[test]
    fn workers_take_every_workers_th_step_of_their_rank() {
        let (offset, rows) = (3, 40);
        let split = |phase| Split {
            batch_size: 2,
            rank: 1,
            world_size: 2,
            workers: 3,
            phase,
        };
        let steps = split(0).steps(rows, offset);
        let end = offset + steps * 4;
        let mut taken: Vec<(u64, u64)> = Vec::new();
        for phase in 0..3 {
            for step in (0..steps).filter(|&s| split(phase).takes_step(s)) {
                taken.extend(split(phase).batch(offset, step).map(|p| (step, p)));
            }
            let owned = (0..rows)
                .filter(|&p| split(phase).owns(offset, end, p))
                .count() as u64;
            assert_eq!(owned, (phase..steps).step_by(3).count() as u64 * 2);
        }
        taken.sort_unstable();
        let whole_rank = Split {
            workers: 1,
            ..split(0)
        };
        let expected: Vec<(u64, u64)> = (0..steps)
            .flat_map(|step| whole_rank.batch(offset, step).map(move |p| (step, p)))
            .collect();
        assert_eq!(taken, expected);
    }
}
