//! `mixtape audit`: recount built shards, cross-check their manifests, compare with the recipe.
//!
//! The engine computes ([`mixtape_engine::audit`]); this command only resolves what to compare
//! with (a recipe's plan or a lock file), picks the output (table, `--json`, `--html`) and maps
//! the verdict to the exit status: 0 no problem, 1 problems found (mix off, fingerprint differs,
//! manifest disagrees), 2 could not run. With `--stream` it reports the mix of the first steps a
//! training reader yields instead (exit 0, or 1 when the data is damaged: the reader names it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use mixtape_engine::audit::stream::{StreamAuditError, StreamOptions, audit_stream, render_table};
use mixtape_engine::audit::{AuditOptions, audit_with_rows, render};
use mixtape_engine::index::IndexCache;
use mixtape_engine::plan::Plan;
use mixtape_shards::reader::{ReaderError, ReaderOptions};

use super::progress::RowProgress;

/// What the user asked for.
#[derive(Debug)]
pub struct AuditArgs {
    pub dir: PathBuf,
    pub recipe: Option<PathBuf>,
    pub lock: Option<PathBuf>,
    pub tolerance: f64,
    pub json: bool,
    pub html: Option<PathBuf>,
    /// `--stream` and its reader settings.
    pub stream: Option<StreamArgs>,
}

/// `--stream`'s settings.
#[derive(Debug)]
pub struct StreamArgs {
    pub steps: u64,
    pub window: Option<u64>,
    pub batch_size: usize,
    pub seed: u64,
    pub rank: Option<usize>,
    pub world_size: Option<usize>,
}

pub fn run(args: &AuditArgs, cache: &IndexCache) -> anyhow::Result<ExitCode> {
    let AuditArgs {
        dir,
        recipe,
        lock,
        tolerance,
        json,
        html,
        stream,
    } = args;
    if !tolerance.is_finite() || *tolerance < 0.0 {
        bail!("--tolerance {tolerance} is not a number of percentage points >= 0 (e.g. 0.5)");
    }
    let plan = match (recipe, lock) {
        (Some(recipe), _) => match super::plan::plan_recipe(recipe, cache) {
            Ok(plan) => Some(plan),
            Err(_) => bail!(
                "{} has errors (listed above): fix them, or audit against a lock file with --lock",
                recipe.display()
            ),
        },
        (None, Some(lock)) => Some(super::plan::read_lock(lock)?),
        (None, None) => None,
    };
    if let Some(stream) = stream {
        return run_stream(dir, stream, plan.as_ref(), *json);
    }
    let options = AuditOptions {
        plan: plan.as_ref(),
        tolerance_pp: *tolerance,
    };
    let progress = RowProgress::for_shard_set(dir, "auditing");
    let report = audit_with_rows(dir, &options, &|_, _| progress.row_done())?;
    drop(progress);
    if let Some(path) = html {
        std::fs::write(path, render::html::render(&report))
            .with_context(|| format!("cannot write the HTML report to {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::table::render(&report));
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::PROBLEMS)
    })
}

fn run_stream(
    dir: &Path,
    args: &StreamArgs,
    plan: Option<&Plan>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let StreamArgs {
        steps,
        window,
        batch_size,
        seed,
        rank,
        world_size,
    } = args;
    let env = ReaderOptions::from_env()?;
    let reader = env
        .clone()
        .with_rank(
            rank.unwrap_or(env.rank()),
            world_size.unwrap_or(env.world_size()),
        )
        .with_batch_size(*batch_size)
        .with_seed(*seed);
    let options = StreamOptions {
        steps: *steps,
        window_steps: *window,
        reader,
        plan,
    };
    let report = match audit_stream(dir, &options) {
        Ok(report) => report,
        // Damaged data is a finding (exit 1); anything else means the audit could not run.
        Err(StreamAuditError::Reader(e))
            if matches!(
                e,
                ReaderError::Read(_)
                    | ReaderError::ShardMismatch { .. }
                    | ReaderError::Checksum { .. }
                    | ReaderError::Image { .. }
            ) =>
        {
            eprintln!("error: {e}");
            if json {
                crate::failure::ErrorDoc::problem(e.to_string()).print();
            }
            return Ok(ExitCode::from(super::PROBLEMS));
        }
        Err(e) => return Err(e.into()),
    };
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
