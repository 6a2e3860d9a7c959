//! Decoding JPEG, PNG and WebP bytes into upright RGB8 pixels.
//!
//! [`decode`] sniffs the format from magic bytes (never from a file name, which datasets get wrong),
//! decodes with a pure-Rust decoder, converts whatever the file holds to [`RgbImage`] and applies the
//! JPEG's EXIF orientation, so the result is the picture as a viewer displays it.
//!
//! # Invariants
//!
//! - The decoded `(height, width)` is the size the source readers report from the header (after the
//!   same EXIF rule, see [`super::exif`]): the planner counted vision tokens from that size.
//! - Bad input is an error, never a panic, a hang or an unbounded allocation: images above
//!   `max_pixels` are refused from their header before any pixel buffer is allocated, and the
//!   decoders' work is linear in the input. As a backstop against a bug in a decoder, a panic inside
//!   one is caught and reported as [`DecodeError::DecoderPanicked`] (the panic hook still prints it),
//!   so one poisoned image cannot take down a build.
//! - A JPEG whose entropy-coded data does not reach an end-of-image marker is [`DecodeError::Corrupt`]
//!   ("truncated"). zune-jpeg itself is tolerant, like libjpeg: it fills a cut-off image with grey and
//!   succeeds. Truncated downloads are the common corruption, and Pillow refuses them by default, so
//!   we check for EOI ourselves rather than run zune in strict mode, which would also refuse complete
//!   images with harmless defects (stray bytes between markers) that libjpeg and Pillow accept.
//!
//! # Accepting without decoding
//!
//! [`check`] is the part of [`decode`] that needs no pixel work: the format, the declared size against
//! the limit, the JPEG's end-of-image marker, the PNG's chunk structure (every chunk up to the end of
//! the image data complete, with the right CRC) and the WebP's RIFF length. [`decode`] runs it first, and the
//! planner's header probe runs it on every image, so `check`/`plan` refuse exactly what the builder
//! would refuse for those reasons, with the same message. What only a full decode finds (corrupt
//! entropy-coded JPEG data, a damaged deflate stream inside chunks whose CRCs match) is still found by
//! the builder alone.
//!
//! # Colour conversions
//!
//! - Grayscale is replicated to R = G = B; CMYK and YCCK JPEGs go through zune-jpeg's conversion.
//! - Alpha (RGBA, gray + alpha, palette or gray/RGB with a `tRNS` chunk, WebP with alpha) is
//!   composited on white: `c' = (c * a + 255 * (255 - a)) / 255`, rounded. That is what the Qwen2-VL
//!   processors do (`qwen_vl_utils.to_rgb` and transformers' `convert_to_rgb` both paste onto a white
//!   canvas); merely dropping alpha would show whatever colour the encoder left under transparent
//!   pixels, often black.
//! - 16-bit PNG samples keep their high byte (Pillow does the same for RGB; for 16-bit grayscale it
//!   clamps to 255 instead, which turns most such images white).
//! - Colour profiles (ICC, PNG gamma) are ignored, as in the reference processors.
//! - Animated PNG and WebP yield their first frame.
//!
//! # Determinism across machines
//!
//! zune-jpeg picks AVX2 or NEON kernels at run time. Its AVX2 and portable builds gave identical
//! pixels on every demo JPEG and on a grainy 1 MP one (checked in a scratch crate: zune has no
//! run-time switch to force the portable path, so the test suite cannot compare them); the AVX2
//! build decodes about twice as fast. The PNG and WebP decoders are plain integer Rust.

use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use thiserror::Error;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::exif::{Orientation, jpeg_orientation, jpeg_scan_start};
use super::rgb::RgbImage;

/// The largest image [`decode`] accepts, in pixels: 2^27, about 134 megapixels (12,000 x 11,000).
/// Above any camera photo in training data; below decompression bombs. The RGB buffer alone is then
/// up to 400 MB, so a builder running N decoders in parallel should budget N times that.
pub const DEFAULT_MAX_DECODED_PIXELS: u64 = 1 << 27;

/// Longest side zune-jpeg is allowed to decode. JPEG sides are 16-bit anyway; the area limit is ours.
const JPEG_MAX_SIDE: usize = u16::MAX as usize;

