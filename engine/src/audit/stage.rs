//! Auditing one stage folder: recount its shards (in parallel, merged in file order so the result
//! does not depend on scheduling), read its rejects, cross-check the manifest, and lay the figures
//! out per category, per source and per shard.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::crosscheck::{self, StageRecount, ratio};
use super::layout::StageDir;
use super::recount::{ShardRecount, recount_shard};
use super::stats::Distribution;
use super::{MixLine, PackStats, Problem, ShardLine, Shares, SourceLine, StageAudit, StageTotals};
use crate::build::RejectEntry;

/// Recounts `stage` and checks it against its manifest and, when given, the expected fingerprint.
pub fn audit_stage(
    stage: &StageDir,
    expected_fingerprint: Option<&str>,
) -> (StageAudit, Vec<Problem>) {
    let shards: Vec<ShardRecount> = stage.shards.par_iter().map(|p| recount_shard(p)).collect();
    let mut problems = Vec::new();
    for shard in &shards {
        if let Some(error) = &shard.error {
            problems.push(Problem::ShardUnreadable {
                file: shard.path.clone(),
                error: error.clone(),
            });
        }
    }
    let rejects_path = stage.rejects_path();
    let rejects = if rejects_path.exists() {
        read_rejects(&rejects_path).unwrap_or_else(|problem| {
            problems.push(problem);
            Vec::new()
        })
    } else {
        Vec::new()
    };

    let manifest = stage.manifest.as_ref().ok();
    let first_meta = shards.iter().find_map(|s| s.meta.as_ref());
    let mut recount = StageRecount {
        seq_len: manifest
            .map(|m| m.seq_len)
            .or(first_meta.map(|m| m.seq_len))
            .unwrap_or(0),
        rejects: by_reason(&rejects),
        complete: shards.iter().all(|s| s.error.is_none()),
        ..StageRecount::default()
    };
    let mut source_category = BTreeMap::new();
    let mut draws: BTreeMap<String, u64> = BTreeMap::new();
    let (mut lengths, mut per_pack, mut tokens_per_pack, mut image_tokens_per_pack) = (
        Distribution::default(),
        Distribution::default(),
        Distribution::default(),
        Distribution::default(),
    );
    for shard in &shards {
        recount.rows += shard.rows;
        recount.totals += &shard.totals;
        for (name, counts) in &shard.by_category {
            *recount.by_category.entry(name.clone()).or_default() += counts;
        }
        for (name, counts) in &shard.by_source {
            *recount.by_source.entry(name.clone()).or_default() += counts;
        }
        for (source, category) in &shard.source_category {
            source_category
                .entry(source.clone())
                .or_insert_with(|| category.clone());
        }
        for (source, n) in &shard.draws {
            *draws.entry(source.clone()).or_insert(0) += n;
        }
        lengths.merge(&shard.sample_lengths);
        per_pack.merge(&shard.samples_per_pack);
        tokens_per_pack.merge(&shard.tokens_per_pack);
        image_tokens_per_pack.merge(&shard.image_tokens_per_pack);
    }

    match &stage.manifest {
        Ok(manifest) => problems.extend(crosscheck::compare(stage, manifest, &shards, &recount)),
        Err(None) => problems.push(Problem::ManifestMissing {
            manifest: stage.manifest_path(),
        }),
        Err(Some(error)) => problems.push(Problem::ManifestUnreadable {
            manifest: stage.manifest_path(),
            error: error.clone(),
        }),
    }
    let fingerprint = first_meta
        .map(|m| m.recipe_fingerprint.clone())
        .or(manifest.map(|m| m.recipe_fingerprint.clone()));
    if let (Some(expected), Some(found)) = (expected_fingerprint, &fingerprint) {
        if found != expected {
            // Once per stage, on the file that says it: a stage has one fingerprint (the
            // cross-check reports any shard that differs from its manifest).
            let file = shards
                .iter()
                .find(|s| s.meta.is_some())
                .map_or_else(|| stage.manifest_path(), |s| s.path.clone());
            problems.push(Problem::FingerprintMismatch {
                file,
                found: found.clone(),
                expected: expected.to_string(),
            });
        }
    }

    let mut rejected_by_source: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &rejects {
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
                category: source_category.get(name).cloned().unwrap_or_default(),
                counts,
                share: Shares::of(&counts, &recount.totals),
                target_share: None,
                deviation_pp: None,
                draws: draws.get(name).copied().unwrap_or(0) + rejected,
                rejected,
                available: None,
                passes: None,
                planned_passes: None,
            }
        })
        .collect();
    let seq_len = u64::from(recount.seq_len);
    let shard_lines = shards
        .iter()
        .map(|s| ShardLine {
            file: s.file.clone(),
            rows: s.rows,
            row_groups: s.row_groups,
            bytes: s.bytes,
            samples: s.totals.samples,
            tokens: s.totals.tokens,
            image_tokens: s.totals.image_tokens,
            padded_capacity: s.rows * seq_len,
            efficiency: ratio(s.totals.tokens, s.rows * seq_len),
        })
        .collect();
    let t = &recount.totals;
    let audit = StageAudit {
        name: stage.name.clone(),
        dir: stage.path.clone(),
        seq_len: recount.seq_len,
        fingerprint,
        basis: None,
        budget: None,
        totals: StageTotals {
            rows: recount.rows,
            samples: t.samples,
            tokens: t.tokens,
            loss_tokens: t.loss_tokens,
            image_tokens: t.image_tokens,
            images: t.images,
            padded_capacity: recount.rows * seq_len,
            efficiency: ratio(t.tokens, recount.rows * seq_len),
        },
        categories,
        sources,
        rejects: recount.rejects.clone(),
        shards: shard_lines,
        packs: PackStats {
            samples_per_pack: per_pack.spread(),
            tokens_per_pack: tokens_per_pack.spread(),
            image_tokens_per_pack: image_tokens_per_pack.spread(),
            sample_length_histogram: lengths.histogram(1, seq_len),
            image_tokens_per_pack_histogram: image_tokens_per_pack
                .histogram(0, image_tokens_per_pack.spread().max),
        },
    };
    (audit, problems)
}

/// The entries of a `rejects.jsonl`; a line that is not one is a problem naming the line.
pub fn read_rejects(path: &Path) -> Result<Vec<RejectEntry>, Problem> {
    let unreadable = |error: String| Problem::RejectsUnreadable {
        file: path.to_path_buf(),
        error,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| unreadable(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

pub fn by_reason(entries: &[RejectEntry]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts.entry(e.reason.clone()).or_insert(0) += 1;
    }
    counts
}
