//! Verifying a shard set against its manifest: is what is on disk what the manifest promises?
//!
//! [`verify`] takes a stage folder or a whole build output (found by [`crate::layout::discover`]:
//! stage folders of shards, `_mixtape/build.json` and `_mixtape/<stage>/manifest.json`) and checks,
//! for every stage:
//! - the manifest parses, its totals are the sums of its shard entries, its entries name
//!   `shard-{index:05}.parquet` in index order;
//! - every listed shard exists with the listed size and blake3 (hashed in fixed-size chunks), and
//!   its magic, tail and column chunks have the listed CRC32s (which name the damaged row group and
//!   column where the blake3 can only say "somewhere");
//! - its footer agrees with the manifest (format version, stage, seq_len, recipe fingerprint, shard
//!   index, rows, row groups), every row group decodes and every row validates, and the counts
//!   recomputed from the rows (totals, per category, per source) equal the manifest entry's;
//! - no `shard-*.parquet` file is left unlisted, and a stage folder has a manifest at all.
//!
//! It never stops at the first problem: every finding becomes a [`Problem`] naming the file (and
//! the row group where one is at fault) with a fix. Only a folder that is no shard set at all, or
//! cannot be listed, is an error ([`VerifyError`]). Memory is bounded by one row group per thread
//! (a stage's shards are read in parallel; findings are merged in manifest order).
//!
//! This is the one integrity pass: each shard is hashed once ([`crate::hash_file`]) and every row
//! group decoded once. What it counted is kept in the report ([`ShardRecount`] per listed shard,
//! [`StageReport::recount`] per stage), and [`verify_with_rows`] also hands every decoded row to
//! the caller, so `mixtape audit` reports the mix from this same pass instead of reading the
//! shards again.
//!
//! The fixes follow what `mixtape build` does on a rerun: a stage folder holding a manifest is
//! skipped whole, and inside an unfinished stage a shard with a `_mixtape/<stage>/shard-NNNNN.done.json` sidecar
//! whose file exists is reused. So a damaged shard is only rewritten once the shard, its sidecar
//! and the stage's manifest are deleted; a wrong manifest alone is rewritten from the sidecars
//! without re-encoding anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::layout::{BuildLayout, Discovered, LayoutError, StageLayout, shard_file_name};
use crate::manifest::{Manifest, add_keyed, count_row, ratio};
use crate::shard_file::{ReadError, Region, ShardFile};
use crate::{
    BuildRecord, BuildRecordError, Counts, FileHash, PackedRow, ShardInfo, ShardMeta, hash_file,
};

/// Why a folder could not be verified at all (as opposed to the [`Problem`]s a verification finds).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("cannot list {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No shard set there (or one in mixtape's old layout): see [`LayoutError`].
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// What is wrong, without the file it is about (see [`Problem`]).
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    #[error("missing: the manifest lists it but there is no such file")]
    MissingShard,
    #[error("size is {file} bytes, the manifest says {manifest}")]
    SizeMismatch { manifest: u64, file: u64 },
    #[error(
        "blake3 is {file}, the manifest says {manifest} (the file changed after it was written)"
    )]
    Blake3Mismatch { manifest: String, file: String },
    #[error("cannot be decoded: {detail}")]
    Unreadable { detail: String },
    #[error("{region} is damaged: its CRC32 is {file}, the manifest says {manifest}")]
    ChecksumMismatch {
        region: String,
        manifest: String,
        file: String,
    },
    #[error("{field} is {file} in the shard, {manifest} in the manifest")]
    MetadataMismatch {
        field: String,
        manifest: String,
        file: String,
    },
    #[error("{field} counted from the rows is {file}, the manifest says {manifest}")]
    CountsMismatch {
        field: String,
        manifest: String,
        file: String,
    },
    #[error("manifest {field} is {stated}, but its shard entries sum to {sum}")]
    TotalsMismatch {
        field: String,
        stated: String,
        sum: String,
    },
    #[error("manifest entry {position} is {detail}")]
    BadEntry { position: usize, detail: String },
    #[error("not listed in the manifest")]
    UnlistedShard,
    #[error("cannot be read: {detail}")]
    ManifestUnreadable { detail: String },
    #[error("stage folder without a manifest: its build did not finish")]
    UnfinishedStage,
    #[error("belongs to recipe fingerprint {manifest}, but build.json says {build}")]
    OtherBuild { manifest: String, build: String },
    #[error("cannot be trusted: {detail}")]
    BuildRecordUnreadable { detail: String },
    #[error("build.json lists stage `{stage}`, but it has no folder: its build never started")]
    StageNotBuilt { stage: String },
}

/// One finding: the file it is about, the row group where one is at fault, what is wrong and how to
/// fix it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_group: Option<usize>,
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// What to do about it, with the paths to delete and the command to rerun.
    pub fix: String,
}

