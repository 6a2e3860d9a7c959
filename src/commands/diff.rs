//! `mixtape diff`: compare two recipes or lock files by their resolved plans.

use std::path::Path;
use std::process::ExitCode;

use mixtape_engine::index::IndexCache;
use mixtape_engine::plan::Plan;

use super::plan::{plan_recipe, read_lock};
use crate::failure::ErrorDoc;

/// A lock file is JSON; anything else is read as a recipe (`Err` of the inner result: its errors).
fn load(path: &Path, cache: &IndexCache) -> anyhow::Result<Result<Plan, ErrorDoc>> {
    let is_lock = path.extension().is_some_and(|e| e == "json" || e == "lock");
    if is_lock {
        read_lock(path).map(Ok)
    } else {
        Ok(plan_recipe(path, cache))
    }
}

pub fn run(
    before: &Path,
    after: &Path,
    json: bool,
    exit_code: bool,
    cache: &IndexCache,
) -> anyhow::Result<ExitCode> {
    let (a, b) = match (load(before, cache)?, load(after, cache)?) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(doc), _) | (_, Err(doc)) => {
            if json {
                doc.print();
            }
            eprintln!("error: cannot diff: fix the recipe errors above first");
            return Ok(ExitCode::from(super::PROBLEMS));
        }
    };
    let d = mixtape_engine::diff::diff(&a, &b);
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", d.render());
    }
    Ok(if exit_code && !d.identical {
        ExitCode::from(super::PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}
