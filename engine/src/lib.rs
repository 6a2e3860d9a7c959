//! mixtape-engine: the recipe model, the planner and (later) the shard-set builder.
//!
//! Layers, from input to output: [`recipe`] (YAML with spans -> validated recipe), [`source`] (files ->
//! records -> [`sample::Sample`]s), [`synthetic`] (the built-in demo generators), [`image`] (the
//! Qwen2.5-VL resize rule and pixels), [`template`] (samples -> token ids and loss masks), [`index`]
//! (per-source length index, cached by content hash), [`plan`] (recipe + index -> exact draws and a
//! fingerprint) and [`diff`] (what changed between two plans); [`reject`] names why a record is
//! left out, the same way in every layer.

pub mod audit;
pub mod build;
pub mod diag;
pub mod diff;
/// The image layer lives in its own crate so the shard reader can resize with the same code.
pub use mixtape_image as image;
pub mod index;
pub mod pack;
pub mod plan;
pub mod recipe;
pub mod reject;
pub mod resolve;
pub mod sample;
pub mod source;
pub mod synthetic;
pub mod template;
pub mod yaml;
