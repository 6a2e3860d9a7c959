//! What changed between two plans, and what the change does to the data.
//!
//! Diffs compare resolved plans, not YAML text: a ratio moved in a base recipe or a parent stage shows
//! in every stage it reaches (and is labelled as inherited when the parent changed the same way), and
//! reformatting or reordering a recipe shows nothing. Every stage change comes with its effect on the
//! expected amounts per category, which is what a reviewer actually needs to judge it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::plan::{Counts, Plan, StagePlan, group};

/// One changed setting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Dotted path, e.g. `image.max_pixels`.
    pub field: String,
    pub before: Value,
    pub after: Value,
    /// Name of the parent stage that made the same change, when the change is inherited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherited_from: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SourceChange {
    Added {
        name: String,
        category: String,
    },
    Removed {
        name: String,
        category: String,
    },
    Changed {
        name: String,
        changes: Vec<Change>,
        files_changed: Vec<String>,
    },
}

/// A category's share and expected amounts before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryDelta {
    pub category: String,
    pub share_before: f64,
    pub share_after: f64,
    pub expected_before: Counts,
    pub expected_after: Counts,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StageDiff {
    Added {
        name: String,
        expected: Counts,
    },
    Removed {
        name: String,
        expected: Counts,
    },
    Changed {
        name: String,
        changes: Vec<Change>,
        categories: Vec<CategoryDelta>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanDiff {
    pub identical: bool,
    pub fingerprint_before: String,
    pub fingerprint_after: String,
    pub recipe: Vec<Change>,
    pub sources: Vec<SourceChange>,
    pub stage_order_changed: bool,
    pub stages: Vec<StageDiff>,
}

/// Compares two plans.
pub fn diff(a: &Plan, b: &Plan) -> PlanDiff {
    let mut recipe = Vec::new();
    push_change(
        &mut recipe,
        "seed",
        Value::from(a.seed),
        Value::from(b.seed),
    );
    push_change(
        &mut recipe,
        "tokenizer",
        Value::from(a.tokenizer.blake3.clone()),
        Value::from(b.tokenizer.blake3.clone()),
    );

    let mut sources = Vec::new();
    let before: BTreeMap<_, _> = a.sources.iter().map(|s| (s.name.as_str(), s)).collect();
    let after: BTreeMap<_, _> = b.sources.iter().map(|s| (s.name.as_str(), s)).collect();
    for (name, s) in &before {
        match after.get(name) {
            None => sources.push(SourceChange::Removed {
                name: name.to_string(),
                category: s.category.clone(),
            }),
            Some(t) => {
                let mut changes = Vec::new();
                flatten_changes(&mut changes, "", &s.settings, &t.settings);
                let files_before: BTreeMap<_, _> = s
                    .files
                    .iter()
                    .map(|f| (f.path.as_str(), f.blake3.as_str()))
                    .collect();
                let files_after: BTreeMap<_, _> = t
                    .files
                    .iter()
                    .map(|f| (f.path.as_str(), f.blake3.as_str()))
                    .collect();
                let mut files_changed = Vec::new();
                for (path, hash) in &files_before {
                    match files_after.get(path) {
                        None => files_changed.push(format!("-{path}")),
                        Some(h) if h != hash => files_changed.push(format!("~{path}")),
                        _ => {}
                    }
                }
                files_changed.extend(
                    files_after
                        .keys()
                        .filter(|p| !files_before.contains_key(*p))
                        .map(|p| format!("+{p}")),
                );
                if !changes.is_empty() || !files_changed.is_empty() {
                    sources.push(SourceChange::Changed {
                        name: name.to_string(),
                        changes,
                        files_changed,
                    });
                }
            }
        }
    }
    for (name, t) in &after {
        if !before.contains_key(name) {
            sources.push(SourceChange::Added {
                name: name.to_string(),
                category: t.category.clone(),
            });
        }
    }

    let names_a: Vec<&str> = a.stages.iter().map(|s| s.name.as_str()).collect();
    let names_b: Vec<&str> = b.stages.iter().map(|s| s.name.as_str()).collect();
    let common_a: Vec<&str> = names_a
        .iter()
        .copied()
        .filter(|n| names_b.contains(n))
        .collect();
    let common_b: Vec<&str> = names_b
        .iter()
        .copied()
        .filter(|n| names_a.contains(n))
        .collect();
    let stage_order_changed = common_a != common_b;

    let mut stages = Vec::new();
    for s in &a.stages {
        if !names_b.contains(&s.name.as_str()) {
            stages.push(StageDiff::Removed {
                name: s.name.clone(),
                expected: s.expected,
            });
        }
    }
    let mut changed_by_stage: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for t in &b.stages {
        let Some(s) = a.stages.iter().find(|s| s.name == t.name) else {
            stages.push(StageDiff::Added {
                name: t.name.clone(),
                expected: t.expected,
            });
            continue;
        };
        let mut changes = stage_changes(s, t);
        // A change the parent stage made too is inherited: say so.
        if let Some(parent) = &t.extends
            && let Some(parent_changes) = changed_by_stage.get(parent)
        {
            for c in &mut changes {
                if parent_changes
                    .iter()
                    .any(|p| p.field == c.field && p.before == c.before && p.after == c.after)
                {
                    c.inherited_from = Some(parent.clone());
                }
            }
        }
        let categories = category_deltas(s, t);
        changed_by_stage.insert(t.name.clone(), changes.clone());
        if !changes.is_empty()
            || categories
                .iter()
                .any(|c| c.expected_before != c.expected_after || c.share_before != c.share_after)
        {
            stages.push(StageDiff::Changed {
                name: t.name.clone(),
                changes,
                categories,
            });
        }
    }
    PlanDiff {
        identical: a.fingerprint == b.fingerprint,
        fingerprint_before: a.fingerprint.clone(),
        fingerprint_after: b.fingerprint.clone(),
        recipe,
        sources,
        stage_order_changed,
        stages,
    }
}

fn push_change(out: &mut Vec<Change>, field: &str, before: Value, after: Value) {
    if before != after {
        out.push(Change {
            field: field.to_string(),
            before,
            after,
            inherited_from: None,
        });
    }
}

/// Leaf-by-leaf changes between two JSON values, with dotted paths.
fn flatten_changes(out: &mut Vec<Change>, prefix: &str, a: &Value, b: &Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_changes(
                    out,
                    &path,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
            }
        }
        _ => push_change(out, prefix, a.clone(), b.clone()),
    }
}

