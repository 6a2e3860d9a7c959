//! The `stages` section: stage `extends` (deep merge of a parent stage, with `budget` and `mix`
//! replaced whole), then each stage's own keys, handing `budget`/`mix`, `image`, `train` and `pack`
//! to their modules.

use std::collections::BTreeSet;

use super::MAX_EXTENDS_DEPTH;
use super::image::image_policy;
use super::mix::{budget, mix};
use super::pack::pack_policy;
use super::train::train_hints;
use crate::diag::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::recipe::names;
use crate::yaml::{self, Node, Value};

const STAGE_KEYS: &[&str] = &[
    "name",
    "extends",
    "seq_len",
    "budget",
    "mix",
    "max_repeat",
    "image",
    "train",
    "pack",
];

/// Stage settings a child stage replaces whole instead of merging into its parent's.
const REPLACED_ON_INHERIT: &[&str] = &["budget", "mix"];

/// Applies stage inheritance, then types every stage.
pub(super) fn resolve_stages(
    node: &Node,
    image_base: Option<&Node>,
    categories: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Vec<Stage> {
    let Value::Seq(items) = &node.value else {
        diags.push(Diagnostic::error(
            node.span,
            format!("`stages` must be a list, found {}", node.type_name()),
        ));
        return Vec::new();
    };
    if items.is_empty() {
        diags.push(
            Diagnostic::error(node.span, "`stages` is empty")
                .with_hint("define at least one stage"),
        );
    }
    // Names first, so `extends` can refer to any stage.
    let mut names: Vec<Option<String>> = Vec::new();
    for item in items {
        let name = match item.get("name") {
            Some(n) => fields::string(n, "stage `name`", diags),
            None => {
                if item.entries().is_some() {
                    diags.push(
                        Diagnostic::error(item.span, "stage needs a `name`")
                            .with_hint("e.g. `- name: warmup`"),
                    );
                }
                None
            }
        };
        if let Some(n) = &name {
            let span = item.get("name").map_or(item.span, |n| n.span);
            names::check(n, "stage", span, diags);
            if let Some(m) = names.iter().flatten().find(|m| m.eq_ignore_ascii_case(n)) {
                // Folders named `SFT` and `sft` are one folder on case-insensitive file systems.
                let hint = if m == n {
                    "stage names must be unique".to_string()
                } else {
                    format!("`{m}` differs only in case; stage names must be unique ignoring case")
                };
                diags.push(
                    Diagnostic::error(span, format!("duplicate stage name `{n}`")).with_hint(hint),
                );
            }
        }
        names.push(name);
    }
    let mut merged: Vec<Option<(Node, usize)>> = vec![None; items.len()];
    let mut stages = Vec::new();
    for i in 0..items.len() {
        if items[i].entries().is_none() {
            diags.push(Diagnostic::error(
                items[i].span,
                format!("a stage must be a map, found {}", items[i].type_name()),
            ));
            continue;
        }
        let Some((tree, _)) = stage_tree(i, items, &names, &mut merged, &mut Vec::new(), diags)
        else {
            continue;
        };
        if let Some(stage) = resolve_stage(&tree, &items[i], image_base, categories, diags) {
            stages.push(stage);
        }
    }
    stages
}

/// The stage's tree after applying its `extends` chain, and the chain's length (memoised in `merged`).
fn stage_tree(
    i: usize,
    items: &[Node],
    names: &[Option<String>],
    merged: &mut Vec<Option<(Node, usize)>>,
    visiting: &mut Vec<usize>,
    diags: &mut Diagnostics,
) -> Option<(Node, usize)> {
    if let Some(done) = &merged[i] {
        return Some(done.clone());
    }
    let item = &items[i];
    let Some(extends) = item.get("extends") else {
        merged[i] = Some((item.clone(), 0));
        return merged[i].clone();
    };
    let parent_name = fields::string(extends, "stage `extends`", diags)?;
    let Some(parent) = names
        .iter()
        .position(|n| n.as_deref() == Some(parent_name.as_str()))
    else {
        let hint = did_you_mean(&parent_name, names.iter().flatten().map(String::as_str))
            .unwrap_or_else(|| "`extends` names another stage of this recipe".to_string());
        diags.push(
            Diagnostic::error(
                extends.span,
                format!("stage extends unknown stage `{parent_name}`"),
            )
            .with_hint(hint),
        );
        return None;
    };
    if parent == i || visiting.contains(&parent) {
        let mut cycle: Vec<String> = visiting
            .iter()
            .map(|&j| names[j].clone().unwrap_or_default())
            .collect();
        cycle.push(names[i].clone().unwrap_or_default());
        cycle.push(parent_name.clone());
        diags.push(
            Diagnostic::error(
                extends.span,
                format!("stage `extends` forms a cycle: {}", cycle.join(" -> ")),
            )
            .with_hint("a stage cannot inherit from itself, directly or through others"),
        );
        return None;
    }
    if visiting.len() >= MAX_EXTENDS_DEPTH {
        // Bounded like file `extends`: each level is a recursive call and a copy of the stage tree.
        diags.push(too_deep(extends.span));
        return None;
    }
    visiting.push(i);
    let base = stage_tree(parent, items, names, merged, visiting, diags);
    visiting.pop();
    let (base, depth) = base?;
    // Counted through memoised parents too, so the limit does not depend on the order of stages.
    if depth + 1 > MAX_EXTENDS_DEPTH {
        diags.push(too_deep(extends.span));
        return None;
    }
    // A child's `budget` and `mix` replace the parent's whole: merging them key by key would leave the
    // parent's basis or categories behind (two budget bases, shares summing past 1).
    let base = base.without(&["name", "extends"]);
    let base = base.without(
        &REPLACED_ON_INHERIT
            .iter()
            .copied()
            .filter(|k| item.get(k).is_some())
            .collect::<Vec<_>>(),
    );
    let tree = yaml::merge(&base, item);
    merged[i] = Some((tree, depth + 1));
    merged[i].clone()
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error(
        span,
        format!("stage `extends` chain longer than {MAX_EXTENDS_DEPTH} stages"),
    )
    .with_hint("extend a common base stage instead of chaining every stage to the previous one")
}

fn resolve_stage(
    tree: &Node,
    own: &Node,
    image_base: Option<&Node>,
    categories: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Stage> {
    let entries = fields::map(tree, "a stage", STAGE_KEYS, diags)?;
    let get = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);
    let name_node = get("name")?;
    let name = fields::string(name_node, "stage `name`", diags)?;
    let what = format!("stage `{name}`");
    let parent = own.get("extends").and_then(|e| match &e.value {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    });

    let seq_len = match get("seq_len") {
        // The bound fits u32.
        Some(n) => fields::integer_in(
            n,
            "`seq_len`",
            bounds::MIN_SEQ_LEN,
            bounds::MAX_SEQ_LEN,
            diags,
        )
        .map(|v| v as u32),
        None => {
            diags.push(
                Diagnostic::error(tree.span, format!("{what} needs a `seq_len`"))
                    .with_hint("e.g. `seq_len: 4096`"),
            );
            None
        }
    };
    let budget = match get("budget") {
        Some(b) => budget(b, diags).map(|budget| (budget, b.span)),
        None => {
            diags.push(
                Diagnostic::error(tree.span, format!("{what} needs a `budget`"))
                    .with_hint("e.g. `budget: {tokens: 2000000}`"),
            );
            None
        }
    };
    let mix = match get("mix") {
        Some(m) => mix(m, categories, diags),
        None => {
            diags.push(
                Diagnostic::error(tree.span, format!("{what} needs a `mix`"))
                    .with_hint("e.g. `mix: {caption: 0.7, ocr: 0.3}`"),
            );
            None
        }
    };
    let max_repeat = match get("max_repeat") {
        Some(n) => {
            fields::integer_in(n, "`max_repeat`", 1, bounds::MAX_REPEAT, diags).map(|v| v as u32)
        }
        None => Some(1),
    };
    let image_tree = match (image_base, get("image")) {
        (Some(base), Some(over)) => Some(yaml::merge(base, over)),
        (Some(base), None) => Some(base.clone()),
        (None, over) => over.cloned(),
    };
    let image = match &image_tree {
        Some(node) => image_policy(node, get("image"), &what, diags),
        None => Some(ImagePolicy::default()),
    };
    let train = match get("train") {
        Some(t) => train_hints(t, diags),
        None => Some(TrainHints::default()),
    };
    let pack = match get("pack") {
        Some(p) => pack_policy(p, diags),
        None => Some(PackPolicy::default()),
    };
    let (budget, budget_span) = budget?;
    Some(Stage {
        name,
        span: name_node.span,
        parent,
        seq_len: seq_len?,
        budget,
        budget_span,
        mix: mix?,
        max_repeat: max_repeat?,
        image: image?,
        train: train?,
        pack: pack?,
    })
}
