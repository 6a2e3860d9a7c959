//! Synthetic packed rows for shard writers, readers and benches: token ids follow a Zipf-like
//! (log-uniform) law over Qwen2's vocabulary, like real text, so compression figures are realistic.
//!
//! Every row these functions return passes [`PackedRow::validate`] with the Qwen2 image pad id
//! ([`IMAGE_PAD`]) and the row's `seq_len`.

use mixtape_shards::{ImageEncoding, PackedRow, PackedSampleMeta, ShardImage};

use crate::SplitMix64;

/// Qwen2's vocabulary size (ids below it are text tokens).
pub const VOCAB: u32 = 151_643;
/// Qwen2's `<|image_pad|>` id.
pub const IMAGE_PAD: i32 = 151_655;
/// Placeholder tokens of one demo image: 504x504 pixels, a 36x36 patch grid merged 2x2.
pub const IMAGE_TOKENS: usize = 324;
/// Bytes of one demo image: random, so as incompressible as a JPEG.
pub const IMAGE_BYTES: usize = 40_000;

/// A Zipf-like token id: log-uniform over `0..VOCAB`, so small ids are common and large ones rare.
pub fn zipf_token(rng: &mut SplitMix64) -> i32 {
    (f64::from(VOCAB).powf(rng.unit()) - 1.0) as i32
}

/// One row of up to `seq_len` tokens, packed greedily with samples of 50 to 1,500 tokens; the first
/// `images` samples each hold one image (at token 4, [`IMAGE_TOKENS`] tokens, [`IMAGE_BYTES`]
/// random bytes). All but the first third of each sample's tokens carry loss (images never do).
/// `row` numbers the samples' keys (`books/part-0.jsonl:N`, `llava/...` for image samples).
pub fn demo_row(rng: &mut SplitMix64, seq_len: usize, images: usize, row: usize) -> PackedRow {
    let mut packed = PackedRow::default();
    let mut images_left = images;
    while packed.input_ids.len() < seq_len {
        let with_image = images_left > 0;
        let min = if with_image { IMAGE_TOKENS + 8 } else { 50 };
        let room = seq_len - packed.input_ids.len();
        if room < min {
            break;
        }
        let len = min + rng.below(((min + 1_500).min(room) + 1 - min) as u64) as usize;
        let start = packed.input_ids.len();
        let sample = packed.seq_lens.len();
        let mut ids: Vec<i32> = (0..len).map(|_| zipf_token(rng)).collect();
        let mut mask: Vec<u8> = (0..len).map(|i| u8::from(i >= len / 3)).collect();
        if with_image {
            images_left -= 1;
            ids[4..4 + IMAGE_TOKENS].fill(IMAGE_PAD);
            mask[4..4 + IMAGE_TOKENS].fill(0);
            packed.images.push(ShardImage {
                bytes: (0..IMAGE_BYTES).map(|_| rng.next_u64() as u8).collect(),
                encoding: ImageEncoding::Jpeg,
                height: 504,
                width: 504,
                source_height: 1000,
                source_width: 1000,
                grid_t: 1,
                grid_h: 36,
                grid_w: 36,
                token_offset: (start + 4) as u32,
                num_tokens: IMAGE_TOKENS as u32,
                sample: sample as u32,
            });
        }
        let loss_tokens = mask.iter().filter(|&&m| m == 1).count() as u32;
        packed.input_ids.extend(ids);
        packed.loss_mask.extend(mask);
        packed.seq_lens.push(len as i32);
        let (source, category) = if with_image {
            ("llava", "vqa")
        } else {
            ("books", "text")
        };
        packed.samples.push(PackedSampleMeta {
            source: source.into(),
            category: category.into(),
            key: format!("{source}/part-0.jsonl:{}", row * 16 + sample),
            loss_tokens,
        });
    }
    packed
}

/// `rows` full rows of `seq_len` tokens, 8 long-text samples each (`seq_len` divisible by 8), drawn
/// from `seed`: per sample a Zipf-like base id plus small offsets, so runs of nearby ids compress
/// like real text; loss on all but the first quarter of each sample.
pub fn long_text_rows(seed: u64, rows: usize, seq_len: usize) -> Vec<PackedRow> {
    let mut rng = SplitMix64::new(seed);
    let per_sample = seq_len / 8;
    (0..rows)
        .map(|row| {
            let mut packed = PackedRow::default();
            for sample in 0..8 {
                let base = zipf_token(&mut rng);
                packed.input_ids.extend(
                    (0..per_sample)
                        .map(|i| (base + rng.below(512) as i32 + i as i32) % VOCAB as i32),
                );
                packed
                    .loss_mask
                    .extend((0..per_sample).map(|i| u8::from(i >= per_sample / 4)));
                packed.seq_lens.push(per_sample as i32);
                packed.samples.push(PackedSampleMeta {
                    source: "books".into(),
                    category: "long-text".into(),
                    key: format!("books.jsonl:{}", row * 8 + sample),
                    loss_tokens: (per_sample - per_sample / 4) as u32,
                });
            }
            packed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mixtape_shards::RowChecks;

    use super::*;

    fn checks(seq_len: usize) -> RowChecks {
        RowChecks::default()
            .with_max_tokens(seq_len as u32)
            .with_image_pad_token(IMAGE_PAD)
    }

    #[test]
    fn demo_rows_are_valid_and_fill_most_of_the_sequence() {
        let mut rng = SplitMix64::new(42);
        for row in 0..20 {
            let packed = demo_row(&mut rng, 4096, 2, row);
            packed.validate(&checks(4096)).unwrap();
            assert_eq!(packed.images.len(), 2, "row {row}");
            // Greedy packing stops once fewer than 50 tokens are left.
            assert!(packed.input_ids.len() > 4096 - 50, "row {row}");
        }
    }

    #[test]
    fn long_text_rows_are_valid_full_and_seeded() {
        let rows = long_text_rows(42, 3, 4096);
        assert_eq!(rows.len(), 3);
        for packed in &rows {
            packed.validate(&checks(4096)).unwrap();
            assert_eq!(packed.input_ids.len(), 4096);
            assert_eq!(packed.seq_lens, [512; 8]);
        }
        assert_eq!(rows, long_text_rows(42, 3, 4096));
        assert_ne!(rows, long_text_rows(43, 3, 4096));
    }
}
