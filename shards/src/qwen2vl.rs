//! The inputs a Qwen2-VL / Qwen2.5-VL / MindVL model takes, computed from the reader's rows.
//!
//! One [`Qwen2VlBatch`] holds a batch's rows concatenated into one flat sequence (no padding), the
//! layout varlen attention takes:
//!
//! - `input_ids`, and `labels`: the token where it is trained on (`loss_mask` 1), `-100` elsewhere
//!   **and at the first token of every packed sample**, so that after the model's shift by one no
//!   sample is trained to predict the next sample's first token;
//! - `position_ids`: `0, 1, ...` restarting at each sample, and `mrope_position_ids` `[3, T]`: the
//!   (temporal, height, width) positions Qwen2-VL's `get_rope_index` computes for each sample on
//!   its own: text tokens count up on all three rows, an image's placeholder tokens take the
//!   image's merged patch grid offset by the text before it, and the text after an image resumes
//!   one past the largest position so far;
//! - `cu_seqlens` over the samples and `row_offsets` over the rows;
//! - `pixel_values` `[patches, 3 * 2 * 14 * 14]` laid out as the HF `Qwen2VLImageProcessor` lays
//!   them out (each image repeated over a temporal patch of 2 frames, CLIP mean/std normalisation,
//!   patches in 2x2 merge order, each patch channel-major, then frame, row, column) and
//!   `image_grid_thw` `[images, 3]`.
//!
//! The Python package takes its inputs from here, and the tch trainer its labels
//! ([`row_labels`]) and normalisation constants, so a Python trainer and the Rust trainer train on
//! the same targets.

use crate::reader::{Image, Row};

/// The label of a token that is not trained on (PyTorch's `CrossEntropyLoss` `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// CLIP normalisation, as the Qwen2-VL image processor applies it (`image_mean`, `image_std`).
pub const IMAGE_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const IMAGE_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Qwen2-VL's vision geometry: 14-pixel patches, 2 frames per temporal patch, 2x2 patches merged
/// into one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisionGeometry {
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
}

impl Default for VisionGeometry {
    fn default() -> Self {
        Self {
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
        }
    }
}

impl VisionGeometry {
    /// Values of one patch in `pixel_values`: `3 * temporal_patch_size * patch_size^2` (1,176).
    pub fn patch_values(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// Why rows cannot be turned into model inputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputsError {
    #[error(
        "row {row}, image {image}: {height}x{width} pixels do not divide into {merge}x{merge} groups of {patch}-pixel patches (the build's image rule differs from this model's)"
    )]
    ImageSize {
        row: usize,
        image: usize,
        height: u32,
        width: u32,
        patch: usize,
        merge: usize,
    },
    #[error(
        "row {row}, image {image}: the grid {grid:?} does not match the image's {height}x{width} pixels (the shard breaks format invariants: rebuild it)"
    )]
    Grid {
        row: usize,
        image: usize,
        grid: [i32; 3],
        height: u32,
        width: u32,
    },
    #[error(
        "row {row}, image {image}: {tokens} placeholder tokens at {offset} do not fit sample {sample} or the merged grid (the shard breaks format invariants: rebuild it)"
    )]
    Span {
        row: usize,
        image: usize,
        offset: u32,
        tokens: u32,
        sample: u32,
    },
    #[error(
        "row {row}, image {image}: no decoded pixels (read with images decoded to get pixel_values)"
    )]
    NoPixels { row: usize, image: usize },
}

/// A batch's model inputs, rows concatenated (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Qwen2VlBatch {
    pub input_ids: Vec<i64>,
    pub labels: Vec<i64>,
    pub position_ids: Vec<i64>,
    /// `[3, T]` row-major: temporal positions, then height, then width.
    pub mrope_position_ids: Vec<i64>,
    /// `[0, l0, l0 + l1, ...]` over every sample of every row.
    pub cu_seqlens: Vec<i32>,
    /// `[0, r0, r0 + r1, ...]` over the rows: row `i` is `row_offsets[i]..row_offsets[i + 1]`.
    pub row_offsets: Vec<i64>,
    /// `[patches, geometry.patch_values()]` row-major; empty unless pixels were asked for.
    pub pixel_values: Vec<f32>,
    /// `[images, 3]` row-major.
    pub image_grid_thw: Vec<i64>,
}

impl Qwen2VlBatch {
    /// Tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.input_ids.len()
    }
}

