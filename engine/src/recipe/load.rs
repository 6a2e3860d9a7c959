//! Loading a recipe: files and `extends` chains, stage inheritance, then typing and validation.
//!
//! Two phases, as in ripgrep's and uv's argument handling: first the raw YAML trees are read and
//! merged (recipe `extends` deep-merges a base file; stage `extends` deep-merges a parent stage), then
//! the merged tree is typed field by field. Every problem becomes a located diagnostic and loading goes
//! on, so one `check` run reports all of them. Relative paths resolve against the folder of the file
//! that wrote them, so a base recipe elsewhere keeps working.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::fields;
use super::model::*;
use super::names;
use crate::diag::{Diagnostic, Diagnostics, SourceMap, Span, did_you_mean, one_of};
use crate::source::spec::{FieldMap, RecordSchema, SourceFormat, SourceSpec, SyntheticSpec};
use crate::synthetic::SyntheticKind;
use crate::yaml::{self, Node, Value};

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
const SOURCE_KEYS: &[&str] = &[
    "format",
    "path",
    "category",
    "weight",
    "fields",
    "image_root",
    "schema",
    "kind",
    "count",
    "seed",
    "max_record_bytes",
];
const LIMIT_KEYS: &[&str] = &["max_record_bytes"];
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
const IMAGE_KEYS: &[&str] = &[
    "patch_size",
    "merge_size",
    "min_pixels",
    "max_pixels",
    "max_aspect_ratio",
    "encoding",
    "jpeg_quality",
];
const TRAIN_KEYS: &[&str] = &[
    "trainable",
    "lr",
    "lr_scale",
    "warmup",
    "schedule",
    "batch_size",
    "grad_accum",
    "weight_decay",
    "clip_grad",
];
const PACK_KEYS: &[&str] = &["algorithm", "buffer", "max_image_tokens", "split_long_text"];
const FIELD_KEYS: &[&str] = &["image", "caption", "text", "conversations", "messages"];
const FORMATS: &[&str] = &[
    "conversation",
    "caption",
    "text",
    "parquet",
    "webdataset",
    "synthetic",
];
/// Stage settings a child stage replaces whole instead of merging into its parent's.
const REPLACED_ON_INHERIT: &[&str] = &["budget", "mix"];
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

