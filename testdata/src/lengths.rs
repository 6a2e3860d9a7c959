//! A demo-like mix of sample lengths, as the demo recipe's stages produce them: what the packer's
//! efficiency targets are measured on.

use crate::SplitMix64;

/// One sample's length: all its tokens, of which `image_tokens` are image placeholders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoLength {
    pub tokens: u32,
    pub image_tokens: u32,
}

/// `n` sample lengths for sequences of `seq_len` tokens, fully determined by `seed`: 30% captions
/// (80-400 tokens, 40-80% image), 30% VQA (100-1500, 20-70% image), 20% OCR (200-800, 50-90%
/// image) and 20% long text cut into zero to two full `seq_len` windows plus a remainder of uniform
/// length. Index `i` of the result is the packer item id `i` in the tests and bench.
pub fn demo_lengths(seed: u64, n: usize, seq_len: u32) -> Vec<DemoLength> {
    let mut rng = SplitMix64::new(seed);
    let mut lengths = Vec::with_capacity(n);
    let text = |tokens| DemoLength {
        tokens,
        image_tokens: 0,
    };
    while lengths.len() < n {
        let (tokens, image_share) = match rng.range(0, 99) {
            0..=29 => (rng.range(80, 400), rng.range(40, 80)),
            30..=59 => (rng.range(100, 1500), rng.range(20, 70)),
            60..=79 => (rng.range(200, 800), rng.range(50, 90)),
            _ => {
                for _ in 0..rng.range(0, 2) {
                    lengths.push(text(seq_len));
                }
                (rng.range(1, seq_len), 0)
            }
        };
        lengths.push(DemoLength {
            tokens,
            image_tokens: tokens * image_share / 100,
        });
    }
    lengths.truncate(n);
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_mix_that_fits_the_sequence() {
        let lengths = demo_lengths(3, 5_000, 4096);
        assert_eq!(lengths, demo_lengths(3, 5_000, 4096));
        assert_ne!(lengths, demo_lengths(4, 5_000, 4096));
        assert_eq!(lengths.len(), 5_000);
        assert!(
            lengths
                .iter()
                .all(|l| (1..=4096).contains(&l.tokens) && l.image_tokens <= l.tokens)
        );
        let full_windows = lengths.iter().filter(|l| l.tokens == 4096).count();
        let with_images = lengths.iter().filter(|l| l.image_tokens > 0).count();
        // A fifth of the draws are long text with one full window on average (about 830 in 5,000
        // items), and the other draws all carry images (about 3,330).
        assert!((700..1000).contains(&full_windows), "{full_windows}");
        assert!((3_100..3_600).contains(&with_images), "{with_images}");
    }
}
