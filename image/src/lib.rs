//! mixtape's image layer: geometry, pixels and codecs, shared by the builder (engine) and the
//! shard reader (shards), so that both resize with the same rule and the same code.
//!
//! Two concerns are independent of any image codec:
//!
//! - [`geometry`]: the Qwen2.5-VL [`smart_resize`] rule, which decides the size an image is
//!   trained at and therefore how many LLM tokens it costs. The planner calls it on header sizes for
//!   millions of images, so it is pure integer/float arithmetic with typed errors, bit-for-bit
//!   faithful to the Python.
//! - [`rgb`]: [`RgbImage`], the plain RGB8 buffer that the synthetic generators draw into. It is kept
//!   deliberately minimal (no codecs, no resampling): encoders and resizers belong to the builder.
//!
//! The builder's per-image pipeline lives beside them, one stage per module, pure Rust by default:
//! [`decoder`] (JPEG/PNG/WebP bytes -> upright RGB8, honouring EXIF orientation via
//! [`exif`]), [`resample`] (bicubic [`resize()`] to an exact size), [`encode`] (JPEG 4:2:0 / PNG)
//! and [`pipeline`]'s [`process()`] (decode -> `smart_resize` -> resample -> encode, with stable
//! reject codes). [`ImageEncoding`] names how the result is stored, for the recipe, the builder and the
//! shards alike.
//!
//! Module names differ from the functions they hold ([`decoder`] holds [`decode()`], [`geometry`]
//! holds [`smart_resize()`], [`resample`] holds [`resize()`], [`pipeline`] holds [`process()`]), so that a path or a doc link names
//! one thing.
//!
//! With the `libjpeg-turbo` feature, JPEGs are encoded by the system libjpeg-turbo through a C shim
//! (`turbo`, the crate's only `unsafe` code) instead of the pure-Rust jpeg-encoder, which stays
//! selectable: see [`encode`] and [`JpegEncoder`].

pub mod decoder;
pub mod encode;
pub mod encoding;
pub mod exif;
pub mod geometry;
pub mod pipeline;
pub mod resample;
pub mod rgb;
#[cfg(feature = "libjpeg-turbo")]
mod turbo;

pub use decoder::{
    DEFAULT_MAX_DECODED_PIXELS, DecodeError, ImageFormat, check, check_with_limit, decode,
    decode_into, decode_with_limit,
};
pub use encode::{
    DEFAULT_JPEG_QUALITY, EncodeError, JpegEncoder, encode_jpeg, encode_jpeg_with, encode_png,
    jpeg_encoder_id,
};
pub use encoding::ImageEncoding;
pub use exif::{Orientation, jpeg_orientation, tiff_orientation};
pub use geometry::{ResizeError, ResizePolicy, grid, image_tokens, smart_resize};
pub use pipeline::{ProcessError, ProcessedImage, process};
pub use resample::{ResampleError, resize};
pub use rgb::RgbImage;
