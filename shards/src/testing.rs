//! Test fixtures: consistent packed rows built from a compact description, and a proptest strategy.
//!
//! `row(&[(tokens, images), ...])` builds one packed sample per pair: `tokens` tokens, of which the
//! second half (minus image tokens) carries loss, with `images` 56x56 images of 4 placeholder tokens
//! each placed at offsets 2, 8, 14, ... inside the sample. Every row it returns passes validation with
//! the Qwen2 image pad id, so tests can break exactly one thing and expect exactly one error.

use proptest::prelude::*;

use crate::{ImageEncoding, PackedRow, PackedSampleMeta, ShardImage};

/// Qwen2's `<|image_pad|>` id.
pub(crate) const IMAGE_PAD: i32 = 151_655;

pub(crate) fn sample(
    source: &str,
    category: &str,
    key: &str,
    loss_tokens: u32,
) -> PackedSampleMeta {
    PackedSampleMeta {
        source: source.into(),
        category: category.into(),
        key: key.into(),
        loss_tokens,
    }
}

/// A 56x56 image (grid 1x4x4, 4 tokens) at `token_offset` in sample `sample`; `seed` varies its bytes.
pub(crate) fn image(token_offset: u32, sample: u32, seed: u64) -> ShardImage {
    let len = 16 + (seed % 97) as usize;
    ShardImage {
        bytes: (0..len)
            .map(|i| (seed as usize).wrapping_mul(31).wrapping_add(i) as u8)
            .collect(),
        encoding: if seed.is_multiple_of(2) {
            ImageEncoding::Jpeg
        } else {
            ImageEncoding::Png
        },
        height: 56,
        width: 56,
        source_height: 100 + (seed % 50) as u32,
        source_width: 90,
        grid_t: 1,
        grid_h: 4,
        grid_w: 4,
        token_offset,
        num_tokens: 4,
        sample,
    }
}

/// Tokens needed by a sample holding `images` images.
pub(crate) fn min_tokens(images: usize) -> usize {
    2 + 6 * images
}

/// A consistent row; see the module docs. Panics on a description that cannot hold its images.
pub(crate) fn row(spec: &[(usize, usize)]) -> PackedRow {
    row_with_seed(spec, 0)
}

/// As [`row`], with token ids, keys and image bytes varied by `seed`.
pub(crate) fn row_with_seed(spec: &[(usize, usize)], seed: u64) -> PackedRow {
    let sources = ["laion", "llava", "books"];
    let categories = ["caption", "vqa", "text"];
    let mut row = PackedRow::default();
    for (index, &(tokens, images)) in spec.iter().enumerate() {
        assert!(
            tokens >= min_tokens(images),
            "sample {index}: {tokens} tokens cannot hold {images} images"
        );
        let start = row.input_ids.len();
        let mut ids: Vec<i32> = (0..tokens)
            .map(|i| 1000 + ((seed as usize + start + i * 7) % 3000) as i32)
            .collect();
        let mut mask: Vec<u8> = (0..tokens).map(|i| u8::from(i >= tokens / 2)).collect();
        for k in 0..images {
            let offset = 2 + 6 * k;
            ids[offset..offset + 4].fill(IMAGE_PAD);
            mask[offset..offset + 4].fill(0);
            row.images.push(image(
                (start + offset) as u32,
                index as u32,
                seed.wrapping_add((index * 10 + k) as u64),
            ));
        }
        let pick = (seed as usize + index) % 3;
        let loss_tokens = mask.iter().filter(|&&m| m == 1).count() as u32;
        row.input_ids.extend(ids);
        row.loss_mask.extend(mask);
        row.seq_lens.push(tokens as i32);
        row.samples.push(sample(
            sources[pick],
            categories[pick],
            &format!("file-{seed}.jsonl:{index}"),
            loss_tokens,
        ));
    }
    row
}

/// Rows of 1 to 5 samples, each of up to `max_sample_tokens` tokens, with or without images.
pub(crate) fn arb_row(
    max_sample_tokens: usize,
    with_images: bool,
) -> impl Strategy<Value = PackedRow> {
    let max_images: usize = if with_images { 3 } else { 0 };
    (
        prop::collection::vec((1..=max_sample_tokens, 0..=max_images), 1..=5),
        any::<u64>(),
    )
        .prop_map(|(spec, seed)| {
            let spec: Vec<(usize, usize)> = spec
                .into_iter()
                .map(|(tokens, images)| (tokens.max(min_tokens(images)), images))
                .collect();
            row_with_seed(&spec, seed)
        })
}
