//! Writes one demo shard of synthetic packed rows and prints its size per row and per token.
//!
//! `cargo run -p mixtape-shards --release --example write_demo_shard -- OUT_DIR [ROWS] [SEQ_LEN] [IMAGES_PER_ROW]`
//!
//! Token ids follow a Zipf-like (log-uniform) law over Qwen2's 151,643-id vocabulary, samples are
//! 50 to 1,500 tokens packed greedily, and each image is 40 KB of random bytes (as incompressible
//! as a JPEG) costing 324 tokens (504x504). The shard is for checking that other Parquet readers
//! (pyarrow, DuckDB, polars) read the format, and for rough size figures; it is not a benchmark.

use std::path::PathBuf;

use mixtape_shards::{ShardMeta, ShardOptions, ShardWriter};
use mixtape_testdata::SplitMix64;
use mixtape_testdata::rows::{IMAGE_PAD, demo_row};

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
    let mut rng = SplitMix64::new(42);
    for row in 0..rows {
        writer.write(demo_row(&mut rng, seq_len, images, row))?;
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
