//! Packing: a stream of encoded samples -> fixed-length packs of at most `seq_len` tokens.
//!
//! A [`Packer`] takes [`PackItem`]s (a sample's id, its token count and how many of those are image
//! tokens) one at a time and hands back every [`Pack`] that is complete; [`Packer::finish`] flushes
//! the rest. The shard writer then lays each pack's samples out back to back, resetting position ids
//! at every sample start (FACTS.md section 4), so the packer only decides *which* samples share a
//! sequence and in what order; it never cuts a sample, and so never cuts through an image.
//!
//! Invariants, for every input and both algorithms (the property tests in `tests.rs` check them):
//! - every accepted item lands in exactly one emitted pack: none lost, none duplicated;
//! - no pack holds more than `seq_len` tokens, nor more image tokens than `max_image_tokens`;
//! - no pack is empty, and the ids inside a pack are in ascending order (the layout order);
//! - the output is a pure function of the sequence of accepted items: the same items give the same
//!   packs, however the pushes are split into calls ([`Packer::push`] one by one or
//!   [`Packer::push_batch`] in chunks of any size);
//! - an item that can never fit ([`PackError::ItemTooLarge`]) is refused and leaves the packer
//!   exactly as it was; the builder rejects such samples before packing, so this is a guard;
//! - memory is bounded: the packer holds at most `buffer` items (best-fit-decreasing) or one
//!   pack's worth (greedy) between calls.
//!
//! Why shaped so:
//! - [`PackAlgorithm::Greedy`] concatenates in arrival order and starts a new pack when the next
//!   item does not fit. It is what most pipelines do today and is kept as the baseline.
//! - [`PackAlgorithm::Bfd`] is best-fit-decreasing over a window of `buffer` items (the approach
//!   of OLMo-core and Ding et al. 2024). Plain windowed BFD wastes the tail of every window: the
//!   last bins it opens get only the leftovers. So a round emits only the bins that are *closed*
//!   (no item of the current window could still fit them) and carries the items of the other,
//!   under-filled bins into the next window, where they are re-packed with fresh items. Two bounds
//!   keep that from growing memory or starving an item: at most half a window is carried, and an
//!   item already carried [`MAX_CARRIES`] times has its bin emitted as it is. Placement uses a
//!   `BTreeSet` keyed by (remaining space, bin index), so finding the tightest bin that fits is a
//!   range lookup, not a scan. See `bfd.rs` for the details.
//! - Ties are always broken by id (the sample's position in the stage's deterministic order), never
//!   by hashing or addresses, so a build is reproducible byte for byte.
//! - Packs hold ids, not samples: the packer stays cheap to test and to benchmark, and the builder
//!   keeps ownership of the encoded samples.

mod bfd;
mod greedy;
mod stats;
#[cfg(test)]
mod tests;

use crate::recipe::{DEFAULT_PACK_BUFFER, PackPolicy};

pub use crate::recipe::PackAlgorithm;
pub use bfd::MAX_CARRIES;
pub use stats::PackStats;

/// One encoded sample, as far as packing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackItem {
    /// The sample's position in the stage's deterministic order; ties are broken by it.
    pub id: u64,
    /// Every token the sample occupies in a sequence, image tokens included.
    pub tokens: u32,
    /// How many of those tokens are image tokens (counted against `max_image_tokens`).
    pub image_tokens: u32,
}

impl PackItem {
    pub fn new(id: u64, tokens: u32, image_tokens: u32) -> Self {
        Self {
            id,
            tokens,
            image_tokens,
        }
    }

    /// A text-only item.
    pub fn text(id: u64, tokens: u32) -> Self {
        Self::new(id, tokens, 0)
    }
}

/// Samples that share one sequence of at most `seq_len` tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pack {
    /// Ids in the order they are laid out in the sequence (ascending).
    pub items: Vec<u64>,
    /// Sum of the items' tokens; the rest of the sequence is padding.
    pub tokens: u32,
    /// Sum of the items' image tokens.
    pub image_tokens: u32,
}

impl Pack {
    /// Padding tokens this pack needs to fill a sequence of `seq_len`.
    pub fn padding(&self, seq_len: u32) -> u32 {
        seq_len.saturating_sub(self.tokens)
    }
}

/// How to pack. Build one with [`PackerConfig::new`] and the `with_*` methods, or from a stage's
/// [`PackPolicy`] with [`PackerConfig::from_policy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackerConfig {
    /// Most tokens in one pack.
    pub seq_len: u32,
    /// Items best-fit-decreasing sorts together (ignored by greedy, but must still be non-zero).
    pub buffer: usize,
    /// Most image tokens in one pack, if set.
    pub max_image_tokens: Option<u32>,
    pub algorithm: PackAlgorithm,
}

impl PackerConfig {
    /// Best-fit-decreasing over [`DEFAULT_PACK_BUFFER`] items, no image cap.
    pub fn new(seq_len: u32) -> Self {
        Self {
            seq_len,
            buffer: DEFAULT_PACK_BUFFER as usize,
            max_image_tokens: None,
            algorithm: PackAlgorithm::Bfd,
        }
    }

    /// The packing settings of a stage whose sequences are `seq_len` tokens long.
    pub fn from_policy(seq_len: u32, policy: &PackPolicy) -> Self {
        Self {
            seq_len,
            buffer: policy.buffer as usize,
            max_image_tokens: policy.max_image_tokens,
            algorithm: policy.algorithm,
        }
    }

    pub fn with_buffer(mut self, buffer: usize) -> Self {
        self.buffer = buffer;
        self
    }

    pub fn with_max_image_tokens(mut self, max_image_tokens: Option<u32>) -> Self {
        self.max_image_tokens = max_image_tokens;
        self
    }

