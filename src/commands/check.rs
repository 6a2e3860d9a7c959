//! `mixtape check`: every problem of every recipe, then a one-line verdict per recipe.

use std::path::PathBuf;
use std::process::ExitCode;

use mixtape_engine::diag::Severity;
use mixtape_engine::index::IndexCache;
use mixtape_engine::resolve::resolve_with_progress;

pub fn run(recipes: &[PathBuf], json: bool, cache: &IndexCache) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for path in recipes {
        let spinner = super::progress::IndexSpinner::default();
        let resolved = resolve_with_progress(path, cache, &|e| spinner.update(e));
        let errors = resolved.diagnostics.error_count();
        let warnings = resolved.diagnostics.len() - errors;
        let diagnostics = resolved.diagnostics.sorted();
        if json {
            for d in &diagnostics {
                let line = serde_json::json!({
                    "recipe": path.display().to_string(),
                    "severity": d.severity.to_string(),
                    "position": d.position(&resolved.files),
                    "message": d.message,
                    "hint": d.hint,
                });
                println!("{line}");
            }
        } else {
            for d in &diagnostics {
                eprintln!("{}", d.render(&resolved.files));
            }
        }
        failed |= diagnostics.iter().any(|d| d.severity == Severity::Error);
        if !json {
            if errors == 0 {
                let plan = resolved.plan.as_ref();
                let summary = plan
                    .map(|p| {
                        format!(
                            ": {} source{}, {} stage{}, fingerprint {}",
                            p.sources.len(),
                            plural(p.sources.len()),
                            p.stages.len(),
                            plural(p.stages.len()),
                            &p.fingerprint[..12]
                        )
                    })
                    .unwrap_or_default();
                let warn = if warnings > 0 {
                    format!(" ({warnings} warning{})", plural(warnings))
                } else {
                    String::new()
                };
                eprintln!("ok: {}{summary}{warn}", path.display());
            } else {
                eprintln!(
                    "invalid: {}: {errors} error{}",
                    path.display(),
                    plural(errors)
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::from(super::PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
