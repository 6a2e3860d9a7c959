//! `mixtape build`: a recipe -> one packed shard set per stage.
//!
//! sources -> samples -> encoded samples -> packs -> shards, streaming and parallel:
//! the plan (the same resolution `mixtape plan` prints) says which records each stage draws; each
//! stage reads them front to back ([`draws`]), encodes batches in parallel on a rayon pool of `jobs`
//! threads ([`encode`]) while the calling thread reads the next batch and packs and writes the
//! previous one with best-fit-decreasing into zstd Parquet shards ([`stage`]). Everything is ordered by the plan, never by thread timing, so any `jobs` gives the
//! same bytes.
//!
//! Output layout ([`mixtape_shards::layout`] owns every path): `OUT/STAGE/` holds only the stage's
//! `shard-NNNNN.parquet` files, so each stage folder is a plain Parquet dataset; mixtape's own files
//! sit under `OUT/_mixtape/`: `build.json` ([`BuildRecord`]: the recipe fingerprint the folder
//! belongs to, the JPEG encoder that wrote its images, the stage names and the tokenizer,
//! checksummed),
//! `rejects.jsonl` (records no stage could read at all) and per stage `STAGE/manifest.json`,
//! `STAGE/rejects.jsonl` and the shards' sidecars. `OUT/README.md` is a dataset card naming one HF
//! `datasets` config per stage ([`dataset_card`]).
//!
//! Resuming: a non-empty `--out` is reused only when its `build.json` proves it is a build of this
//! recipe with this JPEG encoder (another encoder would mix two encoders' bytes in one stage);
//! a folder whose record is missing, unparseable, edited or another recipe's is refused, and
//! `--rebuild` ([`BuildOptions::rebuild`]) deletes mixtape's files there to build from scratch.
//! Inside an owned folder, each stage keeps exactly the finished shards whose recorded draws match
//! what this run would write and rebuilds the rest ([`stage`]).
//!
//! Split builds ([`BuildScope`]): since every shard is a pure function of its draws, a build splits
//! into `N` tasks by shard index, on any scheduler (Slurm job arrays, Kubernetes Indexed Jobs, N
//! shells). Task `i` writes the shards `k` with `k % N == i` of every stage (and their sidecars)
//! and touches nothing else, so tasks run at once in one folder; a task killed part-way is rerun
//! alone and keeps what it finished. [`BuildScope::Finish`] then checks that every shard is there
//! and writes what a whole build writes last (manifests, rejects lists, the dataset card): the
//! folder is byte-identical to a one-machine build's, for any `N`.
//!
//! `out` may be a URL (`s3://bucket/prefix`): every file is then an object, written in the same
//! order with the same guarantees (see `remote`: shards uploaded whole from a local scratch folder,
//! manifests last, a lock object against a second builder), and the objects are byte-identical to
//! the files of a build on disk.

pub mod draws;
pub mod encode;
mod remote;
pub mod stage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mixtape_shards::layout::{BUILD_RECORD_FILE, BuildLayout, MIXTAPE_DIR};
use mixtape_shards::{BuildRecord, BuildRecordError, Manifest};
use serde::Serialize;

use crate::diag::Severity;
use crate::index::IndexCache;
use crate::reject::RejectCode;
use crate::resolve::resolve_with_progress;
pub use stage::RejectEntry;

/// Default target size of one shard: large enough that a training reader opens few files (the
/// "few large files" advice), small enough that one shard is a modest unit of resume and shuffling.
pub const DEFAULT_TARGET_SHARD_BYTES: u64 = 256 << 20;
/// Default most rejected draws, as a fraction of a stage's draws, before the build fails.
pub const DEFAULT_MAX_REJECT_FRACTION: f64 = 0.01;
pub use mixtape_shards::layout::REJECTS_FILE;

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
    /// The whole build, one task of a split build, or the finish of one.
    pub scope: BuildScope,
}

/// How much of a build one run does (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildScope {
    /// Every shard, then the manifests.
    #[default]
    Whole,
    /// Task `task` of `tasks` (`task < tasks`): the shards `k` with `k % tasks == task`, no
    /// manifest.
    Task { task: usize, tasks: usize },
    /// The manifests, rejects lists and dataset card of a build whose tasks have all finished;
    /// fails, building nothing, when a shard is missing.
    Finish,
}

