//! Data and the per-record floor for the end-to-end benchmark (`bash benches/e2e/run.sh`).
//!
//! Two modes, both using only the engine's public API:
//!
//! ```text
//! cargo run --release --example make_corpus -- corpus --out DIR [--n 2000] [--median-mp 0.2] [--seed 7] [--docs 0]
//! cargo run --release --example make_corpus -- floor --dir DIR --tokenizer FILE [--threads 2] [--reps 3]
//!     [--max-pixels 1003520] [--quality 90] [--breakdown 1]
//! ```
//!
//! `corpus` writes `DIR/img/000123.jpg` (JPEG q90, encoded by `mixtape_engine::image::encode_jpeg`) and
//! `DIR/captions.jsonl` lines `{"image": "img/000123.jpg", "caption": "..."}` from the `shapes-caption`
//! generator (seed 7, index i). The generator's canvases have a median of about 0.47 MP, so every image is
//! scaled by one common factor (bicubic, `mixtape_engine::image::resize`) that brings the median area to
//! `--median-mp` (0.2 by default, like the reference photo set of shared/FACTS.md section 8). With
//! `--docs M` it also writes `DIR/docs.jsonl`, M long-text documents `{"text": ...}`.
//!
//! `floor` measures the per-record work alone, the lower bound of a build: every image of `DIR` is decoded,
//! resized by the Qwen2.5-VL rule and re-encoded (`mixtape_engine::image::process`), and every caption is
//! tokenized with the chat template (`mixtape_engine::template::Encoder`), on `--threads` threads that take
//! records from a shared counter (perfect load balance), with all files read into memory beforehand. It also
//! times each step on one thread first (unless `--breakdown 0`), and the tokenize-only work that a `source`-encoding build does. It prints
//! one JSON object.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mixtape_engine::image::{
    ImageEncoding, ResizePolicy, decode, encode_jpeg, image_tokens, process, resize, smart_resize,
};
use mixtape_engine::sample::{ImageRef, ImageSource, Role, Sample, SampleKind, Turn};
use mixtape_engine::synthetic::{SyntheticKind, generate, render_scene};
use mixtape_engine::template::Encoder;

const SEED: u64 = 7;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("corpus") => corpus(&args[1..]),
        Some("floor") => floor(&args[1..]),
        _ => Err(
            "usage: make_corpus corpus --out DIR [--n N] [--median-mp F] [--docs M] | \
                  make_corpus floor --dir DIR --tokenizer FILE [--threads T] [--reps R]"
                .to_string(),
        ),
    };
    if let Err(e) = result {
        eprintln!("make_corpus: {e}");
        std::process::exit(2);
    }
}

