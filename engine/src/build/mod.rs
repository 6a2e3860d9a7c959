//! `mixtape build`: a recipe -> one packed shard set per stage.
//!
//! sources -> samples -> encoded samples -> packs -> shards, streaming and parallel:
//! the plan (the same resolution `mixtape plan` prints) says which records each stage draws; each
//! stage reads them front to back ([`draws`]), encodes batches in parallel on a rayon pool of `jobs`
//! threads ([`encode`]) while the calling thread reads the next batch and packs and writes the
//! previous one with best-fit-decreasing into zstd Parquet shards ([`stage`]). Everything is ordered by the plan, never by thread timing, so any `jobs` gives the
//! same bytes.
//!
//! Output layout: `OUT/build.json` ([`BuildRecord`]: the recipe fingerprint the folder belongs to,
//! the JPEG encoder that wrote its images and the stage names, checksummed), and per stage
//! `OUT/STAGE/shard-NNNNN.parquet`, `manifest.json` and `rejects.jsonl`; `OUT/rejects.jsonl` lists the
//! records no stage could read at all.
//!
//! Resuming: a non-empty `--out` is reused only when its `build.json` proves it is a build of this
//! recipe with this JPEG encoder (another encoder would mix two encoders' bytes in one stage);
//! a folder whose record is missing, unparseable, edited or another recipe's is refused, and
//! `--rebuild` ([`BuildOptions::rebuild`]) deletes mixtape's files there to build from scratch.
//! Inside an owned folder, each stage keeps exactly the finished shards whose recorded draws match
//! what this run would write and rebuilds the rest ([`stage`]).

pub mod draws;
pub mod encode;
pub mod stage;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use mixtape_shards::{BUILD_RECORD_FILE, BuildRecord, BuildRecordError, MANIFEST_FILE, Manifest};
use serde::Serialize;

use crate::diag::Severity;
use crate::index::IndexCache;
use crate::resolve::resolve;
pub use stage::RejectEntry;

/// Default target size of one shard: large enough that a training reader opens few files (the
/// "few large files" advice), small enough that one shard is a modest unit of resume and shuffling.
pub const DEFAULT_TARGET_SHARD_BYTES: u64 = 256 << 20;
/// Default most rejected draws, as a fraction of a stage's draws, before the build fails.
pub const DEFAULT_MAX_REJECT_FRACTION: f64 = 0.01;
/// Records that did not make it into a shard, one JSON object a line (top level and per stage).
pub const REJECTS_FILE: &str = "rejects.jsonl";

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// Encoding threads; `None` uses every core. Reading, packing and writing run beside them on the
    /// calling thread.
    pub jobs: Option<usize>,
    pub max_reject_fraction: f64,
    pub target_shard_bytes: u64,
    pub cache: IndexCache,
    /// Consent to delete mixtape's files already in `out` (build record, stage folders' shards,
    /// sidecars, manifests, rejects and temporaries) and build from scratch; without it a folder
    /// that is not provably this recipe's build is refused.
    pub rebuild: bool,
}

impl BuildOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            jobs: None,
            max_reject_fraction: DEFAULT_MAX_REJECT_FRACTION,
            target_shard_bytes: DEFAULT_TARGET_SHARD_BYTES,
            cache: IndexCache {
                dir: IndexCache::default_dir(),
            },
            rebuild: false,
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
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(crate::source::SourceError),
    #[error(
        "source `{name}` has fewer records than when it was planned: it changed during the build; rerun"
    )]
    SourceChanged { name: String },
    #[error("packing failed: {0}")]
    Pack(String),
    #[error(transparent)]
    Write(mixtape_shards::WriteError),
    #[error("manifest: {0}")]
    Manifest(#[from] mixtape_shards::ManifestError),
    #[error(
        "{out} holds a build of another recipe (fingerprint {found}, this one is {expected}); use another --out, or pass --rebuild to delete mixtape's files there and build from scratch"
    )]
    OtherBuild {
        out: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{out} was built with the JPEG encoder {found}, this mixtape encodes with {expected}: finishing it would mix both encoders' bytes; use another --out, or pass --rebuild to delete mixtape's files there and build from scratch"
    )]
    OtherJpegEncoder {
        out: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{out} is not empty and cannot be proven to be a build of this recipe, so nothing in it is reused: {reason}; use another --out, or pass --rebuild to delete mixtape's files there and build from scratch"
    )]
    Unowned {
        out: PathBuf,
        reason: BuildRecordError,
    },
    #[error(
        "stage `{stage}`: {rejected} of {drawn} drawn records were rejected ({fraction:.2}%), over --max-reject-fraction {max:.2}%; see {rejects}"
    )]
    TooManyRejects {
        stage: String,
        rejected: u64,
        drawn: u64,
        fraction: f64,
        max: f64,
        rejects: PathBuf,
    },
    #[error("cannot start {jobs} worker threads: {detail}")]
    Threads { jobs: usize, detail: String },
}

