//! Packed rows -> the model's flat micro-batch ([`ModelInput`]).
//!
//! Rows are concatenated without padding; every packed sample becomes one attention segment.
//! Targets are next tokens *within* a sample: position `p` predicts token `p + 1` when both belong to
//! the same sample and `loss_mask[p + 1]` is 1 (the mask marks the tokens that are predicted), so no
//! loss ever spans two packed samples. Images are normalised with the CLIP mean and standard
//! deviation and cut into 14x14 patches in merge order ([`patchify`], Qwen2-VL's
//! layout), with each patch's row and column for the vision tower's 2-D rotary positions.
//!
//! Everything the shards could get wrong for the model is checked here with a message that names the
//! row: token ids outside the vocabulary, image spans that are not `<|image_pad|>` runs, sizes that do
//! not divide into 2x2 groups of patches.

use tch::{Kind, Tensor};

use crate::device::Placement;

use crate::model::{ImageInput, ModelConfig, ModelInput, patch_values};
use mixtape_shards::Row;
use mixtape_shards::qwen2vl;

/// CLIP normalisation, as the Qwen2.5-VL image processor applies it (one definition, the shard
/// reader's Qwen2-VL inputs').
pub use mixtape_shards::qwen2vl::{IMAGE_MEAN, IMAGE_STD};

/// Why rows cannot feed the model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelInputError {
    #[error(
        "row {row}: token id {id} is outside the model's vocabulary of {vocab} (wrong tokenizer for this build?)"
    )]
    TokenOutOfVocab { row: usize, id: i32, vocab: i64 },
    #[error("row {row}, image {image}: {detail}")]
    Image {
        row: usize,
        image: usize,
        detail: String,
    },
    #[error("row {row}: {detail} (the shard breaks format invariants: rebuild it)")]
    Layout { row: usize, detail: String },
}

/// One image's patches in Qwen2-VL's `pixel_values` layout: `[grid_h * grid_w, 3 * patch * patch]`
/// (channel, then pixel row, then column, within a patch), patches ordered by 2x2 merge group, groups
/// row-major. Done with libtorch views, not a Rust loop: a batch holds tens of thousands of patches.
pub fn patchify(rgb: &[u8], height: i64, width: i64, patch: i64, merge: i64) -> Tensor {
    let (gh, gw) = (height / patch / merge, width / patch / merge);
    Tensor::from_slice(rgb)
        .view(&[gh, merge, patch, gw, merge, patch, 3][..])
        .permute([0, 3, 1, 4, 6, 2, 5])
        .reshape([gh * gw * merge * merge, 3 * patch * patch])
}

/// Counts of a micro-batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputCounts {
    pub rows: usize,
    pub tokens: usize,
    pub loss_tokens: usize,
    pub images: usize,
    pub image_tokens: usize,
}

/// Tokens whose prediction carries loss in `rows` (what the loss is averaged over).
pub fn loss_tokens(rows: &[Row]) -> usize {
    rows.iter().map(|r| targets_of(r).count()).sum()
}

/// `(position, next token)` pairs of a row that carry loss: from the labels the Python package
/// hands to Qwen2-VL models ([`qwen2vl::row_labels`]), so both train on the same targets. Label `q`
/// is never set at a sample's first token, so `q - 1` is always in the same sample.
fn targets_of(row: &Row) -> impl Iterator<Item = (usize, i32)> + use<> {
    qwen2vl::row_labels(row)
        .into_iter()
        .enumerate()
        .filter(|&(q, label)| q > 0 && label != qwen2vl::IGNORE_INDEX)
        .map(|(q, label)| (q - 1, label as i32))
}