/// An encoded image format [`decode`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    /// Recognises the format from the first bytes, or `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::Webp)
        } else {
            None
        }
    }

    /// Lower-case name: `jpeg`, `png`, `webp`.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "webp",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be decoded into an image.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero bytes.
    #[error("no image data (0 bytes)")]
    Empty,
    /// Not JPEG, PNG or WebP. `seen` names the format when it is a known one (`gif`, `heif/avif`,
    /// ...), else shows the first bytes in hex.
    #[error("unsupported image format: {seen}")]
    Unsupported { seen: String },
    /// The format was recognised but the data is truncated or corrupt.
    #[error("corrupt or truncated {format} image: {detail}")]
    Corrupt { format: ImageFormat, detail: String },
    /// A valid file using a feature the decoder does not handle (a 2-channel JPEG, say).
    #[error("{format} image uses an unsupported feature: {detail}")]
    UnsupportedFeature { format: ImageFormat, detail: String },
    /// The header declares more pixels than the limit (see [`DEFAULT_MAX_DECODED_PIXELS`]).
    #[error(
        "{format} image of {height}x{width} (HxW) has more pixels than the decode limit of \
         {max_pixels}"
    )]
    TooLarge {
        format: ImageFormat,
        height: u64,
        width: u64,
        max_pixels: u64,
    },
    /// The decoder panicked on this input (a bug in it, reported instead of crashing the caller).
    #[error("the {format} decoder panicked on this input: {detail}")]
    DecoderPanicked { format: ImageFormat, detail: String },
}

/// Decodes JPEG, PNG or WebP bytes into the upright RGB8 image, refusing images above
/// [`DEFAULT_MAX_DECODED_PIXELS`]. See the module docs for conversions and guarantees.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    decode_with_limit(bytes, DEFAULT_MAX_DECODED_PIXELS)
}

/// Whether [`decode`] can take `bytes`, as far as that can be told without decoding pixels: the
/// acceptance rule shared by the builder (which runs it inside [`decode`]) and the planner's header
/// probe. See "Accepting without decoding" in the module docs.
pub fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    check_with_limit(bytes, DEFAULT_MAX_DECODED_PIXELS)
}

/// [`check`] with another pixel limit.
pub fn check_with_limit(bytes: &[u8], max_pixels: u64) -> Result<(), DecodeError> {
    let format = ImageFormat::sniff(bytes).ok_or_else(|| unsupported(bytes))?;
    catch_panic(format, || match format {
        ImageFormat::Jpeg => jpeg_headers(bytes, max_pixels).map(drop),
        ImageFormat::Png => check_png(bytes, max_pixels),
        ImageFormat::Webp => check_webp(bytes, max_pixels),
    })
}

/// [`decode`] with another pixel limit.
pub fn decode_with_limit(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    let format = ImageFormat::sniff(bytes).ok_or_else(|| unsupported(bytes))?;
    catch_panic(format, || match format {
        ImageFormat::Jpeg => {
            let mut pixels = Vec::new();
            let (height, width) = decode_jpeg(bytes, max_pixels, &mut pixels)?;
            Ok(RgbImage {
                width,
                height,
                pixels,
            })
        }
        ImageFormat::Png => decode_png(bytes, max_pixels),
        ImageFormat::Webp => decode_webp(bytes, max_pixels),
    })
}

/// [`decode`] into `buffer`, reusing its memory; returns the image's `(height, width)`, and the
/// pixels are `buffer[..height * width * 3]`.
///
/// For a reader that decodes image after image and gets each image's buffer back once the trainer
/// is done with it: a fresh buffer must be zeroed before the JPEG decoder writes it (by the
/// allocator, or by the kernel for new pages), which took a seventh of the decode time, while a
/// recycled one is written in place. The buffer grows when it is too short and is never shortened:
/// bytes past the pixels are left over from earlier images. On error its contents are unspecified.
pub fn decode_into(bytes: &[u8], buffer: &mut Vec<u8>) -> Result<(u32, u32), DecodeError> {
    let format = ImageFormat::sniff(bytes).ok_or_else(|| unsupported(bytes))?;
    if format == ImageFormat::Jpeg {
        return catch_panic(format, || {
            decode_jpeg(bytes, DEFAULT_MAX_DECODED_PIXELS, buffer)
        });
    }
    let image = decode(bytes)?;
    let n = image.pixels.len();
    if buffer.len() < n {
        *buffer = image.pixels;
    } else {
        buffer[..n].copy_from_slice(&image.pixels);
    }
    Ok((image.height, image.width))
}

