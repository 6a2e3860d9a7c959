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
//!   Pillow's default). jpeg-encoder alone would switch to 4:4:4 at quality >= 90, which costs 15%
//!   (photos) to 30% (the demo drawings) more bytes for colour detail finer than the vision
//!   encoder's 14-pixel patches. Standard Huffman tables, as libjpeg and Pillow default to: an
//!   optimising pass would save 9% (grainy 1 MP) to 20% (small drawings) of the bytes but makes
//!   encoding about 30% slower.
//! - Same bytes on every machine: jpeg-encoder is built without its `simd` feature, whose AVX2 path
//!   (picked at run time) writes different bytes from the scalar path. It was about 1.3x faster,
//!   but shards that depend on the builder's CPU would defeat byte-identical rebuilds.
//! - PNG: 8-bit RGB, the png crate's `Compression::Fast` (fdeflate with adaptive filtering):
//!   lossless, much faster than zlib-level compression, at somewhat larger files.

use jpeg_encoder::{ChromaSubsamplingMethod, Encoder, ImageBuffer, JpegColorType, SamplingFactor};
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
    // The chroma planes are already box-averaged (see `Ycbcr420`): take one sample per 2x2 block.
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Nearest);
    encoder
        .encode_image(Ycbcr420::new(img, width, height))
        .map_err(|e| EncodeError::Encoder {
            format: "jpeg",
            detail: e.to_string(),
        })?;
    Ok(out)
}

/// An RGB image converted to JPEG's YCbCr, with each chroma value replaced by the average of its
/// 2x2 block (libjpeg's `h2v2_downsample`: a block past the right or bottom edge repeats the last
/// column or row, and the rounding bias alternates 1, 2 by output column). jpeg-encoder's own
/// `ChromaSubsamplingMethod::Average` computes the same averages but divides by a run-time block
/// size for every sample, which made encoding about 40% slower than taking one sample per block;
/// averaging here and letting the encoder take one sample gives the same pixels at that cost.
struct Ycbcr420 {
    width: u16,
    height: u16,
    luma: Vec<u8>,
    /// `ceil(width / 2) x ceil(height / 2)` averaged samples each.
    cb: Vec<u8>,
    cr: Vec<u8>,
}

impl Ycbcr420 {
    /// `img` must hold `3 * width * height` bytes (checked by the caller).
    fn new(img: &RgbImage, width: u16, height: u16) -> Self {
        let (w, h) = (usize::from(width), usize::from(height));
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut luma = Vec::with_capacity(w * h);
        let (mut cb, mut cr) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
        // Per-row chroma, reused for the two rows of each block.
        let mut row_cb = [vec![0u16; w], vec![0u16; w]];
        let mut row_cr = [vec![0u16; w], vec![0u16; w]];
        for block_row in 0..ch {
            // Rows of the block; past the bottom edge, the last row again.
            let rows = [2 * block_row, (2 * block_row + 1).min(h - 1)];
            for (k, &y) in rows.iter().enumerate() {
                let line = &img.pixels[3 * y * w..3 * (y + 1) * w];
                for (x, px) in line.chunks_exact(3).enumerate() {
                    let (l, b, r) = jpeg_encoder::rgb_to_ycbcr(px[0], px[1], px[2]);
                    if k == 0 || rows[1] != rows[0] {
                        luma.push(l);
                    }
                    row_cb[k][x] = u16::from(b);
                    row_cr[k][x] = u16::from(r);
                }
            }
            for i in 0..cw {
                // Columns of the block; past the right edge, the last column again.
                let (x0, x1) = (2 * i, (2 * i + 1).min(w - 1));
                let bias = 1 + (i as u16 & 1);
                let sum = |plane: &[Vec<u16>; 2]| plane[0][x0] + plane[0][x1] + plane[1][x0] + plane[1][x1];
                // At most 4 * 255 + 2 before the shift: fits u16, and the result fits u8.
                cb.push(((sum(&row_cb) + bias) >> 2) as u8);
                cr.push(((sum(&row_cr) + bias) >> 2) as u8);
            }
        }
        Ycbcr420 { width, height, luma, cb, cr }
    }
}

impl ImageBuffer for Ycbcr420 {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, y) = (usize::from(self.width), usize::from(y));
        let cw = w.div_ceil(2);
        buffers[0].extend_from_slice(&self.luma[y * w..(y + 1) * w]);
        // Every pixel of a block carries the block's average; the encoder samples even columns.
        let chroma = (y / 2) * cw..(y / 2 + 1) * cw;
        for (plane, out) in [(&self.cb, 1), (&self.cr, 2)] {
            let samples = &plane[chroma.clone()];
            buffers[out].extend(samples.iter().flat_map(|&c| [c, c]).take(w));
        }
    }
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
    Ok(out)
}
