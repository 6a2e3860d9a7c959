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
use mixtape_shards::{PackedRow, PackedSampleMeta, ShardMeta, ShardOptions, ShardWriter};

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
                    .encode(s, p)
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
                            .encode(sample, pads)
                            .expect("synthetic samples encode"),
                    );
                }
            });
        });
    }
    group.finish();
}

/// Full rows of Zipf-like token ids (incompressible-ish, like real text) in 8 samples each.
fn text_rows() -> Vec<PackedRow> {
    let mut state = 42u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..ROWS)
        .map(|row| {
            let per_sample = SEQ_LEN / 8;
            let mut packed = PackedRow::default();
            for sample in 0..8 {
                let unit = (next() >> 11) as f64 / (1u64 << 53) as f64;
                let base = (151_643f64.powf(unit) - 1.0) as i32;
                packed.input_ids.extend(
                    (0..per_sample).map(|i| (base + (next() % 512) as i32 + i as i32) % 151_643),
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

fn bench_write(c: &mut Criterion) {
    let rows = text_rows();
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
