//! `mixtape audit`: what mix do these shards really hold, and is it the one the recipe promised?
//!
//! The audit is `verify` plus the mix. One pass reads every shard
//! ([`mixtape_shards::verify_with_rows`]: each shard hashed once and every row group decoded once,
//! one row group in memory at a time, shards in parallel): `verify` checks the shards against
//! their manifests and recounts them (its problems are the audit's integrity problems, its counts
//! the audit's totals, per category, per source and per shard), and hands each decoded row to the
//! audit, which folds what only it needs (`figures`: draws per source, distributions over
//! packs). The audit then adds the rejects (`stage`: `rejects.jsonl` against the manifest) and,
//! when a recipe or lock file is given, the plan's targets (`targets`: share per category on the
//! stage's budget basis, deviation in percentage points, passes over each source, fingerprint).
//! Computing and rendering are apart: [`Audit`] is plain serializable data (the `--json`
//! document), and [`render`] turns it into the terminal table or the self-contained HTML report.
//!
//! Input is a whole build output (stage subfolders, `_mixtape/` with `build.json`, manifests and
//! rejects) or one stage folder (`layout`). Figures are deterministic: stages in plan order (then
//! in the build record's order), categories
//! and sources by name, shards by file name, whatever the thread count.

mod figures;
mod layout;
mod problem;
pub mod render;
mod stage;
pub mod stats;
pub mod stream;
mod targets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use mixtape_shards::{Counts, OnRow, ProblemKind, Totals, VerifyError, verify_with_rows};
use serde::Serialize;

use crate::plan::Plan;
use crate::recipe::Basis;
use crate::reject::RejectCode;
use figures::ShardFigures;
pub use problem::AuditProblem;
use stats::{Histogram, Spread};

/// Version of the `--json` document.
pub const AUDIT_VERSION: u32 = 1;
/// Largest deviation of a category's realized share from its target, in percentage points, that
/// passes. The planner's overshoot is at most one sample per source, far inside this on any stage
/// worth training; a tighter gate would fail tiny test stages for no reason.
pub const DEFAULT_TOLERANCE_PP: f64 = 0.5;

/// Why an audit could not run at all (everything else is an [`AuditProblem`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("{}: no such folder (give the folder `mixtape build --out` wrote, or one of its stage folders)", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot list {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no shard set: no _mixtape/ folder in it and no shard-*.parquet (give the folder `mixtape build --out` wrote, or one of its stage folders)", path.display())]
    NotAShardSet { path: PathBuf },
    /// A build in mixtape's old layout, or a folder that cannot be listed.
    #[error(transparent)]
    Layout(mixtape_shards::LayoutError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Settings of an audit.
#[derive(Clone, Copy, Debug)]
pub struct AuditOptions<'a> {
    /// The plan to compare with (from a recipe or a lock file); `None` reports figures only.
    pub plan: Option<&'a Plan>,
    pub tolerance_pp: f64,
}

impl Default for AuditOptions<'_> {
    fn default() -> Self {
        Self {
            plan: None,
            tolerance_pp: DEFAULT_TOLERANCE_PP,
        }
    }
}

/// The whole audit: the `--json` document.
#[derive(Clone, Debug, Serialize)]
pub struct Audit {
    pub mixtape_audit: u32,
    pub dir: PathBuf,
    /// Name and fingerprint of the plan compared with, if any.
    pub recipe: Option<String>,
    pub expected_fingerprint: Option<String>,
    pub tolerance_pp: f64,
    /// True when there is no problem.
    pub passed: bool,
    pub problems: Vec<AuditProblem>,
    /// Records of a whole build no stage could read (top-level `rejects.jsonl`), by reason.
    pub unreadable: BTreeMap<RejectCode, u64>,
    pub stages: Vec<StageAudit>,
}