/// What [`qwen2vl_inputs`] computes beyond the token columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputsOptions {
    pub geometry: VisionGeometry,
    /// Whether to lay out `pixel_values` (the rows must have been read with decoded images).
    pub pixel_values: bool,
    /// Threads that lay out `pixel_values`, the costly part (a float per value, two frames per
    /// image); 0 or 1 lays them out on the calling thread. The layout is the same for any count.
    pub threads: usize,
}

/// The model inputs of `rows`, concatenated in order.
pub fn qwen2vl_inputs(rows: &[Row], options: &InputsOptions) -> Result<Qwen2VlBatch, InputsError> {
    let tokens: usize = rows.iter().map(|r| r.input_ids.len()).sum();
    let samples: usize = rows.iter().map(|r| r.seq_lens.len()).sum();
    let images: usize = rows.iter().map(|r| r.images.len()).sum();
    let mut out = Qwen2VlBatch {
        input_ids: Vec::with_capacity(tokens),
        labels: Vec::with_capacity(tokens),
        position_ids: Vec::with_capacity(tokens),
        mrope_position_ids: vec![0; 3 * tokens],
        cu_seqlens: Vec::with_capacity(samples + 1),
        row_offsets: Vec::with_capacity(rows.len() + 1),
        pixel_values: Vec::new(),
        image_grid_thw: Vec::with_capacity(3 * images),
    };
    out.cu_seqlens.push(0);
    out.row_offsets.push(0);
    let geometry = options.geometry;
    for (index, row) in rows.iter().enumerate() {
        let start = out.input_ids.len();
        out.input_ids
            .extend(row.input_ids.iter().map(|&t| i64::from(t)));
        labels(row, &mut out.labels);
        out.position_ids
            .extend(row.position_ids.iter().map(|&p| i64::from(p)));
        // The row's own cu_seqlens, after the rows before it.
        let before = *out.cu_seqlens.last().unwrap_or(&0);
        out.cu_seqlens.extend(
            row.cu_seqlens()[1..]
                .iter()
                .map(|&c| before.saturating_add(c)),
        );
        mrope(
            row,
            index,
            geometry,
            start,
            tokens,
            &mut out.mrope_position_ids,
        )?;
        for (image_index, image) in row.images.iter().enumerate() {
            out.image_grid_thw
                .extend(image.grid.iter().map(|&g| i64::from(g)));
            if options.pixel_values && image.rgb.is_empty() {
                return Err(InputsError::NoPixels {
                    row: index,
                    image: image_index,
                });
            }
        }
        out.row_offsets.push(out.input_ids.len() as i64);
    }
    if options.pixel_values {
        let images: Vec<&Image> = rows.iter().flat_map(|r| &r.images).collect();
        out.pixel_values = all_pixel_values(&images, geometry, options.threads);
    }
    Ok(out)
}

/// Every image's patches in order (see [`pixel_values`]), image `i` laid out on thread
/// `i % threads` straight into its place in the result.
fn all_pixel_values(images: &[&Image], geometry: VisionGeometry, threads: usize) -> Vec<f32> {
    let lens: Vec<usize> = images
        .iter()
        .map(|i| pixel_values_len(i, geometry))
        .collect();
    // Zeroed pages straight from the allocator: nothing is written twice.
    let mut values = vec![0f32; lens.iter().sum()];
    let threads = threads.clamp(1, images.len().max(1));
    let mut shares: Vec<Vec<(&Image, &mut [f32])>> = (0..threads).map(|_| Vec::new()).collect();
    let mut rest = values.as_mut_slice();
    for (n, (&image, &len)) in images.iter().zip(&lens).enumerate() {
        let (slot, after) = rest.split_at_mut(len);
        shares[n % threads].push((image, slot));
        rest = after;
    }
    let lay_out = |share: Vec<(&Image, &mut [f32])>| {
        for (image, slot) in share {
            pixel_values(&image.rgb, image, geometry, slot);
        }
    };
    if threads == 1 {
        shares.into_iter().for_each(lay_out);
    } else {
        std::thread::scope(|scope| {
            for share in shares {
                scope.spawn(move || lay_out(share));
            }
        });
    }
    values
}

/// Values `image` takes in `pixel_values`: its whole merge groups of patches, each
/// [`VisionGeometry::patch_values`] long.
fn pixel_values_len(image: &Image, geometry: VisionGeometry) -> usize {
    let unit = geometry.patch_size * geometry.merge_size;
    let groups = (image.height as usize / unit) * (image.width as usize / unit);
    groups * geometry.merge_size * geometry.merge_size * geometry.patch_values()
}

/// `row`'s labels: the token where the loss mask is 1, [`IGNORE_INDEX`] elsewhere and at each
/// sample's first token. Label `p` is the target of the prediction made at position `p - 1`.
pub fn row_labels(row: &Row) -> Vec<i64> {
    let mut out = Vec::with_capacity(row.input_ids.len());
    labels(row, &mut out);
    out
}

