//! Encoding an [`RgbImage`] as baseline JPEG (4:2:0) or PNG, deterministically.
//!
//! Shards store the resized image re-encoded, so the encoders decide both shard size and whether a
//! rebuild is byte-identical.
//!
//! # JPEG encoders
//!
//! Two encoders write the same kind of file, picked by [`JpegEncoder`]:
//!
//! - libjpeg-turbo, the system C library (with the crate's `libjpeg-turbo` feature, which the
//!   `mixtape` CLI enables by default): the default when built in. Encoding is most of the
//!   per-image build time, and libjpeg-turbo's SIMD kernels (colour conversion, downsampling, DCT,
//!   quantisation, Huffman coding) make it about 5x faster than jpeg-encoder on the builder's
//!   images (benches/image, encode stage, three runs: 2.0-2.2 against 10.5-11.7 ms for a 0.6 MP
//!   image at q90 on x86_64 with AVX2), while keeping the bytes independent of the CPU (see
//!   below).
//! - jpeg-encoder, pure Rust: the default without the feature, so a machine with only the Rust
//!   toolchain still builds shards; always available as [`JpegEncoder::JpegEncoderRs`].
//!
//! Both use the same settings and the same quantisation tables, but they are different encoders and
//! write different bytes for the same pixels (measured on the demo images and test pictures:
//! libjpeg-turbo's files 0.1-0.2% smaller). [`jpeg_encoder_id`] names the one in use, and a build's
//! `build.json` records it: rebuilds are byte-identical only with the same encoder.
//! libjpeg-turbo's output is byte-identical to Pillow's `save(..., "JPEG", quality=q,
//! subsampling=2)` for the same RGB pixels (measured: 29 images at q50/90/95 against Pillow 13.0,
//! which bundles libjpeg-turbo 3.2.0, with this crate on the system's 2.1.5), so Python tooling can
//! reproduce shard bytes.
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
//!   the bytes but made encoding roughly 30% slower. libjpeg-turbo uses the accurate integer DCT
//!   (`JDCT_ISLOW`), never the fast or float ones.
//! - Same bytes on every machine. jpeg-encoder is built without its `simd` feature, whose AVX2 path
//!   (picked at run time) writes different bytes from the scalar path: it was about 1.3x faster,
//!   but shards that depend on the builder's CPU would defeat byte-identical rebuilds.
//!   libjpeg-turbo also picks its SIMD path at run time, but its kernels for these settings are
//!   written to compute exactly what its C code computes (integer arithmetic throughout with the
//!   islow DCT), so the bytes do not depend on the path. `image/tests/jpeg_simd_determinism.rs`
//!   checks this: it encodes photo-like, drawn and odd-sized images at three qualities under
//!   `JSIMD_FORCENONE`, `JSIMD_FORCESSE2`, `JSIMD_FORCEAVX2` and `JSIMD_NOHUFFENC` and requires one
//!   hash for all. What can change the bytes is a different libjpeg-turbo version, which is why
//!   [`jpeg_encoder_id`] includes it.
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
    /// A side is zero, or too long for the format: JPEG sides are at most 65,535 pixels with
    /// jpeg-encoder and 65,500 with libjpeg-turbo ([`JpegEncoder::max_side`]).
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

/// A JPEG encoder. All of them write baseline JPEGs with the settings in the module docs, but each
/// writes its own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JpegEncoder {
    /// The system libjpeg-turbo through a small C shim (`libjpeg-turbo` feature).
    #[cfg(feature = "libjpeg-turbo")]
    LibjpegTurbo,
    /// The pure-Rust jpeg-encoder crate, scalar (no `simd` feature).
    JpegEncoderRs,
}

/// The jpeg-encoder release line the workspace depends on (`jpeg-encoder = "0.7"`).
const JPEG_ENCODER_RS_VERSION: &str = "0.7";

impl JpegEncoder {
    /// The encoder [`encode_jpeg`] uses: libjpeg-turbo when the feature is on, else jpeg-encoder.
    #[cfg(feature = "libjpeg-turbo")]
    pub const DEFAULT: JpegEncoder = JpegEncoder::LibjpegTurbo;
    /// The encoder [`encode_jpeg`] uses: libjpeg-turbo when the feature is on, else jpeg-encoder.
    #[cfg(not(feature = "libjpeg-turbo"))]
    pub const DEFAULT: JpegEncoder = JpegEncoder::JpegEncoderRs;

