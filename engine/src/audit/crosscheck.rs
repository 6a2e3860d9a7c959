//! Comparing a stage's `manifest.json` with what its shards hold.
//!
//! The manifest is what trainers and tools trust instead of opening shards, so every figure it
//! states is checked against the recount: the shard list, each shard's size, blake3, rows, row
//! groups, counts (totals, per category, per source), padded capacity and efficiency, each
//! shard's footer (stage, `seq_len`, index, fingerprint), and the stage's totals and rejects by
//! reason (against `rejects.jsonl`). Each disagreement is one [`Problem`] naming the manifest and
//! the field, with both values.
//!
//! Stage totals are compared only when every shard was read whole: a partial recount would
//! otherwise bury the one real finding (the unreadable shard) under derived mismatches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::Path;

use mixtape_shards::{Counts, Manifest};

use super::Problem;
use super::layout::StageDir;
use super::recount::ShardRecount;

/// A stage's recount, merged over its shards.
#[derive(Debug, Default)]
pub struct StageRecount {
    pub rows: u64,
    pub seq_len: u32,
    pub totals: Counts,
    pub by_category: BTreeMap<String, Counts>,
    pub by_source: BTreeMap<String, Counts>,
    pub rejects: BTreeMap<String, u64>,
    pub complete: bool,
}

/// `numerator / denominator` rounded to 6 decimals as the manifest stores it (0 when empty).
pub fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    (numerator as f64 / denominator as f64 * 1e6).round() / 1e6
}

struct Checker<'a> {
    manifest: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn field<T: PartialEq + Display>(
        &mut self,
        field: impl Into<String>,
        manifest: T,
        recounted: T,
    ) {
        if manifest != recounted {
            self.problems.push(Problem::ManifestMismatch {
                manifest: self.manifest.to_path_buf(),
                field: field.into(),
                manifest_value: manifest.to_string(),
                recounted: recounted.to_string(),
            });
        }
    }

    fn ratio(&mut self, field: &str, manifest: f64, recounted: f64) {
        if (manifest - recounted).abs() > 1e-9 {
            self.field(field, manifest, recounted);
        }
    }

    fn counts(&mut self, prefix: &str, manifest: &Counts, recounted: &Counts) {
        self.field(
            format!("{prefix}.samples"),
            manifest.samples,
            recounted.samples,
        );
        self.field(
            format!("{prefix}.tokens"),
            manifest.tokens,
            recounted.tokens,
        );
        self.field(
            format!("{prefix}.loss_tokens"),
            manifest.loss_tokens,
            recounted.loss_tokens,
        );
        self.field(
            format!("{prefix}.image_tokens"),
            manifest.image_tokens,
            recounted.image_tokens,
        );
        self.field(
            format!("{prefix}.images"),
            manifest.images,
            recounted.images,
        );
    }

    fn count_maps(
        &mut self,
        prefix: &str,
        manifest: &BTreeMap<String, Counts>,
        recounted: &BTreeMap<String, Counts>,
    ) {
        let names: BTreeSet<&String> = manifest.keys().chain(recounted.keys()).collect();
        let zero = Counts::default();
        for name in names {
            let m = manifest.get(name).unwrap_or(&zero);
            let r = recounted.get(name).unwrap_or(&zero);
            self.counts(&format!("{prefix}.{name}"), m, r);
        }
    }
}

/// Every disagreement between `manifest` and the recounts of `stage`'s shards.
pub fn compare(
    stage: &StageDir,
    manifest: &Manifest,
    shards: &[ShardRecount],
    recount: &StageRecount,
) -> Vec<Problem> {
    let manifest_path = stage.manifest_path();
    let mut check = Checker {
        manifest: &manifest_path,
        problems: Vec::new(),
    };
    for listed in &manifest.shards {
        let Some(shard) = shards.iter().find(|s| s.file == listed.file) else {
            check.problems.push(Problem::ShardMissing {
                file: stage.path.join(&listed.file),
            });
            continue;
        };
        if let Some(meta) = &shard.meta {
            let mut footer = |key: &str, found: String, expected: String| {
                if found != expected {
                    check.problems.push(Problem::ShardMetaMismatch {
                        file: shard.path.clone(),
                        key: key.to_string(),
                        found,
                        expected: format!("{expected} (as {})", manifest_path.display()),
                    });
                }
            };
            footer("mixtape.stage", meta.stage.clone(), manifest.stage.clone());
            footer(
                "mixtape.seq_len",
                meta.seq_len.to_string(),
                manifest.seq_len.to_string(),
            );
            footer(
                "mixtape.shard_index",
                meta.shard_index.to_string(),
                listed.index.to_string(),
            );
            footer(
                "mixtape.recipe_fingerprint",
                meta.recipe_fingerprint.clone(),
                manifest.recipe_fingerprint.clone(),
            );
        }
        // Size and hash are known even for a shard that does not decode.
        let at = format!("shards[{}]", listed.file);
        check.field(format!("{at}.bytes"), listed.bytes, shard.bytes);
        check.field(
            format!("{at}.blake3"),
            listed.blake3.clone(),
            shard.blake3.clone(),
        );
        if shard.error.is_some() {
            continue;
        }
        check.field(format!("{at}.rows"), listed.rows, shard.rows);
        check.field(
            format!("{at}.row_groups"),
            listed.row_groups,
            shard.row_groups,
        );
        check.counts(&format!("{at}.totals"), &listed.totals, &shard.totals);
        let capacity = shard.rows * u64::from(manifest.seq_len);
        check.field(
            format!("{at}.padded_capacity"),
            listed.padded_capacity,
            capacity,
        );
        check.ratio(
            &format!("{at}.efficiency"),
            listed.efficiency,
            ratio(shard.totals.tokens, capacity),
        );
        check.count_maps(
            &format!("{at}.by_category"),
            &listed.by_category,
            &shard.by_category,
        );
        check.count_maps(
            &format!("{at}.by_source"),
            &listed.by_source,
            &shard.by_source,
        );
    }
    for shard in shards {
        if !manifest
            .shards
            .iter()
            .any(|listed| listed.file == shard.file)
        {
            check.problems.push(Problem::ShardUnlisted {
                file: shard.path.clone(),
            });
        }
    }
    check.field("seq_len", manifest.seq_len, recount.seq_len);
    let rejected: u64 = recount.rejects.values().sum();
    check.field("totals.rejected", manifest.totals.rejected, rejected);
    let reasons: BTreeSet<&String> = manifest
        .rejects
        .keys()
        .chain(recount.rejects.keys())
        .collect();
    for reason in reasons {
        let m = manifest.rejects.get(reason).copied().unwrap_or(0);
        let r = recount.rejects.get(reason).copied().unwrap_or(0);
        check.field(format!("rejects.{reason}"), m, r);
    }
    if recount.complete {
        let t = &manifest.totals;
        check.field("totals.rows", t.rows, recount.rows);
        let totals = Counts {
            samples: t.samples,
            tokens: t.tokens,
            loss_tokens: t.loss_tokens,
            image_tokens: t.image_tokens,
            images: t.images,
        };
        check.counts("totals", &totals, &recount.totals);
        let capacity = recount.rows * u64::from(recount.seq_len);
        check.field("totals.padded_capacity", t.padded_capacity, capacity);
        check.ratio(
            "totals.efficiency",
            t.efficiency,
            ratio(recount.totals.tokens, capacity),
        );
        check.count_maps("by_category", &manifest.by_category, &recount.by_category);
        check.count_maps("by_source", &manifest.by_source, &recount.by_source);
    }
    check.problems
}
