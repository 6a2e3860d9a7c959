//! Exact distributions and the histograms and spreads the audit reports from them.
//!
//! A [`Distribution`] counts how often each value occurs. Every value the audit tracks (a sample's
//! length, a pack's image tokens or samples) is at most the stage's `seq_len`, so a distribution
//! holds at most `seq_len` entries however many rows it has seen: memory stays bounded while the
//! figures stay exact (min, max and mean are not estimates), and histograms are binned only at the
//! end, when the range is known.

use std::collections::BTreeMap;

use serde::Serialize;

/// Bars in every histogram the audit reports: enough to show a shape, few enough to label.
pub const HISTOGRAM_BINS: u64 = 16;

/// How often each value occurred.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Distribution {
    counts: BTreeMap<u64, u64>,
}

impl Distribution {
    pub fn add(&mut self, value: u64) {
        *self.counts.entry(value).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Distribution) {
        for (&value, &n) in &other.counts {
            *self.counts.entry(value).or_insert(0) += n;
        }
    }

    /// Observations.
    pub fn len(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn spread(&self) -> Spread {
        let n = self.len();
        let sum: u128 = self
            .counts
            .iter()
            .map(|(&v, &c)| u128::from(v) * u128::from(c))
            .sum();
        Spread {
            min: self.counts.keys().next().copied().unwrap_or(0),
            mean: if n == 0 { 0.0 } else { sum as f64 / n as f64 },
            max: self.counts.keys().next_back().copied().unwrap_or(0),
        }
    }

    /// [`HISTOGRAM_BINS`] equal bins covering `lower..=upper`, widened to hold every value seen.
    pub fn histogram(&self, lower: u64, upper: u64) -> Histogram {
        let spread = self.spread();
        let lower = if self.is_empty() {
            lower
        } else {
            lower.min(spread.min)
        };
        let upper = upper.max(spread.max).max(lower);
        let width = (upper - lower + 1).div_ceil(HISTOGRAM_BINS).max(1);
        let mut bins: Vec<Bin> = (0..HISTOGRAM_BINS)
            .map(|i| Bin {
                from: lower + i * width,
                to: lower + (i + 1) * width - 1,
                count: 0,
            })
            .take_while(|b| b.from <= upper)
            .collect();
        for (&value, &n) in &self.counts {
            let i = usize::try_from((value - lower) / width)
                .unwrap_or(usize::MAX)
                .min(bins.len() - 1);
            bins[i].count += n;
        }
        Histogram {
            bin_width: width,
            bins,
        }
    }
}

/// Smallest, mean and largest value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub min: u64,
    pub mean: f64,
    pub max: u64,
}

/// Counts of values in consecutive bins of equal width.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Histogram {
    pub bin_width: u64,
    pub bins: Vec<Bin>,
}

/// Values `from..=to` occurred `count` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bin {
    pub from: u64,
    pub to: u64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_histogram_are_exact() {
        let mut d = Distribution::default();
        for v in [0, 1, 15, 16, 16, 31] {
            d.add(v);
        }
        let mut other = Distribution::default();
        other.add(100);
        d.merge(&other);
        assert_eq!(d.len(), 7);
        let s = d.spread();
        assert_eq!((s.min, s.max), (0, 100));
        assert!((s.mean - 179.0 / 7.0).abs() < 1e-12);
        let h = d.histogram(0, 31);
        // Range widened to 100: width ceil(101 / 16) = 7.
        assert_eq!(h.bin_width, 7);
        assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>(), 7);
        assert_eq!(
            h.bins[0],
            Bin {
                from: 0,
                to: 6,
                count: 2
            }
        );
        assert_eq!(
            h.bins[2],
            Bin {
                from: 14,
                to: 20,
                count: 3
            }
        );
        assert_eq!(h.bins.last().map(|b| b.count), Some(1));
    }

    #[test]
    fn an_empty_distribution_has_empty_bins_not_a_panic() {
        let d = Distribution::default();
        assert_eq!(d.spread(), Spread::default());
        let h = d.histogram(1, 4096);
        assert_eq!(h.bin_width, 256);
        assert_eq!((h.bins.len(), h.bins[0].from, h.bins[15].to), (16, 1, 4096));
        assert!(h.bins.iter().all(|b| b.count == 0));
        assert_eq!(Distribution::default().histogram(0, 0).bins.len(), 1);
    }
}