impl Problem {
    /// Stage `stage`, which the build output `build` should hold (its `build.json` or a recipe says
    /// so), has no folder.
    pub fn stage_not_built(build: &BuildLayout, stage: &str) -> Problem {
        let fix = format!(
            "rerun `mixtape build RECIPE --out {}`: it builds the missing stages",
            build.root().display()
        );
        Problem {
            path: build.stage(stage).dir().to_path_buf(),
            row_group: None,
            kind: ProblemKind::StageNotBuilt {
                stage: stage.to_owned(),
            },
            fix,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(g) = self.row_group {
            write!(f, ", row group {g}")?;
        }
        write!(f, ": {}\n  fix: {}", self.kind, self.fix)
    }
}

/// The verification of one stage folder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    /// Stage name (from the manifest, else the folder name).
    pub stage: String,
    pub dir: PathBuf,
    /// Shards listed in the manifest.
    pub shards: u64,
    /// Rows, row groups and bytes of the listed shards, as the manifest states them.
    pub rows: u64,
    pub row_groups: u64,
    pub bytes: u64,
    /// Everything found wrong, in file order.
    pub problems: Vec<Problem>,
    /// The manifest, when it could be read.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// What was read from each listed shard, in manifest order (an audit's figures).
    #[serde(skip)]
    pub recounts: Vec<ShardRecount>,
}

impl StageReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The listed shards' recounts summed.
    pub fn recount(&self) -> StageRecount {
        let mut stage = StageRecount {
            complete: self.manifest.is_some() && self.recounts.iter().all(|s| s.complete),
            ..StageRecount::default()
        };
        for shard in &self.recounts {
            stage.rows += shard.rows;
            stage.totals += &shard.totals;
            add_keyed(&mut stage.by_category, &shard.by_category);
            add_keyed(&mut stage.by_source, &shard.by_source);
        }
        stage
    }

    /// A stage that could not be checked past `problem` (no manifest to check against).
    fn unchecked(stage: String, dir: &Path, problem: Problem) -> Self {
        StageReport {
            stage,
            dir: dir.to_path_buf(),
            shards: 0,
            rows: 0,
            row_groups: 0,
            bytes: 0,
            problems: vec![problem],
            manifest: None,
            recounts: Vec::new(),
        }
    }
}

/// The verification of a stage folder or a whole build output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    /// Whether `dir` is a build output (stage subfolders) rather than one stage folder.
    pub build_output: bool,
    /// Problems of the build output as a whole: its `build.json`, and stages it lists without a
    /// folder.
    pub problems: Vec<Problem>,
    pub stages: Vec<StageReport>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.stages.iter().all(StageReport::is_ok)
    }

    /// Every problem: the build output's, then every stage's.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .chain(self.stages.iter().flat_map(|s| &s.problems))
    }
}

/// What [`verify_with_rows`] hands every decoded row to, with the path of its shard. It is called
/// from several threads (shards are read in parallel), each shard's rows in order.
pub type OnRow<'a> = dyn Fn(&Path, &PackedRow) + Sync + 'a;

/// Verifies `dir`: a build output (the stages its `build.json` lists, in recipe order, then any
/// other) or one stage folder of it; [`crate::layout::discover`] tells which.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, VerifyError> {
    verify_with_rows(dir, &|_, _| {})
}

/// [`verify`], handing every row it decodes to `on_row` as well: the one pass over the shards
/// for a caller that computes more from the rows (the audit's distributions), so nothing is hashed
/// or decoded twice.
pub fn verify_with_rows(
    dir: impl AsRef<Path>,
    on_row: &OnRow<'_>,
) -> Result<VerifyReport, VerifyError> {
    let dir = dir.as_ref();
    let (build, record, stage_layouts) = match crate::layout::discover(dir)? {
        Discovered::Stage(stage) => {
            let stages = vec![verify_stage(&stage, None, on_row)?];
            return Ok(VerifyReport {
                dir: dir.to_path_buf(),
                build_output: false,
                problems: Vec::new(),
                stages,
            });
        }
        Discovered::Build {
            build,
            record,
            stages,
        } => (build, record, stages),
    };
    let (record, mut problems) = check_build_record(&build, record);
    let build_fingerprint = record.as_ref().map(|r| r.fingerprint.clone());
    let mut stages = Vec::new();
    for stage in &stage_layouts {
        if mixtape_store::is_file(&stage.manifest()) {
            stages.push(verify_stage(stage, build_fingerprint.as_deref(), on_row)?);
        } else {
            let out = dir.display();
            let problem = Problem {
                path: stage.dir().to_path_buf(),
                row_group: None,
                kind: ProblemKind::UnfinishedStage,
                fix: format!(
                    "rerun `mixtape build RECIPE --out {out}`: it finishes the stage, reusing its finished shards"
                ),
            };
            stages.push(StageReport::unchecked(
                stage.name().to_string(),
                stage.dir(),
                problem,
            ));
        }
    }
    if let Some(record) = &record {
        let built: BTreeSet<&str> = stage_layouts.iter().map(StageLayout::name).collect();
        for stage in record
            .stages
            .iter()
            .filter(|name| !built.contains(name.as_str()))
        {
            problems.push(Problem::stage_not_built(&build, stage));
        }
    }
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        build_output: true,
        problems,
        stages,
    })
}