/// Reads a recipe file and, recursively, the file it extends, returning the merged tree.
fn read_with_extends(
    path: &Path,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
    chain: &mut Vec<PathBuf>,
    extends_span: Option<Span>,
) -> Option<Node> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(pos) = chain.iter().position(|p| *p == canonical) {
        let cycle: Vec<String> = chain[pos..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        let msg = format!("recipe `extends` forms a cycle: {}", cycle.join(" -> "));
        let d = match extends_span {
            Some(span) => Diagnostic::error(span, msg),
            None => Diagnostic::error_in_file(path, msg),
        };
        diags.push(d.with_hint("remove `extends` from one of these files"));
        return None;
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        diags.push(Diagnostic::error_in_file(
            path,
            format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH} files"),
        ));
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                // Keep the file (lossily) so the diagnostic can quote the line with the bad byte.
                let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
                let bad = err.as_bytes()[valid.len()];
                let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let line = valid.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
                let col = String::from_utf8_lossy(&valid[line_start..])
                    .chars()
                    .count() as u32
                    + 1;
                let file = sources.add(
                    path.to_path_buf(),
                    String::from_utf8_lossy(err.as_bytes()).into_owned(),
                );
                diags.push(
                    Diagnostic::error(
                        Span {
                            file,
                            line,
                            col,
                            len: 1,
                        },
                        format!("recipe file is not valid UTF-8 (byte 0x{bad:02x})"),
                    )
                    .with_hint("save the recipe as UTF-8"),
                );
                return None;
            }
        },
        Err(err) => {
            let msg = format!("cannot read recipe `{}`: {err}", path.display());
            diags.push(match extends_span {
                Some(span) => Diagnostic::error(span, msg)
                    .with_hint("`extends` paths are relative to the file that names them"),
                None => Diagnostic::error_in_file(path, msg),
            });
            return None;
        }
    };
    let file = sources.add(path.to_path_buf(), text);
    let node = match yaml::parse(sources.text(file), file) {
        Ok(Some(node)) => node,
        Ok(None) => {
            diags.push(
                Diagnostic::error(
                    Span {
                        file,
                        line: 1,
                        col: 1,
                        len: 1,
                    },
                    "recipe file is empty",
                )
                .with_hint("a recipe needs at least `version`, `name`, `sources` and `stages`"),
            );
            return None;
        }
        Err(errors) => {
            diags.extend(errors);
            return None;
        }
    };
    if node.entries().is_none() {
        diags.push(Diagnostic::error(
            node.span,
            format!(
                "a recipe must be a map of settings, found {}",
                node.type_name()
            ),
        ));
        return None;
    }
    let Some(extends) = node.get("extends") else {
        return Some(node);
    };
    let base_name = fields::string(extends, "`extends`", diags)?;
    let base_path = sources.dir(file).join(&base_name);
    chain.push(canonical);
    let base = read_with_extends(&base_path, sources, diags, chain, Some(extends.span));
    chain.pop();
    let own = node.without(&["extends"]);
    Some(match base {
        Some(base) => yaml::merge(&base, &own),
        None => own,
    })
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
            if let Some(n) = fields::integer_at_least(v, "`version`", 1, diags) {
                if n != RECIPE_VERSION {
                    diags.push(
                        Diagnostic::error(v.span, format!("unsupported recipe version {n}"))
                            .with_hint(format!("this mixtape reads version {RECIPE_VERSION}")),
                    );
                }
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
        None => Some(Template::Chatml),
        Some(node) => {
            fields::choice(node, "template", &["chatml"], diags).map(|_| Template::Chatml)
        }
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
            max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
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
        template: template?,
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

type ResolvedSources = (Vec<SourceSpec>, BTreeMap<String, Span>, BTreeSet<String>);

/// The recipe-wide `limits`: today the default record cap of every file source.
fn limits(node: &Node, diags: &mut Diagnostics) -> Option<u64> {
    let entries = fields::map(node, "`limits`", LIMIT_KEYS, diags)?;
    match entries.iter().find(|(k, _)| k.name == "max_record_bytes") {
        Some((_, value)) => record_cap(value, "limits `max_record_bytes`", diags),
        None => Some(DEFAULT_MAX_RECORD_BYTES),
    }
}

fn record_cap(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<u64> {
    fields::integer_in(node, what, 1, bounds::MAX_RECORD_BYTES_LIMIT, diags)
}

fn resolve_sources(
    node: &Node,
    files: &SourceMap,
    max_record_bytes: u64,
    diags: &mut Diagnostics,
) -> ResolvedSources {
    let mut specs = Vec::new();
    let mut spans = BTreeMap::new();
    let mut categories = BTreeSet::new();
    let Some(entries) = node.entries() else {
        diags.push(Diagnostic::error(
            node.span,
            format!(
                "`sources` must be a map of named sources, found {}",
                node.type_name()
            ),
        ));
        return (specs, spans, categories);
    };
    if entries.is_empty() {
        diags.push(
            Diagnostic::error(node.span, "`sources` is empty")
                .with_hint("define at least one source"),
        );
    }
    for (key, value) in entries {
        names::check(&key.name, "source", key.span, diags);
        spans.insert(key.name.clone(), key.span);
        // Record the category even if the rest of the source is invalid, so stages that use it do not
        // get a misleading "undefined category" on top of the real error.
        if let Some(Value::Str(category)) = value.get("category").map(|c| &c.value) {
            categories.insert(category.clone());
        }
        if let Some(spec) = resolve_source(&key.name, value, files, max_record_bytes, diags) {
            specs.push(spec);
        }
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    (specs, spans, categories)
}

fn resolve_source(
    name: &str,
    node: &Node,
    files: &SourceMap,
    default_max_record_bytes: u64,
    diags: &mut Diagnostics,
) -> Option<SourceSpec> {
    let what = format!("source `{name}`");
    let entries = fields::map(node, &what, SOURCE_KEYS, diags)?;
    let get = |key: &str| entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);

    let format = match get("format") {
        Some(f) => fields::choice(f, "format", FORMATS, diags),
        None => {
            diags.push(
                Diagnostic::error(node.span, format!("{what} needs a `format`"))
                    .with_hint(format!("use {}", one_of(FORMATS))),
            );
            None
        }
    };
    let category = match get("category") {
        Some(c) => fields::string(c, "`category`", diags),
        None => {
            diags.push(
                Diagnostic::error(node.span, format!("{what} needs a `category`"))
                    .with_hint("e.g. `category: caption`"),
            );
            None
        }
    };
    let weight =
        get("weight").map(|w| fields::positive_at_most(w, "`weight`", bounds::MAX_WEIGHT, diags));
    let format = match format? {
        "conversation" => SourceFormat::Conversation,
        "caption" => SourceFormat::Caption,
        "text" => SourceFormat::Text,
        "parquet" => SourceFormat::Parquet,
        "webdataset" => SourceFormat::WebDataset,
        _ => SourceFormat::Synthetic,
    };

    let mut ok = true;
    let only_for = |key: &str, allowed: bool, hint: &str, diags: &mut Diagnostics| {
        if let (Some(k), false) = (
            entries.iter().find(|(k, _)| k.name == key).map(|(k, _)| k),
            allowed,
        ) {
            diags.push(
                Diagnostic::error(k.span, format!("`{key}` does not apply to {what}"))
                    .with_hint(hint.to_string()),
            );
            return false;
        }
        true
    };
    let synthetic = format == SourceFormat::Synthetic;
    ok &= only_for(
        "kind",
        synthetic,
        "`kind` and `count` are for `format: synthetic` sources",
        diags,
    );
    ok &= only_for(
        "count",
        synthetic,
        "`kind` and `count` are for `format: synthetic` sources",
        diags,
    );
    ok &= only_for(
        "seed",
        synthetic,
        "`seed` sets a synthetic generator; the recipe-level `seed` sets shuffling",
        diags,
    );
    ok &= only_for(
        "path",
        !synthetic,
        "synthetic sources generate their samples; remove `path`",
        diags,
    );
    ok &= only_for(
        "fields",
        !synthetic,
        "synthetic sources have fixed fields",
        diags,
    );
    ok &= only_for(
        "image_root",
        !synthetic,
        "synthetic sources draw their images",
        diags,
    );
    ok &= only_for(
        "max_record_bytes",
        !synthetic,
        "synthetic records are generated, not read",
        diags,
    );
    let max_record_bytes = match get("max_record_bytes") {
        Some(n) => record_cap(n, "`max_record_bytes`", diags),
        None => Some(default_max_record_bytes),
    };
    let has_schema = matches!(format, SourceFormat::Parquet | SourceFormat::WebDataset);
    ok &= only_for(
        "schema",
        has_schema,
        "`schema` is for parquet and webdataset sources; the format already says it",
        diags,
    );

    let schema = if has_schema {
        match get("schema") {
            Some(s) => fields::choice(s, "schema", &["caption", "conversation", "text"], diags)
                .map(|s| match s {
                    "caption" => RecordSchema::Caption,
                    "conversation" => RecordSchema::Conversation,
                    _ => RecordSchema::Text,
                }),
            None if format == SourceFormat::WebDataset => Some(RecordSchema::Caption),
            None => {
                diags.push(
                    Diagnostic::error(node.span, format!("{what} needs a `schema`")).with_hint(
                        "say what a row holds: `schema: caption`, `conversation` or `text`",
                    ),
                );
                None
            }
        }
    } else {
        None
    };

    let synthetic_spec = if synthetic {
        let kind = match get("kind") {
            Some(k) => {
                let names: Vec<&str> = SyntheticKind::ALL.iter().map(|k| k.name()).collect();
                fields::choice(k, "synthetic kind", &names, diags)
                    .and_then(SyntheticKind::from_name)
            }
            None => {
                diags.push(
                    Diagnostic::error(node.span, format!("{what} needs a `kind`")).with_hint(
                        format!(
                            "use {}",
                            one_of(
                                &SyntheticKind::ALL
                                    .iter()
                                    .map(|k| k.name())
                                    .collect::<Vec<_>>()
                            )
                        ),
                    ),
                );
                None
            }
        };
        let count = match get("count") {
            Some(c) => fields::integer_in(c, "`count`", 1, bounds::MAX_SYNTHETIC_COUNT, diags),
            None => {
                diags.push(
                    Diagnostic::error(node.span, format!("{what} needs a `count`"))
                        .with_hint("e.g. `count: 5000`"),
                );
                None
            }
        };
        let seed = get("seed").map_or(Some(0), |s| fields::integer_at_least(s, "`seed`", 0, diags));
        Some(SyntheticSpec {
            kind: kind?,
            count: count?,
            seed: seed?,
        })
    } else {
        None
    };

    let files_found = if synthetic {
        Some(Vec::new())
    } else {
        match get("path") {
            Some(p) => expand_paths(p, format, files, diags),
            None => {
                diags.push(
                    Diagnostic::error(node.span, format!("{what} needs a `path`"))
                        .with_hint("a file, a glob such as `data/*.jsonl`, or a list of them"),
                );
                None
            }
        }
    };
    let fields_map = match get("fields") {
        Some(f) => field_map(f, diags),
        None => Some(FieldMap::default()),
    };
    let image_root = match get("image_root") {
        Some(r) => fields::string(r, "`image_root`", diags).and_then(|rel| {
            let dir = files.dir(r.span.file).join(rel);
            if dir.is_dir() {
                Some(dir)
            } else {
                diags.push(Diagnostic::error(
                    r.span,
                    format!("image_root folder not found: {}", dir.display()),
                ));
                None
            }
        }),
        None => None,
    };
    if !ok {
        return None;
    }
    Some(SourceSpec {
        name: name.to_string(),
        format,
        category: category?,
        weight: match weight {
            Some(w) => Some(w?),
            None => None,
        },
        files: files_found?,
        schema,
        fields: fields_map?,
        image_root,
        synthetic: synthetic_spec,
        max_record_bytes: max_record_bytes?,
    })
}

fn field_map(node: &Node, diags: &mut Diagnostics) -> Option<FieldMap> {
    let entries = fields::map(node, "`fields`", FIELD_KEYS, diags)?;
    let mut map = FieldMap::default();
    for (key, value) in entries {
        let name = fields::string(value, &format!("field name for `{}`", key.name), diags)?;
        match key.name.as_str() {
            "image" => map.image = Some(name),
            "caption" => map.caption = Some(name),
            "text" => map.text = Some(name),
            "conversations" => map.conversations = Some(name),
            "messages" => map.messages = Some(name),
            _ => {}
        }
    }
    Some(map)
}

/// Expands `path` (a file, a glob, or a list of them) relative to the file that wrote each entry.
fn expand_paths(
    node: &Node,
    format: SourceFormat,
    files: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<Vec<PathBuf>> {
    let patterns = fields::strings(node, "`path`", diags)?;
    let mut out = BTreeSet::new();
    let mut ok = true;
    for (pattern, span) in patterns {
        let full = files.dir(span.file).join(&pattern);
        let full_str = full.to_string_lossy().into_owned();
        let matches: Vec<PathBuf> = match glob::glob(&full_str) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(err) => {
                diags.push(Diagnostic::error(
                    span,
                    format!("invalid glob `{pattern}`: {}", err.msg),
                ));
                ok = false;
                continue;
            }
        };
        if matches.is_empty() {
            let ext = match format {
                SourceFormat::Parquet => "*.parquet",
                SourceFormat::WebDataset => "*.tar",
                _ => "*.jsonl",
            };
            diags.push(
                Diagnostic::error(span, format!("no files match `{pattern}`"))
                    .with_hint(format!("looked for {full_str}; paths are relative to the recipe file (e.g. `data/{ext}`)")),
            );
            ok = false;
        }
        out.extend(matches);
    }
    ok.then(|| out.into_iter().collect())
}

/// Applies stage inheritance, then types every stage.
fn resolve_stages(
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
            super::names::check(n, "stage", span, diags);
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
        Some(node) => image_policy(node, &what, diags),
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

fn budget(node: &Node, diags: &mut Diagnostics) -> Option<Budget> {
    let keys: Vec<&str> = Basis::ALL.iter().map(|b| b.key()).collect();
    let entries = fields::map(node, "`budget`", &keys, diags)?;
    let set: Vec<_> = entries
        .iter()
        .filter(|(k, _)| keys.contains(&k.name.as_str()))
        .collect();
    match set.as_slice() {
        [] => {
            diags.push(
                Diagnostic::error(node.span, "`budget` needs exactly one basis, found none")
                    .with_hint(format!("set one of {}", one_of(&keys))),
            );
            None
        }
        [(key, value)] => {
            let basis = Basis::ALL.into_iter().find(|b| b.key() == key.name)?;
            let amount = fields::integer_in(
                value,
                &format!("budget `{}`", key.name),
                1,
                bounds::MAX_BUDGET,
                diags,
            )?;
            Some(Budget { basis, amount })
        }
        [(a, _), (b, _), ..] => {
            diags.push(
                Diagnostic::error(
                    b.span,
                    format!(
                        "`budget` needs exactly one basis, found both `{}` and `{}`",
                        a.name, b.name
                    ),
                )
                .with_hint("a stage's budget counts one thing; keep one of them"),
            );
            None
        }
    }
}

fn mix(
    node: &Node,
    categories: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Vec<MixEntry>> {
    let Some(entries) = node.entries() else {
        diags.push(Diagnostic::error(
            node.span,
            format!(
                "`mix` must map categories to shares, found {}",
                node.type_name()
            ),
        ));
        return None;
    };
    if entries.is_empty() {
        diags.push(
            Diagnostic::error(node.span, "`mix` is empty")
                .with_hint("give at least one category a share"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut sum = 0.0;
    for (key, value) in entries {
        if !categories.contains(&key.name) {
            let hint = did_you_mean(&key.name, categories.iter().map(String::as_str))
                .unwrap_or_else(|| {
                    let known: Vec<&str> = categories.iter().map(String::as_str).collect();
                    format!(
                        "no source has `category: {}`; known categories: {}",
                        key.name,
                        one_of(&known)
                    )
                });
            diags.push(
                Diagnostic::error(key.span, format!("undefined category `{}`", key.name))
                    .with_hint(hint),
            );
            ok = false;
        }
        match fields::number_in(value, &format!("share of `{}`", key.name), 0.0, 1.0, diags) {
            Some(share) => {
                sum += share;
                out.push(MixEntry {
                    category: key.name.clone(),
                    share,
                    span: key.span,
                });
            }
            None => ok = false,
        }
    }
    if ok && (sum - 1.0).abs() > 1e-6 {
        diags.push(
            Diagnostic::error(
                node.span,
                format!("mix shares sum to {}, not 1", round6(sum)),
            )
            .with_hint(format!(
                "shares are fractions of the budget; adjust them by {:+}",
                round6(1.0 - sum)
            )),
        );
        ok = false;
    }
    out.sort_by(|a, b| a.category.cmp(&b.category));
    ok.then_some(out)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn image_policy(node: &Node, stage: &str, diags: &mut Diagnostics) -> Option<ImagePolicy> {
    let entries = node.entries()?;
    let mut policy = ImagePolicy::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("image `{}`", key.name);
        let good = match key.name.as_str() {
            "patch_size" => fields::integer_in(value, &what, 1, bounds::MAX_PATCH_SIZE, diags)
                .map(|v| policy.patch_size = v as u32),
            "merge_size" => fields::integer_in(value, &what, 1, bounds::MAX_MERGE_SIZE, diags)
                .map(|v| policy.merge_size = v as u32),
            "min_pixels" => fields::integer_in(value, &what, 1, bounds::MAX_IMAGE_PIXELS, diags)
                .map(|v| policy.min_pixels = v),
            "max_pixels" => fields::integer_in(value, &what, 1, bounds::MAX_IMAGE_PIXELS, diags)
                .map(|v| policy.max_pixels = v),
            "max_aspect_ratio" => fields::number(value, &what, diags).and_then(|v| {
                if (1.0..=1e6).contains(&v) {
                    policy.max_aspect_ratio = v;
                    Some(())
                } else {
                    diags.push(Diagnostic::error(
                        value.span,
                        format!("{what} must be between 1 and 1000000, found {v}"),
                    ));
                    None
                }
            }),
            "encoding" => {
                fields::choice(value, "image encoding", &["jpeg", "png", "source"], diags).map(
                    |e| {
                        policy.encoding = match e {
                            "jpeg" => ImageEncoding::Jpeg,
                            "png" => ImageEncoding::Png,
                            _ => ImageEncoding::Source,
                        }
                    },
                )
            }
            "jpeg_quality" => fields::integer_at_least(value, &what, 1, diags).and_then(|v| {
                if v <= 100 {
                    policy.jpeg_quality = v as u8;
                    Some(())
                } else {
                    diags.push(Diagnostic::error(
                        value.span,
                        format!("{what} must be between 1 and 100, found {v}"),
                    ));
                    None
                }
            }),
            _ => Some(()), // reported by the key check
        };
        ok &= good.is_some();
    }
    if !ok {
        return None;
    }
    // A policy that can resize some accepted image to a zero side would fail mid-build: refuse it now.
    let factor = u64::from(policy.patch_size) * u64::from(policy.merge_size);
    let block = factor * factor;
    let blame = |key: &str| node.get(key).map_or(node.span, |n| n.span);
    if policy.min_pixels > policy.max_pixels {
        diags.push(
            Diagnostic::error(
                blame("min_pixels"),
                format!(
                    "{stage}: image min_pixels {} is above max_pixels {}",
                    policy.min_pixels, policy.max_pixels
                ),
            )
            .with_hint("min_pixels must not exceed max_pixels"),
        );
        return None;
    }
    let needed = (policy.max_aspect_ratio * block as f64).ceil() as u64;
    if policy.max_pixels < needed {
        let ratio_ok = (policy.max_pixels as f64 / block as f64).floor();
        diags.push(
            Diagnostic::error(
                blame("max_pixels"),
                format!(
                    "{stage}: image max_pixels {} can resize an image to a zero side ({factor}-pixel blocks, aspect ratio up to {})",
                    policy.max_pixels, policy.max_aspect_ratio
                ),
            )
            .with_hint(if ratio_ok >= 1.0 {
                format!("raise max_pixels to at least {needed}, or lower max_aspect_ratio to at most {ratio_ok}")
            } else {
                format!("raise max_pixels to at least {needed}: one {factor}x{factor} block is {block} pixels")
            }),
        );
        return None;
    }
    Some(policy)
}

fn train_hints(node: &Node, diags: &mut Diagnostics) -> Option<TrainHints> {
    let entries = fields::map(node, "`train`", TRAIN_KEYS, diags)?;
    let mut hints = TrainHints::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("train `{}`", key.name);
        let good = match key.name.as_str() {
            "trainable" => fields::strings(value, &what, diags).and_then(|names| {
                let mut modules = Vec::new();
                for (name, span) in names {
                    let node = Node {
                        value: Value::Str(name),
                        span,
                    };
                    modules.push(
                        match fields::choice(&node, "module", &Module::NAMES, diags)? {
                            "vision" => Module::Vision,
                            "projector" => Module::Projector,
                            _ => Module::Llm,
                        },
                    );
                }
                modules.sort();
                modules.dedup();
                hints.trainable = modules;
                Some(())
            }),
            "lr" => {
                fields::positive_at_most(value, &what, bounds::MAX_LR, diags).map(|v| hints.lr = v)
            }
            "lr_scale" => {
                fields::map(value, "`lr_scale`", &Module::NAMES, diags).and_then(|entries| {
                    for (k, v) in entries {
                        let scale = fields::positive_at_most(
                            v,
                            &format!("lr_scale `{}`", k.name),
                            bounds::MAX_LR_SCALE,
                            diags,
                        )?;
                        hints.lr_scale.insert(k.name.clone(), scale);
                    }
                    Some(())
                })
            }
            "warmup" => fields::number_in(value, &what, 0.0, 1.0, diags).map(|v| hints.warmup = v),
            "schedule" => {
                fields::choice(value, "schedule", &["cosine", "linear", "constant"], diags).map(
                    |s| {
                        hints.schedule = match s {
                            "cosine" => LrSchedule::Cosine,
                            "linear" => LrSchedule::Linear,
                            _ => LrSchedule::Constant,
                        }
                    },
                )
            }
            "batch_size" => fields::integer_in(value, &what, 1, bounds::MAX_BATCH, diags)
                .map(|v| hints.batch_size = v as u32),
            "grad_accum" => fields::integer_in(value, &what, 1, bounds::MAX_BATCH, diags)
                .map(|v| hints.grad_accum = v as u32),
            "weight_decay" => {
                fields::number_in(value, &what, 0.0, 10.0, diags).map(|v| hints.weight_decay = v)
            }
            "clip_grad" => {
                fields::positive_at_most(value, &what, 1e6, diags).map(|v| hints.clip_grad = v)
            }
            _ => Some(()),
        };
        ok &= good.is_some();
    }
    ok.then_some(hints)
}

fn pack_policy(node: &Node, diags: &mut Diagnostics) -> Option<PackPolicy> {
    let entries = fields::map(node, "`pack`", PACK_KEYS, diags)?;
    let mut policy = PackPolicy::default();
    let mut ok = true;
    for (key, value) in entries {
        let what = format!("pack `{}`", key.name);
        let good = match key.name.as_str() {
            "algorithm" => fields::choice(value, "packing algorithm", &["bfd", "greedy"], diags)
                .map(|a| {
                    policy.algorithm = if a == "bfd" {
                        PackAlgorithm::Bfd
                    } else {
                        PackAlgorithm::Greedy
                    }
                }),
            "buffer" => fields::integer_in(value, &what, 1, bounds::MAX_PACK_BUFFER, diags)
                .map(|v| policy.buffer = v as u32),
            "max_image_tokens" => fields::integer_in(value, &what, 1, bounds::MAX_SEQ_LEN, diags)
                .map(|v| policy.max_image_tokens = Some(v as u32)),
            "split_long_text" => {
                fields::boolean(value, &what, diags).map(|v| policy.split_long_text = v)
            }
            _ => Some(()),
        };
        ok &= good.is_some();
    }
    ok.then_some(policy)
}
