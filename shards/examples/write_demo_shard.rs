//! Writes one demo shard of synthetic packed rows and prints its size per row and per token.
//!
//! `cargo run -p mixtape-shards --release --example write_demo_shard -- OUT_DIR [ROWS] [SEQ_LEN] [IMAGES_PER_ROW]`
//!
//! Token ids follow a Zipf-like (log-uniform) law over Qwen2's 151,643-id vocabulary, samples are
//! 50 to 1,500 tokens packed greedily, and each image is 40 KB of random bytes (as incompressible
//! as a JPEG) costing 324 tokens (504x504). The shard is for checking that other Parquet readers
//! (pyarrow, DuckDB, polars) read the format, and for rough size figures; it is not a benchmark.

use std::path::PathBuf;

use mixtape_shards::{
    ImageEncoding, PackedRow, PackedSampleMeta, ShardImage, ShardMeta, ShardOptions, ShardWriter,
};

const VOCAB: f64 = 151_643.0;
const IMAGE_PAD: i32 = 151_655;
const IMAGE_TOKENS: usize = 324;

/// splitmix64: a tiny deterministic generator, so the shard is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
}

fn packed_row(rng: &mut Rng, seq_len: usize, images_per_row: usize, row: usize) -> PackedRow {
    let mut packed = PackedRow::default();
    let mut images_left = images_per_row;
    while packed.input_ids.len() < seq_len {
        let with_image = images_left > 0;
        let min = if with_image { IMAGE_TOKENS + 8 } else { 50 };
        let room = seq_len - packed.input_ids.len();
        if room < min {
            break;
        }
        let len = rng.range(min, (min + 1_500).min(room) + 1);
        let start = packed.input_ids.len();
        let sample = packed.seq_lens.len();
        let mut ids: Vec<i32> = (0..len)
            .map(|_| (VOCAB.powf(rng.unit()) - 1.0) as i32)
            .collect();
        let mut mask: Vec<u8> = (0..len).map(|i| u8::from(i >= len / 3)).collect();
        if with_image {
            images_left -= 1;
            ids[4..4 + IMAGE_TOKENS].fill(IMAGE_PAD);
            mask[4..4 + IMAGE_TOKENS].fill(0);
            packed.images.push(ShardImage {
                bytes: (0..40_000).map(|_| rng.next() as u8).collect(),
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        return Err("usage: write_demo_shard OUT_DIR [ROWS] [SEQ_LEN] [IMAGES_PER_ROW]".into());
    };
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse::<usize>());
    let (rows, seq_len, images) = (number(1, 512)?, number(2, 4096)?, number(3, 0)?);

    let meta = ShardMeta {
        recipe_fingerprint: "demo".into(),
        stage: "demo".into(),
        seq_len: u32::try_from(seq_len)?,
        shard_index: 0,
    };
    let mut writer = ShardWriter::try_new(
        &out,
        meta,
        ShardOptions::default().with_image_pad_token(IMAGE_PAD),
    )?;
    let mut rng = Rng(42);
    for row in 0..rows {
        writer.write(packed_row(&mut rng, seq_len, images, row))?;
    }
    let info = writer.finish()?;
    let tokens = info.totals.tokens.max(1);
    println!(
        "{}: {} rows, {} row groups, {} bytes, {:.0} bytes/row, {:.3} bytes/token, efficiency {}, {} images",
        out.join(&info.file).display(),
        info.rows,
        info.row_groups,
        info.bytes,
        info.bytes as f64 / info.rows.max(1) as f64,
        info.bytes as f64 / tokens as f64,
        info.efficiency,
        info.totals.images,
    );
    Ok(())
}
