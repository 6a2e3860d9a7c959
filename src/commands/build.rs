//! `mixtape build`: progress bars while building, a summary at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use mixtape_engine::build::{BuildError, BuildOptions, BuildReport, Progress, build};
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
        Err(err @ BuildError::TooManyRejects { .. }) => {
            eprintln!("error: {err}");
            if json {
                ErrorDoc::problem(err.to_string()).print();
            }
            Ok(ExitCode::from(super::PROBLEMS))
        }
        Err(err) => Err(err.into()),
    }
}

fn summary(report: &BuildReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "built {} (fingerprint {})",
        report.out.display(),
        &report.fingerprint[..12]
    );
    for s in &report.stages {
        let t = &s.manifest.totals;
        let _ = writeln!(
            out,
            "  {:<12} {:>3} shards {:>7} rows {:>8} samples {:>12} tokens  {:>6.2}% packed  {} rejected{}",
            s.name,
            s.manifest.shards.len(),
            group(t.rows),
            group(t.samples),
            group(t.tokens),
            100.0 * t.efficiency,
            group(s.manifest.rejects.values().sum()),
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
