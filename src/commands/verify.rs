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
use mixtape_shards::{VerifyReport, verify};

pub fn run(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = verify(dir).with_context(|| format!("cannot verify {}", dir.display()))?;
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
        let _ = writeln!(
            out,
            "\n{}: {n} problem{} in {stages} stage{}",
            report.dir.display(),
            plural(n),
            plural(stages)
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
