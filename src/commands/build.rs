//! `mixtape build`: progress bars while building, a summary at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use mixtape_engine::build::{BuildError, BuildOptions, BuildReport, BuildScope, Progress, build};
use mixtape_engine::plan::group;

use crate::failure::ErrorDoc;

pub fn run(
    recipe: &Path,
    options: &BuildOptions,
    quiet: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let tokens = Mutex::new(0u64);
    let spinner = super::progress::IndexSpinner::default();
    let progress = |event: Progress| {
        if quiet {
            return;
        }
        let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Progress::Index(event) => spinner.update(event),
            Progress::StageStart { stage, draws } => {
                let b = ProgressBar::new(draws);
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {pos}/{len} samples {per_sec} {msg} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_prefix(stage);
                *tokens.lock().unwrap_or_else(|e| e.into_inner()) = 0;
                *bar = Some(b);
            }
            Progress::Advance { draws, tokens: t } => {
                if let Some(b) = bar.as_ref() {
                    let mut total = tokens.lock().unwrap_or_else(|e| e.into_inner());
                    *total += t;
                    let secs = b.elapsed().as_secs_f64().max(1e-3);
                    b.set_message(format!("{:.0} tok/s", *total as f64 / secs));
                    b.inc(draws);
                }
            }
            Progress::StageDone { stage, reused } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let what = if reused { "already built" } else { "built" };
                eprintln!("{stage:>12} {what}");
            }
        }
    };
    match build(recipe, options, &progress) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !quiet {
                eprint!("{}", summary(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(BuildError::Invalid(diagnostics)) => {
            eprint!("{diagnostics}");
            let message = format!("invalid: {}: nothing was built", recipe.display());
            eprintln!("{message}");
            if json {
                let mut doc = ErrorDoc::problem(message);
                doc.error.causes = vec![diagnostics];
                doc.print();
            }
            Ok(ExitCode::from(super::PROBLEMS))
        }
        Err(err @ (BuildError::TooManyRejects { .. } | BuildError::NotBuilt { .. })) => {
            eprintln!("error: {err}");
            if json {
                ErrorDoc::problem(err.to_string()).print();
            }
            Ok(ExitCode::from(super::PROBLEMS))
        }
        Err(err) => Err(err.into()),
    }
}

/// What part of the build this run does: `--task`/`--tasks`, else the scheduler's variables (a
/// Slurm job array's `SLURM_ARRAY_TASK_ID` counted from `SLURM_ARRAY_TASK_MIN`, of
/// `SLURM_ARRAY_TASK_COUNT`; a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`, with `--tasks`),
/// else the whole build. `env` reads a variable.
pub fn scope_from(
    task: Option<usize>,
    tasks: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BuildScope> {
    let number = |name: &str| -> anyhow::Result<Option<usize>> {
        env(name)
            .map(|value| {
                value.trim().parse::<usize>().map_err(|_| {
                    anyhow::anyhow!("${name}={value:?} is not a task number (0, 1, 2, ...)")
                })
            })
            .transpose()
    };
    let slurm = match number("SLURM_ARRAY_TASK_ID")? {
        Some(id) => {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or_else(|| {
                anyhow::anyhow!("$SLURM_ARRAY_TASK_ID={id} is below $SLURM_ARRAY_TASK_MIN={min}")
            })?;
            Some((index, number("SLURM_ARRAY_TASK_COUNT")?))
        }
        None => None,
    };
    let task = match task {
        Some(task) => Some(task),
        None => match slurm {
            Some((index, _)) => Some(index),
            None => number("JOB_COMPLETION_INDEX")?,
        },
    };
    let tasks = tasks.or(slurm.and_then(|(_, count)| count));
    match (task, tasks) {
        (None, None) => Ok(BuildScope::Whole),
        (Some(task), Some(tasks)) => Ok(BuildScope::Task { task, tasks }),
        (Some(task), None) => anyhow::bail!(
            "this is task {task} of a split build (from $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID), but of how many tasks? pass --tasks N (a Kubernetes Indexed Job's completions)"
        ),
        (None, Some(tasks)) => anyhow::bail!(
            "--tasks {tasks}: which task is this one? pass --task I (0 to {}), or run it as a Slurm array task or a Kubernetes Indexed Job",
            tasks.saturating_sub(1)
        ),
    }
}

fn summary(report: &BuildReport) -> String {
    let mut out = String::new();
    if let BuildScope::Task { task, tasks } = report.scope {
        let _ = writeln!(
            out,
            "task {task} of {tasks} built its shards of {} (fingerprint {})",
            report.out.display(),
            &report.fingerprint[..12]
        );
        for s in &report.stages {
            let _ = writeln!(
                out,
                "  {:<12} {:>3} shards written, {} kept",
                s.name, s.shards_written, s.shards_reused
            );
        }
        let _ = writeln!(
            out,
            "once every task has finished: mixtape build RECIPE --out {} --finish",
            report.out.display()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "built {} (fingerprint {})",
        report.out.display(),
        &report.fingerprint[..12]
    );
    for s in &report.stages {
        let Some(manifest) = &s.manifest else {
            continue;
        };
        let t = &manifest.totals;
        let _ = writeln!(
            out,
            "  {:<12} {:>3} shards {:>7} rows {:>8} samples {:>12} tokens  {:>6.2}% packed  {} rejected{}",
            s.name,
            manifest.shards.len(),
            group(t.rows),
            group(t.samples),
            group(t.tokens),
            100.0 * t.efficiency,
            group(manifest.rejects.values().sum()),
            if s.shards_reused > 0 {
                format!("  ({} shards reused)", s.shards_reused)
            } else {
                String::new()
            }
        );
    }
    let unreadable: u64 = report.unreadable.values().sum();
    if unreadable > 0 {
        let _ = writeln!(
            out,
            "  {} records could not be read (see {})",
            group(unreadable),
            mixtape_shards::BuildLayout::new(&report.out)
                .unreadable_rejects()
                .display()
        );
    }
    out
}
