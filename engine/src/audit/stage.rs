//! Auditing one stage folder from `verify`'s report of it: its recounts (totals, per category, per
//! source, per shard), the audit's own figures folded from the same decoded rows, its rejects
//! (cross-checked with the manifest), laid out per category, per source and per shard.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mixtape_shards::manifest::ratio;
use mixtape_shards::{StageRecount, StageReport, Totals};

use super::figures::ShardFigures;
use super::layout::StageDir;
use super::{AuditProblem, MixLine, PackDistributions, ShardLine, Shares, SourceLine, StageAudit};
use crate::build::RejectEntry;
use crate::reject::RejectCode;

/// Lays out `stage` from `report` (`verify`'s, `None` when it has none) and the figures of its
/// shards, and checks its rejects and, when given, the expected fingerprint.
pub fn audit_stage(
    stage: &StageDir,
    report: Option<&StageReport>,
    figures: &BTreeMap<PathBuf, ShardFigures>,
    expected_fingerprint: Option<&str>,
) -> (StageAudit, Vec<AuditProblem>) {
    let mut problems = Vec::new();
    let recounts = report.map_or(&[][..], |r| &r.recounts[..]);
    let recount = report.map(StageReport::recount).unwrap_or_default();
    let manifest = report.and_then(|r| r.manifest.as_ref());
    let rejects_path = stage.rejects_path();
    let rejects = if mixtape_store::is_file(&rejects_path) {
        read_rejects(&rejects_path).unwrap_or_else(|problem| {
            problems.push(*problem);
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let rejects_by_reason = by_reason(&rejects);
    if let Some(manifest) = manifest {
        // The manifest keys reasons by their strings (see `crate::reject`).
        let in_file: BTreeMap<&str, u64> = rejects_by_reason
            .iter()
            .map(|(code, n)| (code.as_str(), *n))
            .collect();
        let reasons: BTreeSet<&str> = manifest
            .rejects
            .keys()
            .map(String::as_str)
            .chain(in_file.keys().copied())
            .collect();
        for reason in reasons {
            let manifest_count = manifest.rejects.get(reason).copied().unwrap_or(0);
            let rejects_file_count = in_file.get(reason).copied().unwrap_or(0);
            if manifest_count != rejects_file_count {
                problems.push(AuditProblem::RejectsMismatch {
                    manifest: stage.manifest_path(),
                    reason: reason.to_owned(),
                    manifest_count,
                    rejects_file_count,
                });
            }
        }
    }

    let first_meta = recounts.iter().find_map(|s| s.meta.as_ref());
    let seq_len = manifest
        .map(|m| m.seq_len)
        .or(first_meta.map(|m| m.seq_len))
        .unwrap_or(0);
    let mut merged = ShardFigures::default();
    for shard in recounts {
        if let Some(f) = figures.get(&shard.path) {
            merged.merge(f);
        }
    }
    let fingerprint = first_meta
        .map(|m| m.recipe_fingerprint.clone())
        .or(manifest.map(|m| m.recipe_fingerprint.clone()));
    if let (Some(expected), Some(found)) = (expected_fingerprint, &fingerprint)
        && found != expected
    {
        // Once per stage, on the file that says it: a stage has one fingerprint (`verify`
        // reports any shard that differs from its manifest).
        let file = recounts
            .iter()
            .find(|s| s.meta.is_some())
            .map_or_else(|| stage.manifest_path(), |s| s.path.clone());
        problems.push(AuditProblem::FingerprintMismatch {
            file,
            found: found.clone(),
            expected: expected.to_string(),
        });
    }
    let audit = lay_out(
        stage,
        seq_len,
        fingerprint,
        &recount,
        recounts,
        &merged,
        &rejects,
    );
    (audit, problems)
}

/// The stage's lines: totals, per category, per source (drawn and rejected), per shard, packs.
fn lay_out(
    stage: &StageDir,
    seq_len: u32,
    fingerprint: Option<String>,
    recount: &StageRecount,
    recounts: &[mixtape_shards::ShardRecount],
    figures: &ShardFigures,
    rejects: &[RejectEntry],
) -> StageAudit {
    let mut rejected_by_source: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rejects {
        *rejected_by_source.entry(r.source.as_str()).or_insert(0) += 1;
    }
    let categories = recount
        .by_category
        .iter()
        .map(|(name, counts)| MixLine {
            name: name.clone(),
            counts: *counts,
            share: Shares::of(counts, &recount.totals),
            target_share: None,
            deviation_pp: None,
            within_tolerance: None,
        })
        .collect();
    let mut source_names: Vec<&str> = recount.by_source.keys().map(String::as_str).collect();
    source_names.extend(
        rejected_by_source
            .keys()
            .filter(|s| !recount.by_source.contains_key(**s)),
    );
    source_names.sort_unstable();
    let sources = source_names
        .into_iter()
        .map(|name| {
            let counts = recount.by_source.get(name).copied().unwrap_or_default();
            let rejected = rejected_by_source.get(name).copied().unwrap_or(0);
            SourceLine {
                name: name.to_string(),
                category: figures
                    .source_category
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
                counts,
                share: Shares::of(&counts, &recount.totals),
                target_share: None,
                deviation_pp: None,
                draws: figures.draws.get(name).copied().unwrap_or(0) + rejected,
                rejected,
                available: None,
                passes: None,
                planned_passes: None,
            }
        })
        .collect();
    let seq_len64 = u64::from(seq_len);
    let shard_lines = recounts
        .iter()
        .map(|s| ShardLine {
            file: s.file.clone(),
            rows: s.rows,
            row_groups: s.row_groups,
            bytes: s.hash.as_ref().map_or(0, |h| h.bytes),
            samples: s.totals.samples,
            tokens: s.totals.tokens,
            image_tokens: s.totals.image_tokens,
            padded_capacity: s.rows * seq_len64,
            efficiency: ratio(s.totals.tokens, s.rows * seq_len64),
            complete: s.complete,
        })
        .collect();
    let t = &recount.totals;
    StageAudit {
        name: stage.name.clone(),
        dir: stage.path.clone(),
        seq_len,
        fingerprint,
        basis: None,
        budget: None,
        totals: Totals {
            rows: recount.rows,
            samples: t.samples,
            tokens: t.tokens,
            loss_tokens: t.loss_tokens,
            image_tokens: t.image_tokens,
            images: t.images,
            padded_capacity: recount.rows * seq_len64,
            efficiency: ratio(t.tokens, recount.rows * seq_len64),
            rejected: rejects.len() as u64,
        },
        categories,
        sources,
        rejects: by_reason(rejects),
        shards: shard_lines,
        packs: PackDistributions {
            samples_per_pack: figures.samples_per_pack.spread(),
            tokens_per_pack: figures.tokens_per_pack.spread(),
            image_tokens_per_pack: figures.image_tokens_per_pack.spread(),
            sample_length_histogram: figures.sample_lengths.histogram(1, seq_len64),
            image_tokens_per_pack_histogram: figures
                .image_tokens_per_pack
                .histogram(0, figures.image_tokens_per_pack.spread().max),
        },
    }
}

/// The entries of a `rejects.jsonl`; a line that is not one is a problem naming the line.
pub fn read_rejects(path: &Path) -> Result<Vec<RejectEntry>, Box<AuditProblem>> {
    let unreadable = |error: String| {
        Box::new(AuditProblem::RejectsUnreadable {
            file: path.to_path_buf(),
            error,
        })
    };
    let bytes = mixtape_store::read(path).map_err(|e| unreadable(e.to_string()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| unreadable(e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| unreadable(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

pub fn by_reason(entries: &[RejectEntry]) -> BTreeMap<RejectCode, u64> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.reason).or_insert(0) += 1;
    }
    counts
}
