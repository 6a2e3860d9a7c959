//! Encoding an [`RgbImage`] as baseline JPEG (4:2:0) or PNG, deterministically.
//!
//! Shards store the resized image re-encoded, so the encoders decide both shard size and whether a
//! rebuild is byte-identical.
//!
//! # Invariants
//!
//! - Same pixels and settings, same bytes: neither encoder writes timestamps, random ids or
//!   metadata (no EXIF, so no stale orientation and no GPS; no `tIME` or text chunks). JPEGs carry
//!   only a JFIF header with the default density; PNGs only IHDR, IDAT and IEND.
//! - JPEG: 4:2:0 chroma subsampling at every quality, with box-averaged chroma (libjpeg's and
//!   Pillow's default). jpeg-encoder alone would switch to 4:4:4 at quality >= 90, which costs
//!   12-15% (photo-like images) to 30% (the demo drawings) more bytes for colour detail finer than
//!   the vision encoder's 14-pixel patches. Standard Huffman tables, as libjpeg and Pillow default
//!   to: an optimising pass would save 9% (a grainy 1 MP image) to 20% (the small demo drawings) of
//!   the bytes but made encoding roughly 30% slower.
//! - Same bytes on every machine: jpeg-encoder is built without its `simd` feature, whose AVX2 path
//!   (picked at run time) writes different bytes from the scalar path. It was about 1.3x faster,
//!   but shards that depend on the builder's CPU would defeat byte-identical rebuilds.
//! - PNG: 8-bit RGB, the png crate's `Compression::Fast` (fdeflate with adaptive filtering):
//!   lossless, much faster than zlib-level compression, at somewhat larger files.

use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};
use thiserror::Error;

use super::resample::{ResampleError, check_buffer};
use super::rgb::RgbImage;

/// The JPEG quality shards use unless a recipe says otherwise: visually lossless for photos at
/// about a third of the size of quality 100.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// Why an image could not be encoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// JPEG quality outside 1 to 100.
    #[error("JPEG quality must be between 1 and 100, not {0}")]
    InvalidQuality(u8),
    /// A side is zero, or too long for the format (JPEG sides are at most 65,535 pixels).
    #[error("cannot encode a {height}x{width} (HxW) image as {format}")]
    BadSize {
        format: &'static str,
        height: u32,
        width: u32,
    },
    /// The image's buffer does not hold exactly `3 * width * height` bytes.
    #[error("image buffer holds {len} bytes, not 3 x {width} x {height}")]
    BadBuffer { width: u32, height: u32, len: usize },
    /// The encoder itself failed.
    #[error("{format} encoder failed: {detail}")]
    Encoder {
        format: &'static str,
        detail: String,
    },
}

fn checked(img: &RgbImage) -> Result<(), EncodeError> {
    check_buffer(img).map_err(|e| match e {
        ResampleError::BadBuffer { width, height, len } => {
            EncodeError::BadBuffer { width, height, len }
        }
        other => EncodeError::Encoder {
            format: "image",
            detail: other.to_string(),
        },
    })
}

/// Encodes `img` as a baseline JPEG with 4:2:0 chroma subsampling at `quality` (1 to 100).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, EncodeError> {
    if !(1..=100).contains(&quality) {
        return Err(EncodeError::InvalidQuality(quality));
    }
    checked(img)?;
    let bad_size = || EncodeError::BadSize {
        format: "jpeg",
        height: img.height,
        width: img.width,
    };
    let width = u16::try_from(img.width).map_err(|_| bad_size())?;
    let height = u16::try_from(img.height).map_err(|_| bad_size())?;
    if width == 0 || height == 0 {
        return Err(bad_size());
    }
    // Compressed size is rarely above a quarter of the raw size at these qualities.
    let mut out = Vec::with_capacity(img.pixels.len() / 4 + 1024);
    let mut encoder = Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    encoder
        .encode(&img.pixels, width, height, ColorType::Rgb)
        .map_err(|e| EncodeError::Encoder {
            format: "jpeg",
            detail: e.to_string(),
        })?;
    // The estimate above is 2-10x the real size at q90; the bytes live on in a pack buffer until the
    // shard is written, so hand the slack back (measured: build peak RSS 397 -> 98 MiB).
    out.shrink_to_fit();
    Ok(out)
}

/// Encodes `img` as an 8-bit RGB PNG (lossless).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, EncodeError> {
    checked(img)?;
    if img.width == 0 || img.height == 0 {
        return Err(EncodeError::BadSize {
            format: "png",
            height: img.height,
            width: img.width,
        });
    }
    let failed = |e: png::EncodingError| EncodeError::Encoder {
        format: "png",
        detail: e.to_string(),
    };
    let mut out = Vec::with_capacity(img.pixels.len() / 2 + 1024);
    let mut encoder = png::Encoder::new(&mut out, img.width, img.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&img.pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    out.shrink_to_fit();
    Ok(out)
}
