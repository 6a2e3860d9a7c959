//! The order of one epoch of one stage: a pure function of (seed, stage name, epoch).
//!
//! An epoch's rows are laid out in two steps:
//!
//! 1. **Shard order**: the stage's shards are permuted (Fisher-Yates), and their rows concatenated
//!    in file order. This gives every row a *layout position* `0..rows`, computed from the
//!    manifest's per-shard row counts alone, so no shard is opened to know where a row lies.
//! 2. **Window shuffle**: layout positions are cut into consecutive windows of `shuffle_window`
//!    rows and each window is permuted. The row at *order position* `p` is the one at layout
//!    position `window_start + perm_window(p - window_start)`.
//!
//! So reading order position `p` needs only the shards overlapping `p`'s window: memory is bounded
//! by the window, and start-up costs nothing per shard. Nothing here depends on thread counts,
//! ranks or the machine.
//!
//! The generator is SplitMix64, written out here rather than taken from `rand`, whose `StdRng` may
//! change algorithm between releases: a data order must outlive library upgrades. Seeds for each
//! (stage, epoch, window) are derived with blake3, so nearby seeds give unrelated orders.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and well distributed enough to shuffle.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift with rejection, so there is no bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(n);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }
}

/// A seed for one purpose, derived from the reader seed and a path of labels.
pub fn derive_seed(seed: u64, stage: &str, epoch: u32, purpose: &str, index: u64) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"mixtape.reader.order.v1");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&(stage.len() as u64).to_le_bytes());
    hasher.update(stage.as_bytes());
    hasher.update(&epoch.to_le_bytes());
    hasher.update(purpose.as_bytes());
    hasher.update(&index.to_le_bytes());
    let bytes = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// A uniformly random permutation of `0..n` (Fisher-Yates) drawn from `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut items: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    items
}

/// Where one epoch's rows come from: shard order and prefix sums of their rows.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    seed: u64,
    stage: String,
    epoch: u32,
    shuffle: bool,
    window: u64,
    /// Shard indices (positions in the manifest's `shards`) in read order.
    shard_order: Vec<u32>,
    /// `starts[i]`: layout position of the first row of `shard_order[i]`; one extra entry, the total.
    starts: Vec<u64>,
}

impl EpochOrder {
    /// The order of `epoch` over shards holding `shard_rows[i]` rows. `shuffle == false` keeps
    /// shards in index order and rows in file order.
    pub fn new(
        seed: u64,
        stage: &str,
        epoch: u32,
        shard_rows: &[u64],
        shuffle: bool,
        window: usize,
    ) -> Self {
        let shard_order = if shuffle {
            permutation(
                shard_rows.len(),
                derive_seed(seed, stage, epoch, "shards", 0),
            )
        } else {
            (0..shard_rows.len() as u32).collect()
        };
        let mut starts = Vec::with_capacity(shard_order.len() + 1);
        let mut total = 0u64;
        for &shard in &shard_order {
            starts.push(total);
            total += shard_rows[shard as usize];
        }
        starts.push(total);
        Self {
            seed,
            stage: stage.to_string(),
            epoch,
            shuffle,
            window: window.max(1) as u64,
            shard_order,
            starts,
        }
    }