/// Builds the model input of `rows` (on the CPU) and puts it on `placement`.
pub fn model_input(
    rows: &[Row],
    config: &ModelConfig,
    image_pad: i32,
    placement: &Placement,
) -> Result<(ModelInput, InputCounts), ModelInputError> {
    let mut counts = InputCounts {
        rows: rows.len(),
        ..Default::default()
    };
    let (mut ids, mut positions, mut segments) = (Vec::new(), Vec::new(), Vec::new());
    let (mut loss_positions, mut loss_targets) = (Vec::new(), Vec::new());
    let mut patches: Vec<Tensor> = Vec::new();
    let (mut patch_rows, mut patch_cols, mut per_image, mut token_positions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let patch = config.patch_size as usize;
    let merge = config.merge_size as usize;
    for (r, row) in rows.iter().enumerate() {
        let offset = ids.len();
        let n = row.input_ids.len();
        let layout = |detail: String| ModelInputError::Layout { row: r, detail };
        if row.loss_mask.len() != n || row.position_ids.len() != n {
            return Err(layout(format!(
                "{n} tokens but {} loss mask and {} position entries",
                row.loss_mask.len(),
                row.position_ids.len()
            )));
        }
        if row.seq_lens.iter().any(|&l| l <= 0)
            || row.seq_lens.iter().map(|&l| l as usize).sum::<usize>() != n
        {
            return Err(layout(format!(
                "seq_lens {:?} do not add up to its {n} tokens",
                row.seq_lens
            )));
        }
        for &id in &row.input_ids {
            if id < 0 || i64::from(id) >= config.vocab_size {
                return Err(ModelInputError::TokenOutOfVocab {
                    row: r,
                    id,
                    vocab: config.vocab_size,
                });
            }
            ids.push(i64::from(id));
        }
        positions.extend(row.position_ids.iter().map(|&p| i64::from(p)));
        segments.extend(row.seq_lens.iter().map(|&l| l as usize));
        for (p, target) in targets_of(row) {
            loss_positions.push((offset + p) as i64);
            loss_targets.push(i64::from(target));
        }
        for (i, image) in row.images.iter().enumerate() {
            let bad = |detail: String| ModelInputError::Image {
                row: r,
                image: i,
                detail,
            };
            let (h, w) = (image.height as usize, image.width as usize);
            if h % (patch * merge) != 0 || w % (patch * merge) != 0 {
                return Err(bad(format!(
                    "{h}x{w} is not a multiple of {} on both sides",
                    patch * merge
                )));
            }
            let (gh, gw) = (h / patch, w / patch);
            if image.num_tokens as usize != gh * gw / (merge * merge) {
                return Err(bad(format!(
                    "{} tokens for a {gh}x{gw} patch grid",
                    image.num_tokens
                )));
            }
            let span =
                image.token_offset as usize..(image.token_offset + image.num_tokens) as usize;
            if span.end > n || row.input_ids[span.clone()].iter().any(|&t| t != image_pad) {
                return Err(bad(format!(
                    "tokens {span:?} are not a run of <|image_pad|> ({image_pad})"
                )));
            }
            if image.rgb.len() != h * w * 3 {
                return Err(bad(format!(
                    "{} RGB bytes do not make a {h}x{w} image",
                    image.rgb.len()
                )));
            }
            patches.push(patchify(
                &image.rgb,
                h as i64,
                w as i64,
                patch as i64,
                merge as i64,
            ));
            for gr in 0..gh / merge {
                for gc in 0..gw / merge {
                    for a in 0..merge {
                        for b in 0..merge {
                            patch_rows.push((gr * merge + a) as i64);
                            patch_cols.push((gc * merge + b) as i64);
                        }
                    }
                }
            }
            per_image.push(gh * gw);
            token_positions.extend(span.map(|t| (offset + t) as i64));
            counts.images += 1;
            counts.image_tokens += image.num_tokens as usize;
        }
    }
    counts.tokens = ids.len();
    counts.loss_tokens = loss_targets.len();
    let images = (!per_image.is_empty()).then(|| {
        let values = patch_values(config.patch_size);
        let p = patch_rows.len() as i64;
        let mean = Tensor::from_slice(&IMAGE_MEAN)
            .to_kind(Kind::Float)
            .view([1, 3, 1]);
        let std = Tensor::from_slice(&IMAGE_STD)
            .to_kind(Kind::Float)
            .view([1, 3, 1]);
        let pixels = Tensor::cat(&patches, 0)
            .to_kind(Kind::Float)
            .view([p, 3, values / 3])
            / 255.0;
        ImageInput {
            patches: placement.put(&((pixels - mean) / std).view([p, values])),
            rows: placement.put(&Tensor::from_slice(&patch_rows)),
            cols: placement.put(&Tensor::from_slice(&patch_cols)),
            patches_per_image: per_image,
            token_positions: placement.put(&Tensor::from_slice(&token_positions)),
        }
    });
    let input = ModelInput {
        input_ids: placement.put(&Tensor::from_slice(&ids)),
        positions: placement.put(&Tensor::from_slice(&positions)),
        segments,
        loss_positions: placement.put(&Tensor::from_slice(&loss_positions)),
        loss_targets: placement.put(&Tensor::from_slice(&loss_targets)),
        images,
    };
    Ok((input, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ids: &[i32], mask: &[u8], lens: &[i32]) -> Row {
        let mut position_ids = Vec::new();
        for &l in lens {
            position_ids.extend(0..l);
        }
        Row {
            stage: "sft".into(),
            origin: mixtape_shards::reader::RowOrigin {
                stage: 0,
                shard: 0,
                row: 0,
            },
            input_ids: ids.to_vec(),
            loss_mask: mask.to_vec(),
            position_ids,
            seq_lens: lens.to_vec(),
            samples: vec![],
            images: vec![],
        }
    }

    #[test]
    fn targets_stay_inside_their_sample() {
        // Two samples: [5 6 7] and [8 9]; every token masked in.
        let r = row(&[5, 6, 7, 8, 9], &[1, 1, 1, 1, 1], &[3, 2]);
        let pairs: Vec<_> = targets_of(&r).collect();
        assert_eq!(
            pairs,
            [(0, 6), (1, 7), (3, 9)],
            "7 -> 8 crosses samples and must not be a target"
        );
        let masked = row(&[5, 6, 7, 8, 9], &[0, 0, 1, 0, 1], &[3, 2]);
        assert_eq!(targets_of(&masked).collect::<Vec<_>>(), [(1, 7), (3, 9)]);
    }

    #[test]
    fn rows_concatenate_with_offsets() {
        let config = ModelConfig {
            vocab_size: 16,
            ..ModelConfig::default()
        };
        let rows = [
            row(&[1, 2, 3], &[0, 1, 1], &[3]),
            row(&[4, 5], &[0, 1], &[2]),
        ];
        let (input, counts) =
            model_input(&rows, &config, 15, &Placement::Tch(tch::Device::Cpu)).unwrap();
        assert_eq!(
            counts,
            InputCounts {
                rows: 2,
                tokens: 5,
                loss_tokens: 3,
                ..Default::default()
            }
        );
        assert_eq!(
            Vec::<i64>::try_from(&input.loss_positions).unwrap(),
            [0, 1, 3]
        );
        assert_eq!(
            Vec::<i64>::try_from(&input.loss_targets).unwrap(),
            [2, 3, 5]
        );
        assert_eq!(
            Vec::<i64>::try_from(&input.positions).unwrap(),
            [0, 1, 2, 0, 1]
        );
        assert_eq!(input.segments, [3, 2]);
    }

    #[test]
    fn patches_come_in_merge_order() {
        // A 4x4 image of 1x1 "patches" whose red value is 10 * row + column.
        let mut rgb = Vec::new();
        for y in 0..4u8 {
            for x in 0..4u8 {
                rgb.extend_from_slice(&[10 * y + x, 0, 1]);
            }
        }
        let p = patchify(&rgb, 4, 4, 1, 2);
        assert_eq!(p.size(), [16, 3]);
        let red = Vec::<u8>::try_from(p.select(1, 0).contiguous()).unwrap();
        // Group (0,0) = rows 0-1, cols 0-1; then group (0,1); then the second group row.
        assert_eq!(
            red,
            [0, 1, 10, 11, 2, 3, 12, 13, 20, 21, 30, 31, 22, 23, 32, 33]
        );
        assert_eq!(
            Vec::<u8>::try_from(p.select(1, 2).contiguous()).unwrap(),
            [1; 16]
        );
        // With 2x2-pixel patches, a patch's values are channel-major, then row, then column.
        let q = patchify(&rgb, 4, 4, 2, 1);
        assert_eq!(q.size(), [4, 12]);
        let first = Vec::<u8>::try_from(q.get(0)).unwrap();
        assert_eq!(&first[..4], &[0, 1, 10, 11]);
    }

    #[test]
    fn bad_rows_are_named() {
        let config = ModelConfig {
            vocab_size: 4,
            ..ModelConfig::default()
        };
        let err = model_input(
            &[row(&[1, 9], &[0, 1], &[2])],
            &config,
            3,
            &Placement::Tch(tch::Device::Cpu),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ModelInputError::TokenOutOfVocab {
                row: 0,
                id: 9,
                vocab: 4
            }
        );
        let err = model_input(
            &[row(&[1, 2], &[0, 1], &[3])],
            &config,
            3,
            &Placement::Tch(tch::Device::Cpu),
        )
        .unwrap_err();
        assert!(
            matches!(err, ModelInputError::Layout { row: 0, .. }),
            "{err}"
        );
    }
}
