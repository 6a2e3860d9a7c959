//! Reader benchmarks: throughput of the training-side reader on the demo shards, against floors
//! measured in the same run, and time to the first batch on a set of many small shards.
//!
//! - `reader/tokens`: the reader with images skipped (shuffle, partition, prefetch included),
//!   against `floor/decode-sequential`: decoding every row group of every shard in file order with
//!   [`ShardFile`], one thread, nothing else (the Rust floor; pyarrow's is in `benches/reader/`).
//! - `reader/images`: the reader with images decoded, against `floor/bare-image-decode`: decoding
//!   the same image bytes (already in memory) on the same number of threads.
//! - `checksums/decode-checked` against `checksums/decode-unchecked`: decoding every row group of
//!   every shard as `floor/decode-sequential` does, opened with and without the manifest's checksums
//!   (`ShardFile::open_checked` / `ShardFile::open`): the cost of checking every byte as it is read
//!   (issue 15's goal: at most 3% of reader time).
//! - `first-batch/N-shards`: `Reader::try_new` plus the first batch on N one-row shards
//!   (default 10,000; set MIXTAPE_BENCH_SHARDS).
//! - Peak RSS (from /proc, reset between measurements) with default options, for 1 and 3 epochs
//!   and for the many-shard set, printed to stderr.
//!
//! Run: `cargo bench --bench reader` (set MIXTAPE_BENCH_DEMO=DIR to reuse a built demo output).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mixtape_shards::layout::{self, Discovered};
use mixtape_shards::reader::ReaderOptions;
use mixtape_shards::{
    ImageMode, Manifest, PackedRow, PackedSampleMeta, Reader, ShardFile, StageLayout,
};

/// Threads for the reader and for the image floor.
const THREADS: usize = 2;

fn demo() -> (Option<tempfile::TempDir>, Vec<PathBuf>) {
    let (keep, out) = match std::env::var_os("MIXTAPE_BENCH_DEMO") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let tmp = tempfile::tempdir().expect("temp dir");
            let out = tmp.path().join("out");
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_mixtape"))
                .args(["build", "recipes/demo.yaml", "--quiet", "--out"])
                .arg(&out)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("MIXTAPE_CACHE_DIR", tmp.path().join("cache"))
                .status()
                .expect("run mixtape build");
            assert!(status.success(), "building the demo failed");
            (Some(tmp), out)
        }
    };
    let Ok(Discovered::Build { stages, .. }) = layout::discover(&out) else {
        panic!("{} is no build output", out.display());
    };
    // By name, as the figures in the README were measured.
    let mut stages: Vec<PathBuf> = stages.iter().map(|s| s.dir().to_path_buf()).collect();
    stages.sort();
    (keep, stages)
}

fn totals(stages: &[PathBuf]) -> (u64, u64) {
    stages.iter().fold((0, 0), |(t, i), s| {
        let m = Manifest::read(StageLayout::of_dir(s).manifest()).expect("manifest");
        (t + m.totals.tokens, i + m.totals.images)
    })
}

fn read_all(stages: &[PathBuf], mode: ImageMode) -> usize {
    let options = ReaderOptions::default()
        .with_image_mode(mode)
        .with_decode_threads(THREADS)
        .with_batch_size(4);
    Reader::try_new(stages, options, None)
        .expect("reader")
        .map(|b| b.expect("batch").tokens())
        .sum()
}

fn shard_paths(stages: &[PathBuf]) -> Vec<PathBuf> {
    stages
        .iter()
        .flat_map(|s| {
            let m = Manifest::read(StageLayout::of_dir(s).manifest()).expect("manifest");
            m.shards
                .iter()
                .map(|sh| s.join(&sh.file))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn decode_sequential(paths: &[PathBuf]) -> usize {
    paths
        .iter()
        .map(|p| {
            ShardFile::open(p)
                .expect("open")
                .read_all()
                .expect("read")
                .len()
        })
        .sum()
}

/// Like [`decode_sequential`], each shard opened with its manifest entry, so every byte read is
/// checked against its CRC32.
fn decode_checked(stages: &[PathBuf]) -> usize {
    let mut rows = 0;
    for stage in stages {
        let manifest = Manifest::read(StageLayout::of_dir(stage).manifest()).expect("manifest");
        for info in &manifest.shards {
            let shard = ShardFile::open_checked(stage.join(&info.file), info).expect("open");
            rows += shard.read_all().expect("read").len();
        }
    }
    rows
}

fn image_bytes(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in paths {
        for row in ShardFile::open(p).expect("open").read_all().expect("read") {
            out.extend(row.images.into_iter().map(|i| i.bytes));
        }
    }
    out
}

fn decode_images(images: &[Vec<u8>]) -> usize {
    let chunk = images.len().div_ceil(THREADS).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = images
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|b| mixtape_image::decode(b).expect("decode").pixels.len())
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    })
}

