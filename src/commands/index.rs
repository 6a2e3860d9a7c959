//! `mixtape index`: measure a recipe's sources (or one task's share of them) into the length cache.

use std::path::Path;
use std::process::ExitCode;

use mixtape_engine::build::BuildScope;
use mixtape_engine::diag::Severity;
use mixtape_engine::index::{IndexCache, IndexProgress};
use mixtape_engine::resolve::index_sources;

pub fn run(
    recipe: &Path,
    scope: BuildScope,
    json: bool,
    cache: &IndexCache,
) -> anyhow::Result<ExitCode> {
    if let BuildScope::Task { task, tasks } = scope
        && task >= tasks
    {
        anyhow::bail!(
            "--task {task} --tasks {tasks}: tasks are numbered from 0 to --tasks minus 1"
        );
    }
    let spinner = super::progress::IndexSpinner::default();
    // Which sources came from the cache, as indexing reports them.
    let cached = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let resolved = index_sources(
        recipe,
        cache,
        &|position| match scope {
            BuildScope::Task { task, tasks } => position % tasks == task,
            _ => true,
        },
        &|event| {
            if let IndexProgress::Done {
                source,
                cached: hit,
                ..
            } = &event
            {
                cached
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(source.clone(), *hit);
            }
            spinner.update(event)
        },
    );
    let diagnostics = resolved.diagnostics.sorted();
    for d in diagnostics.iter().filter(|d| d.severity == Severity::Error) {
        eprintln!("{}", d.render(&resolved.files));
    }
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        eprintln!("invalid: {}: nothing more was measured", recipe.display());
        return Ok(ExitCode::from(super::PROBLEMS));
    }
    let cached = cached.into_inner().unwrap_or_else(|e| e.into_inner());
    let sources: Vec<serde_json::Value> = resolved
        .indexes
        .iter()
        .map(|(name, index)| {
            serde_json::json!({
                "source": name,
                "records": index.records,
                "samples": index.samples(),
                "cached": cached.get(name).copied().unwrap_or(false),
            })
        })
        .collect();
    if json {
        let document = serde_json::json!({
            "recipe": recipe.display().to_string(),
            "scope": scope,
            "sources": sources,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        for s in &sources {
            eprintln!(
                "{:>16} {:>9} records {}",
                s["source"].as_str().unwrap_or_default(),
                s["records"],
                if s["cached"] == true {
                    "(cached)"
                } else {
                    "measured"
                }
            );
        }
        if cache.dir.is_none() {
            eprintln!("note: the cache is off (--no-cache), so nothing was kept");
        }
    }
    Ok(ExitCode::SUCCESS)
}
