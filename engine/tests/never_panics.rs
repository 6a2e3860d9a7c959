//! `check` never panics, overflows its stack or runs away: over 12,000 generated recipes (random
//! bytes, recipe-shaped YAML, mutations of a valid recipe, anchor/alias webs and deep nesting) go
//! through the loader, and each must come back as a recipe or as located diagnostics that render.
//! A handful more go through the planner too. The whole file runs in well under a minute in the test
//! profile on two cores; `fuzz/` holds a cargo-fuzz target for longer runs.

use std::path::{Path, PathBuf};

use mixtape_engine::diag::Location;
use mixtape_engine::index::IndexCache;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const KEYS: &[&str] = &[
    "version",
    "name",
    "seed",
    "extends",
    "tokenizer",
    "template",
    "image",
    "sources",
    "stages",
    "format",
    "path",
    "category",
    "weight",
    "kind",
    "count",
    "seq_len",
    "budget",
    "mix",
    "max_repeat",
    "tokens",
    "samples",
    "max_pixels",
    "min_pixels",
    "patch_size",
    "merge_size",
    "train",
    "pack",
    "lr",
    "trainable",
    "buffer",
    "schema",
    "fields",
    "image_root",
    "caption",
    "vqa",
    "shapes-vqa",
    "synthetic",
    "limits",
    "max_record_bytes",
    "../x",
    ".",
];

fn tokenizer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../recipes/tokenizers/demo.json")
}

/// A valid recipe, the seed of the mutation generator.
fn valid_recipe() -> String {
    format!(
        "version: 1\nname: fuzz\nseed: 7\ntokenizer: {{path: {}}}\nlimits: {{max_record_bytes: 65536}}\nimage: &img {{max_pixels: 200704}}\nsources:\n  caps: {{format: synthetic, kind: shapes-caption, count: 30, category: caption}}\n  qa: {{format: synthetic, kind: shapes-vqa, count: 30, category: vqa}}\nstages:\n  - name: warmup\n    seq_len: 2048\n    budget: {{tokens: 2000}}\n    mix: {{caption: 0.7, vqa: 0.3}}\n    image: *img\n  - name: main\n    extends: warmup\n    train: {{lr: 1.0e-5, trainable: [llm]}}\n    pack: {{algorithm: bfd, buffer: 64}}\n",
        tokenizer().display()
    )
}

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
        "[a-z*&./-]{0,12}",
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

/// Byte-level edits of a valid recipe: most results are near-valid, which reaches deep checks.
fn mutated_recipe() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..4,
        any::<u8>(),
        prop::sample::select(KEYS),
    );
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut bytes = valid_recipe().into_bytes();
        for (at, op, byte, word) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                2 if i < bytes.len() => bytes[i] = byte,
                _ => bytes.splice(i..i, word.bytes()).for_each(drop),
            }
        }
        bytes
    })
}

/// Anchors and aliases: `levels` lists, each aliasing the previous `width` times (a bomb when
/// `width^levels` is large), in flow or block style, sometimes under a real recipe key.
fn alias_web() -> impl Strategy<Value = String> {
    (
        1usize..12,
        1usize..12,
        any::<bool>(),
        prop::sample::select(&["a", "stages", "sources", "mix"][..]),
    )
        .prop_map(|(levels, width, block, key)| {
            let mut text = format!("{key}: &l0 [x, {key}]\n");
            for i in 1..levels {
                let refs = vec![format!("*l{}", i - 1); width];
                if block {
                    text.push_str(&format!("l{i}: &l{i}\n"));
                    for r in refs {
                        text.push_str(&format!("  - {r}\n"));
                    }
                } else {
                    text.push_str(&format!("l{i}: &l{i} [{}]\n", refs.join(", ")));
                }
            }
            text.push_str(&format!("version: *l{}\n", levels - 1));
            text
        })
}