/// Reads a build output's `build.json`: the record when it is valid, else a problem (a missing,
/// unparseable or edited record means nothing proves which recipe the folder's shards belong to).
fn check_build_record(
    build: &BuildLayout,
    record: Result<BuildRecord, BuildRecordError>,
) -> (Option<BuildRecord>, Vec<Problem>) {
    let path = build.build_record();
    let error = match record {
        Ok(record) => return (Some(record), Vec::new()),
        Err(e) => e,
    };
    let detail = match &error {
        BuildRecordError::Missing { .. } => "it is missing".to_string(),
        BuildRecordError::Json { source, .. } => format!("not a mixtape build record: {source}"),
        BuildRecordError::Checksum {
            stated, computed, ..
        } => {
            format!("it was edited: its checksum is {stated}, its content hashes to {computed}")
        }
        BuildRecordError::UnsupportedVersion { found, .. } => {
            format!(
                "format_version {found}, this mixtape reads versions {} to {}",
                crate::build_record::OLDEST_READ_BUILD_RECORD_VERSION,
                crate::BUILD_RECORD_VERSION
            )
        }
        _ => error.to_string(),
    };
    let fix = format!(
        "nothing proves which recipe these shards were built from, and `mixtape build` refuses to resume the folder: rebuild it with `mixtape build RECIPE --out {} --rebuild`",
        build.root().display()
    );
    (
        None,
        vec![Problem {
            path,
            row_group: None,
            kind: ProblemKind::BuildRecordUnreadable { detail },
            fix,
        }],
    )
}

/// Verifies one stage folder; `build_fingerprint` is the build output's, when there is one.
fn verify_stage(
    stage: &StageLayout,
    build_fingerprint: Option<&str>,
    on_row: &OnRow<'_>,
) -> Result<StageReport, VerifyError> {
    let dir = stage.dir();
    let fixes = Fixes::new(stage);
    let manifest_path = stage.manifest();
    let folder_name = stage.name().to_string();
    let mut problems = Vec::new();
    let on_disk: BTreeSet<String> = stage
        .list_shards()
        .map_err(|source| VerifyError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|(index, _)| shard_file_name(index))
        .collect();
    let manifest = match Manifest::read(&manifest_path) {
        Ok(m) => m,
        Err(e) => {
            let detail = match &e {
                crate::ManifestError::Json { source, .. } => source.to_string(),
                _ => e.to_string(),
            };
            let problem = fixes.manifest(ProblemKind::ManifestUnreadable { detail });
            return Ok(StageReport::unchecked(folder_name, dir, problem));
        }
    };
    if let Some(build) = build_fingerprint.filter(|b| *b != manifest.recipe_fingerprint) {
        let kind = ProblemKind::OtherBuild {
            manifest: manifest.recipe_fingerprint.clone(),
            build: build.to_owned(),
        };
        problems.push(Problem {
            path: manifest_path.clone(),
            row_group: None,
            kind,
            fix: fixes.whole_stage(),
        });
    }
    check_totals(&manifest, &fixes, &mut problems);
    // Shards are read in parallel; their findings are merged in manifest order below.
    let checked: Vec<Option<(Vec<Problem>, ShardRecount)>> = manifest
        .shards
        .par_iter()
        .map(|info| {
            // Never follow a name out of the stage folder, whatever the manifest says.
            crate::layout::shard_index(&info.file)
                .is_some()
                .then(|| check_shard(dir, &manifest, info, &fixes, on_row))
        })
        .collect();
    let mut listed = BTreeSet::new();
    let mut recounts = Vec::new();
    for ((position, info), checked) in manifest.shards.iter().enumerate().zip(checked) {
        let expected = shard_file_name(info.index);
        if info.file != expected || info.index as usize != position {
            let detail = format!(
                "`{}` with index {}; entry {position} must be `{}`",
                info.file,
                info.index,
                shard_file_name(position as u32)
            );
            problems.push(fixes.manifest(ProblemKind::BadEntry { position, detail }));
        }
        let Some((found, recount)) = checked else {
            continue;
        };
        listed.insert(info.file.clone());
        problems.extend(found);
        recounts.push(recount);
    }
    for file in on_disk.difference(&listed) {
        let path = dir.join(file);
        let fix = format!(
            "delete {} (readers that follow the manifest skip it, but one that globs shard-*.parquet, like pyarrow, would read it)",
            path.display()
        );
        problems.push(Problem {
            path,
            row_group: None,
            kind: ProblemKind::UnlistedShard,
            fix,
        });
    }
    Ok(StageReport {
        stage: manifest.stage.clone(),
        dir: dir.to_path_buf(),
        shards: manifest.shards.len() as u64,
        rows: manifest.shards.iter().map(|s| s.rows).sum(),
        row_groups: manifest.shards.iter().map(|s| s.row_groups).sum(),
        bytes: manifest.shards.iter().map(|s| s.bytes).sum(),
        problems,
        recounts,
        manifest: Some(manifest),
    })
}

