//! The per-image pipeline of the shard builder: decode, apply the resize rule, resample, re-encode.
//!
//! [`process`] is what the builder runs on every image of a sample. Its error, [`ProcessError`],
//! says which step failed (decode, resize rule, resample, encode), so the builder can map it to a
//! stable reject code and count rejects by reason without parsing messages.
//!
//! # Invariants
//!
//! - The output's `(height, width)` is exactly `smart_resize(displayed size)`, so its token count is
//!   the one the planner computed from the header, provided the header size it was given equals
//!   `(source_height, source_width)`; the builder should check that and reject on a mismatch.
//! - Deterministic: the same bytes, policy and encoding give the same output bytes (see the
//!   determinism notes of [`super::decoder`], [`super::resample`] and [`super::encode`]).

use thiserror::Error;

use super::ImageEncoding;
use super::decoder::{DecodeError, decode};
use super::encode::{EncodeError, encode_jpeg, encode_png};
use super::geometry::{ResizeError, ResizePolicy, smart_resize};
use super::resample::{ResampleError, resize};

/// An image ready for a shard.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessedImage {
    /// The encoded, resized image.
    pub bytes: Vec<u8>,
    /// Size after `smart_resize`: what the vision encoder sees.
    pub height: u32,
    pub width: u32,
    /// Decoded size as displayed (after EXIF orientation), before resizing.
    pub source_height: u32,
    pub source_width: u32,
}

// By hand so that a failing assertion prints sizes, not kilobytes of bytes.
impl std::fmt::Debug for ProcessedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessedImage")
            .field("bytes", &format_args!("[{} bytes]", self.bytes.len()))
            .field("height", &self.height)
            .field("width", &self.width)
            .field("source_height", &self.source_height)
            .field("source_width", &self.source_width)
            .finish()
    }
}

/// Why [`process`] could not turn bytes into a shard image.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProcessError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The resize rule rejects the decoded size (too elongated, no pixels).
    #[error(transparent)]
    Resize(#[from] ResizeError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Decodes `bytes`, resizes the displayed image to `smart_resize(height, width, policy)` with a
/// bicubic filter and encodes the result as `encoding` (JPEG at `jpeg_quality`, 1 to 100; the
/// quality is ignored for the other encodings). [`ImageEncoding::Source`] keeps `bytes` as they are
/// (once they decode) with the training size computed: the reader resizes them.
pub fn process(
    bytes: &[u8],
    policy: &ResizePolicy,
    encoding: ImageEncoding,
    jpeg_quality: u8,
) -> Result<ProcessedImage, ProcessError> {
    // An invalid quality is a configuration error: refuse before spending a decode on it.
    if encoding == ImageEncoding::Jpeg && !(1..=100).contains(&jpeg_quality) {
        return Err(EncodeError::InvalidQuality(jpeg_quality).into());
    }
    let img = decode(bytes)?;
    let (height, width) = smart_resize(img.height, img.width, policy)?;
    let bytes = match encoding {
        ImageEncoding::Source => bytes.to_vec(),
        ImageEncoding::Png => encode_png(&resize(&img, height, width)?)?,
        ImageEncoding::Jpeg => encode_jpeg(&resize(&img, height, width)?, jpeg_quality)?,
    };
    Ok(ProcessedImage {
        bytes,
        height,
        width,
        source_height: img.height,
        source_width: img.width,
    })
}
