//! The `sources` section: each named source's format, files (paths and globs, relative to the file
//! that wrote them), category, field mapping and per-format settings, typed into a [`SourceSpec`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::limits::record_cap;
use crate::diag::{Diagnostic, Diagnostics, SourceMap, Span, one_of};
use crate::recipe::fields;
use crate::recipe::model::*;
use crate::recipe::names;
use crate::sample::SampleKind;
use crate::source::spec::{FieldMap, RecordSchema, SourceFormat, SourceSpec, SyntheticSpec};
use crate::synthetic::SyntheticKind;
use crate::yaml::{Node, Value};

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
    "system",
    "long_text",
];

const FIELD_KEYS: &[&str] = &["image", "caption", "text", "conversations", "messages"];
const FORMATS: &[&str] = &[
    "conversation",
    "caption",
    "text",
    "parquet",
    "webdataset",
    "synthetic",
];

type ResolvedSources = (Vec<SourceSpec>, BTreeMap<String, Span>, BTreeSet<String>);

/// What a source inherits from the recipe's top level unless it sets its own.
pub(super) struct SourceDefaults {
    /// `limits.max_record_bytes`.
    pub max_record_bytes: u64,
    /// The `template` settings (system prompt, turn-end loss).
    pub chat: crate::template::ChatStyle,
}

pub(super) fn resolve_sources(
    node: &Node,
    files: &SourceMap,
    defaults: &SourceDefaults,
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
        if let Some(spec) = resolve_source(&key.name, value, files, defaults, diags) {
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
    defaults: &SourceDefaults,
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
        None => Some(defaults.max_record_bytes),
    };
    let system = match get("system") {
        Some(s) => super::template::system_prompt(s, "`system`", diags),
        None => Some(defaults.chat.system.clone()),
    };
    let long_text = match get("long_text") {
        Some(l) => fields::choice(l, "long_text", &LongText::NAMES, diags)
            .and_then(LongText::from_name)
            .map(Some),
        None => Some(None),
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
    // `system` and `long_text` apply to what the source's records render as.
    let yields = |kind| sample_kind(format, schema, synthetic_spec.as_ref()) == Some(kind);
    let conversations = yields(SampleKind::Conversation);
    ok &= only_for(
        "system",
        conversations,
        "a system prompt opens conversations; this source has none",
        diags,
    );
    ok &= only_for(
        "long_text",
        yields(SampleKind::Text),
        "`long_text` is for text records; conversations and captions over `seq_len` are always rejected",
        diags,
    );
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
        // The recipe's template settings reach only sources with conversations to render, so the
        // others' settings, lengths and cache entries stay as they are.
        chat: if conversations {
            crate::template::ChatStyle {
                system: system?,
                turn_end_loss: defaults.chat.turn_end_loss,
            }
        } else {
            crate::template::ChatStyle::default()
        },
        long_text: long_text?,
    })
}

/// The kind of sample a source's records become (`None` while its schema or kind is invalid).
fn sample_kind(
    format: SourceFormat,
    schema: Option<RecordSchema>,
    synthetic: Option<&SyntheticSpec>,
) -> Option<SampleKind> {
    match format {
        SourceFormat::Conversation => Some(SampleKind::Conversation),
        SourceFormat::Caption => Some(SampleKind::Caption),
        SourceFormat::Text => Some(SampleKind::Text),
        SourceFormat::Parquet | SourceFormat::WebDataset => schema.map(|schema| match schema {
            RecordSchema::Conversation => SampleKind::Conversation,
            RecordSchema::Caption => SampleKind::Caption,
            RecordSchema::Text => SampleKind::Text,
        }),
        SourceFormat::Synthetic => synthetic.map(|s| s.kind.sample_kind()),
    }
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
        if mixtape_store::is_url(std::path::Path::new(&pattern)) {
            // Objects of a store: listed and matched there (see `mixtape_store::glob`).
            match mixtape_store::glob(&pattern) {
                Ok(matches) if matches.is_empty() => {
                    diags.push(
                        Diagnostic::error(span, format!("no objects match `{pattern}`"))
                            .with_hint("check the bucket, the prefix and the store's credentials"),
                    );
                    ok = false;
                }
                Ok(matches) => out.extend(matches),
                Err(err) => {
                    diags.push(Diagnostic::error(
                        span,
                        format!("cannot list `{pattern}`: {err}"),
                    ));
                    ok = false;
                }
            }
            continue;
        }
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
