//! Shared by the reader's integration tests: small stage folders written with the real writer.
//!
//! Rows are consistent packed rows whose first token encodes (stage, shard, row), so tests can check
//! both the reader's `origin` and that the row's content is the one stored there.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mixtape_shards::reader::{ReaderOptions, RowBatch};
use mixtape_shards::{
    Manifest, PackedRow, PackedSampleMeta, Reader, ReaderState, ShardImage, ShardMeta,
    ShardOptions, ShardWriter, StageLayout,
};

pub const CATEGORIES: [&str; 3] = ["caption", "vqa", "text"];

/// The first token of a row: identifies where it was written.
pub fn tag(stage: usize, shard: usize, row: u64) -> i32 {
    (stage * 1_000_000 + shard * 10_000) as i32 + row as i32
}

/// A one-or-two-sample row tagged with its place.
pub fn row(stage: usize, shard: usize, row: u64) -> PackedRow {
    let mut out = PackedRow::default();
    let samples = 1 + (row % 2) as usize;
    for s in 0..samples {
        let len = 3 + ((row as usize + s) % 4);
        let mut ids: Vec<i32> = (0..len as i32).map(|i| 500 + i).collect();
        if s == 0 {
            ids[0] = tag(stage, shard, row);
        }
        let mask: Vec<u8> = (0..len).map(|i| u8::from(i >= 1)).collect();
        let category = CATEGORIES[(row as usize + s) % 3];
        out.input_ids.extend(ids);
        out.loss_mask.extend(&mask);
        out.seq_lens.push(len as i32);
        out.samples.push(PackedSampleMeta {
            source: format!("src-{category}"),
            category: category.into(),
            key: format!("{stage}/{shard}/{row}/{s}"),
            loss_tokens: (len - 1) as u32,
        });
    }
    out
}

/// Writes stage `stage_index` named `name` into `dir` with `shard_rows[i]` rows in shard `i` and
/// row groups of `group_rows` rows; returns the folder.
pub fn write_stage(
    dir: &Path,
    stage_index: usize,
    name: &str,
    shard_rows: &[u64],
    group_rows: usize,
) -> PathBuf {
    write_stage_with(dir, stage_index, name, shard_rows, group_rows, row)
}

/// As [`write_stage`], with rows from `make(stage, shard, row)`.
pub fn write_stage_with(
    dir: &Path,
    stage_index: usize,
    name: &str,
    shard_rows: &[u64],
    group_rows: usize,
    make: impl Fn(usize, usize, u64) -> PackedRow,
) -> PathBuf {
    let stage_dir = dir.join(name);
    std::fs::create_dir_all(&stage_dir).unwrap();
    let mut infos = Vec::new();
    for (shard, &rows) in shard_rows.iter().enumerate() {
        let meta = ShardMeta {
            recipe_fingerprint: "fp".into(),
            stage: name.into(),
            seq_len: 4096,
            shard_index: shard as u32,
        };
        let options = ShardOptions::default().with_max_rows_per_row_group(group_rows);
        let mut writer = ShardWriter::try_new(&stage_dir, meta, options).unwrap();
        for r in 0..rows {
            writer.write(make(stage_index, shard, r)).unwrap();
        }
        infos.push(writer.finish().unwrap());
    }
    Manifest::new(name, 4096, "fp", infos, BTreeMap::new())
        .write(StageLayout::of_dir(&stage_dir).manifest())
        .unwrap();
    stage_dir
}

/// Every batch of a reader, panicking on an error.
pub fn all(reader: Reader) -> Vec<RowBatch> {
    reader.map(|b| b.unwrap()).collect()
}

/// `(stage, shard, row)` of every row of `batches`, checking each row's content matches its origin.
pub fn origins(batches: &[RowBatch]) -> Vec<(usize, u32, u64)> {
    let mut out = Vec::new();
    for batch in batches {
        for r in &batch.rows {
            let o = r.origin;
            assert_eq!(
                r.input_ids[0],
                tag(o.stage, o.shard as usize, o.row),
                "row content differs from its origin"
            );
            assert_eq!(r.position_ids.len(), r.input_ids.len());
            out.push((o.stage, o.shard, o.row));
        }
    }
    out
}

/// Reads `count` batches (or all when `None`) and returns them with the state after them.
pub fn read_some(
    dirs: &[PathBuf],
    options: ReaderOptions,
    resume: Option<ReaderState>,
    count: Option<usize>,
) -> (Vec<RowBatch>, ReaderState) {
    let mut reader = Reader::try_new(dirs, options, resume).unwrap();
    let mut batches = Vec::new();
    while count.is_none_or(|n| batches.len() < n) {
        match reader.next() {
            Some(b) => batches.push(b.unwrap()),
            None => break,
        }
    }
    let state = reader.state();
    (batches, state)
}

/// A small shard image of `height` x `width` that decodes (PNG of a gradient).
pub fn png_image(height: u32, width: u32, token_offset: u32, sample: u32) -> ShardImage {
    let mut img = mixtape_image::RgbImage::try_filled(width, height, [0, 0, 0]).unwrap();
    for y in 0..height {
        for x in 0..width {
            img.set_pixel(x, y, [(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8]);
        }
    }
    ShardImage {
        bytes: mixtape_image::encode_png(&img).unwrap(),
        encoding: mixtape_shards::ImageEncoding::Png,
        height,
        width,
        source_height: height,
        source_width: width,
        grid_t: 1,
        grid_h: height / 14,
        grid_w: width / 14,
        token_offset,
        num_tokens: height * width / 784,
        sample,
    }
}
