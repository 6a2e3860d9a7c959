//! mixtape's trainer bridge: a tch (libtorch) training loop that consumes mixtape shard sets stage
//! by stage, and the template users adapt to their own model.
//!
//! Layers, from data to results:
//! - [`data`]: rows from one shard reader over the whole schedule (training, with the resume cursor
//!   and the realized-mix tally) and held-back rows read by position (evaluation);
//! - [`model_input`]: packed rows -> one flat micro-batch (segments, loss targets, image patches);
//! - [`model`]: a small Qwen2.5-VL-shaped MLLM (vision tower, 2x2 merger + MLP projector, decoder LM)
//!   with block-diagonal attention over packed samples and optional per-block recomputation;
//! - [`schedule`]: the recipe's `train` hints joined with the build's manifests;
//! - [`optim`]: AdamW whose state can be checkpointed; [`checkpoint`]: safetensors files;
//! - [`train`]: the loop; [`log`] and [`svg`]: the JSONL log and the loss curve;
//! - [`eval`]: held-back loss and test-time resolution search; [`average`]: checkpoint soups;
//! - [`device`]: `cpu`, `cuda[:i]`, `npu[:i]`.
//!
//! The crate links libtorch, which the root `mixtape` binary never does: it is a workspace member
//! outside `default-members`, built by `cargo test --workspace` or `-p mixtape-trainer-bridge`.

pub mod average;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod eval;
pub mod log;
pub mod model;
pub mod model_input;
pub mod npu;
pub mod optim;
pub mod schedule;
pub mod svg;
pub mod train;