/// Runs a decoder, reporting a panic inside it as [`DecodeError::DecoderPanicked`].
fn catch_panic<T>(
    format: ImageFormat,
    decoder: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    panic::catch_unwind(AssertUnwindSafe(decoder)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(DecodeError::DecoderPanicked { format, detail })
    })
}

/// Names what unrecognised bytes look like, for the reject message.
fn unsupported(bytes: &[u8]) -> DecodeError {
    if bytes.is_empty() {
        return DecodeError::Empty;
    }
    let known: &[(&[u8], usize, &str)] = &[
        (b"GIF8", 0, "gif"),
        (b"BM", 0, "bmp"),
        (b"II*\0", 0, "tiff"),
        (b"MM\0*", 0, "tiff"),
        (b"ftypavif", 4, "avif"),
        (b"ftypheic", 4, "heic"),
        (b"ftypheix", 4, "heic"),
        (b"ftypmif1", 4, "heif"),
        (b"ftypmsf1", 4, "heif"),
        (&[0xFF, 0x0A], 0, "jpeg xl"),
        (b"\0\0\0\x0cJXL ", 0, "jpeg xl"),
        (b"\0\0\x01\0", 0, "ico"),
        (b"%PDF", 0, "pdf"),
        (b"<svg", 0, "svg"),
        (b"<?xml", 0, "xml (svg?)"),
        (b"<!DOCTYPE", 0, "html"),
        (b"<html", 0, "html"),
        (b"RIFF", 0, "riff (not webp)"),
        (&[0xFF, 0xD8], 0, "jpeg (truncated marker)"),
    ];
    let seen = known
        .iter()
        .find(|(magic, at, _)| bytes.get(*at..).is_some_and(|b| b.starts_with(magic)))
        .map(|(_, _, name)| (*name).to_owned())
        .unwrap_or_else(|| {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("unknown, starting with bytes {}", head.join(" "))
        });
    DecodeError::Unsupported { seen }
}

fn check_size(
    format: ImageFormat,
    height: u64,
    width: u64,
    max_pixels: u64,
) -> Result<(), DecodeError> {
    if height == 0 || width == 0 {
        return Err(DecodeError::Corrupt {
            format,
            detail: format!("empty size {height}x{width}"),
        });
    }
    if height.saturating_mul(width) > max_pixels {
        return Err(DecodeError::TooLarge {
            format,
            height,
            width,
            max_pixels,
        });
    }
    Ok(())
}

/// A JPEG decoder past the headers, with the image's `(width, height)`.
type HeadersRead<'a> = (JpegDecoder<ZCursor<&'a [u8]>>, usize, usize);

/// The JPEG checks of [`check`]: headers parse, the size is within the limit, the colour space is
/// one we convert, and an end-of-image marker follows the image data. Returns the decoder, ready to
/// decode, and its `(width, height)`.
fn jpeg_headers(bytes: &[u8], max_pixels: u64) -> Result<HeadersRead<'_>, DecodeError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let corrupt = |detail: String| DecodeError::Corrupt { format: F, detail };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(JPEG_MAX_SIDE)
        .set_max_height(JPEG_MAX_SIDE);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| corrupt(e.to_string()))?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| corrupt("no frame header".into()))?;
    check_size(F, height as u64, width as u64, max_pixels)?;
    match decoder.input_colorspace() {
        Some(ColorSpace::MultiBand(n)) => {
            return Err(DecodeError::UnsupportedFeature {
                format: F,
                detail: format!("{n} colour components"),
            });
        }
        None => return Err(corrupt("no colour space".into())),
        Some(_) => {}
    }
    // Checked before decoding so a truncated file costs no pixel work. Entropy-coded data cannot
    // contain FF D9 (0xFF is stuffed), so any FF D9 after the first scan ends the image; searched
    // from the end, where it normally is.
    let complete = jpeg_scan_start(bytes)
        .and_then(|sos| bytes.get(sos..))
        .is_some_and(|scan| scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]));
    if !complete {
        return Err(corrupt(
            "truncated: no end-of-image marker after the image data".into(),
        ));
    }
    Ok((decoder, width, height))
}