/// Appends `row`'s labels (see [`row_labels`]).
fn labels(row: &Row, out: &mut Vec<i64>) {
    let start = out.len();
    out.extend(
        row.input_ids
            .iter()
            .zip(&row.loss_mask)
            .map(|(&t, &m)| if m == 1 { i64::from(t) } else { IGNORE_INDEX }),
    );
    let mut first = start;
    for &len in &row.seq_lens {
        if let Some(label) = out.get_mut(first) {
            *label = IGNORE_INDEX;
        }
        first += usize::try_from(len).unwrap_or(0);
    }
}

/// The three rows of a batch's `mrope_position_ids`.
struct Mrope<'a> {
    t: &'a mut [i64],
    h: &'a mut [i64],
    w: &'a mut [i64],
}

impl Mrope<'_> {
    fn set(&mut self, at: usize, t: i64, h: i64, w: i64) {
        (self.t[at], self.h[at], self.w[at]) = (t, h, w);
    }

    /// Gives the text tokens `from..to` (batch indices) the positions `next, next + 1, ...` on all
    /// three rows; returns the next position.
    fn text(&mut self, from: usize, to: usize, mut next: i64) -> i64 {
        for at in from..to {
            self.set(at, next, next, next);
            next += 1;
        }
        next
    }
}

/// Writes the M-RoPE positions of `row` (at `start` in the batch) into `out` (`[3, total]`), each
/// sample positioned on its own.
fn mrope(
    row: &Row,
    index: usize,
    geometry: VisionGeometry,
    start: usize,
    total: usize,
    out: &mut [i64],
) -> Result<(), InputsError> {
    let (t, rest) = out.split_at_mut(total);
    let (h, w) = rest.split_at_mut(total);
    let mut positions = Mrope { t, h, w };
    let mut images = row.images.iter().enumerate().peekable();
    let mut sample_start = 0usize;
    for (sample, &len) in row.seq_lens.iter().enumerate() {
        let sample_end = sample_start + usize::try_from(len).unwrap_or(0);
        // The next text position, and the first token (in the row) not positioned yet.
        let (mut next, mut at) = (0i64, sample_start);
        while let Some(&(image_index, image)) = images.peek() {
            if image.sample as usize != sample {
                break;
            }
            images.next();
            let (grid_h, grid_w) = merged_grid(image, index, image_index, geometry)?;
            let offset = image.token_offset as usize;
            let span_end = offset + image.num_tokens as usize;
            if offset < at || span_end > sample_end || grid_h * grid_w != image.num_tokens as usize
            {
                return Err(InputsError::Span {
                    row: index,
                    image: image_index,
                    offset: image.token_offset,
                    tokens: image.num_tokens,
                    sample: image.sample,
                });
            }
            let base = positions.text(start + at, start + offset, next);
            // One temporal patch: t is 0 (Qwen2.5-VL scales it by seconds per grid step, 0 for an
            // image), then the merged grid row-major.
            let mut q = start + offset;
            for y in 0..grid_h as i64 {
                for x in 0..grid_w as i64 {
                    positions.set(q, base, base + y, base + x);
                    q += 1;
                }
            }
            next = base + grid_h.max(grid_w) as i64;
            at = span_end;
        }
        positions.text(start + at, start + sample_end, next);
        sample_start = sample_end;
    }
    Ok(())
}

/// The image's (height, width) grid after the 2x2 merge, checked against its pixels and its
/// recorded grid (one temporal patch).
fn merged_grid(
    image: &Image,
    row: usize,
    index: usize,
    geometry: VisionGeometry,
) -> Result<(usize, usize), InputsError> {
    let unit = geometry.patch_size * geometry.merge_size;
    let (height, width) = (image.height as usize, image.width as usize);
    if height == 0 || width == 0 || height % unit != 0 || width % unit != 0 {
        return Err(InputsError::ImageSize {
            row,
            image: index,
            height: image.height,
            width: image.width,
            patch: geometry.patch_size,
            merge: geometry.merge_size,
        });
    }
    let [t, h, w] = image.grid;
    if t != 1
        || usize::try_from(h).ok() != Some(height / geometry.patch_size)
        || usize::try_from(w).ok() != Some(width / geometry.patch_size)
    {
        return Err(InputsError::Grid {
            row,
            image: index,
            grid: image.grid,
            height: image.height,
            width: image.width,
        });
    }
    Ok((height / unit, width / unit))
}

