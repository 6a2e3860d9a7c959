//! Entry points for `check` and `plan`: recipe file -> diagnostics and, when valid, a [`Plan`]; and
//! for `index`: a share of the sources' files measured into the cache ([`index_sources`]).
//!
//! This is the one place that sequences the layers (load the recipe, load the tokenizer, index every
//! source, plan), turning each layer's typed errors into located diagnostics so the CLI only prints.

use std::collections::BTreeMap;
use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics, SourceMap};
use crate::index::{
    FileDigest, IndexCache, IndexProgress, SourceIndex, index_source_with_progress,
};
use crate::plan::{self, Plan};
use crate::recipe::{self, Recipe};
use crate::template::Encoder;

/// Everything `check` and `plan` report.
#[derive(Debug)]
pub struct Resolved {
    pub files: SourceMap,
    pub diagnostics: Diagnostics,
    pub recipe: Option<Recipe>,
    pub indexes: BTreeMap<String, SourceIndex>,
    /// `Some` when there are no errors.
    pub plan: Option<Plan>,
    /// The recipe's tokenizer and template, once loaded (a build encodes with the same one).
    pub encoder: Option<Encoder>,
}

/// Loads, indexes and plans a recipe, collecting every problem.
pub fn resolve(path: &Path, cache: &IndexCache) -> Resolved {
    resolve_with_progress(path, cache, &|_| {})
}