fn stage_changes(s: &StagePlan, t: &StagePlan) -> Vec<Change> {
    let mut out = Vec::new();
    push_change(
        &mut out,
        "extends",
        Value::from(s.extends.clone()),
        Value::from(t.extends.clone()),
    );
    push_change(
        &mut out,
        "seq_len",
        Value::from(s.seq_len),
        Value::from(t.seq_len),
    );
    push_change(&mut out, "budget", budget_value(s), budget_value(t));
    push_change(
        &mut out,
        "max_repeat",
        Value::from(s.max_repeat),
        Value::from(t.max_repeat),
    );
    flatten_changes(&mut out, "image", &s.image, &t.image);
    flatten_changes(&mut out, "train", &s.train, &t.train);
    flatten_changes(&mut out, "pack", &s.pack, &t.pack);
    let shares = |p: &StagePlan| -> Value {
        Value::Object(
            p.categories
                .iter()
                .map(|c| (c.name.clone(), Value::from(c.target_share)))
                .collect(),
        )
    };
    flatten_changes(&mut out, "mix", &shares(s), &shares(t));
    out
}

fn budget_value(s: &StagePlan) -> Value {
    Value::from(format!("{} {}", group(s.budget), s.basis.noun()))
}

fn category_deltas(s: &StagePlan, t: &StagePlan) -> Vec<CategoryDelta> {
    let mut names: Vec<&str> = s
        .categories
        .iter()
        .chain(&t.categories)
        .map(|c| c.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let a = s.categories.iter().find(|c| c.name == name);
            let b = t.categories.iter().find(|c| c.name == name);
            CategoryDelta {
                category: name.to_string(),
                share_before: a.map_or(0.0, |c| c.target_share),
                share_after: b.map_or(0.0, |c| c.target_share),
                expected_before: a.map(|c| c.expected).unwrap_or_default(),
                expected_after: b.map(|c| c.expected).unwrap_or_default(),
            }
        })
        .collect()
}

impl PlanDiff {
    /// A review-friendly text rendering.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.identical {
            let _ = writeln!(
                out,
                "identical: both resolve to fingerprint {}",
                short(&self.fingerprint_after)
            );
            return out;
        }
        let _ = writeln!(
            out,
            "fingerprint {} -> {}",
            short(&self.fingerprint_before),
            short(&self.fingerprint_after)
        );
        for c in &self.recipe {
            let _ = writeln!(out, "  {}", render_change(c));
        }
        if !self.sources.is_empty() {
            let _ = writeln!(out, "sources:");
            for s in &self.sources {
                match s {
                    SourceChange::Added { name, category } => {
                        let _ = writeln!(out, "  + {name} (category {category})");
                    }
                    SourceChange::Removed { name, category } => {
                        let _ = writeln!(out, "  - {name} (category {category})");
                    }
                    SourceChange::Changed {
                        name,
                        changes,
                        files_changed,
                    } => {
                        let _ = writeln!(out, "  ~ {name}");
                        for c in changes {
                            let _ = writeln!(out, "      {}", render_change(c));
                        }
                        for f in files_changed {
                            let (mark, path) = f.split_at(1);
                            let what = match mark {
                                "+" => "file added",
                                "-" => "file removed",
                                _ => "file content changed",
                            };
                            let _ = writeln!(out, "      {what}: {path}");
                        }
                    }
                }
            }
        }
        if self.stage_order_changed {
            let _ = writeln!(out, "stage order changed");
        }
        for s in &self.stages {
            match s {
                StageDiff::Added { name, expected } => {
                    let _ = writeln!(
                        out,
                        "stage {name}: added ({} tokens, {} samples)",
                        group(expected.tokens),
                        group(expected.samples)
                    );
                }
                StageDiff::Removed { name, expected } => {
                    let _ = writeln!(
                        out,
                        "stage {name}: removed ({} tokens, {} samples)",
                        group(expected.tokens),
                        group(expected.samples)
                    );
                }
                StageDiff::Changed {
                    name,
                    changes,
                    categories,
                } => {
                    let _ = writeln!(out, "stage {name}:");
                    for c in changes {
                        let _ = writeln!(out, "  {}", render_change(c));
                    }
                    let _ = writeln!(out, "  expected tokens by category:");
                    for d in categories {
                        let (b, a) = (
                            d.expected_before.tokens as i128,
                            d.expected_after.tokens as i128,
                        );
                        let _ = writeln!(
                            out,
                            "    {:<14} share {:.3} -> {:.3}   tokens {:>12} -> {:>12} ({:+})",
                            d.category,
                            d.share_before,
                            d.share_after,
                            group(b as u64),
                            group(a as u64),
                            a - b
                        );
                    }
                }
            }
        }
        out
    }
}

fn render_change(c: &Change) -> String {
    let inherited = c
        .inherited_from
        .as_ref()
        .map(|p| format!("  (inherited from stage `{p}`)"))
        .unwrap_or_default();
    format!(
        "{}: {} -> {}{inherited}",
        c.field,
        show(&c.before),
        show(&c.after)
    )
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}