/// Writes `image`'s patches (RGB u8, HWC, `height x width`) in the HF processor's layout into
/// `out`, [`pixel_values_len`] values.
fn pixel_values(rgb: &[u8], image: &Image, geometry: VisionGeometry, out: &mut [f32]) {
    let VisionGeometry {
        patch_size: patch,
        temporal_patch_size: frames,
        merge_size: merge,
    } = geometry;
    let width = image.width as usize;
    let (gh, gw) = (image.height as usize / patch / merge, width / patch / merge);
    // value = (x / 255 - mean) / std = x * scale + shift, per channel.
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * IMAGE_STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| -IMAGE_MEAN[c] / IMAGE_STD[c]);
    let mut frame = vec![0f32; patch * patch];
    let mut out = out.chunks_exact_mut(patch * patch);
    for group_y in 0..gh {
        for group_x in 0..gw {
            for my in 0..merge {
                for mx in 0..merge {
                    let y0 = (group_y * merge + my) * patch;
                    let x0 = (group_x * merge + mx) * patch;
                    for c in 0..3 {
                        for (py, line) in frame.chunks_exact_mut(patch).enumerate() {
                            let from = ((y0 + py) * width + x0) * 3 + c;
                            for (px, value) in line.iter_mut().enumerate() {
                                *value = f32::from(rgb[from + px * 3]) * scale[c] + shift[c];
                            }
                        }
                        for slot in out.by_ref().take(frames) {
                            slot.copy_from_slice(&frame);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::RowOrigin;
    use crate::{ImageEncoding, PackedSampleMeta};

    fn image(sample: u32, offset: u32, height: u32, width: u32, rgb: Vec<u8>) -> Image {
        let grid = [1, (height / 14) as i32, (width / 14) as i32];
        Image {
            rgb: rgb.into(),
            bytes: Vec::new(),
            encoding: ImageEncoding::Jpeg,
            height,
            width,
            source_height: height,
            source_width: width,
            grid,
            token_offset: offset,
            num_tokens: (grid[1] * grid[2] / 4) as u32,
            sample,
        }
    }

    /// A row of samples of `seq_lens` tokens (ids 10, 11, ...), all trained on.
    fn row(seq_lens: &[i32], images: Vec<Image>) -> Row {
        let tokens = seq_lens.iter().sum::<i32>() as usize;
        Row {
            stage: "s".into(),
            origin: RowOrigin {
                stage: 0,
                shard: 0,
                row: 0,
            },
            input_ids: (10..10 + tokens as i32).collect(),
            loss_mask: vec![1; tokens],
            position_ids: seq_lens.iter().flat_map(|&l| 0..l).collect(),
            seq_lens: seq_lens.to_vec(),
            samples: seq_lens
                .iter()
                .map(|_| PackedSampleMeta {
                    source: "src".into(),
                    category: "cat".into(),
                    key: "k".into(),
                    loss_tokens: 0,
                })
                .collect(),
            images,
        }
    }

    fn inputs(rows: &[Row]) -> Qwen2VlBatch {
        qwen2vl_inputs(rows, &InputsOptions::default()).unwrap()
    }

    #[test]
    fn no_sample_is_trained_to_predict_the_next_samples_first_token() {
        let mut r = row(&[3, 4], vec![]);
        r.loss_mask[4] = 0;
        let batch = inputs(&[r.clone(), r]);
        let x = IGNORE_INDEX;
        let row = [x, 11, 12, x, x, 15, 16];
        assert_eq!(batch.labels, [row, row].concat());
        assert_eq!(batch.input_ids[..7], [10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(batch.cu_seqlens, [0, 3, 7, 10, 14]);
        assert_eq!(batch.row_offsets, [0, 7, 14]);
        assert_eq!(batch.position_ids, [0, 1, 2, 0, 1, 2, 3].repeat(2));
    }

    #[test]
    fn text_positions_count_up_on_all_three_mrope_rows_restarting_per_sample() {
        let batch = inputs(&[row(&[3, 2], vec![])]);
        assert_eq!(batch.mrope_position_ids, [0, 1, 2, 0, 1].repeat(3));
    }

    #[test]
    fn image_tokens_take_the_merged_grid_and_the_text_after_resumes_past_it() {
        // Sample 0: 2 text tokens, a 56x84 image (4x6 patches, 2x3 tokens), 2 text tokens.
        // Sample 1: 1 text token, a 56x56 image (2x2 tokens), 1 text token.
        let images = vec![
            image(0, 2, 56, 84, Vec::new()),
            image(1, 11, 56, 56, Vec::new()),
        ];
        let batch = inputs(&[row(&[10, 6], images)]);
        let t = &batch.mrope_position_ids[..16];
        let h = &batch.mrope_position_ids[16..32];
        let w = &batch.mrope_position_ids[32..];
        assert_eq!(t, [0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 0, 1, 1, 1, 1, 3]);
        assert_eq!(h, [0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 0, 1, 1, 2, 2, 3]);
        assert_eq!(w, [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 0, 1, 2, 1, 2, 3]);
        assert_eq!(batch.image_grid_thw, [1, 4, 6, 1, 4, 4]);
    }

    #[test]
    fn pixel_values_are_the_same_laid_out_on_any_number_of_threads() {
        let pattern = |height: usize, width: usize, seed: usize| -> Vec<u8> {
            (0..height * width * 3)
                .map(|i| ((i * 31 + seed * 17) % 251) as u8)
                .collect()
        };
        let rows = || {
            vec![
                row(&[4], vec![image(0, 1, 28, 56, pattern(28, 56, 1))]),
                row(&[6], vec![image(0, 1, 56, 56, pattern(56, 56, 2))]),
                row(&[3], vec![image(0, 1, 28, 28, pattern(28, 28, 3))]),
            ]
        };
        let with_threads = |threads| {
            let options = InputsOptions {
                pixel_values: true,
                threads,
                ..InputsOptions::default()
            };
            qwen2vl_inputs(&rows(), &options).unwrap().pixel_values
        };
        let one = with_threads(1);
        // 8 + 16 + 4 patches.
        assert_eq!(one.len(), 28 * VisionGeometry::default().patch_values());
        for threads in [0, 2, 3, 8] {
            assert!(with_threads(threads) == one, "{threads} threads");
        }
    }

    #[test]
    fn pixel_values_are_normalised_patches_in_merge_order_repeated_over_two_frames() {
        // A 28x56 image: 2x4 patches, two merge groups side by side.
        let (height, width) = (28usize, 56usize);
        let rgb: Vec<u8> = (0..height * width * 3)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let images = vec![image(0, 1, height as u32, width as u32, rgb.clone())];
        let options = InputsOptions {
            pixel_values: true,
            ..InputsOptions::default()
        };
        let batch = qwen2vl_inputs(&[row(&[4], images)], &options).unwrap();
        let values = VisionGeometry::default().patch_values();
        assert_eq!(values, 1176);
        assert_eq!(batch.pixel_values.len(), 8 * values);
        let pixel = |y: usize, x: usize, c: usize| {
            (f32::from(rgb[(y * width + x) * 3 + c]) / 255.0 - IMAGE_MEAN[c]) / IMAGE_STD[c]
        };
        // Patch order: group (0, 0) as (0,0), (0,1), (1,0), (1,1), then group (0, 1).
        let patch_origin = [
            (0, 0),
            (0, 14),
            (14, 0),
            (14, 14),
            (0, 28),
            (0, 42),
            (14, 28),
        ];
        for (patch, (y0, x0)) in patch_origin.into_iter().enumerate() {
            for (c, frame, py, px) in [(0, 0, 0, 0), (1, 1, 3, 5), (2, 0, 13, 13), (2, 1, 13, 13)] {
                let at = patch * values + c * 392 + frame * 196 + py * 14 + px;
                let want = pixel(y0 + py, x0 + px, c);
                assert!(
                    (batch.pixel_values[at] - want).abs() < 1e-5,
                    "patch {patch} c {c} frame {frame} ({py}, {px}): {} vs {want}",
                    batch.pixel_values[at]
                );
            }
        }
    }

    #[test]
    fn images_that_break_the_model_geometry_are_refused_with_their_row() {
        let odd = image(0, 0, 42, 56, vec![0; 42 * 56 * 3]);
        let err = qwen2vl_inputs(&[row(&[6], vec![odd])], &InputsOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                InputsError::ImageSize {
                    row: 0,
                    image: 0,
                    ..
                }
            ),
            "{err}"
        );

        let overflowing = image(0, 3, 56, 56, Vec::new());
        let err =
            qwen2vl_inputs(&[row(&[5], vec![overflowing])], &InputsOptions::default()).unwrap_err();
        assert!(matches!(err, InputsError::Span { sample: 0, .. }), "{err}");

        let without_pixels = image(0, 0, 56, 56, Vec::new());
        let options = InputsOptions {
            pixel_values: true,
            ..InputsOptions::default()
        };
        let err = qwen2vl_inputs(&[row(&[4], vec![without_pixels])], &options).unwrap_err();
        assert_eq!(err, InputsError::NoPixels { row: 0, image: 0 });
    }
}
