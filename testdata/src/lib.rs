//! mixtape-testdata: the seeded data that tests, benches and examples share, written once.
//!
//! - [`SplitMix64`]: the generator every seeded test stream comes from, so a seed names a stream on
//!   every machine and a failing case replays from its seed.
//! - [`demo_lengths`]: a demo-like mix of sample lengths (captions, VQA, OCR, long text) for the
//!   packer's tests and bench.
//! - [`rows`]: synthetic packed rows (Zipf-like token ids, optional incompressible images) for shard
//!   writers, readers and benches.
//!
//! Not for production code: the engine's synthetic generators and the shard reader's epoch order
//! keep their own SplitMix64s, whose range sampling is part of what they produce (a plan fingerprint,
//! a data order) and must not change when a test helper does. This crate is `publish = false` and
//! only ever a dev-dependency. Unit tests inside `mixtape-shards` cannot use [`rows`] (their
//! `PackedRow` is another compilation of the type); they keep `shards/src/testing.rs`.

mod lengths;
mod rng;
pub mod rows;

pub use lengths::{DemoLength, demo_lengths};
pub use rng::SplitMix64;