/// [`resolve`], reporting the progress of indexing (tokenizing) each source.
pub fn resolve_with_progress(
    path: &Path,
    cache: &IndexCache,
    progress: &(dyn Fn(IndexProgress) + Sync),
) -> Resolved {
    let (mut resolved, mut diagnostics, loaded) = load(path);
    let Some(Loaded {
        recipe,
        encoder,
        tokenizer,
        recipe_dir,
    }) = loaded
    else {
        return resolved;
    };
    for spec in &recipe.sources {
        let span = recipe.source_spans[&spec.name];
        match index_source_with_progress(spec, &encoder, &tokenizer, &recipe_dir, cache, progress) {
            Ok(index) => {
                if !index.rejects.is_empty() {
                    let counts: Vec<String> = index.reject_counts().iter().map(|(k, v)| format!("{k} {v}")).collect();
                    let first = &index.rejects[0];
                    diagnostics.push(
                        Diagnostic::warning(
                            span,
                            format!(
                                "source `{}`: {} of {} records rejected ({})",
                                spec.name,
                                index.rejects.len(),
                                index.records,
                                counts.join(", ")
                            ),
                        )
                        .with_hint(format!("first: {}: {}", first.location, first.message)),
                    );
                }
                resolved.indexes.insert(spec.name.clone(), index);
            }
            Err(err) => diagnostics.push(
                Diagnostic::error(span, format!("source `{}` cannot be read: {err}", spec.name))
                    .with_hint("fix or remove the file; per-record problems are rejected, but whole-file failures stop the plan"),
            ),
        }
    }
    if !diagnostics.has_errors() {
        match plan::resolve(&recipe, &resolved.indexes, tokenizer) {
            Ok((p, warnings)) => {
                diagnostics.extend(warnings);
                resolved.plan = Some(p);
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    resolved.diagnostics = diagnostics;
    resolved.recipe = Some(recipe);
    resolved.encoder = Some(encoder);
    resolved
}

/// A recipe loaded with its tokenizer, ready to index.
struct Loaded {
    recipe: Recipe,
    encoder: Encoder,
    tokenizer: FileDigest,
    recipe_dir: std::path::PathBuf,
}

/// Loads the recipe and its tokenizer. `None` (with the problems in the diagnostics, and the
/// recipe in the result when it loaded) when there is nothing to index.
fn load(path: &Path) -> (Resolved, Diagnostics, Option<Loaded>) {
    let loaded = recipe::load(path);
    let mut diagnostics = loaded.diagnostics;
    let mut resolved = Resolved {
        files: loaded.sources,
        diagnostics: Diagnostics::default(),
        recipe: None,
        indexes: BTreeMap::new(),
        plan: None,
        encoder: None,
    };
    let Some(recipe) = loaded.recipe else {
        resolved.diagnostics = diagnostics;
        return (resolved, Diagnostics::default(), None);
    };
    let recipe_dir = recipe.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let encoder = match Encoder::from_file(&recipe.tokenizer) {
        Ok(e) => e,
        Err(err) => {
            diagnostics.push(
                Diagnostic::error_in_file(recipe.tokenizer.clone(), err.to_string())
                    .with_hint("`tokenizer.path` must name an HF tokenizer.json with the ChatML and vision special tokens"),
            );
            resolved.diagnostics = diagnostics;
            resolved.recipe = Some(recipe);
            return (resolved, Diagnostics::default(), None);
        }
    };
    let tokenizer = match FileDigest::of(&recipe.tokenizer, &recipe_dir) {
        Ok(d) => d,
        Err(err) => {
            diagnostics.push(Diagnostic::error_in_file(
                recipe.tokenizer.clone(),
                err.to_string(),
            ));
            resolved.diagnostics = diagnostics;
            return (resolved, Diagnostics::default(), None);
        }
    };
    let loaded = Loaded {
        recipe,
        encoder,
        tokenizer,
        recipe_dir,
    };
    (resolved, diagnostics, Some(loaded))
}

/// One part of a source (a file, or a whole synthetic source) that [`index_sources`] indexed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IndexedPart {
    pub source: String,
    /// The file, relative to the recipe's folder; `None` for a synthetic source.
    pub file: Option<String>,
    pub records: u64,
    pub samples: usize,
    /// Found in the cache: nothing was measured.
    pub cached: bool,
}

/// What [`index_sources`] did, or every problem that stopped it.
#[derive(Debug)]
pub struct Indexed {
    pub files: SourceMap,
    pub diagnostics: Diagnostics,
    pub parts: Vec<IndexedPart>,
}

/// Indexes (measures into `cache`, or finds there) the parts `index_it` picks, without planning:
/// a share of the planning work, for `mixtape index --task`, whose tasks fill a shared cache that a
/// later plan or build reads. Parts are numbered across the recipe: the recipe's sources in name
/// order, each source's files in order ([`crate::index::source_parts`]).
pub fn index_sources(path: &Path, cache: &IndexCache, index_it: &dyn Fn(usize) -> bool) -> Indexed {
    let (resolved, mut diagnostics, loaded) = load(path);
    let mut indexed = Indexed {
        files: resolved.files,
        diagnostics: resolved.diagnostics,
        parts: Vec::new(),
    };
    let Some(loaded) = loaded else {
        return indexed;
    };
    let mut position = 0;
    for spec in &loaded.recipe.sources {
        let span = loaded.recipe.source_spans[&spec.name];
        let failed = |err: crate::index::IndexError| {
            Diagnostic::error(span, format!("source `{}` cannot be read: {err}", spec.name))
                .with_hint("fix or remove the file; per-record problems are rejected, but whole-file failures stop the plan")
        };
        let parts = crate::index::source_parts(spec);
        let mine: Vec<usize> = (0..parts).filter(|p| index_it(position + p)).collect();
        position += parts;
        if mine.is_empty() {
            continue;
        }
        let files = match crate::index::source_files(spec, &loaded.recipe_dir) {
            Ok(files) => files,
            Err(err) => {
                diagnostics.push(failed(err));
                continue;
            }
        };
        for part in mine {
            match crate::index::index_part(
                spec,
                part,
                &files,
                &loaded.encoder,
                &loaded.tokenizer,
                &loaded.recipe_dir,
                cache,
                &|_| {},
            ) {
                Ok((index, cached)) => indexed.parts.push(IndexedPart {
                    source: spec.name.clone(),
                    file: files.get(part).map(|f| f.path.clone()),
                    records: index.records,
                    samples: index.samples(),
                    cached,
                }),
                Err(err) => diagnostics.push(failed(err)),
            }
        }
    }
    // Loading succeeded, so the problems so far are all in `diagnostics`.
    indexed.diagnostics = diagnostics;
    indexed
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A recipe with one synthetic source of `count` records (several measuring batches).
    fn recipe(dir: &Path, count: u32) -> std::path::PathBuf {
        let tokenizer =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/tokenizers/demo.json");
        let path = dir.join("r.yaml");
        let text = format!(
            "version: 1\nname: r\nseed: 1\ntokenizer: {{path: {}}}\nsources:\n  caps: {{format: synthetic, kind: shapes-caption, count: {count}, category: caption}}\nstages:\n  - name: s\n    seq_len: 4096\n    budget: {{samples: 10}}\n    mix: {{caption: 1.0}}\n",
            tokenizer.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn events(path: &Path, cache: &IndexCache) -> Vec<IndexProgress> {
        let seen = Mutex::new(Vec::new());
        let resolved = resolve_with_progress(path, cache, &|e| seen.lock().unwrap().push(e));
        assert!(resolved.plan.is_some(), "{:?}", resolved.diagnostics);
        seen.into_inner().unwrap()
    }

    #[test]
    fn indexing_reports_growing_record_counts_then_done_and_a_cached_source_only_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = recipe(dir.path(), 2100);
        let cache = IndexCache {
            dir: Some(dir.path().join("cache")),
        };
        let first = events(&path, &cache);
        let measured: Vec<u64> = first
            .iter()
            .filter_map(|e| match e {
                IndexProgress::Measured { records, .. } => Some(*records),
                IndexProgress::Done { .. } => None,
            })
            .collect();
        assert!(measured.len() >= 3, "one event per batch: {first:?}");
        assert!(measured.windows(2).all(|w| w[0] < w[1]), "{measured:?}");
        let done = IndexProgress::Done {
            source: "caps".into(),
            records: 2100,
            cached: false,
        };
        assert_eq!(first.last(), Some(&done));

        let again = events(&path, &cache);
        assert_eq!(
            again,
            [IndexProgress::Done {
                source: "caps".into(),
                records: 2100,
                cached: true,
            }]
        );
    }
}