impl BuildError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.to_path_buf(),
            source,
        }
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

/// Builds every stage of a recipe into `options.out`.
pub fn build(
    recipe_path: &Path,
    options: &BuildOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BuildReport, BuildError> {
    let resolved = resolve(recipe_path, &options.cache);
    let (Some(recipe), Some(plan), Some(encoder)) = (
        resolved.recipe.as_ref(),
        resolved.plan.as_ref(),
        resolved.encoder.as_ref(),
    ) else {
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
    // `load` refuses unsafe names with their location; a `Recipe` built by hand must not write outside
    // `out` either.
    if let Some((stage, why)) = recipe
        .stages
        .iter()
        .find_map(|s| crate::recipe::names::problem(&s.name).map(|why| (&s.name, why)))
    {
        return Err(BuildError::Invalid(format!(
            "stage name `{stage}` cannot be a folder name: {why}"
        )));
    }
    let record = BuildRecord::new(
        recipe.name.clone(),
        plan.fingerprint.clone(),
        crate::image::jpeg_encoder_id(),
        recipe.stages.iter().map(|s| s.name.clone()).collect(),
    );
    claim(out, &record, options.rebuild)?;

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
    write_jsonl(&out.join(REJECTS_FILE), &unreadable_lines)?;

    let jobs = options
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| BuildError::Threads {
            jobs,
            detail: e.to_string(),
        })?;

    let mut stages = Vec::new();
    for (stage, stage_plan) in recipe.stages.iter().zip(&plan.stages) {
        let dir = out.join(&stage.name);
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
        let rejects_path = dir.join(REJECTS_FILE);
        let rejected = outcome.rejects.len() as u64;
        let fraction = rejected as f64 / outcome.drawn.max(1) as f64;
        if fraction > options.max_reject_fraction {
            write_jsonl(&rejects_path, &outcome.rejects)?;
            return Err(BuildError::TooManyRejects {
                stage: stage.name.clone(),
                rejected,
                drawn: outcome.drawn,
                fraction: 100.0 * fraction,
                max: 100.0 * options.max_reject_fraction,
                rejects: rejects_path,
            });
        }
        if !outcome.finished {
            write_jsonl(&rejects_path, &outcome.rejects)?;
            // Last: a manifest marks the stage finished.
            outcome.manifest.write(dir.join(MANIFEST_FILE))?;
        }
        progress(Progress::StageDone {
            stage: stage.name.clone(),
            reused: outcome.finished,
        });
        stages.push(StageReport {
            name: stage.name.clone(),
            dir,
            resumed: outcome.finished,
            shards_written: outcome.shards_written,
            shards_reused: outcome.shards_reused,
            drawn: outcome.drawn,
            manifest: outcome.manifest,
        });
    }
    Ok(BuildReport {
        fingerprint: plan.fingerprint.clone(),
        out: out.clone(),
        stages,
        unreadable,
    })
}

/// Makes `out` this build's folder: an empty or new folder, or one whose `build.json` is a valid
/// record of the same recipe and JPEG encoder. With `rebuild`, mixtape's files in it are deleted
/// first. The record is written before anything else, so every later file is provably this build's.
fn claim(out: &Path, record: &BuildRecord, rebuild: bool) -> Result<(), BuildError> {
    std::fs::create_dir_all(out).map_err(|e| BuildError::io(out, e))?;
    let path = out.join(BUILD_RECORD_FILE);
    if rebuild {
        remove_mixtape_files(out)?;
    } else {
        match BuildRecord::read(&path) {
            Ok(found) if found.fingerprint != record.fingerprint => {
                return Err(BuildError::OtherBuild {
                    out: out.to_path_buf(),
                    found: found.fingerprint,
                    expected: record.fingerprint.clone(),
                });
            }
            Ok(found) if found.jpeg_encoder != record.jpeg_encoder => {
                return Err(BuildError::OtherJpegEncoder {
                    out: out.to_path_buf(),
                    found: found.jpeg_encoder,
                    expected: record.jpeg_encoder.clone(),
                });
            }
            // Ours, or a build killed while writing its record (nothing else is written before it).
            Ok(_) => remove_top_level_temporaries(out)?,
            Err(BuildRecordError::Missing { .. }) if holds_only_record_temporaries(out)? => {
                remove_top_level_temporaries(out)?
            }
            Err(reason) => {
                return Err(BuildError::Unowned {
                    out: out.to_path_buf(),
                    reason,
                });
            }
        }
    }
    record.write(&path).map_err(|reason| BuildError::Unowned {
        out: out.to_path_buf(),
        reason,
    })
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))? {
        let entry = entry.map_err(|e| BuildError::io(dir, e))?;
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    entries.sort();
    Ok(entries)
}

