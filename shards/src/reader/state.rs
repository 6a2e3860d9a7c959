//! [`ReaderState`]: the resume cursor, small and serializable.
//!
//! The cursor is a position in the schedule: stage, epoch, and how many order positions of that
//! epoch all ranks together have consumed (see [`super::partition`]). It does not mention ranks,
//! batch size or threads, so any rank's state after the same step is the same value, and a job can
//! resume with another world size. It records what the order depends on (seed, shuffle settings,
//! a fingerprint of the stages' manifests) so that a reader whose order would differ refuses the
//! state instead of silently duplicating or skipping rows.

use serde::{Deserialize, Serialize};

use super::error::StateMismatch;

/// Version of the state's JSON shape.
pub const STATE_VERSION: u32 = 1;

/// Where a reader stands in its schedule. Serialize it with serde (JSON is a few hundred bytes)
/// and pass it to [`super::Reader::try_new`] to continue exactly after the last yielded batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderState {
    pub version: u32,
    /// Seed of the order.
    pub seed: u64,
    pub shuffle: bool,
    pub shuffle_window: u64,
    /// Stage names of the schedule, in order.
    pub stages: Vec<String>,
    /// blake3 (hex, 16 digits) of the stages' manifests' identities: stage, fingerprint, shards.
    pub schedule: String,
    /// Index in `stages` of the stage being read (`stages.len()` once everything is read).
    pub stage: usize,
    /// Epoch being read within the stage.
    pub epoch: u32,
    /// Order positions of the epoch consumed by all ranks together.
    pub offset: u64,
}

impl ReaderState {
    /// Whether the state says the whole schedule has been read.
    pub fn finished(&self) -> bool {
        self.stage >= self.stages.len()
    }

    /// Checks that a reader with `expected`'s order can continue from this state.
    pub(crate) fn check_compatible(&self, expected: &ReaderState) -> Result<(), StateMismatch> {
        if self.version != STATE_VERSION {
            return Err(StateMismatch::Version {
                found: self.version,
                expected: STATE_VERSION,
            });
        }
        if self.stages != expected.stages {
            return Err(StateMismatch::Stages {
                state: self.stages.clone(),
                reader: expected.stages.clone(),
            });
        }
        if self.schedule != expected.schedule {
            return Err(StateMismatch::Schedule {
                state: self.schedule.clone(),
                reader: expected.schedule.clone(),
            });
        }
        let order = |s: &ReaderState| (s.seed, s.shuffle, s.shuffle_window);
        if order(self) != order(expected) {
            return Err(StateMismatch::Order {
                state: order(self),
                reader: order(expected),
            });
        }
        if self.stage > self.stages.len() {
            return Err(StateMismatch::StagePastLast { stage: self.stage });
        }
        Ok(())
    }
}
