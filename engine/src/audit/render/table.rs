//! The terminal rendering of an audit: per stage a header, the category table (target, realized,
//! deviation, verdict), the source table (shares, draws, passes), packing figures, a text
//! histogram of sample lengths, rejects; then every problem and the verdict.
//!
//! Shares are shown on the stage's budget basis (tokens when no plan is given), the one the
//! recipe's mix is written in; the `--json` document has every basis.

use std::fmt::Write as _;

use super::super::{Audit, StageAudit};
use crate::plan::group;
use crate::recipe::Basis;

/// Widest bar of the text histogram, in characters.
const BAR_WIDTH: u64 = 40;
/// Shards whose efficiency the table lists one by one.
const SHARDS_LISTED: usize = 4;

pub fn render(audit: &Audit) -> String {
    let mut out = String::new();
    let against = match (&audit.recipe, &audit.expected_fingerprint) {
        (Some(name), Some(fp)) => format!(
            "against recipe {name} (fingerprint {}), tolerance {} pp",
            short(fp),
            audit.tolerance_pp
        ),
        _ => "no recipe given: figures only (pass --recipe or --lock to check the mix)".to_string(),
    };
    let _ = writeln!(out, "audit {}  {against}", audit.dir.display());
    for stage in &audit.stages {
        let _ = writeln!(out);
        render_stage(&mut out, stage);
    }
    if !audit.unreadable.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "records no stage could read: {}",
            reasons(&audit.unreadable)
        );
    }
    let _ = writeln!(out);
    if audit.problems.is_empty() {
        let _ = writeln!(out, "passed: no problems");
    } else {
        let _ = writeln!(out, "problems ({}):", audit.problems.len());
        for p in &audit.problems {
            let _ = writeln!(out, "  - {p}");
        }
        let _ = writeln!(
            out,
            "FAILED: {} problem{}",
            audit.problems.len(),
            if audit.problems.len() == 1 { "" } else { "s" }
        );
    }
    out
}