/// `--name value` options.
struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                return Err(format!("unexpected argument `{k}`"));
            };
            let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_string(), v.clone()));
        }
        Ok(Opts(out))
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`")),
        }
    }
    fn path(&self, name: &str) -> Result<PathBuf, String> {
        self.get(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{name} is required"))
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

// ------------------------------------------------------------------------------------------------------
// corpus

fn corpus(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(args)?;
    let out = o.path("out")?;
    let n: u64 = o.num("n", 2000)?;
    let median_mp: f64 = o.num("median-mp", 0.2)?;
    let docs: u64 = o.num("docs", 0)?;
    let threads: usize = o.num(
        "threads",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    )?;
    if n == 0 {
        return Err("--n must be at least 1".into());
    }
    let img_dir = out.join("img");
    std::fs::create_dir_all(&img_dir).map_err(io_err(&img_dir))?;

    // Sizes are known without drawing a pixel: pick the common scale from the median canvas area.
    let samples: Vec<Sample> = (0..n)
        .map(|i| generate(SyntheticKind::ShapesCaption, SEED, i))
        .collect();
    let mut areas: Vec<f64> = samples
        .iter()
        .map(|s| {
            let (h, w) = s.images[0].size.expect("synthetic images carry their size");
            f64::from(h) * f64::from(w)
        })
        .collect();
    areas.sort_by(f64::total_cmp);
    let median = areas[areas.len() / 2];
    let scale = (median_mp * 1e6 / median).sqrt().min(1.0);

    let next = AtomicUsize::new(0);
    let bytes_total = AtomicUsize::new(0);
    let failure: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= samples.len() {
                        break;
                    }
                    if let Err(e) =
                        write_image(&samples[i], scale, &img_dir.join(format!("{i:06}.jpg")))
                    {
                        *failure.lock().unwrap() = Some(e);
                        break;
                    }
                    let len = std::fs::metadata(img_dir.join(format!("{i:06}.jpg")))
                        .map_or(0, |m| m.len());
                    bytes_total.fetch_add(len as usize, Ordering::Relaxed);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }

    let path = out.join("captions.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&path).map_err(io_err(&path))?);
    for (i, sample) in samples.iter().enumerate() {
        let caption = sample
            .turns
            .iter()
            .find(|t| t.role == Role::Assistant)
            .map(|t| t.text.as_str())
            .unwrap_or_default();
        let line = serde_json::json!({"image": format!("img/{i:06}.jpg"), "caption": caption});
        writeln!(w, "{line}").map_err(io_err(&path))?;
    }
    w.flush().map_err(io_err(&path))?;

    if docs > 0 {
        let path = out.join("docs.jsonl");
        let mut w = BufWriter::new(std::fs::File::create(&path).map_err(io_err(&path))?);
        for i in 0..docs {
            let s = generate(SyntheticKind::LongText, SEED, i);
            let text: String = s
                .turns
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            writeln!(w, "{}", serde_json::json!({"text": text})).map_err(io_err(&path))?;
        }
        w.flush().map_err(io_err(&path))?;
    }

    let scaled: Vec<f64> = areas.iter().map(|a| a * scale * scale / 1e6).collect();
    println!(
        "{}",
        serde_json::json!({
            "dir": out.display().to_string(),
            "images": n,
            "docs": docs,
            "scale": scale,
            "median_mp": scaled[scaled.len() / 2],
            "min_mp": scaled[0],
            "max_mp": scaled[scaled.len() - 1],
            "jpeg_bytes": bytes_total.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

fn write_image(sample: &Sample, scale: f64, path: &Path) -> Result<(), String> {
    let ImageSource::Synthetic { scene } = sample.images[0].source else {
        return Err("shapes-caption sample without a synthetic image".into());
    };
    let mut img = render_scene(scene);
    if scale < 1.0 {
        let h = ((f64::from(img.height) * scale).round() as u32).max(1);
        let w = ((f64::from(img.width) * scale).round() as u32).max(1);
        img = resize(&img, h, w).map_err(|e| e.to_string())?;
    }
    let bytes = encode_jpeg(&img, 90).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(io_err(path))
}

// ------------------------------------------------------------------------------------------------------
// floor

struct Record {
    bytes: Arc<[u8]>,
    sample: Sample,
}

fn floor(args: &[String]) -> Result<(), String> {
    let o = Opts::parse(args)?;
    let dir = o.path("dir")?;
    let tokenizer = o.path("tokenizer")?;
    let threads: usize = o.num("threads", 2)?;
    let reps: usize = o.num("reps", 3)?;
    let breakdown: u8 = o.num("breakdown", 1)?;
    let quality: u8 = o.num("quality", 90)?;
    let policy = ResizePolicy::default().with_max_pixels(o.num("max-pixels", 1_003_520)?);
    let encoding = ImageEncoding::Jpeg;
    let encoder = Encoder::from_file(&tokenizer).map_err(|e| e.to_string())?;

    // Everything in memory first: the floor is the per-record work, not file I/O.
    let path = dir.join("captions.jsonl");
    let file = std::fs::File::open(&path).map_err(io_err(&path))?;
    let mut records = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(io_err(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("{}: {e}", path.display()))?;
        let image = dir.join(v["image"].as_str().ok_or("record without image")?);
        let caption = v["caption"]
            .as_str()
            .ok_or("record without caption")?
            .to_string();
        let bytes: Arc<[u8]> = std::fs::read(&image).map_err(io_err(&image))?.into();
        let sample = Sample {
            kind: SampleKind::Caption,
            turns: vec![
                Turn {
                    role: Role::User,
                    text: "<image>".into(),
                },
                Turn {
                    role: Role::Assistant,
                    text: caption,
                },
            ],
            images: vec![ImageRef {
                source: ImageSource::Bytes(bytes.clone()),
                size: None,
            }],
        };
        records.push(Record { bytes, sample });
    }
    if records.is_empty() {
        return Err(format!("{}: no records", path.display()));
    }

    // One thread, step by step (where the time goes).
    let (mut t_decode, mut t_resize, mut t_encode, mut t_tok) = (0.0, 0.0, 0.0, 0.0);
    let (mut tokens, mut out_bytes, mut pixels_in) = (0u64, 0u64, 0u64);
    let mut per_image_ms = Vec::with_capacity(records.len());
    for r in records.iter().filter(|_| breakdown != 0) {
        let t0 = Instant::now();
        let img = decode(&r.bytes).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let (h, w) = smart_resize(img.height, img.width, &policy).map_err(|e| e.to_string())?;
        let resized = resize(&img, h, w).map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        let jpeg = encode_jpeg(&resized, quality).map_err(|e| e.to_string())?;
        let t3 = Instant::now();
        let enc = encoder
            .encode(
                &r.sample,
                &[image_tokens(h, w, &policy)],
                &Default::default(),
            )
            .map_err(|e| e.to_string())?;
        let t4 = Instant::now();
        t_decode += (t1 - t0).as_secs_f64();
        t_resize += (t2 - t1).as_secs_f64();
        t_encode += (t3 - t2).as_secs_f64();
        t_tok += (t4 - t3).as_secs_f64();
        per_image_ms.push((t3 - t0).as_secs_f64() * 1e3);
        tokens += enc.ids.len() as u64;
        out_bytes += jpeg.len() as u64;
        pixels_in += u64::from(img.height) * u64::from(img.width);
    }
    per_image_ms.sort_by(f64::total_cmp);

    // `threads` threads, perfectly balanced: full per-record work (what a jpeg build must do) and
    // tokenize only (what a `source` build must do).
    let full = |r: &Record| -> usize {
        let p = process(&r.bytes, &policy, encoding, quality).expect("corpus images process");
        let e = encoder
            .encode(
                &r.sample,
                &[image_tokens(p.height, p.width, &policy)],
                &Default::default(),
            )
            .expect("encode");
        p.bytes.len() + e.ids.len()
    };
    let tok_only = |r: &Record| -> usize {
        let (h, w) = imagesize_of(&r.bytes);
        let (h, w) = smart_resize(h, w, &policy).expect("resize rule");
        encoder
            .encode(
                &r.sample,
                &[image_tokens(h, w, &policy)],
                &Default::default(),
            )
            .expect("encode")
            .ids
            .len()
    };
    let floor_full = median(
        (0..reps.max(1))
            .map(|_| parallel(&records, threads, &full))
            .collect(),
    );
    let floor_tok = median(
        (0..reps.max(1))
            .map(|_| parallel(&records, threads, &tok_only))
            .collect(),
    );

    let n = records.len() as f64;
    let median_mp = median(
        records
            .iter()
            .map(|r| {
                let (h, w) = imagesize_of(&r.bytes);
                f64::from(h) * f64::from(w) / 1e6
            })
            .collect(),
    );
    println!(
        "{}",
        serde_json::json!({
            "records": records.len(),
            "threads": threads,
            "reps": reps,
            "floor_s": floor_full,
            "floor_source_s": floor_tok,
            "tokens": tokens,
            "output_image_bytes": out_bytes,
            "median_input_mp": median_mp,
            "mean_input_mp": pixels_in as f64 / n / 1e6,
            "one_thread": {
                "total_s": t_decode + t_resize + t_encode + t_tok,
                "decode_ms": t_decode / n * 1e3,
                "resize_ms": t_resize / n * 1e3,
                "encode_ms": t_encode / n * 1e3,
                "tokenize_ms": t_tok / n * 1e3,
                "image_median_ms": per_image_ms.get(per_image_ms.len() / 2),
                "template_tokens_per_s": tokens as f64 / t_tok,
            },
        })
    );
    Ok(())
}

/// JPEG (height, width) from the SOF marker; enough for the files `corpus` writes.
fn imagesize_of(bytes: &[u8]) -> (u32, u32) {
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return (u32::from(h), u32::from(w));
        }
        i += 2 + len;
    }
    panic!("no JPEG frame header");
}

fn parallel(records: &[Record], threads: usize, work: &(dyn Fn(&Record) -> usize + Sync)) -> f64 {
    let next = AtomicUsize::new(0);
    let sink = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut acc = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= records.len() {
                        break;
                    }
                    acc = acc.wrapping_add(work(&records[i]));
                }
                sink.fetch_add(acc, Ordering::Relaxed);
            });
        }
    });
    let elapsed = t.elapsed().as_secs_f64();
    std::hint::black_box(sink.load(Ordering::Relaxed));
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