    /// Every encoder built in, the default first.
    pub const ALL: &'static [JpegEncoder] = &[
        #[cfg(feature = "libjpeg-turbo")]
        JpegEncoder::LibjpegTurbo,
        JpegEncoder::JpegEncoderRs,
    ];

    /// The encoder and its version, e.g. `"libjpeg-turbo 2.1.5"` or `"jpeg-encoder 0.7"`: what a
    /// build's `build.json` records, since each encoder (and version) writes its own bytes.
    pub fn id(self) -> String {
        match self {
            #[cfg(feature = "libjpeg-turbo")]
            JpegEncoder::LibjpegTurbo => format!("libjpeg-turbo {}", super::turbo::version()),
            JpegEncoder::JpegEncoderRs => format!("jpeg-encoder {JPEG_ENCODER_RS_VERSION}"),
        }
    }

    /// The longest side the encoder takes: 65,535 (the format's limit) for jpeg-encoder, 65,500
    /// (libjpeg's `JPEG_MAX_DIMENSION`) for libjpeg-turbo.
    pub const fn max_side(self) -> u32 {
        match self {
            #[cfg(feature = "libjpeg-turbo")]
            JpegEncoder::LibjpegTurbo => 65_500,
            JpegEncoder::JpegEncoderRs => u16::MAX as u32,
        }
    }
}

/// [`JpegEncoder::DEFAULT`]'s id, e.g. `"libjpeg-turbo 2.1.5"`: which encoder [`encode_jpeg`]
/// writes with.
pub fn jpeg_encoder_id() -> String {
    JpegEncoder::DEFAULT.id()
}

/// Encodes `img` as a baseline JPEG with 4:2:0 chroma subsampling at `quality` (1 to 100), with
/// [`JpegEncoder::DEFAULT`].
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, EncodeError> {
    encode_jpeg_with(img, quality, JpegEncoder::DEFAULT)
}

/// Encodes `img` as a baseline JPEG with 4:2:0 chroma subsampling at `quality` (1 to 100), with
/// `encoder`. Every encoder rejects the same inputs with the same errors, except that
/// libjpeg-turbo's longest side is 65,500 pixels rather than 65,535.
pub fn encode_jpeg_with(
    img: &RgbImage,
    quality: u8,
    encoder: JpegEncoder,
) -> Result<Vec<u8>, EncodeError> {
    if !(1..=100).contains(&quality) {
        return Err(EncodeError::InvalidQuality(quality));
    }
    checked(img)?;
    let max_side = encoder.max_side();
    if img.width == 0 || img.height == 0 || img.width > max_side || img.height > max_side {
        return Err(EncodeError::BadSize {
            format: "jpeg",
            height: img.height,
            width: img.width,
        });
    }
    // Compressed size is rarely above a quarter of the raw size at these qualities.
    let capacity = img.pixels.len() / 4 + 1024;
    match encoder {
        #[cfg(feature = "libjpeg-turbo")]
        JpegEncoder::LibjpegTurbo => {
            // The shim grows its own buffer from `capacity`; the Vec it returns is exact-size.
            let encoded =
                super::turbo::encode_rgb(&img.pixels, img.width, img.height, quality, capacity);
            encoded.map_err(|detail| EncodeError::Encoder {
                format: "jpeg",
                detail,
            })
        }
        JpegEncoder::JpegEncoderRs => encode_jpeg_rs(img, quality, capacity),
    }
}

/// jpeg-encoder; `img` is already checked (quality, buffer, sides within 1..=65,535).
fn encode_jpeg_rs(img: &RgbImage, quality: u8, capacity: usize) -> Result<Vec<u8>, EncodeError> {
    let bad_size = || EncodeError::BadSize {
        format: "jpeg",
        height: img.height,
        width: img.width,
    };
    let width = u16::try_from(img.width).map_err(|_| bad_size())?;
    let height = u16::try_from(img.height).map_err(|_| bad_size())?;
    let mut out = Vec::with_capacity(capacity);
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
