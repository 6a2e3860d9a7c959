//! How well a set of packs uses its sequences: the numbers a build reports and the bench prints.
//!
//! Counts are `u64` so a whole stage (billions of tokens) sums without overflow; `efficiency` is the
//! non-pad fraction, the figure that decides how much compute is spent on padding.

use super::Pack;

/// Totals over packs of one `seq_len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackStats {
    pub seq_len: u32,
    pub packs: u64,
    pub items: u64,
    /// Non-pad tokens.
    pub tokens: u64,
    pub image_tokens: u64,
    /// `packs * seq_len`: every token position, padding included.
    pub capacity: u64,
}

impl PackStats {
    /// Empty totals for packs of `seq_len` tokens.
    pub fn new(seq_len: u32) -> Self {
        Self {
            seq_len,
            packs: 0,
            items: 0,
            tokens: 0,
            image_tokens: 0,
            capacity: 0,
        }
    }

    /// Totals over `packs`.
    pub fn from_packs<'a>(seq_len: u32, packs: impl IntoIterator<Item = &'a Pack>) -> Self {
        let mut stats = Self::new(seq_len);
        for pack in packs {
            stats.record(pack);
        }
        stats
    }

    /// Adds one pack (for tallying as packs stream out).
    pub fn record(&mut self, pack: &Pack) {
        self.packs = self.packs.saturating_add(1);
        self.items = self.items.saturating_add(pack.items.len() as u64);
        self.tokens = self.tokens.saturating_add(u64::from(pack.tokens));
        self.image_tokens = self
            .image_tokens
            .saturating_add(u64::from(pack.image_tokens));
        self.capacity = self.capacity.saturating_add(u64::from(self.seq_len));
    }

    /// Padding positions: `capacity - tokens`.
    pub fn pad_tokens(&self) -> u64 {
        self.capacity.saturating_sub(self.tokens)
    }

    /// The non-pad fraction `tokens / capacity`, in `0.0..=1.0`. With no packs nothing is padded,
    /// so it is 1.0.
    pub fn efficiency(&self) -> f64 {
        if self.capacity == 0 {
            1.0
        } else {
            self.tokens as f64 / self.capacity as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efficiency_is_the_non_pad_fraction_of_every_sequence() {
        let packs = [
            Pack {
                items: vec![0, 1],
                tokens: 10,
                image_tokens: 4,
            },
            Pack {
                items: vec![2],
                tokens: 6,
                image_tokens: 0,
            },
        ];
        let stats = PackStats::from_packs(10, &packs);
        assert_eq!(
            stats,
            PackStats {
                seq_len: 10,
                packs: 2,
                items: 3,
                tokens: 16,
                image_tokens: 4,
                capacity: 20
            }
        );
        assert_eq!(stats.pad_tokens(), 4);
        assert_eq!(stats.efficiency(), 0.8);
    }

    #[test]
    fn no_packs_means_no_padding() {
        assert_eq!(PackStats::new(4096).efficiency(), 1.0);
    }
}
