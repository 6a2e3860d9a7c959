//! mixtape's image layer: geometry, pixels and codecs, shared by the builder (engine) and the
//! shard reader (shards), so that both resize with the same rule and the same code.
//!
//! Two concerns are independent of any image codec:
//!
//! - [`resize`](mod@resize): the Qwen2.5-VL `smart_resize` rule, which decides the size an image is
//!   trained at and therefore how many LLM tokens it costs. The planner calls it on header sizes for
//!   millions of images, so it is pure integer/float arithmetic with typed errors, bit-for-bit
//!   faithful to the Python.
//! - [`rgb`]: [`RgbImage`], the plain RGB8 buffer that the synthetic generators draw into. It is kept
//!   deliberately minimal (no codecs, no resampling): encoders and resizers belong to the builder.
//!
//! The builder's per-image pipeline lives beside them, one stage per module, pure Rust by default:
//! [`decode`](mod@decode) (JPEG/PNG/WebP bytes -> upright RGB8, honouring EXIF orientation via
//! [`exif`]), [`resample`] (bicubic resize to an exact size), [`encode`] (JPEG 4:2:0 / PNG) and
//! [`process`](mod@process) (decode -> `smart_resize` -> resample -> encode, with stable reject
//! codes).
//!
//! With the `libjpeg-turbo` feature, JPEGs are encoded by the system libjpeg-turbo through a C shim
//! (`turbo`, the crate's only `unsafe` code) instead of the pure-Rust jpeg-encoder, which stays
//! selectable: see [`encode`] and [`JpegEncoder`].

pub mod decode;
pub mod encode;
pub mod exif;
pub mod process;
pub mod resample;
pub mod resize;
pub mod rgb;
#[cfg(feature = "libjpeg-turbo")]
mod turbo;

pub use decode::{
    DEFAULT_MAX_DECODED_PIXELS, DecodeError, ImageFormat, check, check_with_limit, decode,
    decode_into, decode_with_limit,
};
pub use encode::{
    DEFAULT_JPEG_QUALITY, EncodeError, JpegEncoder, encode_jpeg, encode_jpeg_with, encode_png,
    jpeg_encoder_id,
};
pub use exif::{Orientation, jpeg_orientation, tiff_orientation};
pub use process::{Encoding, ProcessError, ProcessedImage, process};
pub use resample::{ResampleError, resize};
pub use resize::{ResizeError, ResizePolicy, grid, image_tokens, smart_resize};
pub use rgb::RgbImage;
