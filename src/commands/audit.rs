//! `mixtape audit`: recount built shards, cross-check their manifests, compare with the recipe.
//!
//! The engine computes ([`mixtape_engine::audit`]); this command only resolves what to compare
//! with (a recipe's plan or a lock file), picks the output (table, `--json`, `--html`) and maps
//! the verdict to the exit status: 0 no problem, 1 problems found (mix off, fingerprint differs,
//! manifest disagrees), 2 could not run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use mixtape_engine::audit::{AuditOptions, audit, render};
use mixtape_engine::index::IndexCache;

/// What the user asked for.
#[derive(Debug)]
pub struct AuditArgs {
    pub dir: PathBuf,
    pub recipe: Option<PathBuf>,
    pub lock: Option<PathBuf>,
    pub tolerance: f64,
    pub json: bool,
    pub html: Option<PathBuf>,
}

pub fn run(args: &AuditArgs, cache: &IndexCache) -> anyhow::Result<ExitCode> {
    let AuditArgs {
        dir,
        recipe,
        lock,
        tolerance,
        json,
        html,
    } = args;
    if !tolerance.is_finite() || *tolerance < 0.0 {
        bail!("--tolerance {tolerance} is not a number of percentage points >= 0 (e.g. 0.5)");
    }
    let plan = match (recipe, lock) {
        (Some(recipe), _) => match super::plan::plan_recipe(recipe, cache) {
            Some(plan) => Some(plan),
            None => bail!(
                "{} has errors (listed above): fix them, or audit against a lock file with --lock",
                recipe.display()
            ),
        },
        (None, Some(lock)) => Some(super::plan::read_lock(lock)?),
        (None, None) => None,
    };
    let options = AuditOptions {
        plan: plan.as_ref(),
        tolerance_pp: *tolerance,
    };
    let report = audit(dir, &options)?;
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
