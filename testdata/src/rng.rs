//! SplitMix64 for tests: a dozen lines we own, so a seeded stream never changes under a dependency
//! upgrade (the `rand` crate may change its algorithms and range sampling between versions).
//!
//! Ranges are drawn by modulo, which is slightly biased for large spans; the test streams and the
//! thresholds tuned on them (the packer's efficiency targets) were recorded with it, so it stays.

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit counter passed through a bijective mixer.
/// Every seed, 0 included, gives a full-quality stream.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (by modulo); 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// In `lo..=hi`; `lo` when `hi <= lo`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_the_reference_splitmix64() {
        // First outputs for seed 1234567 of the reference C implementation (Vigna, prng.di.unimi.it).
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn ranges_stay_in_bounds_and_cover_them() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = rng.range(10, 14);
            assert!((10..=14).contains(&v), "{v}");
            seen[(v - 10) as usize] = true;
        }
        assert_eq!(seen, [true; 5]);
        assert_eq!(rng.range(5, 5), 5);
        assert_eq!(rng.range(6, 5), 6);
        assert_eq!(rng.below(0), 0);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&rng.unit())));
    }
}
