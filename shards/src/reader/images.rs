//! Turning decoded rows into the reader's [`Row`]s, images included, on the worker threads.
//!
//! In [`ImageMode::Decoded`], JPEG/PNG images (stored at the training size) are decoded, and
//! `encoding: "source"` images (the source file, unresized) are decoded and resampled to the stored
//! `height` x `width` with `mixtape-image`'s bicubic resampler: the same decoder (EXIF orientation
//! included) and the same resampler as the builder's `process`, so a trainer sees the same pixels
//! from either kind of shard, up to the JPEG loss of the resized kind. A decoded image whose size
//! disagrees with the stored geometry is an error naming shard, row group, row and image: it would
//! give the vision encoder a grid that does not match the placeholder tokens.
//!
//! [`patchify`] lays pixels out as Qwen2-VL's image processor does (`pixel_values`), for trainers
//! that want the vision tower's input without Python.

use std::sync::Arc;

use crate::{ImageEncoding, ShardImage};

use super::ReaderError;
use super::error::PixelsError;
use super::load::{Cursor, RawBatch, RawRow};
use super::options::ImageMode;
use super::pixels::{PixelPool, Pixels};
use super::rows::{Image, Row, RowBatch};

/// Converts a raw batch on a worker thread, decoding images into buffers from `pool`.
pub(crate) fn convert_batch(
    raw: RawBatch,
    stage_names: &[String],
    mode: ImageMode,
    pool: &Arc<PixelPool>,
) -> Result<(RowBatch, Cursor), ReaderError> {
    let stage = stage_names.get(raw.stage).cloned().unwrap_or_default();
    let mut rows = Vec::with_capacity(raw.rows.len());
    for row in raw.rows {
        rows.push(convert_row(row, &stage, mode, pool)?);
    }
    Ok((
        RowBatch {
            rows,
            stage: raw.stage,
            epoch: raw.epoch,
            offset: raw.offset,
        },
        raw.after,
    ))
}

pub(crate) fn convert_row(
    raw: RawRow,
    stage: &str,
    mode: ImageMode,
    pool: &Arc<PixelPool>,
) -> Result<Row, ReaderError> {
    let RawRow {
        row,
        origin,
        path,
        row_group,
        row_in_group,
    } = raw;
    let position_ids = row.position_ids();
    let mut images = Vec::with_capacity(row.images.len());
    for (index, image) in row.images.into_iter().enumerate() {
        let image = convert_image(image, mode, pool).map_err(|source| ReaderError::Image {
            path: path.to_path_buf(),
            row_group,
            row: row_in_group,
            image: index,
            source,
        })?;
        images.push(image);
    }
    Ok(Row {
        stage: stage.to_string(),
        origin,
        input_ids: row.input_ids,
        loss_mask: row.loss_mask,
        position_ids,
        seq_lens: row.seq_lens,
        samples: row.samples,
        images,
    })
}

fn convert_image(
    image: ShardImage,
    mode: ImageMode,
    pool: &Arc<PixelPool>,
) -> Result<Image, PixelsError> {
    let (rgb, bytes) = match mode {
        ImageMode::Skip => (Pixels::default(), Vec::new()),
        ImageMode::Raw => (Pixels::default(), image.bytes),
        ImageMode::Decoded => (decode_pooled(&image, pool)?, Vec::new()),
    };
    let grid = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    Ok(Image {
        rgb,
        bytes,
        encoding: image.encoding,
        height: image.height,
        width: image.width,
        source_height: image.source_height,
        source_width: image.source_width,
        grid: [grid(image.grid_t), grid(image.grid_h), grid(image.grid_w)],
        token_offset: image.token_offset,
        num_tokens: image.num_tokens,
        sample: image.sample,
    })
}

/// [`decode_pixels`] into a buffer from `pool`, to go back there when the pixels are dropped.
fn decode_pooled(image: &ShardImage, pool: &Arc<PixelPool>) -> Result<Pixels, PixelsError> {
    // Sized from the stored geometry only within the decoder's pixel limit: a corrupt shard's
    // geometry must not allocate more than its image can decode to.
    let pixels = u64::from(image.height) * u64::from(image.width);
    let len = if pixels <= mixtape_image::DEFAULT_MAX_DECODED_PIXELS {
        pixels as usize * 3
    } else {
        0
    };
    let (buffer, len) = decode_pixels_into(image, pool.take(len))?;
    Ok(pool.pixels(buffer, len))
}

/// Decodes stored images as the reader does in [`ImageMode::Decoded`], for rows read in
/// [`ImageMode::Raw`] and decoded later or elsewhere: the Python package's DataLoader workers hand
/// over the stored bytes, and the training process decodes them.
///
/// The pixels come from the decoder's own pool and go back to it when dropped, as a reader's do;
/// clones share the pool, so one decoder serves any number of threads.
#[derive(Clone, Debug, Default)]
pub struct ImageDecoder {
    pool: Arc<PixelPool>,
}