/// Decodes a JPEG into `buffer` (see [`decode_into`]; an empty buffer comes out exactly the size
/// of the pixels) and returns its `(height, width)`.
fn decode_jpeg(
    bytes: &[u8],
    max_pixels: u64,
    buffer: &mut Vec<u8>,
) -> Result<(u32, u32), DecodeError> {
    const F: ImageFormat = ImageFormat::Jpeg;
    let corrupt = |detail: String| DecodeError::Corrupt { format: F, detail };
    let (mut decoder, width, height) = jpeg_headers(bytes, max_pixels)?;
    let n = decoder
        .output_buffer_size()
        .filter(|&n| Some(n) == width.checked_mul(height).and_then(|p| p.checked_mul(3)))
        .ok_or_else(|| {
            corrupt(format!(
                "no RGB buffer size for a {width}x{height} (WxH) image"
            ))
        })?;
    if buffer.is_empty() {
        // Zeroed by the allocator, which knows when fresh pages already are.
        *buffer = vec![0; n];
    } else if buffer.len() < n {
        buffer.resize(n, 0);
    }
    decoder
        .decode_into(&mut buffer[..n])
        .map_err(|e| corrupt(e.to_string()))?;
    let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(corrupt(format!("{width}x{height} (WxH) is too large"))),
    };
    let orientation = jpeg_orientation(bytes).map_or(Orientation::Normal, Orientation::from_exif);
    if orientation == Orientation::Normal {
        return Ok((h, w));
    }
    let upright = orientation.apply(RgbImage {
        width: w,
        height: h,
        pixels: buffer[..n].to_vec(),
    });
    buffer[..n].copy_from_slice(&upright.pixels);
    Ok((upright.height, upright.width))
}

/// The PNG checks of [`check`]: the header parses and is within the limit, and the chunks are whole
/// with matching CRCs from the signature to the end of the image data. A file cut after its `IHDR`
/// or inside an `IDAT` fails here rather than in the inflater.
fn check_png(bytes: &[u8], max_pixels: u64) -> Result<(), DecodeError> {
    const F: ImageFormat = ImageFormat::Png;
    let corrupt = |detail: String| DecodeError::Corrupt { format: F, detail };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    let (width, height) = decoder
        .read_header_info()
        .map_err(|e| corrupt(e.to_string()))?
        .size();
    check_size(F, u64::from(height), u64::from(width), max_pixels)?;
    // Walk the chunks the decoder reads: everything up to the header of the chunk after the IDAT
    // run. Past it the pixels are all there and the decoder reads no further, so a cut or damaged
    // trailer (IEND's body, text after the image) is accepted here as it is by `decode`.
    let mut at = 8; // after the signature
    let mut seen_idat = false;
    loop {
        // The decoder learns that the image data has ended from the next chunk's header, so it
        // needs that header whole even after the last IDAT.
        let Some(head) = bytes.get(at..at + 8) else {
            return Err(corrupt(format!(
                "truncated: the file ends at byte {} inside the chunk headers",
                bytes.len()
            )));
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if seen_idat && kind != b"IDAT" {
            return Ok(());
        }
        let name = String::from_utf8_lossy(kind).into_owned();
        let (Some(body), Some(crc)) = (
            bytes.get(at + 4..at + 8 + len),
            bytes.get(at + 8 + len..at + 12 + len),
        ) else {
            return Err(corrupt(format!(
                "truncated: chunk {name} at byte {at} declares {len} bytes, the file ends first"
            )));
        };
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(corrupt(format!("chunk {name} at byte {at} fails its CRC")));
        }
        match kind {
            b"IDAT" => seen_idat = true,
            b"IEND" => return Err(corrupt("no image data (IDAT) before IEND".into())),
            _ => {}
        }
        at += 12 + len;
    }
}