impl BuildScope {
    /// Whether shard `index` (of any stage) is this run's to keep, remove or build: every shard but
    /// another task's. Also the split of `mixtape index --task`, by part.
    pub fn owns(&self, index: usize) -> bool {
        match *self {
            BuildScope::Task { task, tasks } => index % tasks.max(1) == task,
            BuildScope::Whole | BuildScope::Finish => true,
        }
    }

    pub(crate) fn is_task(&self) -> bool {
        matches!(self, BuildScope::Task { .. })
    }

    /// Why a task's numbers are unusable (none for the other scopes).
    pub fn problem(&self) -> Option<&'static str> {
        match *self {
            BuildScope::Task { tasks: 0, .. } => Some("a build splits into at least 1 task"),
            BuildScope::Task { task, tasks } if task >= tasks => {
                Some("tasks are numbered from 0 to --tasks minus 1")
            }
            _ => None,
        }
    }
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
            scope: BuildScope::Whole,
        }
    }
}

/// Progress events, for a progress bar.
#[derive(Clone, Debug)]
pub enum Progress {
    /// Indexing (tokenizing) the sources, before any stage starts.
    Index(crate::index::IndexProgress),
    StageStart {
        stage: String,
        draws: u64,
    },
    Advance {
        draws: u64,
        tokens: u64,
    },
    StageDone {
        stage: String,
        reused: bool,
    },
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
        "another build is writing this output: {} is held by {holder}; wait for it to end, or, if it was killed on another machine, delete that object and rerun (a build resumes where it stopped)",
        lock.display()
    )]
    Locked { lock: PathBuf, holder: String },
    #[error(
        "{} is a build in mixtape's old layout ({} beside the shards); this mixtape keeps its files in {MIXTAPE_DIR}/ so that stage folders are plain Parquet datasets: pass --rebuild to delete mixtape's files there and build from scratch, or use another --out",
        out.display(), file.display()
    )]
    OldLayout { out: PathBuf, file: PathBuf },
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
    #[error(
        "stage `{stage}`: {missing} of {shards} shards are not built (the first is shard {first}, {sidecar} is missing): finish once every task has finished, rerunning the failed ones (task = shard mod the number of tasks), or build without --finish to build them here"
    )]
    NotBuilt {
        stage: String,
        missing: usize,
        shards: usize,
        first: usize,
        sidecar: PathBuf,
    },
    #[error("--task {task} --tasks {tasks}: {why}")]
    Task {
        task: usize,
        tasks: usize,
        why: &'static str,
    },
    #[error("cannot start {jobs} worker threads: {detail}")]
    Threads { jobs: usize, detail: String },
    #[error(
        "stage `{stage}`, source `{source_name}`, record {location}: encoded to {built} tokens, but the plan counted {planned} from the source index, so the stage would not hold the planned mix; the index cache is keyed on the tokenizer and source contents, so this is a mixtape bug: please report it with this record (a build with MIXTAPE_CACHE_DIR set to an empty folder re-indexes from scratch)"
    )]
    LengthMismatch {
        stage: String,
        source_name: String,
        location: String,
        planned: u64,
        built: u64,
    },
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
    pub scope: BuildScope,
    pub stages: Vec<StageReport>,
    /// Records no stage could read (invalid JSON, missing images, ...), by reason.
    pub unreadable: BTreeMap<RejectCode, u64>,
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub dir: PathBuf,
    pub resumed: bool,
    pub shards_written: usize,
    pub shards_reused: usize,
    pub drawn: u64,
    /// `None` for a task of a split build, which writes no manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
}

