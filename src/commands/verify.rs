//! `mixtape verify`: check a build output or one stage folder against its manifests.
//!
//! The checking is `mixtape_shards::verify`; this prints its report: one summary line per stage,
//! then every problem with its fix (or the report as JSON). Exit 0 when everything checks out, 1
//! when problems were found, 2 when the folder is no shard set.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mixtape_engine::plan::group;
use mixtape_shards::{VerifyReport, verify_with_rows};

use super::progress::RowProgress;

pub fn run(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let progress = RowProgress::for_shard_set(dir, "verifying");
    let report = verify_with_rows(dir, &|_, _| progress.row_done())
        .with_context(|| format!("cannot verify {}", dir.display()))?;
    drop(progress);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::PROBLEMS)
    })
}

fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    for s in &report.stages {
        let status = if s.is_ok() {
            "ok".to_string()
        } else {
            format!("{} problem{}", s.problems.len(), plural(s.problems.len()))
        };
        let _ = writeln!(
            out,
            "{:<12} {:>4} shards {:>9} rows {:>14} bytes  {status}",
            s.stage,
            s.shards,
            group(s.rows),
            group(s.bytes)
        );
    }
    let problems: Vec<_> = report.problems().collect();
    for p in &problems {
        let _ = writeln!(out, "\nproblem: {p}");
    }
    let shards: u64 = report.stages.iter().map(|s| s.shards).sum();
    let stages = report.stages.len();
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "verified {}: {stages} stage{}, {shards} shards, all intact",
            report.dir.display(),
            plural(stages)
        );
    } else {
        let n = problems.len();
        // Problems of the build as a whole (its record, a missing stage) belong to no stage folder.
        let damaged = report.stages.iter().filter(|s| !s.is_ok()).count();
        let whole = report.problems.len();
        let mut places = Vec::new();
        if damaged > 0 {
            places.push(format!("{damaged} of {stages} stage{}", plural(stages)));
        }
        if whole > 0 {
            places.push("the build's own files".to_string());
        }
        let _ = writeln!(
            out,
            "\n{}: {n} problem{} in {}",
            report.dir.display(),
            plural(n),
            places.join(" and ")
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
