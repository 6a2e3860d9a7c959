//! `mixtape plan`: the resolved draws of every stage, as a table or stable JSON, and lock files.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mixtape_engine::index::IndexCache;
use mixtape_engine::plan::{Plan, group};
use mixtape_engine::resolve::resolve_with_progress;

use crate::failure::ErrorDoc;

/// Resolves a recipe to a plan, printing diagnostics on stderr; when the recipe has errors, the
/// JSON error document that lists them instead (`--json` prints it).
pub fn plan_recipe(path: &Path, cache: &IndexCache) -> Result<Plan, ErrorDoc> {
    let spinner = super::progress::IndexSpinner::default();
    let resolved = resolve_with_progress(path, cache, &|e| spinner.update(e));
    let diagnostics = resolved.diagnostics.clone().sorted();
    for d in &diagnostics {
        eprintln!("{}", d.render(&resolved.files));
    }
    resolved
        .plan
        .ok_or_else(|| ErrorDoc::invalid_recipe(path, &diagnostics, &resolved.files))
}

/// Reads a lock file (a `plan --json` document).
pub fn read_lock(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read lock file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a mixtape lock file (write one with `mixtape plan RECIPE --lock FILE`)",
            path.display()
        )
    })
}

/// Stable JSON: fixed field order, two-space indent, trailing newline.
pub fn plan_json(plan: &Plan) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(plan)? + "\n")
}

pub fn run(
    recipe: &Path,
    json: bool,
    lock: Option<&Path>,
    locked: Option<&Path>,
    cache: &IndexCache,
) -> anyhow::Result<ExitCode> {
    let plan = match plan_recipe(recipe, cache) {
        Ok(plan) => plan,
        Err(doc) => {
            if json {
                doc.print();
            }
            eprintln!(
                "invalid: {}: fix the errors above (`mixtape check` lists them)",
                recipe.display()
            );
            return Ok(ExitCode::from(super::PROBLEMS));
        }
    };
    if let Some(path) = locked {
        let pinned = read_lock(path)?;
        if pinned.fingerprint != plan.fingerprint {
            let message = format!(
                "{} no longer matches {}: fingerprint {} -> {}",
                recipe.display(),
                path.display(),
                &pinned.fingerprint[..12],
                &plan.fingerprint[..12]
            );
            eprintln!("error: {message}");
            if json {
                ErrorDoc::problem(message).print();
            }
            eprint!("{}", mixtape_engine::diff::diff(&pinned, &plan).render());
            eprintln!(
                "hint: review the change above, then refresh the lock with `mixtape plan {} --lock {}`",
                recipe.display(),
                path.display()
            );
            return Ok(ExitCode::from(super::PROBLEMS));
        }
        eprintln!(
            "ok: {} matches {} (fingerprint {})",
            recipe.display(),
            path.display(),
            &plan.fingerprint[..12]
        );
    }
    if let Some(path) = lock {
        std::fs::write(path, plan_json(&plan)?)
            .with_context(|| format!("cannot write lock file {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if json {
        print!("{}", plan_json(&plan)?);
    } else {
        print!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

/// Human-readable plan.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {}  fingerprint {}  seed {}",
        plan.name,
        &plan.fingerprint[..12],
        plan.seed
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "sources");
    let _ = writeln!(
        out,
        "  {:<18} {:<13} {:<12} {:>9} {:>9} {:>9}",
        "name", "format", "category", "records", "samples", "rejected"
    );
    for s in &plan.sources {
        let rejected: u64 = s.rejected.values().sum();
        let _ = writeln!(
            out,
            "  {:<18} {:<13} {:<12} {:>9} {:>9} {:>9}",
            s.name,
            s.format,
            s.category,
            group(s.records),
            group(s.samples),
            group(rejected)
        );
    }
    for stage in &plan.stages {
        let _ = writeln!(out);
        let extends = stage
            .extends
            .as_ref()
            .map(|p| format!("  extends {p}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "stage {}  seq_len {}  budget {} {}  max_repeat {}{extends}",
            stage.name,
            stage.seq_len,
            group(stage.budget),
            stage.basis.noun(),
            stage.max_repeat
        );
        let _ = writeln!(
            out,
            "  {:<12} {:>6} {:>7}  {:<18} {:>9} {:>7} {:>6} {:>9} {:>11} {:>11} {:>11}",
            "category",
            "target",
            "planned",
            "source",
            "available",
            "drawn",
            "passes",
            "samples",
            "tokens",
            "loss_tokens",
            "image_tokens"
        );
        for c in &stage.categories {
            for (i, d) in c.sources.iter().enumerate() {
                let (name, target, planned) = if i == 0 {
                    (
                        c.name.as_str(),
                        format!("{:.1}%", 100.0 * c.target_share),
                        format!("{:.2}%", 100.0 * c.expected_share),
                    )
                } else {
                    ("", String::new(), String::new())
                };
                let _ = writeln!(
                    out,
                    "  {:<12} {:>6} {:>7}  {:<18} {:>9} {:>7} {:>6.2} {:>9} {:>11} {:>11} {:>11}",
                    name,
                    target,
                    planned,
                    d.source,
                    group(d.available),
                    group(d.end - d.start),
                    d.passes,
                    group(d.expected.samples),
                    group(d.expected.tokens),
                    group(d.expected.loss_tokens),
                    group(d.expected.image_tokens)
                );
            }
        }
        let e = &stage.expected;
        let _ = writeln!(
            out,
            "  total: {} samples, {} tokens, {} loss tokens, {} image tokens, {} images",
            group(e.samples),
            group(e.tokens),
            group(e.loss_tokens),
            group(e.image_tokens),
            group(e.images)
        );
        let rejected: u64 = stage
            .categories
            .iter()
            .flat_map(|c| &c.sources)
            .flat_map(|d| d.rejected.values())
            .sum();
        if rejected > 0 {
            let _ = writeln!(
                out,
                "  unusable in this stage (counted as rejects): {}",
                group(rejected)
            );
        }
    }
    out
}
