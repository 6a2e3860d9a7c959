//! The HTML report: one self-contained file (inline CSS and SVG, no script, no external resource
//! of any kind) that a reviewer opens in a browser or attaches to a pull request.
//!
//! Layout: the verdict and every problem first (what a CI gate reader needs), then per stage its
//! totals, target vs realized share per category, the per-source breakdown, the figures as tables,
//! packing efficiency per shard, and the histograms of sample length and image tokens per pack.
//! A category keeps its colour across all stages, so stages compare at a glance.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::super::{Audit, StageAudit};
use super::svg::{Column, HBar, columns, escape, hbars};
use crate::plan::group;
use crate::recipe::Basis;

/// Category colours (colour-blind-safe Tableau 10), assigned to category names in sorted order.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px auto;max-width:1000px;color:#1d2330;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;border-bottom:2px solid #d6d9de;padding-bottom:4px}
.sub{color:#5a6272;margin-top:0}.verdict{padding:10px 14px;border-radius:6px;font-weight:600;margin:16px 0}
.pass{background:#e3f4e6;color:#1e6b2f}.fail{background:#fbe4e4;color:#8f1d1d}.problems li{margin:4px 0;font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}th,td{padding:3px 9px;text-align:right;border-bottom:1px solid #e3e5e8}
th{background:#f3f4f6}td:first-child,th:first-child{text-align:left}.bad{color:#b42318;font-weight:600}.ok{color:#1e6b2f}
.chart{display:block;margin:14px 0;background:#fff;border:1px solid #e3e5e8;border-radius:4px}
.chart .title{font-size:14px;font-weight:600;fill:#1d2330}.chart .label{font-size:12px;fill:#1d2330}.chart .value{font-size:11px;fill:#1d2330}
.chart .small{font-size:10px;fill:#5a6272}.chart .axis{font-size:11px;fill:#5a6272}
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}.facts{color:#3a4150;font-size:14px}";

/// The whole report.
pub fn render(audit: &Audit) -> String {
    let categories: BTreeSet<&str> = audit
        .stages
        .iter()
        .flat_map(|s| s.categories.iter().map(|c| c.name.as_str()))
        .collect();
    let colour = |name: &str| {
        let i = categories.iter().position(|c| *c == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()].to_string()
    };
    let mut h = String::new();
    let title = format!("mixtape audit: {}", audit.dir.display());
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = write!(
        h,
        "<h1>mixtape audit</h1><p class=\"sub\">{}",
        escape(&audit.dir.display().to_string())
    );
    match (&audit.recipe, &audit.expected_fingerprint) {
        (Some(name), Some(fp)) => {
            let _ = write!(
                h,
                " &middot; against recipe <b>{}</b> (fingerprint <code>{}</code>) &middot; tolerance {} pp",
                escape(name),
                escape(fp.get(..12).unwrap_or(fp)),
                audit.tolerance_pp
            );
        }
        _ => h.push_str(" &middot; no recipe given: realized figures only"),
    }
    h.push_str("</p>\n");
    if audit.problems.is_empty() {
        let what = if audit.recipe.is_some() {
            format!(
                "every category within {} pp of the recipe, same fingerprint, manifests agree with the shards",
                audit.tolerance_pp
            )
        } else {
            "manifests agree with the shards".to_string()
        };
        let _ = writeln!(
            h,
            "<div class=\"verdict pass\">Passed: {}</div>",
            escape(&what)
        );
    } else {
        let n = audit.problems.len();
        let _ = write!(
            h,
            "<div class=\"verdict fail\">Failed: {n} problem{}</div><ul class=\"problems\">",
            if n == 1 { "" } else { "s" }
        );
        for p in &audit.problems {
            let _ = write!(h, "<li>{}</li>", escape(&p.to_string()));
        }
        h.push_str("</ul>\n");
    }
    for stage in &audit.stages {
        render_stage(&mut h, stage, &colour);
    }
    if !audit.unreadable.is_empty() {
        let list: Vec<String> = audit
            .unreadable
            .iter()
            .map(|(k, v)| format!("{} {}", escape(k.as_str()), group(*v)))
            .collect();
        let _ = writeln!(
            h,
            "<h2>Records no stage could read</h2><p class=\"facts\">{}</p>",
            list.join(", ")
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn render_stage(h: &mut String, s: &StageAudit, colour: &dyn Fn(&str) -> String) {
    let basis = s.basis.unwrap_or(Basis::Tokens);
    let t = &s.totals;
    let _ = write!(
        h,
        "<h2>Stage {}</h2>\n<p class=\"facts\">seq_len {}",
        escape(&s.name),
        s.seq_len
    );
    if let Some(budget) = s.budget {
        let _ = write!(h, " &middot; budget {} {}", group(budget), basis.noun());
    }
    let _ = writeln!(
        h,
        " &middot; {} shards, {} rows &middot; {} samples, {} tokens, {} loss tokens, {} image tokens in {} images &middot; packing efficiency {:.2}%</p>",
        s.shards.len(),
        group(t.rows),
        group(t.samples),
        group(t.tokens),
        group(t.loss_tokens),
        group(t.image_tokens),
        group(t.images),
        100.0 * t.efficiency
    );
    let rows: Vec<HBar> = s
        .categories
        .iter()
        .map(|c| {
            let realized = c.share.on(basis);
            let note = match (c.target_share, c.deviation_pp) {
                (Some(target), Some(dev)) => format!(
                    "{:.2}% vs {:.2}% ({dev:+.2} pp)",
                    100.0 * realized,
                    100.0 * target
                ),
                _ => format!("{:.2}%", 100.0 * realized),
            };
            HBar {
                label: c.name.clone(),
                colour: colour(&c.name),
                value: realized,
                target: c.target_share,
                note,
            }
        })
        .collect();
    let what = if s.basis.is_some() {
        "target vs realized share"
    } else {
        "realized share"
    };
    h.push_str(&hbars(
        &format!("Stage {}: {what} per category, on {}", s.name, basis.noun()),
        &format!("share of the stage's {}", basis.noun()),
        &rows,
    ));
    let rows: Vec<HBar> = s
        .sources
        .iter()
        .map(|src| HBar {
            label: src.name.clone(),
            colour: colour(&src.category),
            value: src.share.on(basis),
            target: None,
            note: format!("{:.2}% ({})", 100.0 * src.share.on(basis), src.category),
        })
        .collect();
    h.push_str(&hbars(
        &format!(
            "Stage {}: per-source share of {} (coloured by category)",
            s.name,
            basis.noun()
        ),
        &format!("share of the stage's {}", basis.noun()),
        &rows,
    ));
    category_table(h, s, basis, colour);
    source_table(h, s, basis);
    let cols: Vec<Column> = s
        .shards
        .iter()
        .map(|sh| Column {
            label: sh
                .file
                .trim_start_matches("shard-")
                .trim_end_matches(".parquet")
                .to_string(),
            value: if sh.complete { sh.efficiency } else { 0.0 },
            note: if sh.complete {
                format!("{:.1}%", 100.0 * sh.efficiency)
            } else {
                "damaged".to_string()
            },
        })
        .collect();
    h.push_str(&columns(
        &format!(
            "Stage {}: packing efficiency per shard (non-pad fraction of rows x seq_len)",
            s.name
        ),
        "shard index",
        "efficiency",
        &cols,
        Some(1.0),
        true,
    ));
    let p = &s.packs;
    let _ = writeln!(
        h,
        "<p class=\"facts\">Per pack (min / mean / max): samples {} / {:.2} / {} &middot; tokens {} / {:.1} / {} &middot; image tokens {} / {:.1} / {}</p>",
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
    let bins = |hist: &super::super::stats::Histogram| -> Vec<Column> {
        hist.bins
            .iter()
            .map(|b| Column {
                label: format!("{}-{}", b.from, b.to),
                value: b.count as f64,
                note: group(b.count),
            })
            .collect()
    };
    h.push_str(&columns(
        &format!("Stage {}: sequence length of packed samples", s.name),
        "tokens per sample",
        "samples",
        &bins(&p.sample_length_histogram),
        None,
        false,
    ));
    h.push_str(&columns(
        &format!(
            "Stage {}: image tokens per pack (vision load balance)",
            s.name
        ),
        "image tokens in the pack",
        "packs",
        &bins(&p.image_tokens_per_pack_histogram),
        None,
        false,
    ));
    let rejects = if s.rejects.is_empty() {
        "none".to_string()
    } else {
        s.rejects
            .iter()
            .map(|(k, v)| format!("{} {}", escape(k.as_str()), group(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        h,
        "<p class=\"facts\">Rejected drawn records: {rejects}</p>"
    );
}

fn category_table(h: &mut String, s: &StageAudit, basis: Basis, colour: &dyn Fn(&str) -> String) {
    h.push_str("<table><tr><th>category</th><th>target</th><th>realized</th><th>deviation</th><th>samples</th><th>tokens</th><th>loss tokens</th><th>image tokens</th><th>images</th></tr>");
    for c in &s.categories {
        let (dev, class) = match (c.deviation_pp, c.within_tolerance) {
            (Some(d), Some(ok)) => (format!("{d:+.2} pp"), if ok { "ok" } else { "bad" }),
            _ => ("-".to_string(), ""),
        };
        let _ = write!(
            h,
            "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td>{}</td><td>{:.2}%</td><td class=\"{class}\">{dev}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            colour(&c.name),
            escape(&c.name),
            c.target_share
                .map(|t| format!("{:.2}%", 100.0 * t))
                .unwrap_or_else(|| "-".into()),
            100.0 * c.share.on(basis),
            group(c.counts.samples),
            group(c.counts.tokens),
            group(c.counts.loss_tokens),
            group(c.counts.image_tokens),
            group(c.counts.images)
        );
    }
    h.push_str("</table>\n");
}

fn source_table(h: &mut String, s: &StageAudit, basis: Basis) {
    h.push_str("<table><tr><th>source</th><th>category</th><th>target</th><th>realized</th><th>draws</th><th>rejected</th><th>passes</th><th>planned passes</th><th>samples</th><th>tokens</th><th>images</th></tr>");
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    for src in &s.sources {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&src.name),
            escape(&src.category),
            opt(src.target_share, &|t| format!("{:.2}%", 100.0 * t)),
            100.0 * src.share.on(basis),
            group(src.draws),
            group(src.rejected),
            opt(src.passes, &|p| format!("{p:.3}")),
            opt(src.planned_passes, &|p| format!("{p:.3}")),
            group(src.counts.samples),
            group(src.counts.tokens),
            group(src.counts.images)
        );
    }
    h.push_str("</table>\n");
}
