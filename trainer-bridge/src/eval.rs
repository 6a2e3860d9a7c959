//! Evaluation on held-back rows, and MindVL's test-time resolution search.
//!
//! [`eval_loss`] is the mean next-token loss over the loss tokens of some rows, without gradients.
//!
//! [`resize_rows`] re-lays rows out for another image pixel budget: each image's target size is
//! recomputed with the recipe's resize rule (Qwen2.5-VL `smart_resize`) from its *source* size under
//! the new `max_pixels`, its pixels are resampled (bicubic, the builder's resampler) from the stored
//! ones, and its run of `<|image_pad|>` tokens is replaced by one of the new length; loss masks,
//! sample lengths and positions follow. Pixels come from the stored image, so budgets above the one
//! the shards were built with upsample it (real detail would need `encoding: source` shards).
//! [`resolution_search`] evaluates a model under several budgets and reports the best.

use crate::device::Placement;
use mixtape_engine::image::{ResizePolicy, RgbImage, resize, smart_resize};
use serde::Serialize;

use crate::model::{Mllm, Precision};
use crate::model_input::{ModelInputError, model_input};
use mixtape_shards::{Image, Row};

/// Rows evaluated per forward pass.
pub const EVAL_ROWS_PER_PASS: usize = 4;

/// Mean loss and what it was averaged over.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EvalLoss {
    pub loss: f64,
    pub loss_tokens: u64,
    pub image_tokens: u64,
}

/// Why an evaluation cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    #[error(transparent)]
    ModelInput(#[from] ModelInputError),
    #[error("image {image} of row {row}: {detail}")]
    Resize {
        row: usize,
        image: usize,
        detail: String,
    },
    #[error("no loss tokens in the evaluation rows")]
    Empty,
}

/// Mean loss of `model` over the loss tokens of `rows`.
pub fn eval_loss(
    model: &Mllm,
    rows: &[Row],
    image_pad: i32,
    precision: Precision,
    placement: &Placement,
) -> Result<EvalLoss, EvalError> {
    let (mut sum, mut tokens, mut image_tokens) = (0.0, 0u64, 0u64);
    for chunk in rows.chunks(EVAL_ROWS_PER_PASS) {
        let (input, counts) = model_input(chunk, &model.config, image_pad, placement)?;
        if counts.loss_tokens == 0 {
            continue;
        }
        sum += model.loss_sum(&input, precision);
        tokens += counts.loss_tokens as u64;
        image_tokens += counts.image_tokens as u64;
    }
    if tokens == 0 {
        return Err(EvalError::Empty);
    }
    Ok(EvalLoss {
        loss: sum / tokens as f64,
        loss_tokens: tokens,
        image_tokens,
    })
}

/// `rows` with every image re-resized under `policy` (see the module docs).
pub fn resize_rows(
    rows: &[Row],
    policy: &ResizePolicy,
    image_pad: i32,
) -> Result<Vec<Row>, EvalError> {
    rows.iter()
        .enumerate()
        .map(|(r, row)| {
            resize_row(row, policy, image_pad).map_err(|(image, detail)| EvalError::Resize {
                row: r,
                image,
                detail,
            })
        })
        .collect()
}

fn resize_row(row: &Row, policy: &ResizePolicy, image_pad: i32) -> Result<Row, (usize, String)> {
    let mut out = Row {
        stage: row.stage.clone(),
        origin: row.origin,
        input_ids: Vec::new(),
        loss_mask: Vec::new(),
        position_ids: Vec::new(),
        seq_lens: Vec::new(),
        samples: row.samples.clone(),
        images: Vec::with_capacity(row.images.len()),
    };
    // Sample index of every token, to adjust the lengths of the samples that hold images.
    let mut sample_of = Vec::with_capacity(row.input_ids.len());
    for (s, &len) in row.seq_lens.iter().enumerate() {
        sample_of.extend(std::iter::repeat_n(s, len.max(0) as usize));
    }
    let mut seq_lens = row.seq_lens.clone();
    let mut at = 0usize;
    for (i, image) in row.images.iter().enumerate() {
        let start = image.token_offset as usize;
        let end = start + image.num_tokens as usize;
        if start < at || end > row.input_ids.len() {
            return Err((
                i,
                format!("token span {start}..{end} overlaps another image or leaves the row"),
            ));
        }
        let (height, width) = smart_resize(image.source_height, image.source_width, policy)
            .map_err(|e| (i, e.to_string()))?;
        let resized = (height, width) != (image.height, image.width);
        let rgb = if resized {
            let stored = RgbImage {
                width: image.width,
                height: image.height,
                pixels: image.rgb.to_vec(),
            };
            resize(&stored, height, width)
                .map_err(|e| (i, e.to_string()))?
                .pixels
                .into()
        } else {
            image.rgb.clone()
        };
        let tokens = (height * width) / (policy.factor() * policy.factor());
        out.input_ids.extend_from_slice(&row.input_ids[at..start]);
        out.loss_mask.extend_from_slice(&row.loss_mask[at..start]);
        let token_offset = out.input_ids.len() as u32;
        out.input_ids
            .extend(std::iter::repeat_n(image_pad, tokens as usize));
        out.loss_mask
            .extend(std::iter::repeat_n(0, tokens as usize));
        seq_lens[sample_of[start]] += tokens as i32 - image.num_tokens as i32;
        let grid = |side: u32| (side / policy.patch_size) as i32;
        out.images.push(Image {
            rgb,
            // The stored bytes no longer match a resized image.
            bytes: if resized {
                Vec::new()
            } else {
                image.bytes.clone()
            },
            encoding: image.encoding,
            height,
            width,
            source_height: image.source_height,
            source_width: image.source_width,
            grid: if resized {
                [1, grid(height), grid(width)]
            } else {
                image.grid
            },
            token_offset,
            num_tokens: tokens,
            sample: image.sample,
        });
        at = end;
    }
    out.input_ids.extend_from_slice(&row.input_ids[at..]);
    out.loss_mask.extend_from_slice(&row.loss_mask[at..]);
    out.position_ids = seq_lens.iter().flat_map(|&l| 0..l).collect();
    out.seq_lens = seq_lens;
    Ok(out)
}

