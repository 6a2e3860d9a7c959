//! Planning speed: `plan::resolve` over one million source samples (lengths already indexed), and
//! indexing speed (reading + tokenizing synthetic samples), each with its throughput in samples.

use std::collections::BTreeMap;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mixtape_engine::index::{FileDigest, IndexCache, SourceIndex, index_source};
use mixtape_engine::plan;
use mixtape_engine::recipe;
use mixtape_engine::template::Encoder;

const SAMPLES: usize = 1_000_000;

fn tokenizer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("recipes/tokenizers/demo.json")
}

/// A recipe with four synthetic sources and two stages, written to a temp folder.
fn recipe(dir: &tempfile::TempDir, count: usize) -> recipe::Recipe {
    let text = format!(
        "version: 1\nname: bench\nseed: 1\ntokenizer: {{path: {tok}}}\nsources:\n\
         a: {{format: synthetic, kind: shapes-caption, count: {count}, category: caption}}\n\
         b: {{format: synthetic, kind: shapes-vqa, count: {count}, category: vqa}}\n\
         c: {{format: synthetic, kind: ocr-text, count: {count}, category: ocr}}\n\
         d: {{format: synthetic, kind: long-text, count: {count}, category: long-text}}\n\
         stages:\n  - name: s1\n    seq_len: 4096\n    budget: {{tokens: 20000000}}\n    mix: {{caption: 0.5, ocr: 0.5}}\n\
         \x20 - name: s2\n    seq_len: 8192\n    budget: {{tokens: 60000000}}\n    mix: {{caption: 0.2, vqa: 0.4, ocr: 0.2, long-text: 0.2}}\n",
        tok = tokenizer().display()
    )
    .replace("\na:", "\n  a:")
    .replace("\nb:", "\n  b:")
    .replace("\nc:", "\n  c:")
    .replace("\nd:", "\n  d:");
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, text).unwrap();
    let loaded = recipe::load(&path);
    loaded
        .recipe
        .unwrap_or_else(|| panic!("bench recipe invalid: {:?}", loaded.diagnostics))
}

/// An index with plausible lengths (deterministic, no tokenizing).
fn fake_index(samples: usize, seed: u64, with_images: bool) -> SourceIndex {
    let mut index = SourceIndex {
        records: samples as u64,
        image_start: vec![0],
        ..SourceIndex::default()
    };
    let mut x = seed;
    for i in 0..samples {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        index.record_of.push(i as u64);
        index.is_text.push(u8::from(!with_images));
        index.text_tokens.push(40 + (x >> 54) as u32);
        index.loss_tokens.push(10 + (x >> 58) as u32);
        if with_images {
            index
                .image_sizes
                .push((200 + (x >> 55) as u32, 300 + (x >> 56) as u32));
        }
        index.image_start.push(index.image_sizes.len() as u32);
    }
    index
}

fn bench_plan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let per_source = SAMPLES / 4;
    let recipe = recipe(&dir, per_source);
    let indexes: BTreeMap<String, SourceIndex> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                name.to_string(),
                fake_index(per_source, i as u64, *name != "d"),
            )
        })
        .collect();
    let digest = FileDigest {
        path: "tok.json".into(),
        bytes: 0,
        blake3: "0".repeat(64),
    };
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.bench_function("resolve_1M_samples", |b| {
        b.iter(|| plan::resolve(&recipe, &indexes, digest.clone()).expect("plan"));
    });
    group.finish();
}

fn bench_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let count = 5_000;
    let recipe = recipe(&dir, count);
    let encoder = Encoder::from_file(&recipe.tokenizer).unwrap();
    let digest = FileDigest::of(&recipe.tokenizer, dir.path()).unwrap();
    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count as u64));
    for name in ["b", "d"] {
        let spec = recipe.source(name).unwrap().clone();
        let label = format!("{}_{}", name, spec.synthetic.as_ref().unwrap().kind.name());
        group.bench_function(label, |b| {
            b.iter(|| {
                index_source(
                    &spec,
                    &encoder,
                    &digest,
                    dir.path(),
                    &IndexCache { dir: None },
                )
                .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_plan, bench_index);
criterion_main!(benches);
