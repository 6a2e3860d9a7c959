//! Loading a recipe: files and `extends` chains, stage inheritance, then typing and validation.
//!
//! Two phases, as in ripgrep's and uv's argument handling: first the raw YAML trees are read and
//! merged (recipe `extends` deep-merges a base file; stage `extends` deep-merges a parent stage), then
//! the merged tree is typed field by field. Every problem becomes a located diagnostic and loading goes
//! on, so one `check` run reports all of them. Relative paths resolve against the folder of the file
//! that wrote them, so a base recipe elsewhere keeps working.
//!
//! One module per recipe section: [`files`] (the recipe file and its `extends` chain), [`limits`],
//! [`sources`], [`stages`] (stage inheritance and the stage map), and the stage sections [`mix`]
//! (`budget` and `mix`), [`image`], [`train`] and [`pack`], and [`template`] (the conversation
//! style). This module types the top level and hands each section to its module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use self::image::IMAGE_KEYS;
use super::fields;
use super::model::*;
use crate::diag::{Diagnostic, Diagnostics, SourceMap, did_you_mean, one_of};
use crate::yaml::{Node, Value};
use files::read_with_extends;
use limits::limits;
use sources::resolve_sources;
use stages::resolve_stages;

mod files;
mod image;
mod limits;
mod mix;
mod pack;
mod sources;
mod stages;
mod template;
mod train;

const RECIPE_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "seed",
    "extends",
    "tokenizer",
    "template",
    "image",
    "limits",
    "sources",
    "stages",
];
/// Longest `extends` chain (of files, or of stages) followed before declaring it runaway.
const MAX_EXTENDS_DEPTH: usize = 32;

/// A loaded recipe: the files read, what could be resolved, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub sources: SourceMap,
    /// `Some` only when there are no errors.
    pub recipe: Option<Recipe>,
    pub diagnostics: Diagnostics,
}

/// Loads and validates a recipe file (static checks only: files exist, values are valid; the
/// planner adds the checks that need source contents).
pub fn load(path: &Path) -> Loaded {
    let mut sources = SourceMap::default();
    let mut diags = Diagnostics::default();
    let root = read_with_extends(path, &mut sources, &mut diags, &mut Vec::new(), None);
    let recipe = root.and_then(|root| resolve(path, &root, &sources, &mut diags));
    let recipe = if diags.has_errors() { None } else { recipe };
    Loaded {
        sources,
        recipe,
        diagnostics: diags,
    }
}