/// The manifest's totals and maps must be the sums of its shard entries.
fn check_totals(manifest: &Manifest, fixes: &Fixes, problems: &mut Vec<Problem>) {
    let summed = Manifest::new(
        manifest.stage.clone(),
        manifest.seq_len,
        manifest.recipe_fingerprint.clone(),
        manifest.shards.clone(),
        manifest.rejects.clone(),
    );
    let mut fields = Vec::new();
    let (s, t) = (&manifest.totals, &summed.totals);
    for (name, stated, sum) in [
        ("rows", s.rows, t.rows),
        ("samples", s.samples, t.samples),
        ("tokens", s.tokens, t.tokens),
        ("loss_tokens", s.loss_tokens, t.loss_tokens),
        ("image_tokens", s.image_tokens, t.image_tokens),
        ("images", s.images, t.images),
        ("padded_capacity", s.padded_capacity, t.padded_capacity),
        ("rejected", s.rejected, t.rejected),
    ] {
        fields.push((
            format!("totals.{name}"),
            stated.to_string(),
            sum.to_string(),
        ));
    }
    fields.push((
        "totals.efficiency".into(),
        s.efficiency.to_string(),
        t.efficiency.to_string(),
    ));
    compare_maps(
        "by_category",
        &manifest.by_category,
        &summed.by_category,
        &mut fields,
    );
    compare_maps(
        "by_source",
        &manifest.by_source,
        &summed.by_source,
        &mut fields,
    );
    for (field, stated, sum) in fields.into_iter().filter(|(_, a, b)| a != b) {
        problems.push(fixes.manifest(ProblemKind::TotalsMismatch { field, stated, sum }));
    }
}

/// Appends `(field, stated, recomputed)` for every key of either map.
fn compare_maps(
    what: &str,
    stated: &BTreeMap<String, Counts>,
    recomputed: &BTreeMap<String, Counts>,
    out: &mut Vec<(String, String, String)>,
) {
    let keys: BTreeSet<&String> = stated.keys().chain(recomputed.keys()).collect();
    for key in keys {
        let show = |c: Option<&Counts>| c.map_or_else(|| "absent".to_string(), counts_text);
        out.push((
            format!("{what}[{key}]"),
            show(stated.get(key)),
            show(recomputed.get(key)),
        ));
    }
}

fn counts_text(c: &Counts) -> String {
    format!(
        "{{samples {}, tokens {}, loss_tokens {}, image_tokens {}, images {}}}",
        c.samples, c.tokens, c.loss_tokens, c.image_tokens, c.images
    )
}