/// One stage, recounted from its shards.
#[derive(Clone, Debug, Serialize)]
pub struct StageAudit {
    pub name: String,
    pub dir: PathBuf,
    pub seq_len: u32,
    /// Recipe fingerprint in the shards' footers (else the manifest's).
    pub fingerprint: Option<String>,
    /// The stage's budget basis and amount, from the plan.
    pub basis: Option<Basis>,
    pub budget: Option<u64>,
    /// Recounted from the shards (`rejected`: the lines of the stage's `rejects.jsonl`).
    pub totals: Totals,
    pub categories: Vec<MixLine>,
    pub sources: Vec<SourceLine>,
    /// Drawn records the stage could not use (its `rejects.jsonl`), by reason.
    pub rejects: BTreeMap<RejectCode, u64>,
    pub shards: Vec<ShardLine>,
    pub packs: PackDistributions,
}

/// Fractions of the stage's total on every basis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Shares {
    pub samples: f64,
    pub tokens: f64,
    pub loss_tokens: f64,
    pub image_tokens: f64,
    pub images: f64,
}

impl Shares {
    pub fn of(part: &Counts, whole: &Counts) -> Self {
        let f = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Shares {
            samples: f(part.samples, whole.samples),
            tokens: f(part.tokens, whole.tokens),
            loss_tokens: f(part.loss_tokens, whole.loss_tokens),
            image_tokens: f(part.image_tokens, whole.image_tokens),
            images: f(part.images, whole.images),
        }
    }

    pub fn on(&self, basis: Basis) -> f64 {
        match basis {
            Basis::Samples => self.samples,
            Basis::Tokens => self.tokens,
            Basis::LossTokens => self.loss_tokens,
            Basis::ImageTokens => self.image_tokens,
        }
    }
}

/// One category of a stage: realized, and against the recipe when a plan is given.
#[derive(Clone, Debug, Serialize)]
pub struct MixLine {
    pub name: String,
    pub counts: Counts,
    pub share: Shares,
    /// The mix's share (0 for a category the mix does not name).
    pub target_share: Option<f64>,
    /// `100 * (realized - target)` on the stage's basis.
    pub deviation_pp: Option<f64>,
    pub within_tolerance: Option<bool>,
}

/// One source of a stage.
#[derive(Clone, Debug, Serialize)]
pub struct SourceLine {
    pub name: String,
    pub category: String,
    pub counts: Counts,
    pub share: Shares,
    /// Category share x the source's weight within it.
    pub target_share: Option<f64>,
    pub deviation_pp: Option<f64>,
    /// Records drawn: packed samples that are not later windows of a long text, plus rejects.
    pub draws: u64,
    /// Drawn records the stage rejected.
    pub rejected: u64,
    /// Valid samples in the source (one pass), from the plan.
    pub available: Option<u64>,
    /// `draws / available`: passes over the source this stage's shards amount to.
    pub passes: Option<f64>,
    /// Passes the plan drew.
    pub planned_passes: Option<f64>,
}

/// One shard, recounted.
#[derive(Clone, Debug, Serialize)]
pub struct ShardLine {
    pub file: String,
    pub rows: u64,
    pub row_groups: u64,
    pub bytes: u64,
    pub samples: u64,
    pub tokens: u64,
    pub image_tokens: u64,
    pub padded_capacity: u64,
    pub efficiency: f64,
    /// Whether every row group decoded, so the figures cover the whole shard; `false` for a
    /// damaged shard (its problem is listed), whose figures count only the rows that could be read.
    pub complete: bool,
}

/// How samples and images spread over packs.
#[derive(Clone, Debug, Serialize)]
pub struct PackDistributions {
    pub samples_per_pack: Spread,
    pub tokens_per_pack: Spread,
    /// Vision load per pack: a wide spread means unbalanced vision-encoder work across ranks.
    pub image_tokens_per_pack: Spread,
    /// Tokens per packed sample, over `1..=seq_len`.
    pub sample_length_histogram: Histogram,
    pub image_tokens_per_pack_histogram: Histogram,
}