    /// `starts[shard]`: the layout position of shard `shard`'s first row in this epoch.
    pub fn shard_starts(&self) -> Vec<u64> {
        let mut starts = vec![0; self.shard_order.len()];
        for (slot, &shard) in self.shard_order.iter().enumerate() {
            starts[shard as usize] = self.starts[slot];
        }
        starts
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Rows in the epoch.
    pub fn rows(&self) -> u64 {
        *self.starts.last().unwrap_or(&0)
    }

    pub fn window_rows(&self) -> u64 {
        self.window
    }

    /// The window holding order position `position`.
    pub fn window_of(&self, position: u64) -> u64 {
        position / self.window
    }

    /// Order positions `[start, end)` of window `window`.
    pub fn window_span(&self, window: u64) -> (u64, u64) {
        let start = window * self.window;
        (start, (start + self.window).min(self.rows()))
    }

    /// The permutation of window `window`: entry `i` is the layout offset (from the window start)
    /// of the row at order position `window_start + i`.
    pub fn window_permutation(&self, window: u64) -> Vec<u32> {
        let (start, end) = self.window_span(window);
        let len = end.saturating_sub(start) as usize;
        if !self.shuffle || self.window == 1 {
            return (0..len as u32).collect();
        }
        permutation(
            len,
            derive_seed(self.seed, &self.stage, self.epoch, "window", window),
        )
    }

    /// `(shard index, row in shard)` of layout position `layout` (below [`Self::rows`]).
    pub fn locate(&self, layout: u64) -> Option<(u32, u64)> {
        if layout >= self.rows() {
            return None;
        }
        // The last start <= layout; empty shards share a start with their successor and are skipped
        // because we take the last such entry.
        let slot = self.starts.partition_point(|&s| s <= layout) - 1;
        Some((self.shard_order[slot], layout - self.starts[slot]))
    }

    /// `(shard, row)` of every order position in `[start, end)`, in order. Positions outside the
    /// epoch are skipped.
    pub fn rows_at(&self, positions: impl IntoIterator<Item = u64>) -> Vec<(u32, u64)> {
        let mut current: Option<(u64, Vec<u32>)> = None;
        let mut out = Vec::new();
        for p in positions {
            let w = self.window_of(p);
            if current.as_ref().is_none_or(|(cw, _)| *cw != w) {
                current = Some((w, self.window_permutation(w)));
            }
            let Some((_, perm)) = current.as_ref() else {
                continue;
            };
            let (start, _) = self.window_span(w);
            let Some(&offset) = perm.get((p - start) as usize) else {
                continue;
            };
            if let Some(location) = self.locate(start + u64::from(offset)) {
                out.push(location);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_values() {
        // First outputs for seed 1234567 from the reference C implementation (Vigna).
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }

    #[test]
    fn below_stays_in_range_and_permutations_are_permutations() {
        let mut rng = SplitMix64::new(9);
        assert!((0..1000).all(|_| rng.below(7) < 7));
        let mut p = permutation(100, 5);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert_eq!(permutation(100, 5), permutation(100, 5));
        assert!(permutation(0, 1).is_empty());
    }

    #[test]
    fn every_row_appears_once_per_epoch_and_epochs_differ() {
        let rows = [5, 0, 7, 3, 11];
        let order = EpochOrder::new(7, "sft", 0, &rows, true, 4);
        let all = order.rows_at(0..order.rows());
        let mut sorted = all.clone();
        sorted.sort_unstable();
        let expected: Vec<(u32, u64)> = rows
            .iter()
            .enumerate()
            .flat_map(|(s, &n)| (0..n).map(move |r| (s as u32, r)))
            .collect();
        assert_eq!(sorted, expected);
        let next = EpochOrder::new(7, "sft", 1, &rows, true, 4);
        assert_ne!(next.rows_at(0..next.rows()), all);
        let other_stage = EpochOrder::new(7, "warmup", 0, &rows, true, 4);
        assert_ne!(other_stage.rows_at(0..other_stage.rows()), all);
    }

    #[test]
    fn without_shuffle_rows_come_in_file_order() {
        let order = EpochOrder::new(7, "sft", 3, &[2, 0, 3], false, 4);
        assert_eq!(
            order.rows_at(0..5),
            [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]
        );
        assert_eq!(order.locate(5), None);
    }

    #[test]
    fn a_window_only_draws_from_its_own_layout_span() {
        let order = EpochOrder::new(1, "s", 0, &[10, 10, 10], true, 8);
        for w in 0..4 {
            let (start, end) = order.window_span(w);
            let locations = order.rows_at(start..end);
            let layout: Vec<(u32, u64)> = (start..end).filter_map(|l| order.locate(l)).collect();
            let mut a = locations.clone();
            let mut b = layout.clone();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "window {w}");
        }
    }
}