/// Checks one listed shard: presence, size, hash, footer, every row group, recomputed counts.
/// Every decoded row is also handed to `on_row`. Returns the problems found and what was counted.
fn check_shard(
    dir: &Path,
    manifest: &Manifest,
    info: &ShardInfo,
    fixes: &Fixes,
    on_row: &OnRow<'_>,
) -> (Vec<Problem>, ShardRecount) {
    let path = dir.join(&info.file);
    let mut problems = Vec::new();
    let mut recount = ShardRecount {
        file: info.file.clone(),
        path: path.clone(),
        ..ShardRecount::default()
    };
    let hash = match hash_file(&path) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(fixes.shard(&path, info.index, None, ProblemKind::MissingShard));
            return (problems, recount);
        }
        Err(e) => {
            let kind = ProblemKind::Unreadable {
                detail: e.to_string(),
            };
            problems.push(fixes.shard(&path, info.index, None, kind));
            return (problems, recount);
        }
    };
    // Bytes as written: a disagreement below is the manifest's fault, not the shard's.
    let intact = hash.bytes == info.bytes && hash.blake3 == info.blake3;
    let mismatch = |problems: &mut Vec<Problem>, kind| {
        problems.push(if intact {
            fixes.wrong_entry(&path, kind)
        } else {
            fixes.shard(&path, info.index, None, kind)
        })
    };
    if hash.bytes != info.bytes {
        problems.push(fixes.shard(
            &path,
            info.index,
            None,
            ProblemKind::SizeMismatch {
                manifest: info.bytes,
                file: hash.bytes,
            },
        ));
    }
    if hash.blake3 != info.blake3 {
        let kind = ProblemKind::Blake3Mismatch {
            manifest: info.blake3.clone(),
            file: hash.blake3.clone(),
        };
        problems.push(fixes.shard(&path, info.index, None, kind));
    }
    recount.hash = Some(hash);
    let shard = match ShardFile::open_checked(&path, info) {
        Ok(shard) => shard,
        // Already reported as a size mismatch.
        Err(ReadError::Size { .. }) => return (problems, recount),
        Err(e) => {
            problems.push(fixes.shard(&path, info.index, None, read_problem(&e)));
            return (problems, recount);
        }
    };
    let meta = shard.meta();
    recount.meta = Some(meta.clone());
    recount.row_groups = shard.row_groups() as u64;
    let footer = [
        ("mixtape.stage", meta.stage.clone(), manifest.stage.clone()),
        (
            "mixtape.seq_len",
            meta.seq_len.to_string(),
            manifest.seq_len.to_string(),
        ),
        (
            "mixtape.recipe_fingerprint",
            meta.recipe_fingerprint.clone(),
            manifest.recipe_fingerprint.clone(),
        ),
        (
            "mixtape.shard_index",
            meta.shard_index.to_string(),
            info.index.to_string(),
        ),
        ("rows", shard.rows().to_string(), info.rows.to_string()),
        (
            "row_groups",
            shard.row_groups().to_string(),
            info.row_groups.to_string(),
        ),
    ];
    for (field, file, listed) in footer {
        if file != listed {
            mismatch(
                &mut problems,
                ProblemKind::MetadataMismatch {
                    field: field.into(),
                    manifest: listed,
                    file,
                },
            );
        }
    }
    recount.complete = true;
    for row_group in 0..shard.row_groups() {
        match shard.read_row_group(row_group) {
            Ok(rows) => {
                for row in &rows {
                    recount.add(row);
                    on_row(&path, row);
                }
            }
            Err(e) => {
                recount.complete = false;
                problems.push(fixes.shard(&path, info.index, Some(row_group), read_problem(&e)));
            }
        }
    }
    // Counts of a partly unreadable shard mean nothing; its row groups are already named. (Rows
    // were compared with the footer's count, which is what decoding every row group yields.)
    if recount.complete {
        let capacity = recount.padded_capacity(manifest.seq_len);
        let mut fields = vec![
            (
                "totals".to_string(),
                counts_text(&info.totals),
                counts_text(&recount.totals),
            ),
            (
                "padded_capacity".to_string(),
                info.padded_capacity.to_string(),
                capacity.to_string(),
            ),
            (
                "efficiency".to_string(),
                info.efficiency.to_string(),
                ratio(recount.totals.tokens, capacity).to_string(),
            ),
        ];
        compare_maps(
            "by_category",
            &info.by_category,
            &recount.by_category,
            &mut fields,
        );
        compare_maps(
            "by_source",
            &info.by_source,
            &recount.by_source,
            &mut fields,
        );
        for (field, listed, file) in fields.into_iter().filter(|(_, a, b)| a != b) {
            mismatch(
                &mut problems,
                ProblemKind::CountsMismatch {
                    field,
                    manifest: listed,
                    file,
                },
            );
        }
    }
    (problems, recount)
}

/// What one pass over a listed shard read from it, counted as the writer counts: the bytes on disk
/// and, when the shard opened, its footer and the counts of every row group that decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardRecount {
    /// File name within the stage folder.
    pub file: String,
    pub path: PathBuf,
    /// Size and blake3 on disk; `None` when the file is missing or cannot be read.
    pub hash: Option<FileHash>,
    /// Footer metadata; `None` when the shard could not be opened.
    pub meta: Option<ShardMeta>,
    /// Rows decoded.
    pub rows: u64,
    /// Row groups in the footer.
    pub row_groups: u64,
    pub totals: Counts,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
    /// Whether every row group decoded, so the counts cover the whole shard.
    pub complete: bool,
}

impl ShardRecount {
    fn add(&mut self, row: &PackedRow) {
        self.rows += 1;
        count_row(
            row,
            &mut self.totals,
            &mut self.by_category,
            &mut self.by_source,
        );
    }

    /// `rows * seq_len`: the tokens the decoded rows occupy once padded.
    pub fn padded_capacity(&self, seq_len: u32) -> u64 {
        self.rows * u64::from(seq_len)
    }
}

/// A stage's recount: its listed shards' [`ShardRecount`]s summed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRecount {
    pub rows: u64,
    pub totals: Counts,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
    /// Whether every listed shard was read whole.
    pub complete: bool,
}

/// The problem a read error is, without the path (the [`Problem`] carries it).
fn read_problem(e: &ReadError) -> ProblemKind {
    match e {
        ReadError::Corrupt {
            region,
            expected,
            found,
            ..
        } => ProblemKind::ChecksumMismatch {
            // The problem names the row group already.
            region: match region {
                Region::ColumnChunk { column, .. } => format!("column {column}"),
                other => other.to_string(),
            },
            manifest: format!("{expected:08x}"),
            file: format!("{found:08x}"),
        },
        e => ProblemKind::Unreadable {
            detail: read_detail(e),
        },
    }
}