/// Deep nesting in every style YAML has: flow lists and maps, block lists and maps.
fn deep_nesting() -> impl Strategy<Value = String> {
    (0u8..4, 1usize..4_000).prop_map(|(style, depth)| match style {
        0 => format!("stages: {}1{}\n", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("stages: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth)),
        // Block styles indent by depth, so the text grows with depth^2: keep them shallower.
        2 => (0..depth.min(400))
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect(),
        _ => (0..depth.min(400))
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect(),
    })
}

/// Loads `bytes` as a recipe and checks the outcome is a recipe or located, renderable errors.
fn load_ok(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    let loaded = mixtape_engine::recipe::load(path);
    prop_assert!(loaded.recipe.is_some() || loaded.diagnostics.has_errors());
    for d in loaded.diagnostics.iter() {
        let _ = d.render(&loaded.sources);
        // Every problem in the recipe file itself is located in it.
        prop_assert!(
            !matches!(d.location, Location::None),
            "unlocated: {}",
            d.message
        );
    }
    Ok(())
}

/// Runs `cases` generated inputs through [`load_ok`], all in one temp folder.
fn fuzz<S: Strategy>(strategy: S, cases: u32, bytes: impl Fn(&S::Value) -> Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipe.yaml");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| load_ok(&path, &bytes(&value)))
        .unwrap();
}

#[test]
fn arbitrary_bytes_never_panic() {
    fuzz(
        prop::collection::vec(any::<u8>(), 0..400),
        2_500,
        Clone::clone,
    );
}

#[test]
fn recipe_shaped_yaml_never_panics() {
    fuzz(recipe_text(), 2_500, |t| t.clone().into_bytes());
}

#[test]
fn mutations_of_a_valid_recipe_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipe.yaml");
    // The seed itself is valid, so the mutations start from a recipe that reaches every check.
    let loaded = {
        std::fs::write(&path, valid_recipe()).unwrap();
        mixtape_engine::recipe::load(&path)
    };
    assert!(loaded.recipe.is_some(), "{:?}", loaded.diagnostics);
    fuzz(mutated_recipe(), 2_500, Clone::clone);
}

#[test]
fn alias_webs_never_explode() {
    fuzz(alias_web(), 2_500, |t| t.clone().into_bytes());
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    fuzz(deep_nesting(), 2_500, |t| t.clone().into_bytes());
}

fn stage_value() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("1"), Just("-3"), Just("4096"), Just("x")],
        prop_oneof![
            Just("{tokens: 5000}"),
            Just("{samples: 0}"),
            Just("{}"),
            Just("{image_tokens: 99999999}")
        ],
        prop_oneof![
            Just("{caption: 1.0}"),
            Just("{caption: 0.5, vqa: 0.5}"),
            Just("{nope: 1}"),
            Just("{caption: .nan}")
        ],
        prop_oneof![
            Just(""),
            Just("max_repeat: 0\n"),
            Just("image: {max_pixels: 100}\n"),
            Just("extends: a\n")
        ],
    )
        .prop_map(|(seq, budget, mix, extra)| {
            format!(
                "  - name: a\n    seq_len: {seq}\n    budget: {budget}\n    mix: {mix}\n    {extra}"
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Through the planner too: random stage settings over small synthetic sources.
    #[test]
    fn planning_random_stages_never_panics(stage in stage_value(), count in 0u64..50) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "version: 1\nname: p\ntokenizer: {{path: {}}}\nsources:\n  c: {{format: synthetic, kind: shapes-caption, count: {count}, category: caption}}\n  v: {{format: synthetic, kind: shapes-vqa, count: 20, category: vqa}}\nstages:\n{stage}",
            tokenizer().display()
        );
        let path = dir.path().join("recipe.yaml");
        std::fs::write(&path, text).unwrap();
        let resolved = mixtape_engine::resolve::resolve(&path, &IndexCache { dir: None });
        prop_assert!(resolved.plan.is_some() || resolved.diagnostics.has_errors());
    }
}
