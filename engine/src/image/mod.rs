//! Image geometry and pixels.
//!
//! Two concerns live here, both independent of any image codec:
//!
//! - [`resize`]: the Qwen2.5-VL `smart_resize` rule, which decides the size an image is trained at and
//!   therefore how many LLM tokens it costs. The planner calls it on header sizes for millions of images,
//!   so it is pure integer/float arithmetic with typed errors, bit-for-bit faithful to the Python.
//! - [`rgb`]: [`RgbImage`], the plain RGB8 buffer that the synthetic generators draw into. It is kept
//!   deliberately minimal (no codecs, no resampling): encoders and resizers belong to the builder.

pub mod resize;
pub mod rgb;

pub use resize::{ResizeError, ResizePolicy, grid, image_tokens, smart_resize};
pub use rgb::RgbImage;
