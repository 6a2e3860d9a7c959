//! `mixtape index`: measure a recipe's sources (or one task's share of their files) into the
//! length cache.

use std::path::Path;
use std::process::ExitCode;

use mixtape_engine::build::BuildScope;
use mixtape_engine::diag::Severity;
use mixtape_engine::index::IndexCache;
use mixtape_engine::resolve::index_sources;

pub fn run(
    recipe: &Path,
    scope: BuildScope,
    json: bool,
    cache: &IndexCache,
) -> anyhow::Result<ExitCode> {
    if let (BuildScope::Task { task, tasks }, Some(why)) = (scope, scope.problem()) {
        anyhow::bail!("--task {task} --tasks {tasks}: {why}");
    }
    let indexed = index_sources(recipe, cache, &|part| scope.owns(part));
    let diagnostics = indexed.diagnostics.sorted();
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    for d in &errors {
        eprintln!("{}", d.render(&indexed.files));
    }
    if !errors.is_empty() {
        eprintln!("invalid: {}: not everything was measured", recipe.display());
        return Ok(ExitCode::from(super::PROBLEMS));
    }
    if json {
        let document = serde_json::json!({
            "recipe": recipe.display().to_string(),
            "scope": scope,
            "parts": indexed.parts,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        for part in &indexed.parts {
            eprintln!(
                "{:>16} {:<40} {:>9} records {}",
                part.source,
                part.file.as_deref().unwrap_or("(synthetic)"),
                part.records,
                if part.cached { "(cached)" } else { "measured" }
            );
        }
        if cache.dir.is_none() {
            eprintln!("note: the cache is off (--no-cache), so nothing was kept");
        }
    }
    Ok(ExitCode::SUCCESS)
}