/// Types the merged tree.
fn resolve(path: &Path, root: &Node, files: &SourceMap, diags: &mut Diagnostics) -> Option<Recipe> {
    let entries = fields::map(root, "the recipe", RECIPE_KEYS, diags)?;
    let top = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);

    match top("version") {
        None => diags.push(
            Diagnostic::error(root.span, "missing `version`")
                .with_hint(format!("add `version: {RECIPE_VERSION}` at the top")),
        ),
        Some(v) => {
            if let Some(n) = fields::integer_at_least(v, "`version`", 1, diags)
                && n != RECIPE_VERSION
            {
                diags.push(
                    Diagnostic::error(v.span, format!("unsupported recipe version {n}"))
                        .with_hint(format!("this mixtape reads version {RECIPE_VERSION}")),
                );
            }
        }
    }
    let name = match top("name") {
        Some(n) => fields::string(n, "`name`", diags),
        None => {
            diags.push(
                Diagnostic::error(root.span, "missing `name`").with_hint("add `name: my-recipe`"),
            );
            None
        }
    };
    let description = top("description").and_then(|n| fields::string(n, "`description`", diags));
    let seed = top("seed").map_or(Some(0), |n| fields::integer_at_least(n, "`seed`", 0, diags));
    let tokenizer = match top("tokenizer") {
        Some(node) => tokenizer_path(node, files, diags),
        None => {
            diags.push(
                Diagnostic::error(root.span, "missing `tokenizer`").with_hint(
                    "add `tokenizer: {path: tokenizers/demo.json}` (an HF tokenizer.json)",
                ),
            );
            None
        }
    };
    let template = match top("template") {
        None => Some((Template::Chatml, crate::template::ChatStyle::default())),
        Some(node) => template::template(node, diags),
    };
    let image_base = top("image");
    if let Some(node) = image_base {
        fields::map(node, "`image`", IMAGE_KEYS, diags);
    }

    let max_record_bytes = match top("limits") {
        Some(node) => limits(node, diags),
        None => Some(DEFAULT_MAX_RECORD_BYTES),
    };
    let (sources, source_spans, categories) = match top("sources") {
        Some(node) => resolve_sources(
            node,
            files,
            &sources::SourceDefaults {
                max_record_bytes: max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                chat: template
                    .as_ref()
                    .map(|(_, style)| style.clone())
                    .unwrap_or_default(),
            },
            diags,
        ),
        None => {
            diags.push(
                Diagnostic::error(root.span, "missing `sources`")
                    .with_hint("define at least one source"),
            );
            (Vec::new(), BTreeMap::new(), BTreeSet::new())
        }
    };
    let stages = match top("stages") {
        Some(node) => resolve_stages(node, image_base, &categories, diags),
        None => {
            diags.push(
                Diagnostic::error(root.span, "missing `stages`")
                    .with_hint("define at least one stage"),
            );
            Vec::new()
        }
    };

    if let (Some(sources_node), Some(stages_node)) = (top("sources"), top("stages")) {
        warn_unused_categories(sources_node, stages_node, diags);
    }

    Some(Recipe {
        path: path.to_path_buf(),
        name: name?,
        description,
        seed: seed?,
        tokenizer: tokenizer?,
        template: template?.0,
        sources,
        source_spans,
        stages,
    })
}

/// Warns about each source whose category no stage mixes: its data would never be drawn, and the
/// usual cause is a typo (`captio`) that nothing else catches while another source fills `caption`.
fn warn_unused_categories(sources: &Node, stages: &Node, diags: &mut Diagnostics) {
    let Value::Seq(items) = &stages.value else {
        return;
    };
    // Every stage's own `mix` (a child without one inherits its parent's, which is in this list too).
    let used: BTreeSet<&str> = items
        .iter()
        .filter_map(|item| item.get("mix")?.entries())
        .flat_map(|entries| entries.iter().map(|(k, _)| k.name.as_str()))
        .collect();
    if used.is_empty() {
        return; // no stage has a readable mix: the errors about that say enough
    }
    for (name, source) in sources.entries().unwrap_or_default() {
        let Some(category) = source.get("category") else {
            continue;
        };
        let Value::Str(text) = &category.value else {
            continue;
        };
        if used.contains(text.as_str()) {
            continue;
        }
        let hint = match did_you_mean(text, used.iter().copied()) {
            Some(suggestion) => suggestion,
            None => format!(
                "no stage mixes it, so this source is never drawn; stages mix {}",
                one_of(&used.iter().copied().collect::<Vec<_>>())
            ),
        };
        diags.push(
            Diagnostic::warning(
                category.span,
                format!(
                    "source `{}` has category `{text}`, which no stage's mix uses",
                    name.name
                ),
            )
            .with_hint(hint),
        );
    }
}

fn tokenizer_path(node: &Node, files: &SourceMap, diags: &mut Diagnostics) -> Option<PathBuf> {
    let entries = fields::map(node, "`tokenizer`", &["path"], diags)?;
    let Some((_, path_node)) = entries.iter().find(|(k, _)| k.name == "path") else {
        diags.push(
            Diagnostic::error(node.span, "`tokenizer` needs a `path`")
                .with_hint("e.g. `{path: tokenizers/demo.json}`"),
        );
        return None;
    };
    let rel = fields::string(path_node, "tokenizer `path`", diags)?;
    let path = files.dir(path_node.span.file).join(&rel);
    if !path.is_file() {
        diags.push(
            Diagnostic::error(
                path_node.span,
                format!("tokenizer file not found: {}", path.display()),
            )
            .with_hint("paths are relative to the recipe file that writes them"),
        );
        return None;
    }
    Some(path)
}