/// Builds every stage of a recipe into `options.out`.
pub fn build(
    recipe_path: &Path,
    options: &BuildOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<BuildReport, BuildError> {
    let resolved = resolve_with_progress(recipe_path, &options.cache, &|event| {
        progress(Progress::Index(event))
    });
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
    )
    // Absolute, so `inspect` finds it from any working folder; the path is what the build read.
    .with_tokenizer(
        std::path::absolute(&recipe.tokenizer).unwrap_or_else(|_| recipe.tokenizer.clone()),
        plan.tokenizer.blake3.clone(),
    );
    let scope = options.scope;
    check_scope(scope, options.rebuild)?;
    let layout = BuildLayout::new(out);
    let remote = mixtape_store::is_url(out);
    let _lock = remote
        .then(|| remote::BuildLock::take(&layout, scope))
        .transpose()?;
    let scratch = remote.then(remote::Scratch::create).transpose()?;
    claim(&layout, &record, options.rebuild, scope.is_task())?;

    // Records that could not be read at all belong to no stage: list them once, at the top.
    let mut unreadable_lines = Vec::new();
    let mut unreadable = BTreeMap::new();
    for spec in &recipe.sources {
        for r in &resolved.indexes[&spec.name].rejects {
            *unreadable.entry(r.code).or_insert(0) += 1;
            unreadable_lines.push(RejectEntry {
                source: spec.name.clone(),
                location: r.location.clone(),
                reason: r.code,
                message: r.message.clone(),
            });
        }
    }

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

    let context = |stage, stage_plan| stage::StageContext {
        recipe,
        plan,
        stage,
        stage_plan,
        indexes: &resolved.indexes,
        encoder,
        options,
        pool: &pool,
        layout: layout.stage(&stage.name),
        temporaries: match &scratch {
            Some(scratch) => scratch.stage(&stage.name),
            None => layout.stage(&stage.name).meta_dir(),
        },
    };
    if scope == BuildScope::Finish {
        // Every stage's shards, before any file is written.
        for (stage, stage_plan) in recipe.stages.iter().zip(&plan.stages) {
            stage::check_built(&context(stage, stage_plan))?;
        }
    }
    // A task writes its shards only: the files every task would share are the finish's.
    if !scope.is_task() {
        write_dataset_card(&layout, &record.stages)?;
        write_jsonl(&layout.unreadable_rejects(), &unreadable_lines)?;
    }
    let mut stages = Vec::new();
    for (stage, stage_plan) in recipe.stages.iter().zip(&plan.stages) {
        let ctx = context(stage, stage_plan);
        let stage_layout = ctx.layout.clone();
        let dir = stage_layout.dir().to_path_buf();
        let outcome = stage::run(&ctx, progress)?;
        let Some(manifest) = outcome.manifest else {
            // A task: its shards are written; the stage's summary files are the finish's.
            progress(Progress::StageDone {
                stage: stage.name.clone(),
                reused: outcome.shards_written == 0,
            });
            stages.push(StageReport {
                name: stage.name.clone(),
                dir,
                resumed: outcome.shards_written == 0,
                shards_written: outcome.shards_written,
                shards_reused: outcome.shards_reused,
                drawn: outcome.drawn,
                manifest: None,
            });
            continue;
        };
        let rejects_path = stage_layout.rejects();
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
            manifest.write(stage_layout.manifest())?;
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
            manifest: Some(manifest),
        });
    }
    Ok(BuildReport {
        fingerprint: plan.fingerprint.clone(),
        out: out.clone(),
        scope,
        stages,
        unreadable,
    })
}

fn check_scope(scope: BuildScope, rebuild: bool) -> Result<(), BuildError> {
    if let BuildScope::Task { task, tasks } = scope {
        let why = scope.problem().or(rebuild.then_some(
            "--rebuild would delete what the other tasks write: rebuild without --task first, or use a new --out",
        ));
        if let Some(why) = why {
            return Err(BuildError::Task { task, tasks, why });
        }
    }
    if scope == BuildScope::Finish && rebuild {
        return Err(BuildError::Invalid(
            "--rebuild with --finish would delete the shards the tasks built: finish without it"
                .into(),
        ));
    }
    Ok(())
}