impl ImageDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `image.bytes` into `image.rgb` at the image's training size, leaving `bytes`
    /// empty: the image a reader in [`ImageMode::Decoded`] would have yielded. Errors as the
    /// reader's: bytes that do not decode, or decode to another size than the shard records.
    pub fn decode(&self, image: &mut Image) -> Result<(), PixelsError> {
        let stored = ShardImage {
            bytes: std::mem::take(&mut image.bytes),
            encoding: image.encoding,
            height: image.height,
            width: image.width,
            source_height: image.source_height,
            source_width: image.source_width,
            grid_t: 0,
            grid_h: 0,
            grid_w: 0,
            token_offset: image.token_offset,
            num_tokens: image.num_tokens,
            sample: image.sample,
        };
        match decode_pooled(&stored, &self.pool) {
            Ok(rgb) => {
                image.rgb = rgb;
                Ok(())
            }
            Err(e) => {
                image.bytes = stored.bytes;
                Err(e)
            }
        }
    }
}

/// RGB pixels of `image` at its training size.
pub fn decode_pixels(image: &ShardImage) -> Result<Vec<u8>, PixelsError> {
    let (mut buffer, len) = decode_pixels_into(image, Vec::new())?;
    buffer.truncate(len);
    Ok(buffer)
}

/// [`decode_pixels`] into `buffer` (see [`mixtape_image::decode_into`]); returns the buffer, which
/// may be another one, and the length of the pixels at its start.
fn decode_pixels_into(
    image: &ShardImage,
    mut buffer: Vec<u8>,
) -> Result<(Vec<u8>, usize), PixelsError> {
    let size = mixtape_image::decode_into(&image.bytes, &mut buffer)?;
    let len = |(height, width): (u32, u32)| height as usize * width as usize * 3;
    let target = (image.height, image.width);
    let size = match image.encoding {
        ImageEncoding::Source => {
            if size != (image.source_height, image.source_width) {
                return Err(PixelsError::SourceSize {
                    decoded: size,
                    stored: (image.source_height, image.source_width),
                });
            }
            if size != target {
                let decoded = mixtape_image::RgbImage {
                    height: size.0,
                    width: size.1,
                    pixels: buffer[..len(size)].to_vec(),
                };
                let resized = mixtape_image::resize(&decoded, image.height, image.width)?;
                buffer = resized.pixels;
                (resized.height, resized.width)
            } else {
                size
            }
        }
        _ => size,
    };
    if size != target {
        return Err(PixelsError::Size {
            decoded: size,
            stored: target,
        });
    }
    Ok((buffer, len(size)))
}

/// Qwen2-VL's `pixel_values` layout of one image, as u8 (normalize to float in the trainer).
///
/// `rgb` is `height x width x 3`; `patch` is the ViT patch side (14), `merge` the spatial merge
/// (2), `temporal` the temporal patch (2: a still image is repeated). Returns
/// `grid_h * grid_w` patches of `3 * temporal * patch * patch` values, patches ordered by merge
/// group (as the processor's transpose `(0, 3, 6, 4, 7, 2, 1, 5, 8)` orders them), or `None` when
/// the sizes do not divide.
pub fn patchify(
    rgb: &[u8],
    height: usize,
    width: usize,
    patch: usize,
    merge: usize,
    temporal: usize,
) -> Option<Vec<u8>> {
    let unit = patch.checked_mul(merge)?;
    if unit == 0
        || temporal == 0
        || !height.is_multiple_of(unit)
        || !width.is_multiple_of(unit)
        || rgb.len() != height * width * 3
    {
        return None;
    }
    let (grid_h, grid_w) = (height / patch, width / patch);
    let mut out = Vec::with_capacity(grid_h * grid_w * 3 * temporal * patch * patch);
    for block_h in 0..grid_h / merge {
        for block_w in 0..grid_w / merge {
            for mh in 0..merge {
                for mw in 0..merge {
                    let (py, px) = (
                        (block_h * merge + mh) * patch,
                        (block_w * merge + mw) * patch,
                    );
                    for channel in 0..3 {
                        for _ in 0..temporal {
                            for y in 0..patch {
                                let row = ((py + y) * width + px) * 3 + channel;
                                out.extend((0..patch).map(|x| rgb[row + 3 * x]));
                            }
                        }
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patchify_orders_patches_by_merge_group_then_channel() {
        // 4x4 image, patch 1, merge 2, temporal 1: pixel (y, x) has value 10*y + x in every channel
        // plus 100 * channel.
        let (h, w) = (2usize, 4usize);
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    rgb.push((100 * c + 10 * y + x) as u8);
                }
            }
        }
        let out = patchify(&rgb, h, w, 1, 2, 1).unwrap();
        // Merge group (0,0) holds pixels (0,0), (0,1), (1,0), (1,1); then group (0,1).
        let firsts: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, [0, 1, 10, 11, 2, 3, 12, 13]);
        assert_eq!(&out[..3], &[0, 100, 200]);
        assert_eq!(patchify(&rgb, h, w, 1, 2, 2).unwrap().len(), 8 * 6);
        assert_eq!(patchify(&rgb, 3, 4, 1, 2, 1), None);
    }
}