/// The message of a read error without the path (the [`Problem`] carries it).
fn read_detail(e: &ReadError) -> String {
    match e {
        ReadError::Io { source, .. } => source.to_string(),
        ReadError::Parquet { source, .. } => format!("not a readable Parquet file: {source}"),
        ReadError::Meta { source, .. } => source.to_string(),
        ReadError::Decode { source, .. } => source.to_string(),
        ReadError::InvalidRow { row, source, .. } => format!("row {row}: {source}"),
        other => other.to_string(),
    }
}

const REWRITES_MANIFEST: &str =
    "it rewrites the manifest from the shards' sidecars without re-encoding anything";

/// The fix texts of one stage folder, in terms of what a `mixtape build` rerun does.
struct Fixes {
    manifest: PathBuf,
    stage: StageLayout,
    /// The build output folder (the stage folder's parent), for the rerun command.
    out: String,
}

impl Fixes {
    fn new(stage: &StageLayout) -> Self {
        let build = stage.build();
        let out = Some(build.root())
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self {
            manifest: stage.manifest(),
            stage: stage.clone(),
            out: out.display().to_string(),
        }
    }

    fn rerun(&self) -> String {
        format!("rerun `mixtape build RECIPE --out {}`", self.out)
    }

    /// A shard that is missing or damaged: it is rewritten only when the stage has no manifest and
    /// the shard no sidecar, since a rerun skips a stage with a manifest and reuses a sidecar's shard.
    fn shard(
        &self,
        path: &Path,
        index: u32,
        row_group: Option<usize>,
        kind: ProblemKind,
    ) -> Problem {
        let sidecar = self.stage.sidecar(index);
        let shard = if kind == ProblemKind::MissingShard {
            String::new()
        } else {
            format!("{}, ", path.display())
        };
        let fix = format!(
            "delete {shard}{} and {}, then {}: it rewrites only that shard, byte-identical to the original",
            sidecar.display(),
            self.manifest.display(),
            self.rerun()
        );
        Problem {
            path: path.to_path_buf(),
            row_group,
            kind,
            fix,
        }
    }

    /// The manifest is wrong (the shards are as written): a rerun rebuilds it from the sidecars.
    fn manifest(&self, kind: ProblemKind) -> Problem {
        let fix = format!(
            "delete {}, then {}: {REWRITES_MANIFEST}",
            self.manifest.display(),
            self.rerun()
        );
        Problem {
            path: self.manifest.clone(),
            row_group: None,
            kind,
            fix,
        }
    }

    /// The manifest's entry for an intact shard (size and blake3 as recorded) is wrong.
    fn wrong_entry(&self, path: &Path, kind: ProblemKind) -> Problem {
        let fix = format!(
            "the shard has its recorded size and blake3, so its manifest entry is wrong: delete {}, then {}: {REWRITES_MANIFEST}",
            self.manifest.display(),
            self.rerun()
        );
        Problem {
            path: path.to_path_buf(),
            row_group: None,
            kind,
            fix,
        }
    }