/// Makes `out` this build's folder: an empty or new folder, or one whose `_mixtape/build.json` is
/// a valid record of the same recipe and JPEG encoder. With `rebuild`, mixtape's files in it are
/// deleted first (an old-layout build's too). The record is written before anything else, so every
/// later file is provably this build's.
///
/// A `task` of a split build may run beside the others in one folder: it leaves their record
/// temporaries alone, writes the record (the same bytes in every task) through a temporary of its
/// own, and reads the record again before calling a folder with files in it unowned (another task
/// may have written the record and its first stage folders in between).
fn claim(
    layout: &BuildLayout,
    record: &BuildRecord,
    rebuild: bool,
    task: bool,
) -> Result<(), BuildError> {
    let out = layout.root();
    mixtape_store::create_dir_all(out).map_err(|e| BuildError::io(out, e))?;
    let path = layout.build_record();
    if rebuild {
        remove_mixtape_files(layout)?;
    } else if let Some(file) = layout.old_layout_file() {
        return Err(BuildError::OldLayout {
            out: out.to_path_buf(),
            file,
        });
    } else {
        let mut found = BuildRecord::read(&path);
        // Whether the folder held nothing but record temporaries (and locks) when the record was
        // missing: looked at once, since another task may write the record and its first files
        // at any moment.
        let mut only_temporaries = None;
        if matches!(found, Err(BuildRecordError::Missing { .. })) {
            let only = holds_only_record_temporaries(layout)?;
            if task && !only {
                // Another task may have written the record, then its first folders, since.
                found = BuildRecord::read(&path);
            }
            only_temporaries = Some(only);
        }
        match found {
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
            // Another task's record, the same as this one's.
            Ok(_) if task => return Ok(()),
            // Ours, or a build killed while writing its record (nothing else is written before it).
            Ok(_) => remove_record_temporaries(layout)?,
            // Other tasks' temporaries are theirs to rename.
            Err(BuildRecordError::Missing { .. }) if only_temporaries == Some(true) => {
                if !task {
                    remove_record_temporaries(layout)?
                }
            }
            Err(reason) => {
                return Err(BuildError::Unowned {
                    out: out.to_path_buf(),
                    reason,
                });
            }
        }
    }
    if task {
        let dir = path.parent().unwrap_or(out);
        mixtape_store::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
        // Through a temporary of this process's own: tasks may write the record at once.
        return write_atomic(&path, record.to_json().as_bytes());
    }
    record.write(&path).map_err(|reason| BuildError::Unowned {
        out: out.to_path_buf(),
        reason,
    })
}

/// The entries of `dir` (none when it does not exist), sorted by name.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut entries = Vec::new();
    let read = match mixtape_store::list(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
        other => other.map_err(|e| BuildError::io(dir, e))?,
    };
    for entry in read {
        let path = dir.join(&entry.name);
        entries.push((entry.name, path));
    }
    entries.sort();
    Ok(entries)
}

/// Files `build` writes at the top of `_mixtape/` (and, in the old layout, of `out`): the record,
/// the unreadable-records list, their temporaries.
fn is_top_level_file(name: &str) -> bool {
    name == BUILD_RECORD_FILE || name == REJECTS_FILE || is_top_level_temporary(name)
}

fn is_top_level_temporary(name: &str) -> bool {
    [BUILD_RECORD_FILE, REJECTS_FILE]
        .iter()
        .any(|file| name.starts_with(&format!(".{file}.")) && name.contains(".tmp"))
}

fn is_record_temporary(name: &str) -> bool {
    name.starts_with(&format!(".{BUILD_RECORD_FILE}.")) && name.contains(".tmp")
}

/// `out` is empty, or holds only `_mixtape/` with at most a temporary of the record in it (a build
/// killed while writing its record) and build locks (an object store's; see `remote`).
fn holds_only_record_temporaries(layout: &BuildLayout) -> Result<bool, BuildError> {
    let top_ok = list(layout.root())?
        .iter()
        .all(|(name, _)| name == MIXTAPE_DIR);
    Ok(top_ok
        && list(&layout.mixtape_dir())?
            .iter()
            .all(|(name, _)| is_record_temporary(name) || remote::is_lock(name)))
}