/// One budget's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolutionResult {
    pub max_pixels: u64,
    pub loss: f64,
    pub loss_tokens: u64,
    pub image_tokens: u64,
}

/// All budgets tried, and the index of the best (lowest loss; the smaller budget on a tie).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolutionSearch {
    pub results: Vec<ResolutionResult>,
    pub best: usize,
}

/// Evaluates `model` on `rows` re-resized under each `max_pixels` in turn.
pub fn resolution_search(
    model: &Mllm,
    rows: &[Row],
    base: &ResizePolicy,
    max_pixels: &[u64],
    image_pad: i32,
    precision: Precision,
    placement: &Placement,
) -> Result<ResolutionSearch, EvalError> {
    let mut results = Vec::with_capacity(max_pixels.len());
    for &budget in max_pixels {
        let policy = base
            .with_max_pixels(budget)
            .with_min_pixels(base.min_pixels.min(budget));
        let resized = resize_rows(rows, &policy, image_pad)?;
        let loss = eval_loss(model, &resized, image_pad, precision, placement)?;
        results.push(ResolutionResult {
            max_pixels: budget,
            loss: loss.loss,
            loss_tokens: loss.loss_tokens,
            image_tokens: loss.image_tokens,
        });
    }
    let best = (0..results.len())
        .min_by(|&a, &b| {
            results[a]
                .loss
                .total_cmp(&results[b].loss)
                .then(results[a].max_pixels.cmp(&results[b].max_pixels))
        })
        .ok_or(EvalError::Empty)?;
    Ok(ResolutionSearch { results, best })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAD: i32 = 9;

    /// A row of two samples: text [1 2], then [3, 4 image tokens, 5 6] with a 56x56 image from a
    /// 112x112 source.
    fn row() -> Row {
        Row {
            stage: "sft".into(),
            origin: mixtape_shards::reader::RowOrigin {
                stage: 0,
                shard: 0,
                row: 0,
            },
            input_ids: vec![1, 2, 3, PAD, PAD, PAD, PAD, 5, 6],
            loss_mask: vec![0, 1, 0, 0, 0, 0, 0, 1, 1],
            position_ids: vec![0, 1, 0, 1, 2, 3, 4, 5, 6],
            seq_lens: vec![2, 7],
            samples: vec![],
            images: vec![Image {
                rgb: vec![128; 56 * 56 * 3].into(),
                bytes: vec![],
                encoding: mixtape_shards::ImageEncoding::Jpeg,
                height: 56,
                width: 56,
                source_height: 112,
                source_width: 112,
                grid: [1, 4, 4],
                token_offset: 3,
                num_tokens: 4,
                sample: 1,
            }],
        }
    }

    #[test]
    fn a_larger_budget_relays_the_image_tokens() {
        let policy = ResizePolicy::default().with_max_pixels(112 * 112);
        let out = resize_row(&row(), &policy, PAD).unwrap();
        assert_eq!(
            (
                out.images[0].height,
                out.images[0].width,
                out.images[0].num_tokens
            ),
            (112, 112, 16)
        );
        assert_eq!(out.images[0].rgb.len(), 112 * 112 * 3);
        assert_eq!(out.seq_lens, [2, 19]);
        assert_eq!(out.input_ids.len(), 21);
        assert_eq!(&out.input_ids[..3], &[1, 2, 3]);
        assert!(out.input_ids[3..19].iter().all(|&t| t == PAD));
        assert_eq!(&out.input_ids[19..], &[5, 6]);
        // Loss stays on the same text tokens; positions restart per sample.
        assert_eq!(out.loss_mask.iter().map(|&m| m as usize).sum::<usize>(), 3);
        assert_eq!(&out.loss_mask[19..], &[1, 1]);
        assert_eq!(out.position_ids[..3], [0, 1, 0]);
        assert_eq!(*out.position_ids.last().unwrap(), 18);
    }

    #[test]
    fn the_same_budget_changes_nothing() {
        let policy = ResizePolicy::default().with_max_pixels(56 * 56);
        let out = resize_row(&row(), &policy, PAD).unwrap();
        assert_eq!(out, row());
    }
}
