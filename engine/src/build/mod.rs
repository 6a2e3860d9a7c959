//! `mixtape build`: a recipe -> one packed shard set per stage.
//!
//! sources -> samples -> encoded samples -> packs -> shards, streaming and parallel:
//! the plan (the same resolution `mixtape plan` prints) says which records each stage draws; each
//! stage reads them front to back ([`draws`]), encodes batches in parallel on a rayon pool of `jobs`
//! threads ([`encode`]) while the calling thread reads the next batch and packs and writes the
//! previous one with best-fit-decreasing into zstd Parquet shards ([`stage`]). Everything is ordered by the plan, never by thread timing, so any `jobs` gives the
//! same bytes.
//!
//! Output layout: `OUT/build.json` (the recipe fingerprint the folder belongs to and the JPEG encoder
//! that wrote its images: a rerun with another encoder would mix two encoders' bytes, so it is
//! refused), and per stage
//! `OUT/STAGE/shard-NNNNN.parquet`, `manifest.json` and `rejects.jsonl`; `OUT/rejects.jsonl` lists the
//! records no stage could read at all. A stage with a manifest is finished; a rerun skips it, and
//! inside an unfinished stage it skips every finished shard.

pub mod draws;
pub mod encode;
pub mod stage;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use mixtape_shards::{MANIFEST_FILE, Manifest};
use serde::{Deserialize, Serialize};

use crate::diag::Severity;
use crate::index::IndexCache;
use crate::resolve::resolve;
pub use stage::RejectEntry;

/// Default target size of one shard: large enough that a training reader opens few files (the
/// "few large files" advice), small enough that one shard is a modest unit of resume and shuffling.
pub const DEFAULT_TARGET_SHARD_BYTES: u64 = 256 << 20;
/// Default most rejected draws, as a fraction of a stage's draws, before the build fails.
pub const DEFAULT_MAX_REJECT_FRACTION: f64 = 0.01;
const STATE_FILE: &str = "build.json";

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// Encoding threads; `None` uses every core. Reading, packing and writing run beside them on the
    /// calling thread.
    pub jobs: Option<usize>,
    pub max_reject_fraction: f64,
    pub target_shard_bytes: u64,
    pub cache: IndexCache,
}

impl BuildOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            jobs: None,
            max_reject_fraction: DEFAULT_MAX_REJECT_FRACTION,
            target_shard_bytes: DEFAULT_TARGET_SHARD_BYTES,
            cache: IndexCache { dir: IndexCache::default_dir() },
        }
    }
}

/// Progress events, for a progress bar.
#[derive(Clone, Debug)]
pub enum Progress {
    StageStart { stage: String, draws: u64 },
    Advance { draws: u64, tokens: u64 },
    StageDone { stage: String, reused: bool },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("the recipe has errors:\n{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Source(crate::source::SourceError),
    #[error("source `{name}` has fewer records than when it was planned: it changed during the build; rerun")]
    SourceChanged { name: String },
    #[error("packing failed: {0}")]
    Pack(String),
    #[error(transparent)]
    Write(mixtape_shards::WriteError),
    #[error("manifest: {0}")]
    Manifest(#[from] mixtape_shards::ManifestError),
    #[error(
        "{out} holds a build of another recipe (fingerprint {found}, this one is {expected}); use another --out, or delete the folder to rebuild"
    )]
    OtherBuild { out: PathBuf, found: String, expected: String },
    #[error(
        "{out} was built with the JPEG encoder {found}, this mixtape encodes with {expected}: finishing it would mix both encoders' bytes; use another --out, or delete the folder to rebuild"
    )]
    OtherJpegEncoder { out: PathBuf, found: String, expected: String },
    #[error(
        "stage `{stage}`: {rejected} of {drawn} drawn records were rejected ({fraction:.2}%), over --max-reject-fraction {max:.2}%; see {rejects}"
    )]
    TooManyRejects { stage: String, rejected: u64, drawn: u64, fraction: f64, max: f64, rejects: PathBuf },
    #[error("cannot start {jobs} worker threads: {detail}")]
    Threads { jobs: usize, detail: String },
}

impl BuildError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io { path: path.to_path_buf(), source }
    }
}

/// What a build did.
#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub fingerprint: String,
    pub out: PathBuf,
    pub stages: Vec<StageReport>,
    /// Records no stage could read (invalid JSON, missing images, ...), by reason.
    pub unreadable: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub dir: PathBuf,
    pub resumed: bool,
    pub shards_written: usize,
    pub shards_reused: usize,
    pub drawn: u64,
    pub manifest: Manifest,
}

#[derive(Debug, Serialize, Deserialize)]
struct BuildState {
    recipe: String,
    fingerprint: String,
    /// [`crate::image::jpeg_encoder_id`] of the build that wrote the folder (absent before
    /// mixtape recorded it: such a folder is not resumed).
    #[serde(default)]
    jpeg_encoder: Option<String>,
}