fn remove_record_temporaries(layout: &BuildLayout) -> Result<(), BuildError> {
    for (name, path) in list(&layout.mixtape_dir())? {
        if is_top_level_temporary(&name) {
            mixtape_store::delete(&path).map_err(|e| BuildError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Deletes what `build` writes in `out` and nothing else: in `_mixtape/` the record, the rejects
/// and every stage's manifest, rejects, sidecars and temporaries; in every stage folder the shards
/// and their temporaries; the dataset card when mixtape wrote it; and the same files where the old
/// layout put them (top-level `build.json` and `rejects.jsonl`, stage folders' manifests, rejects
/// and hidden sidecars). Folders are removed once empty. A user's own files, anywhere, stay.
fn remove_mixtape_files(layout: &BuildLayout) -> Result<(), BuildError> {
    let remove = |path: &Path| mixtape_store::delete(path).map_err(|e| BuildError::io(path, e));
    // The manifests first, so a kill midway leaves no finished-looking stage.
    let mut manifests = Vec::new();
    for root in [layout.mixtape_dir(), layout.root().to_path_buf()] {
        for (_, path) in list(&root)? {
            let manifest = path.join(mixtape_shards::MANIFEST_FILE);
            if mixtape_store::is_file(&manifest) {
                manifests.push(manifest);
            }
        }
    }
    for manifest in &manifests {
        remove(manifest)?;
    }
    for root in [layout.mixtape_dir(), layout.root().to_path_buf()] {
        for (name, path) in list(&root)? {
            if mixtape_store::is_dir(&path) {
                for (file, file_path) in list(&path)? {
                    if stage::StageFile::of(&file).is_some() {
                        remove(&file_path)?;
                    }
                }
                let _ = mixtape_store::remove_dir(&path);
            } else if is_top_level_file(&name) {
                remove(&path)?;
            }
        }
    }
    let _ = mixtape_store::remove_dir(&layout.mixtape_dir());
    let card = layout.dataset_card();
    if read_text(&card).is_ok_and(|text| text.contains(DATASET_CARD_MARK)) {
        remove(&card)?;
    }
    Ok(())
}

/// The line that marks `README.md` as the card mixtape wrote (so a user's own README is never
/// overwritten or deleted).
const DATASET_CARD_MARK: &str = "<!-- written by `mixtape build`; rewritten on every build -->";

/// The dataset card: YAML front matter with one HF `datasets` config per stage (`data_files`:
/// the stage folder's Parquet files; the first stage is the default), so
/// `datasets.load_dataset(OUT, name=STAGE)` reads a stage.
pub fn dataset_card(stages: &[String]) -> String {
    let mut card = String::from("---\nconfigs:\n");
    // Quoted (JSON strings are YAML strings), so a stage named `1` or `yes` stays a string.
    let quote = |text: String| serde_json::Value::String(text).to_string();
    for (i, stage) in stages.iter().enumerate() {
        card.push_str(&format!(
            "- config_name: {}\n  data_files:\n  - split: train\n    path: {}\n",
            quote(stage.clone()),
            quote(format!("{stage}/*.parquet"))
        ));
        if i == 0 {
            card.push_str("  default: true\n");
        }
    }
    card.push_str("---\n");
    card.push_str(DATASET_CARD_MARK);
    card.push_str(
        "\n\nPacked training sequences written by mixtape, one Parquet dataset folder per stage \
         (schema: mixtape's FORMAT.md). `_mixtape/` holds the build record, the stage manifests and \
         the rejected records.\n",
    );
    card
}

/// Writes the dataset card, unless a `README.md` that mixtape did not write is there.
fn write_dataset_card(layout: &BuildLayout, stages: &[String]) -> Result<(), BuildError> {
    let path = layout.dataset_card();
    let text = dataset_card(stages);
    match read_text(&path) {
        Ok(existing) if existing == text => Ok(()),
        Ok(existing) if !existing.contains(DATASET_CARD_MARK) => Ok(()),
        _ => write_atomic(&path, text.as_bytes()),
    }
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

/// Writes `bytes` to `path` atomically (see [`mixtape_store::write`]: a local temporary unique to
/// this process, synced and renamed; or one upload of an object).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    mixtape_store::write(path, bytes.to_vec().into()).map_err(|e| BuildError::io(path, e))
}

/// The text of a file or object.
fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = mixtape_store::read(path)?;
    String::from_utf8(bytes.to_vec()).map_err(std::io::Error::other)
}
