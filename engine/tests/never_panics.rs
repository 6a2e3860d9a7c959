//! `check` never panics: arbitrary bytes and recipe-shaped YAML with random values go through the
//! loader and the planner, and must come back as diagnostics or a plan.

use std::path::PathBuf;

use mixtape_engine::index::IndexCache;
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "version", "name", "seed", "extends", "tokenizer", "template", "image", "sources", "stages", "format", "path",
    "category", "weight", "kind", "count", "seq_len", "budget", "mix", "max_repeat", "tokens", "samples",
    "max_pixels", "min_pixels", "patch_size", "merge_size", "train", "pack", "lr", "trainable", "buffer", "schema",
    "fields", "image_root", "caption", "vqa", "shapes-vqa", "synthetic",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        Just("~".to_string()),
        Just("true".to_string()),
        Just("''".to_string()),
        prop::sample::select(KEYS).prop_map(str::to_string),
        "[a-z*./-]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|kv| {
                let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

fn recipe_text() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(KEYS), value()), 0..10)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k}: {v}\n")).collect())
}

fn write(dir: &tempfile::TempDir, text: &[u8]) -> PathBuf {
    let path = dir.path().join("recipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let loaded = mixtape_engine::recipe::load(&write(&dir, &bytes));
        prop_assert!(loaded.recipe.is_some() || loaded.diagnostics.has_errors());
    }

    #[test]
    fn recipe_shaped_yaml_never_panics(text in recipe_text()) {
        let dir = tempfile::tempdir().unwrap();
        let loaded = mixtape_engine::recipe::load(&write(&dir, text.as_bytes()));
        prop_assert!(loaded.recipe.is_some() || loaded.diagnostics.has_errors());
        for d in loaded.diagnostics.iter() {
            let _ = d.render(&loaded.sources);
        }
    }
}

fn stage_value() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("1"), Just("-3"), Just("4096"), Just("x")],
        prop_oneof![Just("{tokens: 5000}"), Just("{samples: 0}"), Just("{}"), Just("{image_tokens: 99999999}")],
        prop_oneof![Just("{caption: 1.0}"), Just("{caption: 0.5, vqa: 0.5}"), Just("{nope: 1}"), Just("{caption: .nan}")],
        prop_oneof![Just(""), Just("max_repeat: 0\n"), Just("image: {max_pixels: 100}\n"), Just("extends: a\n")],
    )
        .prop_map(|(seq, budget, mix, extra)| {
            format!("  - name: a\n    seq_len: {seq}\n    budget: {budget}\n    mix: {mix}\n    {extra}")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Through the planner too: random stage settings over small synthetic sources.
    #[test]
    fn planning_random_stages_never_panics(stage in stage_value(), count in 0u64..50) {
        let dir = tempfile::tempdir().unwrap();
        let tok = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../recipes/tokenizers/demo.json");
        let text = format!(
            "version: 1\nname: p\ntokenizer: {{path: {}}}\nsources:\n  c: {{format: synthetic, kind: shapes-caption, count: {count}, category: caption}}\n  v: {{format: synthetic, kind: shapes-vqa, count: 20, category: vqa}}\nstages:\n{stage}",
            tok.display()
        );
        let resolved = mixtape_engine::resolve::resolve(&write(&dir, text.as_bytes()), &IndexCache { dir: None });
        prop_assert!(resolved.plan.is_some() || resolved.diagnostics.has_errors());
    }
}