/// Builds every stage of a recipe into `options.out`.
pub fn build(recipe_path: &Path, options: &BuildOptions, progress: &(dyn Fn(Progress) + Sync)) -> Result<BuildReport, BuildError> {
    let resolved = resolve(recipe_path, &options.cache);
    let (Some(recipe), Some(plan), Some(encoder)) = (resolved.recipe.as_ref(), resolved.plan.as_ref(), resolved.encoder.as_ref())
    else {
        let text: String = resolved
            .diagnostics
            .clone()
            .sorted()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.render(&resolved.files))
            .collect();
        return Err(BuildError::Invalid(text));
    };
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| BuildError::io(out, e))?;
    let state_path = out.join(STATE_FILE);
    let jpeg_encoder = crate::image::jpeg_encoder_id();
    if let Ok(bytes) = std::fs::read(&state_path) {
        if let Ok(state) = serde_json::from_slice::<BuildState>(&bytes) {
            if state.fingerprint != plan.fingerprint {
                return Err(BuildError::OtherBuild { out: out.clone(), found: state.fingerprint, expected: plan.fingerprint.clone() });
            }
            if state.jpeg_encoder.as_deref() != Some(jpeg_encoder.as_str()) {
                let found = state.jpeg_encoder.unwrap_or_else(|| "unrecorded (an older mixtape)".into());
                return Err(BuildError::OtherJpegEncoder { out: out.clone(), found, expected: jpeg_encoder });
            }
        }
    }
    let state = BuildState {
        recipe: recipe.name.clone(),
        fingerprint: plan.fingerprint.clone(),
        jpeg_encoder: Some(jpeg_encoder),
    };
    write_atomic(&state_path, &serde_json::to_vec_pretty(&state).unwrap_or_default())?;

    // Records that could not be read at all belong to no stage: list them once, at the top.
    let mut unreadable_lines = Vec::new();
    let mut unreadable = BTreeMap::new();
    for spec in &recipe.sources {
        for r in &resolved.indexes[&spec.name].rejects {
            *unreadable.entry(r.code.clone()).or_insert(0) += 1;
            unreadable_lines.push(RejectEntry {
                source: spec.name.clone(),
                location: r.location.clone(),
                reason: r.code.clone(),
                message: r.message.clone(),
            });
        }
    }
    write_jsonl(&out.join("rejects.jsonl"), &unreadable_lines)?;

    let jobs = options.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| BuildError::Threads { jobs, detail: e.to_string() })?;

    let mut stages = Vec::new();
    for (stage, stage_plan) in recipe.stages.iter().zip(&plan.stages) {
        let dir = out.join(&stage.name);
        let manifest_path = dir.join(MANIFEST_FILE);
        if let Ok(manifest) = Manifest::read(&manifest_path) {
            if manifest.recipe_fingerprint == plan.fingerprint {
                progress(Progress::StageDone { stage: stage.name.clone(), reused: true });
                let drawn = stage_plan.categories.iter().flat_map(|c| &c.sources).map(|d| d.end - d.start).sum();
                stages.push(StageReport { name: stage.name.clone(), dir, resumed: true, shards_written: 0, shards_reused: manifest.shards.len(), drawn, manifest });
                continue;
            }
        }
        let ctx = stage::StageContext {
            recipe,
            plan,
            stage,
            stage_plan,
            indexes: &resolved.indexes,
            encoder,
            options,
            pool: &pool,
            dir: dir.clone(),
        };
        let outcome = stage::run(&ctx, progress)?;
        let rejects_path = dir.join("rejects.jsonl");
        write_jsonl(&rejects_path, &outcome.rejects)?;
        let rejected = outcome.rejects.len() as u64;
        let fraction = rejected as f64 / outcome.drawn.max(1) as f64;
        if fraction > options.max_reject_fraction {
            return Err(BuildError::TooManyRejects {
                stage: stage.name.clone(),
                rejected,
                drawn: outcome.drawn,
                fraction: 100.0 * fraction,
                max: 100.0 * options.max_reject_fraction,
                rejects: rejects_path,
            });
        }
        outcome.manifest.write(&manifest_path)?;
        progress(Progress::StageDone { stage: stage.name.clone(), reused: false });
        stages.push(StageReport {
            name: stage.name.clone(),
            dir,
            resumed: false,
            shards_written: outcome.shards_written,
            shards_reused: outcome.shards_reused,
            drawn: outcome.drawn,
            manifest: outcome.manifest,
        });
    }
    Ok(BuildReport { fingerprint: plan.fingerprint.clone(), out: out.clone(), stages, unreadable })
}

fn write_jsonl(path: &Path, entries: &[RejectEntry]) -> Result<(), BuildError> {
    let mut buf = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut buf, e).map_err(|err| BuildError::io(path, std::io::Error::other(err)))?;
        buf.push(b'\n');
    }
    write_atomic(path, &buf)
}

/// Writes to a temporary file beside `path`, syncs it, and renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| BuildError::io(path, e))
}