/// The WebP checks of [`check`]: the headers parse, the size is within the limit, and the file is
/// as long as its RIFF header says (a cut download is shorter).
fn check_webp(bytes: &[u8], max_pixels: u64) -> Result<(), DecodeError> {
    const F: ImageFormat = ImageFormat::Webp;
    let corrupt = |detail: String| DecodeError::Corrupt { format: F, detail };
    let decoder =
        image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_size(F, u64::from(height), u64::from(width), max_pixels)?;
    let riff = u64::from(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]));
    if (bytes.len() as u64) < riff + 8 {
        return Err(corrupt(format!(
            "truncated: the RIFF header declares {} bytes, the file has {}",
            riff + 8,
            bytes.len()
        )));
    }
    Ok(())
}

fn decode_png(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    check_png(bytes, max_pixels)?;
    const F: ImageFormat = ImageFormat::Png;
    let corrupt = |e: png::DecodingError| DecodeError::Corrupt {
        format: F,
        detail: e.to_string(),
    };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // Palette, low-bit and tRNS become 8-bit gray/RGB(A); 16-bit keeps its high byte.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let (width, height) = decoder.read_header_info().map_err(corrupt)?.size();
    check_size(F, u64::from(height), u64::from(width), max_pixels)?;
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DecodeError::TooLarge {
            format: F,
            height: u64::from(height),
            width: u64::from(width),
            max_pixels,
        })?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(corrupt)?;
    buf.truncate(frame.buffer_size());
    let (w, h) = (frame.width as usize, frame.height as usize);
    let pixels = match (frame.color_type, frame.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => buf,
        (png::ColorType::Rgba, png::BitDepth::Eight) => rgba_on_white(&buf),
        (png::ColorType::Grayscale, png::BitDepth::Eight) => gray_to_rgb(&buf),
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => gray_alpha_on_white(&buf),
        (color, depth) => {
            return Err(DecodeError::UnsupportedFeature {
                format: F,
                detail: format!("{color:?} at {depth:?} after expansion"),
            });
        }
    };
    rgb_image(F, w, h, pixels)
}

fn decode_webp(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, DecodeError> {
    check_webp(bytes, max_pixels)?;
    const F: ImageFormat = ImageFormat::Webp;
    let corrupt = |e: image_webp::DecodingError| DecodeError::Corrupt {
        format: F,
        detail: e.to_string(),
    };
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(F, u64::from(height), u64::from(width), max_pixels)?;
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| DecodeError::TooLarge {
            format: F,
            height: u64::from(height),
            width: u64::from(width),
            max_pixels,
        })?;
    let mut buf = vec![0; size];
    decoder.read_image(&mut buf).map_err(corrupt)?;
    let pixels = if decoder.has_alpha() {
        rgba_on_white(&buf)
    } else {
        buf
    };
    rgb_image(F, width as usize, height as usize, pixels)
}

/// Wraps decoded RGB8 pixels, checking that the decoder produced exactly one image's worth.
fn rgb_image(
    format: ImageFormat,
    width: usize,
    height: usize,
    pixels: Vec<u8>,
) -> Result<RgbImage, DecodeError> {
    let expected = width.checked_mul(height).and_then(|n| n.checked_mul(3));
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if expected == Some(pixels.len()) => Ok(RgbImage {
            width: w,
            height: h,
            pixels,
        }),
        _ => Err(DecodeError::Corrupt {
            format,
            detail: format!(
                "decoder returned {} bytes for a {width}x{height} (WxH) RGB image",
                pixels.len()
            ),
        }),
    }
}

/// `c * a / 255 + 255 * (255 - a) / 255`, rounded: the colour over a white background.
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (u32::from(c), u32::from(a));
    // At most 255 * 255 + 127, divided by 255: always <= 255.
    ((c * a + 255 * (255 - a) + 127) / 255) as u8
}

fn rgba_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = px[3];
        if a == 255 {
            out.extend_from_slice(&px[..3]);
        } else {
            out.extend_from_slice(&[
                over_white(px[0], a),
                over_white(px[1], a),
                over_white(px[2], a),
            ]);
        }
    }
    out
}

fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

fn gray_alpha_on_white(ga: &[u8]) -> Vec<u8> {
    ga.chunks_exact(2)
        .flat_map(|px| {
            let g = over_white(px[0], px[1]);
            [g, g, g]
        })
        .collect()
}