/// `count` one-row shards in one stage.
fn many_shards(dir: &Path, count: u32) -> PathBuf {
    let stage = dir.join("many");
    std::fs::create_dir_all(&stage).expect("mkdir");
    let mut infos = Vec::new();
    for index in 0..count {
        let meta = mixtape_shards::ShardMeta {
            recipe_fingerprint: "bench".into(),
            stage: "many".into(),
            seq_len: 64,
            shard_index: index,
        };
        let mut writer =
            mixtape_shards::ShardWriter::try_new(&stage, meta, Default::default()).expect("writer");
        let row = PackedRow {
            input_ids: vec![1, 2, 3, 4],
            loss_mask: vec![0, 1, 1, 1],
            seq_lens: vec![4],
            samples: vec![PackedSampleMeta {
                source: "s".into(),
                category: "c".into(),
                key: format!("k{index}"),
                loss_tokens: 3,
            }],
            images: Vec::new(),
        };
        writer.write(row).expect("write");
        infos.push(writer.finish().expect("finish"));
    }
    Manifest::new("many", 64, "bench", infos, Default::default())
        .write(StageLayout::of_dir(&stage).manifest())
        .expect("manifest");
    stage
}

/// Peak resident set since the last reset, in MiB (Linux; None elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_of(label: &str, work: impl FnOnce()) {
    reset_peak_rss();
    let before = peak_rss_mib();
    work();
    if let (Some(before), Some(after)) = (before, peak_rss_mib()) {
        eprintln!("peak RSS {label}: {after:.1} MiB (was {before:.1} MiB before it)");
    }
}

fn bench_reader(c: &mut Criterion) {
    let (_keep, stages) = demo();
    let (tokens, images) = totals(&stages);
    let paths = shard_paths(&stages);

    let mut group = c.benchmark_group("tokens");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(tokens));
    group.bench_function("reader/images-skipped", |b| {
        b.iter(|| read_all(&stages, ImageMode::Skip))
    });
    group.bench_function("floor/decode-sequential", |b| {
        b.iter(|| decode_sequential(&paths))
    });
    group.finish();

    let mut group = c.benchmark_group("checksums");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(tokens));
    group.bench_function("decode-checked", |b| b.iter(|| decode_checked(&stages)));
    group.bench_function("decode-unchecked", |b| b.iter(|| decode_sequential(&paths)));
    group.finish();

    let bytes = image_bytes(&paths);
    let mut group = c.benchmark_group("images");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(images));
    group.bench_function("reader/images-decoded", |b| {
        b.iter(|| read_all(&stages, ImageMode::Decoded))
    });
    group.bench_function("floor/bare-image-decode", |b| {
        b.iter(|| decode_images(&bytes))
    });
    group.finish();
    drop(bytes);

    let count: u32 = std::env::var("MIXTAPE_BENCH_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let many = many_shards(tmp.path(), count);
    eprintln!(
        "wrote {count} one-row shards in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("first-batch");
    group.sample_size(10);
    group.bench_function(format!("{count}-shards"), |b| {
        b.iter(|| {
            let mut reader =
                Reader::try_new(std::slice::from_ref(&many), ReaderOptions::default(), None)
                    .expect("reader");
            reader.next().expect("a batch").expect("ok").rows.len()
        })
    });
    group.finish();

    peak_of("reading the demo, 1 epoch, default options", || {
        let n: usize = Reader::try_new(&stages, ReaderOptions::default(), None)
            .expect("r")
            .map(|b| b.expect("b").rows.len())
            .sum();
        assert!(n > 0);
    });
    peak_of("reading the demo, 3 epochs, default options", || {
        let options = ReaderOptions::default().with_epochs(3);
        let n: usize = Reader::try_new(&stages, options, None)
            .expect("r")
            .map(|b| b.expect("b").rows.len())
            .sum();
        assert!(n > 0);
    });
    peak_of(
        &format!("reading {count} one-row shards, default options"),
        || {
            let n: usize =
                Reader::try_new(std::slice::from_ref(&many), ReaderOptions::default(), None)
                    .expect("r")
                    .map(|b| b.expect("b").rows.len())
                    .sum();
            assert_eq!(n, count as usize);
        },
    );
}

criterion_group!(benches, bench_reader);
criterion_main!(benches);