    pub fn with_algorithm(mut self, algorithm: PackAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    fn validate(&self) -> Result<(), PackError> {
        if self.seq_len == 0 {
            return Err(PackError::InvalidConfig("seq_len must be at least 1"));
        }
        if self.buffer == 0 {
            return Err(PackError::InvalidConfig("buffer must be at least 1"));
        }
        Ok(())
    }

    /// Without a cap, image tokens are still summed in a `u32`, so `u32::MAX` is the natural limit
    /// and the fit checks never overflow.
    fn image_cap(&self) -> u32 {
        self.max_image_tokens.unwrap_or(u32::MAX)
    }

    /// Whether `item` fits in an empty pack.
    fn check(&self, item: &PackItem) -> Result<(), PackError> {
        if item.tokens > self.seq_len || item.image_tokens > self.image_cap() {
            return Err(PackError::ItemTooLarge {
                id: item.id,
                tokens: item.tokens,
                image_tokens: item.image_tokens,
                seq_len: self.seq_len,
                max_image_tokens: self.max_image_tokens,
            });
        }
        Ok(())
    }
}

/// Why packing refused a config or an item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The config cannot pack anything (a zero `seq_len` or `buffer`).
    #[error("invalid packer config: {0}")]
    InvalidConfig(&'static str),
    /// The item does not fit even in an empty pack. The builder splits or rejects such samples
    /// before packing, so this means a bug upstream.
    #[error(
        "sample {id} cannot fit in any pack: {}",
        too_large_reason(*.tokens, *.image_tokens, *.seq_len, *.max_image_tokens)
    )]
    ItemTooLarge {
        id: u64,
        tokens: u32,
        image_tokens: u32,
        seq_len: u32,
        max_image_tokens: Option<u32>,
    },
}

fn too_large_reason(
    tokens: u32,
    image_tokens: u32,
    seq_len: u32,
    max_image_tokens: Option<u32>,
) -> String {
    match max_image_tokens {
        Some(cap) if image_tokens > cap && tokens <= seq_len => {
            format!("{image_tokens} image tokens, more than max_image_tokens {cap}")
        }
        _ => format!("{tokens} tokens, more than seq_len {seq_len}"),
    }
}

/// Whether `add` more fits on top of `used` under `limit`; never overflows. `used <= limit` is an
/// invariant of every caller, but a violation answers "no" rather than panicking.
fn fits(used: u32, add: u32, limit: u32) -> bool {
    limit.checked_sub(used).is_some_and(|room| add <= room)
}

/// Turns a stream of items into packs; see the module docs for what it guarantees.
#[derive(Debug)]
pub struct Packer {
    config: PackerConfig,
    state: State,
}

#[derive(Debug)]
enum State {
    Greedy(greedy::Greedy),
    Bfd(bfd::Bfd),
}

impl Packer {
    /// A packer for `config`; fails if `seq_len` or `buffer` is zero.
    pub fn try_new(config: PackerConfig) -> Result<Self, PackError> {
        config.validate()?;
        let (seq_len, cap) = (config.seq_len, config.image_cap());
        let state = match config.algorithm {
            PackAlgorithm::Greedy => State::Greedy(greedy::Greedy::new(seq_len, cap)),
            PackAlgorithm::Bfd => State::Bfd(bfd::Bfd::new(seq_len, cap, config.buffer)),
        };
        Ok(Self { config, state })
    }

    pub fn config(&self) -> &PackerConfig {
        &self.config
    }

    /// Items accepted but not yet in an emitted pack. Never more than `buffer` (best-fit-decreasing)
    /// or one pack's items (greedy) between calls.
    pub fn pending(&self) -> usize {
        match &self.state {
            State::Greedy(g) => g.pending(),
            State::Bfd(b) => b.pending(),
        }
    }

    /// Adds one item and returns the packs it completed (often none). An item that cannot fit in an
    /// empty pack is refused with [`PackError::ItemTooLarge`] and the packer is left unchanged.
    pub fn push(&mut self, item: PackItem) -> Result<Vec<Pack>, PackError> {
        self.config.check(&item)?;
        let mut out = Vec::new();
        self.push_checked(item, &mut out);
        Ok(out)
    }

    /// Adds every item of `items`, in order, and returns the packs they completed. All or nothing:
    /// if any item is too large, none is added and the packer is left unchanged. The packs are the
    /// same as pushing the items one by one.
    pub fn push_batch(&mut self, items: &[PackItem]) -> Result<Vec<Pack>, PackError> {
        items.iter().try_for_each(|item| self.config.check(item))?;
        let mut out = Vec::new();
        for &item in items {
            self.push_checked(item, &mut out);
        }
        Ok(out)
    }

    /// Packs everything still pending and returns those packs.
    pub fn finish(self) -> Vec<Pack> {
        let mut out = Vec::new();
        match self.state {
            State::Greedy(g) => g.finish(&mut out),
            State::Bfd(b) => b.finish(&mut out),
        }
        out
    }

    fn push_checked(&mut self, item: PackItem, out: &mut Vec<Pack>) {
        match &mut self.state {
            State::Greedy(g) => g.push(item, out),
            State::Bfd(b) => b.push(item, out),
        }
    }
}

/// Packs a whole stream at once: every pack [`Packer::push`] and [`Packer::finish`] would emit, in
/// order. Fails (with no packs) on the first item that is too large.
pub fn pack_all(
    config: PackerConfig,
    items: impl IntoIterator<Item = PackItem>,
) -> Result<Vec<Pack>, PackError> {
    let mut packer = Packer::try_new(config)?;
    let mut out = Vec::new();
    for item in items {
        packer.config.check(&item)?;
        packer.push_checked(item, &mut out);
    }
    out.extend(packer.finish());
    Ok(out)
}