    fn whole_stage(&self) -> String {
        format!(
            "delete the folders {} and {} and {}",
            self.stage.dir().display(),
            self.stage.meta_dir().display(),
            self.rerun()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::Mutex;

    use super::*;
    use crate::testing::row_with_seed;
    use crate::{ShardMeta, ShardOptions, ShardWriter};

    /// Writes stage `name` into `dir/name`: `shards` shards of 5 rows in row groups of 2.
    fn write_stage(dir: &Path, name: &str, shards: u32) -> PathBuf {
        let stage = dir.join(name);
        std::fs::create_dir_all(&stage).unwrap();
        let mut infos = Vec::new();
        for index in 0..shards {
            let meta = ShardMeta {
                recipe_fingerprint: "fp".into(),
                stage: name.into(),
                seq_len: 256,
                shard_index: index,
            };
            let options = ShardOptions::default().with_max_rows_per_row_group(2);
            let mut writer = ShardWriter::try_new(&stage, meta, options).unwrap();
            for n in 0..5u64 {
                writer
                    .write(row_with_seed(
                        &[(20, 1), (12, 0)],
                        u64::from(index) * 10 + n,
                    ))
                    .unwrap();
            }
            infos.push(writer.finish().unwrap());
        }
        Manifest::new(name, 256, "fp", infos, BTreeMap::new())
            .write(StageLayout::of_dir(&stage).manifest())
            .unwrap();
        stage
    }

    fn kinds(report: &VerifyReport) -> Vec<(String, Option<usize>, ProblemKind)> {
        report
            .problems()
            .map(|p| {
                (
                    p.path.file_name().unwrap().to_string_lossy().into_owned(),
                    p.row_group,
                    p.kind.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn a_clean_stage_and_build_output_verify_with_their_totals() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 2);
        write_stage(dir.path(), "warmup", 1);
        let report = verify(&stage).unwrap();
        assert!(report.is_ok(), "{:?}", kinds(&report));
        assert!(!report.build_output);
        let s = &report.stages[0];
        assert_eq!(
            (s.stage.as_str(), s.shards, s.rows, s.row_groups),
            ("sft", 2, 10, 6)
        );
        // A build output is whole only with its build record.
        let all = verify(dir.path()).unwrap();
        let record = BuildLayout::new(dir.path()).build_record();
        assert_eq!(all.problems.len(), 1, "{:?}", all.problems);
        assert_eq!(all.problems[0].path, record);
        assert!(
            matches!(&all.problems[0].kind, ProblemKind::BuildRecordUnreadable { detail } if detail == "it is missing")
        );
        BuildRecord::new("r", "fp", "jpeg 1", vec!["warmup".into(), "sft".into()])
            .write(&record)
            .unwrap();
        let all = verify(dir.path()).unwrap();
        assert!(all.is_ok() && all.build_output, "{:?}", all.problems);
        // In the order the record lists them (the recipe's), not by name.
        assert_eq!(
            all.stages
                .iter()
                .map(|s| s.stage.as_str())
                .collect::<Vec<_>>(),
            ["warmup", "sft"]
        );
        // A stage the record lists but the folder lacks is named.
        BuildRecord::new(
            "r",
            "fp",
            "jpeg 1",
            vec!["warmup".into(), "sft".into(), "late".into()],
        )
        .write(&record)
        .unwrap();
        let all = verify(dir.path()).unwrap();
        assert_eq!(all.problems.len(), 1, "{:?}", all.problems);
        assert_eq!(
            all.problems[0].kind,
            ProblemKind::StageNotBuilt {
                stage: "late".into()
            }
        );
    }

    #[test]
    fn the_one_pass_recounts_what_the_manifest_lists_and_hands_over_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 3);
        let seen = Mutex::new(Vec::new());
        let report = verify_with_rows(&stage, &|path, row| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            seen.lock().unwrap().push((file, row.seq_lens.len()));
        })
        .unwrap();
        assert!(report.is_ok(), "{:?}", kinds(&report));
        let s = &report.stages[0];
        let manifest = s.manifest.as_ref().unwrap();
        assert_eq!(s.recounts.len(), 3);
        for (recount, info) in s.recounts.iter().zip(&manifest.shards) {
            assert_eq!(recount.file, info.file);
            assert!(recount.complete);
            assert_eq!(recount.hash.as_ref().unwrap().blake3, info.blake3);
            assert_eq!(
                (recount.rows, recount.row_groups),
                (info.rows, info.row_groups)
            );
            assert_eq!(recount.totals, info.totals);
            assert_eq!(recount.by_category, info.by_category);
            assert_eq!(recount.by_source, info.by_source);
        }
        let whole = s.recount();
        assert!(whole.complete);
        assert_eq!(whole.rows, manifest.totals.rows);
        assert_eq!(whole.totals.tokens, manifest.totals.tokens);
        assert_eq!(whole.by_category, manifest.by_category);
        assert_eq!(whole.by_source, manifest.by_source);
        // Every row once, each shard's rows in order (shards themselves in any order).
        let mut seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 15);
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen.iter()
                .filter(|(f, _)| f == "shard-00001.parquet")
                .count(),
            5
        );
    }

    #[test]
    fn a_flipped_byte_is_a_blake3_mismatch_naming_the_shard_and_how_to_rebuild_it() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 2);
        let path = stage.join("shard-00001.parquet");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let report = verify(&stage).unwrap();
        let problems: Vec<&Problem> = report.problems().collect();
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p.path == path), "{problems:?}");
        assert!(
            matches!(problems[0].kind, ProblemKind::Blake3Mismatch { .. }),
            "{problems:?}"
        );
        let text = problems[0].to_string();
        for part in [
            "shard-00001.parquet",
            "_mixtape/sft/shard-00001.done.json",
            "manifest.json",
            "mixtape build",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn a_missing_shard_and_an_unlisted_one_are_both_named() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 2);
        std::fs::rename(
            stage.join("shard-00000.parquet"),
            stage.join("shard-00007.parquet"),
        )
        .unwrap();
        let report = verify(&stage).unwrap();
        assert_eq!(
            kinds(&report),
            [
                (
                    "shard-00000.parquet".into(),
                    None,
                    ProblemKind::MissingShard
                ),
                (
                    "shard-00007.parquet".into(),
                    None,
                    ProblemKind::UnlistedShard
                ),
            ]
        );
    }

    #[test]
    fn edited_manifest_rows_are_named_as_the_manifests_fault() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 2);
        let path = StageLayout::of_dir(&stage).manifest();
        let json =
            std::fs::read_to_string(&path)
                .unwrap()
                .replacen("\"rows\": 5,", "\"rows\": 6,", 1);
        std::fs::write(&path, json).unwrap();
        let report = verify(&stage).unwrap();
        let found = kinds(&report);
        assert!(found.contains(&(
            "manifest.json".into(),
            None,
            ProblemKind::TotalsMismatch {
                field: "totals.rows".into(),
                stated: "10".into(),
                sum: "11".into()
            }
        )));
        let shard = report
            .problems()
            .find(|p| p.path.ends_with("shard-00000.parquet"))
            .unwrap();
        assert_eq!(
            shard.kind,
            ProblemKind::MetadataMismatch {
                field: "rows".into(),
                manifest: "6".into(),
                file: "5".into()
            }
        );
        assert!(
            shard.fix.contains("manifest entry is wrong"),
            "{}",
            shard.fix
        );
    }

    #[test]
    fn a_corrupt_row_group_is_named_and_the_other_row_groups_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 1);
        let path = stage.join("shard-00000.parquet");
        let mut bytes = std::fs::read(&path).unwrap();
        // Garble row group 1's first column chunk (past its page header).
        let file = File::open(&path).unwrap();
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let (start, len) = meta.row_group(1).column(0).byte_range();
        bytes[start as usize + 4..(start + len) as usize].fill(0xA5);
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(&stage).unwrap();
        let groups: Vec<Option<usize>> = report.problems().map(|p| p.row_group).collect();
        assert!(
            groups.contains(&Some(1)) && !groups.contains(&Some(0)) && !groups.contains(&Some(2)),
            "{groups:?}"
        );
        assert!(
            report
                .problems()
                .any(|p| matches!(p.kind, ProblemKind::Blake3Mismatch { .. }))
        );
        // The checksums name the damaged column chunk, where the blake3 can only name the file.
        let column = meta.row_group(1).column(0).column_path().string();
        let damaged = report
            .problems()
            .find(|p| matches!(p.kind, ProblemKind::ChecksumMismatch { .. }))
            .unwrap();
        assert_eq!(damaged.row_group, Some(1));
        assert!(
            matches!(&damaged.kind, ProblemKind::ChecksumMismatch { region, .. } if *region == format!("column {column}")),
            "{damaged}"
        );
    }

    #[test]
    fn footer_metadata_that_disagrees_with_the_manifest_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 1);
        let other = write_stage(dir.path(), "other", 1);
        // A shard of another stage, recorded in this manifest with its real hash and size.
        std::fs::copy(
            other.join("shard-00000.parquet"),
            stage.join("shard-00000.parquet"),
        )
        .unwrap();
        let manifest_path = StageLayout::of_dir(&stage).manifest();
        let mut manifest = Manifest::read(&manifest_path).unwrap();
        let theirs = Manifest::read(StageLayout::of_dir(&other).manifest()).unwrap();
        manifest.shards[0].blake3 = theirs.shards[0].blake3.clone();
        manifest.shards[0].bytes = theirs.shards[0].bytes;
        manifest.shards[0].checksums = theirs.shards[0].checksums.clone();
        manifest.write(&manifest_path).unwrap();
        let report = verify(&stage).unwrap();
        assert!(
            kinds(&report).contains(&(
                "shard-00000.parquet".into(),
                None,
                ProblemKind::MetadataMismatch {
                    field: "mixtape.stage".into(),
                    manifest: "sft".into(),
                    file: "other".into()
                }
            )),
            "{:?}",
            kinds(&report)
        );
    }

    #[test]
    fn an_unfinished_stage_and_another_builds_stage_are_named_in_a_build_output() {
        let dir = tempfile::tempdir().unwrap();
        write_stage(dir.path(), "sft", 1);
        let build = BuildLayout::new(dir.path());
        BuildRecord::new("r", "fp-new", "jpeg 1", vec!["sft".into(), "late".into()])
            .write(build.build_record())
            .unwrap();
        std::fs::create_dir_all(build.stage("late").meta_dir()).unwrap();
        std::fs::write(build.stage("late").sidecar(0), "{}").unwrap();
        let report = verify(dir.path()).unwrap();
        let found = kinds(&report);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[1],
            ("late".into(), None, ProblemKind::UnfinishedStage)
        );
        assert_eq!(
            found[0],
            (
                "manifest.json".into(),
                None,
                ProblemKind::OtherBuild {
                    manifest: "fp".into(),
                    build: "fp-new".into()
                }
            )
        );
    }

    #[test]
    fn a_truncated_manifest_is_a_problem_and_a_plain_folder_is_no_shard_set() {
        let dir = tempfile::tempdir().unwrap();
        let stage = write_stage(dir.path(), "sft", 1);
        std::fs::write(
            StageLayout::of_dir(&stage).manifest(),
            "{\"format_version\": 1, \"stage\"",
        )
        .unwrap();
        let report = verify(&stage).unwrap();
        assert!(matches!(
            kinds(&report)[..],
            [(_, None, ProblemKind::ManifestUnreadable { .. })]
        ));

        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir(empty.path().join("notes")).unwrap();
        let err = verify(empty.path()).unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Layout(LayoutError::NotAShardSet { .. })
        ));
        assert!(
            err.to_string()
                .contains(&empty.path().display().to_string()),
            "{err}"
        );
        assert!(matches!(
            verify(empty.path().join("absent")),
            Err(VerifyError::Layout(LayoutError::NotFound { .. }))
        ));
    }
}