/// Top-level files `build` writes: the record, the unreadable-records list, their temporaries.
fn is_top_level_file(name: &str) -> bool {
    name == BUILD_RECORD_FILE || name == REJECTS_FILE || is_top_level_temporary(name)
}

fn is_top_level_temporary(name: &str) -> bool {
    [BUILD_RECORD_FILE, REJECTS_FILE]
        .iter()
        .any(|file| name.starts_with(&format!(".{file}.")) && name.contains(".tmp"))
}

fn holds_only_record_temporaries(out: &Path) -> Result<bool, BuildError> {
    Ok(list(out)?.iter().all(|(name, _)| {
        name.starts_with(&format!(".{BUILD_RECORD_FILE}.")) && name.contains(".tmp")
    }))
}

fn remove_top_level_temporaries(out: &Path) -> Result<(), BuildError> {
    for (name, path) in list(out)? {
        if is_top_level_temporary(&name) {
            std::fs::remove_file(&path).map_err(|e| BuildError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Deletes what `build` writes in `out` and nothing else: the top-level files, and in every
/// subfolder the shards, sidecars, manifest, rejects and temporaries (the subfolder too, once it is
/// empty). A user's own files, anywhere, stay.
fn remove_mixtape_files(out: &Path) -> Result<(), BuildError> {
    let remove = |path: &Path| std::fs::remove_file(path).map_err(|e| BuildError::io(path, e));
    for (name, path) in list(out)? {
        if path.is_dir() {
            let files = list(&path)?;
            let ours: Vec<&PathBuf> = files
                .iter()
                .filter(|(n, _)| stage::StageFile::of(n).is_some())
                .map(|(_, p)| p)
                .collect();
            if ours.is_empty() {
                continue;
            }
            // The manifest first, so a kill midway leaves no finished-looking stage.
            let manifest = path.join(MANIFEST_FILE);
            if manifest.is_file() {
                remove(&manifest)?;
            }
            for file in ours.into_iter().filter(|p| **p != manifest) {
                remove(file)?;
            }
            let _ = std::fs::remove_dir(&path);
        } else if is_top_level_file(&name) {
            remove(&path)?;
        }
    }
    Ok(())
}

/// `entries` as JSON lines.
pub(crate) fn jsonl(entries: &[RejectEntry]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in entries {
        // Serializing strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut buf, e);
        buf.push(b'\n');
    }
    buf
}

fn write_jsonl(path: &Path, entries: &[RejectEntry]) -> Result<(), BuildError> {
    write_atomic(path, &jsonl(entries))
}

/// Writes to a temporary file beside `path`, syncs it, and renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| BuildError::io(path, e))
}
