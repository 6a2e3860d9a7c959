//! `mixtape stream`: run the training-side reader without training, to measure it and to look at
//! data orders.
//!
//! It reads the stages (in the order given) with the same [`Reader`] a trainer uses, and prints
//! throughput (rows, tokens, images and megapixels per second, time to the first batch), the final
//! resume state as JSON, and the tally of what was read. `--order` lists every row's origin, so
//! two ranks' orders or a resumed run can be compared with `diff`. Exit 0 when every requested
//! batch was read, 1 when the data is damaged (the error names the shard and row group), 2 when it
//! could not start.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use mixtape_shards::layout;
use mixtape_shards::reader::ImageMode;
use mixtape_shards::{Reader, ReaderOptions, ReaderState};
use serde::Serialize;

/// Everything `mixtape stream` was asked, resolved from the command line.
#[derive(Debug)]
pub struct StreamArgs {
    pub dirs: Vec<PathBuf>,
    pub rank: Option<usize>,
    pub world_size: Option<usize>,
    pub batch_size: usize,
    pub seed: u64,
    pub epochs: u32,
    pub resume: Option<PathBuf>,
    pub save_state: Option<PathBuf>,
    pub steps: Option<u64>,
    pub images: ImageMode,
    pub decode_threads: usize,
    pub prefetch: usize,
    pub shuffle_window: usize,
    pub no_shuffle: bool,
    pub verify: bool,
    /// The chunk cache's folder and limit in bytes.
    pub chunk_cache: Option<(PathBuf, u64)>,
    /// Range requests in flight at once for remote shards.
    pub remote_requests: usize,
    /// Whether a remote stage's next window is read ahead.
    pub read_ahead: bool,
    pub order: bool,
    pub json: bool,
}

/// What the read cost in object-store traffic.
#[derive(Debug, Serialize)]
struct Remote {
    requests: u64,
    bytes_downloaded: u64,
    retries: u64,
    cache_hit_bytes: u64,
}

impl Remote {
    fn now() -> Self {
        let counters = mixtape_store::counters();
        Self {
            requests: counters.get_requests(),
            bytes_downloaded: counters.bytes_downloaded(),
            retries: counters.retries(),
            cache_hit_bytes: counters.cache_hit_bytes(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    batches: u64,
    rows: u64,
    tokens: u64,
    images: u64,
    megapixels: f64,
    seconds: f64,
    first_batch_seconds: f64,
    rows_per_s: f64,
    tokens_per_s: f64,
    images_per_s: f64,
    megapixels_per_s: f64,
    error: Option<String>,
    /// Traffic to object stores (all zero for local shards).
    remote: Remote,
    state: ReaderState,
    tally: mixtape_shards::Tally,
}

pub fn run(args: StreamArgs) -> anyhow::Result<ExitCode> {
    let dirs = layout::stages_to_read(&args.dirs)?;
    let mut options = ReaderOptions::from_env()?;
    let (rank, world_size) = (
        args.rank.unwrap_or(options.rank()),
        args.world_size.unwrap_or(options.world_size()),
    );
    options = options
        .with_rank(rank, world_size)
        .with_batch_size(args.batch_size)
        .with_seed(args.seed)
        .with_epochs(args.epochs)
        .with_image_mode(args.images)
        .with_decode_threads(args.decode_threads)
        .with_prefetch(args.prefetch)
        .with_shuffle_window(args.shuffle_window)
        .with_shuffle(!args.no_shuffle)
        .with_remote_requests(args.remote_requests)
        .with_read_ahead(args.read_ahead)
        .with_verify(args.verify);
    if let Some((dir, limit)) = &args.chunk_cache {
        options = options.with_cache(dir, *limit);
    }
    let resume = match &args.resume {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read state {}", path.display()))?;
            Some(
                serde_json::from_slice::<ReaderState>(&bytes)
                    .with_context(|| format!("{} is not a reader state", path.display()))?,
            )
        }
        None => None,
    };
    let start = Instant::now();
    let mut reader = Reader::try_new(&dirs, options, resume)?;
    for warning in reader.warnings() {
        eprintln!("warning: {warning}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut batches, mut first_batch, mut megapixels, mut error) = (0u64, None, 0f64, None);
    while args.steps.is_none_or(|n| batches < n) {
        let Some(batch) = reader.next() else { break };
        match batch {
            Ok(batch) => {
                first_batch.get_or_insert_with(|| start.elapsed().as_secs_f64());
                batches += 1;
                for row in &batch.rows {
                    megapixels += row
                        .images
                        .iter()
                        .map(|i| f64::from(i.height) * f64::from(i.width) / 1e6)
                        .sum::<f64>();
                    if args.order {
                        writeln!(
                            out,
                            "{} {} {} {}",
                            row.stage, batch.epoch, row.origin.shard, row.origin.row
                        )?;
                    }
                }
            }
            Err(err) => {
                error = Some(err.to_string());
                break;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tally = reader.tally().clone();
    let state = reader.state();
    let per_s = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
    let report = Report {
        batches,
        rows: tally.rows,
        tokens: tally.total.tokens,
        images: tally.total.images,
        megapixels,
        seconds,
        first_batch_seconds: first_batch.unwrap_or(seconds),
        rows_per_s: per_s(tally.rows as f64),
        tokens_per_s: per_s(tally.total.tokens as f64),
        images_per_s: per_s(tally.total.images as f64),
        megapixels_per_s: per_s(megapixels),
        error: error.clone(),
        remote: Remote::now(),
        state: state.clone(),
        tally,
    };
    if let Some(path) = &args.save_state {
        std::fs::write(path, serde_json::to_vec_pretty(&state)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        eprintln!(
            "{} batches, {} rows, {} tokens, {} images in {:.3} s (first batch after {:.3} s)",
            report.batches,
            report.rows,
            report.tokens,
            report.images,
            report.seconds,
            report.first_batch_seconds
        );
        eprintln!(
            "{:.0} rows/s  {:.0} tokens/s  {:.1} images/s  {:.2} megapixels/s",
            report.rows_per_s, report.tokens_per_s, report.images_per_s, report.megapixels_per_s
        );
        let remote = &report.remote;
        if remote.requests > 0 {
            eprintln!(
                "remote: {} bytes downloaded in {} requests ({} retried), {} bytes from the chunk cache",
                remote.bytes_downloaded, remote.requests, remote.retries, remote.cache_hit_bytes
            );
        }
        if !args.order {
            writeln!(out, "{}", serde_json::to_string(&state)?)?;
        }
    }
    out.flush()?;
    drop(out);
    if let Some(err) = error {
        eprintln!("error: {err}");
        return Ok(ExitCode::from(super::PROBLEMS));
    }
    Ok(ExitCode::SUCCESS)
}