/// Audits `dir` (a build output or a stage folder).
pub fn audit(dir: &Path, options: &AuditOptions<'_>) -> Result<Audit, AuditError> {
    audit_with_rows(dir, options, &|_, _| {})
}

/// [`audit`], handing every row it decodes to `on_row` as well (as
/// [`mixtape_shards::verify_with_rows`] does): a progress bar's hook.
pub fn audit_with_rows(
    dir: &Path,
    options: &AuditOptions<'_>,
    on_row: &OnRow<'_>,
) -> Result<Audit, AuditError> {
    let found = layout::discover(dir)?;
    let plan = options.plan;
    // The one pass over the shards: `verify` checks and counts, the audit folds its figures from
    // the same decoded rows (per shard, merged in file order below).
    let figures: Mutex<BTreeMap<PathBuf, ShardFigures>> = Mutex::default();
    let verified = verify_with_rows(dir, &|shard, row| {
        let mut figures = figures.lock().unwrap_or_else(PoisonError::into_inner);
        match figures.get_mut(shard) {
            Some(f) => f.add_row(row),
            None => figures.entry(shard.to_path_buf()).or_default().add_row(row),
        }
        drop(figures);
        on_row(shard, row);
    })?;
    let figures = figures.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut problems: Vec<AuditProblem> = verified
        .problems()
        .cloned()
        .map(AuditProblem::Integrity)
        .collect();
    let mut stages = Vec::new();
    for stage_dir in layout::ordered(&found.stages, plan) {
        let report = verified.stages.iter().find(|s| s.dir == stage_dir.path);
        let (mut stage, mut found_problems) = stage::audit_stage(
            stage_dir,
            report,
            &figures,
            plan.map(|p| p.fingerprint.as_str()),
        );
        if let Some(plan) = plan {
            match plan.stages.iter().find(|s| s.name == stage_dir.name) {
                Some(plan_stage) => {
                    found_problems.extend(targets::apply(
                        &mut stage,
                        plan_stage,
                        options.tolerance_pp,
                    ));
                }
                None => found_problems.push(AuditProblem::StageNotInRecipe {
                    stage: stage.name.clone(),
                    dir: stage.dir.clone(),
                }),
            }
        }
        problems.extend(found_problems);
        stages.push(stage);
    }
    if let Some(plan) = plan
        && found.whole_build
    {
        // `verify` names the stages build.json lists without a folder; the recipe's count too.
        for s in &plan.stages {
            let missing = !found.stages.iter().any(|d| d.name == s.name);
            let named = verified.problems().any(
                |p| matches!(&p.kind, ProblemKind::StageNotBuilt { stage } if *stage == s.name),
            );
            if missing && !named {
                let build = mixtape_shards::BuildLayout::new(dir);
                let problem = mixtape_shards::Problem::stage_not_built(&build, &s.name);
                problems.push(AuditProblem::Integrity(problem));
            }
        }
        if let Some((path, fingerprint)) = &found.build_fingerprint
            && fingerprint != &plan.fingerprint
        {
            problems.push(AuditProblem::FingerprintMismatch {
                file: path.clone(),
                found: fingerprint.clone(),
                expected: plan.fingerprint.clone(),
            });
        }
    }
    let unreadable = match &found.unreadable {
        Some(path) => match stage::read_rejects(path) {
            Ok(entries) => stage::by_reason(&entries),
            Err(problem) => {
                problems.push(*problem);
                BTreeMap::new()
            }
        },
        None => BTreeMap::new(),
    };
    Ok(Audit {
        mixtape_audit: AUDIT_VERSION,
        dir: dir.to_path_buf(),
        recipe: plan.map(|p| p.name.clone()),
        expected_fingerprint: plan.map(|p| p.fingerprint.clone()),
        tolerance_pp: options.tolerance_pp,
        passed: problems.is_empty(),
        problems,
        unreadable,
        stages,
    })
}