fn render_stage(out: &mut String, s: &StageAudit) {
    let basis = s.basis.unwrap_or(Basis::Tokens);
    let budget = s
        .budget
        .map(|b| format!("  budget {} {}", group(b), basis.noun()))
        .unwrap_or_default();
    let fp = s
        .fingerprint
        .as_deref()
        .map(|f| format!("  fingerprint {}", short(f)))
        .unwrap_or_default();
    let _ = writeln!(out, "stage {}  seq_len {}{budget}{fp}", s.name, s.seq_len);
    let t = &s.totals;
    let _ = writeln!(
        out,
        "  {} rows in {} shard{}: {} samples, {} tokens ({:.2}% packed), {} loss tokens, {} image tokens in {} images",
        group(t.rows),
        s.shards.len(),
        if s.shards.len() == 1 { "" } else { "s" },
        group(t.samples),
        group(t.tokens),
        100.0 * t.efficiency,
        group(t.loss_tokens),
        group(t.image_tokens),
        group(t.images)
    );
    let _ = writeln!(out, "  shares of {}", basis.noun());
    let _ = writeln!(
        out,
        "  {:<14} {:>8} {:>8} {:>8} {:<4} {:>9} {:>11} {:>11} {:>12} {:>7}",
        "category",
        "target",
        "realized",
        "dev pp",
        "",
        "samples",
        "tokens",
        "loss_tokens",
        "image_tokens",
        "images"
    );
    for c in &s.categories {
        let verdict = match c.within_tolerance {
            Some(true) => "ok",
            Some(false) => "FAIL",
            None => "",
        };
        let _ = writeln!(
            out,
            "  {:<14} {:>8} {:>7.2}% {:>8} {:<4} {:>9} {:>11} {:>11} {:>12} {:>7}",
            c.name,
            percent(c.target_share),
            100.0 * c.share.on(basis),
            c.deviation_pp
                .map(|d| format!("{d:+.2}"))
                .unwrap_or_else(|| "-".into()),
            verdict,
            group(c.counts.samples),
            group(c.counts.tokens),
            group(c.counts.loss_tokens),
            group(c.counts.image_tokens),
            group(c.counts.images)
        );
    }
    let _ = writeln!(
        out,
        "  {:<16} {:<12} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>9} {:>11}",
        "source",
        "category",
        "target",
        "realized",
        "dev pp",
        "draws",
        "passes",
        "planned",
        "samples",
        "tokens"
    );
    for src in &s.sources {
        let _ = writeln!(
            out,
            "  {:<16} {:<12} {:>8} {:>7.2}% {:>8} {:>7} {:>8} {:>8} {:>9} {:>11}",
            src.name,
            src.category,
            percent(src.target_share),
            100.0 * src.share.on(basis),
            src.deviation_pp
                .map(|d| format!("{d:+.2}"))
                .unwrap_or_else(|| "-".into()),
            group(src.draws),
            src.passes
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "-".into()),
            src.planned_passes
                .map(|p| format!("{p:.3}"))
                .unwrap_or_else(|| "-".into()),
            group(src.counts.samples),
            group(src.counts.tokens)
        );
    }
    let p = &s.packs;
    let _ = writeln!(
        out,
        "  per pack (min / mean / max): samples {} / {:.2} / {}, tokens {} / {:.1} / {}, image tokens {} / {:.1} / {}",
        p.samples_per_pack.min,
        p.samples_per_pack.mean,
        p.samples_per_pack.max,
        group(p.tokens_per_pack.min),
        p.tokens_per_pack.mean,
        group(p.tokens_per_pack.max),
        group(p.image_tokens_per_pack.min),
        p.image_tokens_per_pack.mean,
        group(p.image_tokens_per_pack.max)
    );
    // Every shard by name while that fits a line; past that, the spread and the worst shard. A
    // damaged shard has no efficiency to show (only part of it was read): it is named instead.
    let read: Vec<_> = s.shards.iter().filter(|sh| sh.complete).collect();
    let damaged: Vec<&str> = s
        .shards
        .iter()
        .filter(|sh| !sh.complete)
        .map(|sh| sh.file.as_str())
        .collect();
    if s.shards.len() <= SHARDS_LISTED {
        let shards: Vec<String> = s
            .shards
            .iter()
            .map(|sh| match sh.complete {
                true => format!("{} {:.2}%", sh.file, 100.0 * sh.efficiency),
                false => format!("{} damaged", sh.file),
            })
            .collect();
        let _ = writeln!(out, "  packing efficiency per shard: {}", shards.join(", "));
    } else if let Some(worst) = read
        .iter()
        .min_by(|a, b| a.efficiency.total_cmp(&b.efficiency))
    {
        let best = read.iter().map(|sh| sh.efficiency).fold(0.0, f64::max);
        let mean = read.iter().map(|sh| sh.efficiency).sum::<f64>() / read.len() as f64;
        let left_out = match damaged.len() {
            0 => String::new(),
            n => format!(
                "; {n} damaged shard{} left out",
                if n == 1 { "" } else { "s" }
            ),
        };
        let _ = writeln!(
            out,
            "  packing efficiency per shard: min {:.2}% ({}), mean {:.2}%, max {:.2}%{left_out} (--json or --html for each)",
            100.0 * worst.efficiency,
            worst.file,
            100.0 * mean,
            100.0 * best
        );
    }
    let _ = writeln!(out, "  sample length (tokens)  samples");
    let most = p
        .sample_length_histogram
        .bins
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(0)
        .max(1);
    for bin in &p.sample_length_histogram.bins {
        let bar = "#".repeat(usize::try_from(bin.count * BAR_WIDTH / most).unwrap_or(0));
        let _ = writeln!(
            out,
            "  {:>9}-{:<9} {:>9} {bar}",
            group(bin.from),
            group(bin.to),
            group(bin.count)
        );
    }
    if s.rejects.is_empty() {
        let _ = writeln!(out, "  rejects: none");
    } else {
        let _ = writeln!(out, "  rejects: {}", reasons(&s.rejects));
    }
}

fn reasons(map: &std::collections::BTreeMap<crate::reject::RejectCode, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {}", group(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percent(share: Option<f64>) -> String {
    share
        .map(|s| format!("{:.2}%", 100.0 * s))
        .unwrap_or_else(|| "-".into())
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}
