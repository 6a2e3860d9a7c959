//! Which records a stage reads, and in what order they are packed.
//!
//! The plan gives each source's stream positions `[start, end)` for a stage; here they become
//! *draws*: (epoch, record ordinal) pairs, sorted so each source can be read front to back once per
//! epoch it touches (streaming, never random access). The draws of all sources are then interleaved
//! proportionally (draw `j` of a source with `n` draws sits at virtual time `(j + 0.5) / n`), so every
//! stretch of the stage, and so every shard, carries the stage's mix rather than one source after
//! another.

use crate::index::SourceIndex;
use crate::plan::{StagePlan, Stream};

/// One drawn sample of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Draw {
    /// Pass over the source this draw belongs to.
    pub epoch: u64,
    /// Record ordinal in the source (files in order, records in file order).
    pub record: u64,
    /// Index of the sample in the source's length index.
    pub sample: u32,
}

/// A source's draws for a stage, in reading order.
#[derive(Debug)]
pub struct SourceDraws {
    pub source: usize,
    pub draws: Vec<Draw>,
    /// The plan's [`SourceDraw::cut`](crate::plan::SourceDraw::cut): (index in `draws` of the
    /// source's last stream position, tokens of it to keep).
    pub cut: Option<(usize, u64)>,
}

impl SourceDraws {
    /// Tokens to keep of draw `j`, when the plan cuts it.
    pub fn cut_at(&self, j: usize) -> Option<u64> {
        self.cut.filter(|&(at, _)| at == j).map(|(_, keep)| keep)
    }
}

/// Draws of every source taking part in `stage`; `sources` are the recipe's source names in order.
pub fn stage_draws(
    seed: u64,
    stage: &StagePlan,
    sources: &[&str],
    indexes: &[&SourceIndex],
) -> Vec<SourceDraws> {
    let mut out = Vec::new();
    for category in &stage.categories {
        for d in &category.sources {
            let Some(source) = sources.iter().position(|s| *s == d.source) else {
                continue;
            };
            let index = indexes[source];
            let n = index.samples();
            if n == 0 || d.end <= d.start {
                continue;
            }
            let mut stream = Stream::new(seed, &d.source, n);
            let mut draws: Vec<Draw> = (d.start..d.end)
                .map(|pos| {
                    let sample = stream.sample_at(pos);
                    Draw {
                        epoch: pos / n as u64,
                        record: index.record_of[sample],
                        sample: sample as u32,
                    }
                })
                .collect();
            draws.sort_unstable();
            // The cut applies to the last stream position, wherever sorting put it.
            let cut = d.cut.and_then(|keep| {
                let pos = d.end - 1;
                let sample = stream.sample_at(pos);
                let last = Draw {
                    epoch: pos / n as u64,
                    record: index.record_of[sample],
                    sample: sample as u32,
                };
                draws.binary_search(&last).ok().map(|at| (at, keep))
            });
            out.push(SourceDraws { source, draws, cut });
        }
    }
    out.sort_by_key(|s| s.source);
    out
}

/// The packing order: (source slot in `draws`, draw index) pairs, interleaved proportionally.
pub fn interleave(draws: &[SourceDraws]) -> Vec<(u32, u32)> {
    let mut order: Vec<(u128, u32, u32)> =
        Vec::with_capacity(draws.iter().map(|d| d.draws.len()).sum());
    for (slot, d) in draws.iter().enumerate() {
        let n = d.draws.len() as u128;
        for j in 0..d.draws.len() {
            // (2j + 1) / 2n in fixed point: exact integer comparison, no float ties.
            let time = ((2 * j as u128 + 1) << 64) / (2 * n);
            order.push((time, slot as u32, j as u32));
        }
    }
    order.sort_unstable();
    order.into_iter().map(|(_, slot, j)| (slot, j)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(source: usize, n: usize) -> SourceDraws {
        SourceDraws {
            source,
            draws: (0..n as u64)
                .map(|r| Draw {
                    epoch: 0,
                    record: r,
                    sample: r as u32,
                })
                .collect(),
            cut: None,
        }
    }

    #[test]
    fn interleaving_keeps_every_stretch_proportional() {
        let sets = vec![draws(0, 300), draws(1, 100)];
        let order = interleave(&sets);
        assert_eq!(order.len(), 400);
        for window in order.chunks(40) {
            let from_first = window.iter().filter(|(slot, _)| *slot == 0).count();
            assert!((29..=31).contains(&from_first), "{from_first} of 40");
        }
        // Each source's draws keep their reading order.
        let firsts: Vec<u32> = order
            .iter()
            .filter(|(s, _)| *s == 0)
            .map(|(_, j)| *j)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
    }
}
