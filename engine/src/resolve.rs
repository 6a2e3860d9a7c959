//! Entry points for `check` and `plan`: recipe file -> diagnostics and, when valid, a [`Plan`].
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
    resolve_sources(path, cache, &|_| true, progress)
}

/// Indexes (measures, or finds in `cache`) only the sources `index_it` picks by their position in
/// the recipe's sources (which are in name order), without planning: a part of the planning work, for `mixtape index --task`, whose
/// tasks fill a shared cache that a later plan or build reads. `indexes` holds the picked sources'.
pub fn index_sources(
    path: &Path,
    cache: &IndexCache,
    index_it: &dyn Fn(usize) -> bool,
    progress: &(dyn Fn(IndexProgress) + Sync),
) -> Resolved {
    let mut resolved = resolve_sources(path, cache, index_it, progress);
    resolved.plan = None;
    resolved
}

/// Loads the recipe and indexes the sources `index_it` picks; plans when it picked every source.
fn resolve_sources(
    path: &Path,
    cache: &IndexCache,
    index_it: &dyn Fn(usize) -> bool,
    progress: &(dyn Fn(IndexProgress) + Sync),
) -> Resolved {
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
        return resolved;
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
            return resolved;
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
            return resolved;
        }
    };
    let mut every_source = true;
    for (position, spec) in recipe.sources.iter().enumerate() {
        if !index_it(position) {
            every_source = false;
            continue;
        }
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
    if every_source && !diagnostics.has_errors() {
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
