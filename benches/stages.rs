//! Throughput of the build's text stages, each alone: `tokenize` (ChatML rendering + the demo HF
//! tokenizer through the `tokenizers` crate, tokens/s) and `write` (packed rows -> zstd Parquet shard,
//! raw bytes/s). The image stage is `benches/image.rs`, packing is `benches/pack.rs`; the whole
//! pipeline is the end-to-end run in `benches/e2e/`.
//!
//! Run with `cargo bench --bench stages`.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mixtape_engine::synthetic::{SyntheticKind, generate};
use mixtape_engine::template::Encoder;
use mixtape_shards::{PackedRow, ShardMeta, ShardOptions, ShardWriter};
use mixtape_testdata::rows::long_text_rows;

/// Samples per kind: long documents are ~40k tokens each, so fewer of them.
const SAMPLES: [(SyntheticKind, u64); 2] = [
    (SyntheticKind::LongText, 16),
    (SyntheticKind::ShapesVqa, 200),
];
const ROWS: usize = 256;
const SEQ_LEN: usize = 4096;

fn demo_encoder() -> Encoder {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/tokenizers/demo.json");
    Encoder::from_file(&path).expect("the demo tokenizer ships with the repository")
}

fn bench_tokenize(c: &mut Criterion) {
    let encoder = demo_encoder();
    let mut group = c.benchmark_group("tokenize");
    group.sample_size(10);
    for (kind, count) in SAMPLES {
        let samples: Vec<_> = (0..count).map(|i| generate(kind, 7, i)).collect();
        // Image pads are ids pushed without tokenizing: give each image a typical 256 tokens.
        let pads: Vec<Vec<u32>> = samples.iter().map(|s| vec![256; s.images.len()]).collect();
        let text_tokens: usize = samples
            .iter()
            .zip(&pads)
            .map(|(s, p)| {
                encoder
                    .encode(s, p, &Default::default())
                    .expect("synthetic samples encode")
                    .ids
                    .len()
            })
            .sum::<usize>()
            - pads.iter().flatten().map(|&n| n as usize).sum::<usize>();
        group.throughput(Throughput::Elements(text_tokens as u64));
        group.bench_function(BenchmarkId::new("chatml", kind.name()), |b| {
            b.iter(|| {
                for (sample, pads) in samples.iter().zip(&pads) {
                    black_box(
                        encoder
                            .encode(sample, pads, &Default::default())
                            .expect("synthetic samples encode"),
                    );
                }
            });
        });
    }
    group.finish();
}

fn bench_write(c: &mut Criterion) {
    let rows = long_text_rows(42, ROWS, SEQ_LEN);
    let raw: usize = rows.iter().map(PackedRow::raw_bytes).sum();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("write");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(raw as u64));
    for level in [1, 3] {
        group.bench_function(BenchmarkId::new("zstd", level), |b| {
            b.iter(|| {
                let meta = ShardMeta {
                    recipe_fingerprint: "bench".into(),
                    stage: "bench".into(),
                    seq_len: SEQ_LEN as u32,
                    shard_index: 0,
                };
                let options = ShardOptions::default().with_zstd_level(level);
                let mut writer = ShardWriter::try_new(dir.path(), meta, options).expect("writer");
                for row in &rows {
                    writer.write(row.clone()).expect("valid row");
                }
                black_box(writer.finish().expect("shard written"));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tokenize, bench_write);
criterion_main!(benches);
