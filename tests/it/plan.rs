//! `mixtape plan`: exact draws, stable JSON, fingerprints and lock files.

use crate::util::{TestDir, assert_cli_snapshot, repo, small_recipe};
use serde_json::Value;

fn plan_json(dir: &TestDir, recipe: &str) -> Value {
    let out = dir.run(&["plan", recipe, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("plan JSON")
}

#[test]
fn the_demo_plan_is_byte_identical_across_runs_and_caches() {
    let dir = TestDir::new();
    let demo = repo().join("recipes/demo.yaml");
    let cold = dir.run(&["plan", demo.to_str().unwrap(), "--json"]);
    let warm = dir.run(&["plan", demo.to_str().unwrap(), "--json"]);
    let uncached = dir.run(&["--no-cache", "plan", demo.to_str().unwrap(), "--json"]);
    assert_eq!(cold.code, 0, "{}", cold.stderr);
    assert_eq!(cold.stdout, warm.stdout);
    assert_eq!(cold.stdout, uncached.stdout);
    let cached: Vec<_> = std::fs::read_dir(dir.path(".cache/index"))
        .unwrap()
        .collect();
    // One entry per source file, and one per synthetic source (which has no files).
    let plan: Value = serde_json::from_str(&cold.stdout).unwrap();
    let parts: usize = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["files"].as_array().map_or(0, Vec::len).max(1))
        .sum();
    assert!(
        parts > plan["sources"].as_array().unwrap().len(),
        "the demo has multi-file sources"
    );
    assert_eq!(cached.len(), parts, "one cached index per source file");
}

#[test]
fn realized_shares_match_the_mix_within_half_a_point() {
    let dir = TestDir::new();
    let plan = plan_json(&dir, repo().join("recipes/demo.yaml").to_str().unwrap());
    for stage in plan["stages"].as_array().unwrap() {
        for cat in stage["categories"].as_array().unwrap() {
            let target = cat["target_share"].as_f64().unwrap();
            let planned = cat["expected_share"].as_f64().unwrap();
            assert!(
                (target - planned).abs() < 0.005,
                "stage {} category {}: {target} vs {planned}",
                stage["name"],
                cat["name"]
            );
        }
    }
}

#[test]
fn stages_continue_where_the_previous_stage_stopped() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let plan = plan_json(&dir, "r.yaml");
    let draw = |stage: usize, source: &str| -> (u64, u64) {
        let s = &plan["stages"][stage];
        let d = s["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["sources"].as_array().unwrap())
            .find(|d| d["source"] == source)
            .unwrap()
            .clone();
        (d["start"].as_u64().unwrap(), d["end"].as_u64().unwrap())
    };
    let (s0, e0) = draw(0, "caps");
    let (s1, e1) = draw(1, "caps");
    assert_eq!(s0, 0);
    assert!(e0 > 0);
    assert_eq!(
        s1, e0,
        "the second stage never reuses what the first consumed"
    );
    assert!(e1 <= 300, "max_repeat 1 keeps the draws within one pass");
}

#[test]
fn weights_split_a_category_between_its_sources() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}\n  caps2: {format: synthetic, kind: shapes-caption, count: 300, seed: 9, category: caption, weight: 3}\n",
    ).replace("kind: shapes-caption, count: 300, category: caption}", "kind: shapes-caption, count: 300, category: caption, weight: 1}");
    dir.write("r.yaml", recipe);
    let plan = plan_json(&dir, "r.yaml");
    let caption = plan["stages"][0]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "caption")
        .unwrap()
        .clone();
    let share = |name: &str| {
        caption["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["source"] == name)
            .unwrap()["weight_share"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(share("caps"), 0.25);
    assert_eq!(share("caps2"), 0.75);
}

#[test]
fn the_text_plan_shows_every_stage_and_source() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    assert_cli_snapshot!(dir, &["plan", "r.yaml"]);
}

fn fingerprint(dir: &TestDir, name: &str, recipe: &str) -> String {
    dir.write(name, recipe);
    plan_json(dir, name)["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_fingerprint_ignores_formatting_and_follows_content() {
    let dir = TestDir::new();
    let base = fingerprint(&dir, "a.yaml", &small_recipe());
    // Reordered keys, comments, block style instead of flow style, a different name and description.
    let reformatted = small_recipe()
        .replace(
            "name: small\nseed: 7\n",
            "# a comment\nseed: 7   # trailing\nname: renamed\ndescription: same data\n",
        )
        .replace(
            "    mix: {caption: 0.7, vqa: 0.3}",
            "    mix:\n      vqa: 0.3\n      caption: 0.70",
        );
    assert_eq!(fingerprint(&dir, "b.yaml", &reformatted), base);
    // A ratio changes it.
    let ratio = small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{caption: 0.6, vqa: 0.4}");
    assert_ne!(fingerprint(&dir, "c.yaml", &ratio), base);
    // A source file's content changes it.
    let with_file = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: text, path: books.jsonl, category: long-text}",
    );
    let doc = |words: usize| format!("{{\"text\": \"{}\"}}\n", "lorem ipsum ".repeat(words));
    dir.write(
        "books.jsonl",
        (0..50).map(|i| doc(100 + i)).collect::<String>(),
    );
    let before = fingerprint(&dir, "d.yaml", &with_file);
    dir.write(
        "books.jsonl",
        (0..50).map(|i| doc(101 + i)).collect::<String>(),
    );
    assert_ne!(fingerprint(&dir, "d.yaml", &with_file), before);
    // The tokenizer changes it.
    let tok = std::fs::read_to_string(crate::util::tokenizer()).unwrap();
    dir.write("tok.json", tok + "\n");
    let other_tok = small_recipe().replace(&crate::util::tokenizer(), "tok.json");
    assert_ne!(fingerprint(&dir, "e.yaml", &other_tok), base);
}

#[test]
fn a_lock_file_pins_the_plan() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let out = dir.run(&["plan", "r.yaml", "--lock", "r.lock.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(dir.path("r.lock.json").is_file());
    assert_cli_snapshot!(
        "unchanged",
        dir,
        &["plan", "r.yaml", "--locked", "r.lock.json"]
    );

    dir.write(
        "r.yaml",
        small_recipe().replace("budget: {tokens: 20000}", "budget: {tokens: 25000}"),
    );
    assert_cli_snapshot!(
        "budget_changed",
        dir,
        &["plan", "r.yaml", "--locked", "r.lock.json"]
    );
}

#[test]
fn an_invalid_recipe_has_no_plan() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe().replace("seed: 7", "sede: 7"));
    assert_cli_snapshot!(dir, &["plan", "r.yaml", "--json"]);
}

/// A recipe whose long-text source reads `data/docs.jsonl`, with `extra` added to that source.
fn recipe_over_docs(limits: &str, extra: &str) -> String {
    small_recipe()
        .replace("seed: 7\n", &format!("seed: 7\n{limits}"))
        .replace(
            "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
            &format!(
                "  prose: {{format: text, path: data/docs.jsonl, category: long-text{extra}}}"
            ),
        )
        .replace("budget: {tokens: 40000}", "budget: {samples: 2}")
        .replace("long-text: 0.3}", "long-text: 0.3}\n    max_repeat: 3")
}

#[test]
fn a_record_over_max_record_bytes_is_rejected_with_its_reason_and_the_others_kept() {
    let dir = TestDir::new();
    let big = format!("{{\"text\": \"{}\"}}", "word ".repeat(400));
    dir.write(
        "data/docs.jsonl",
        format!("{{\"text\": \"short one\"}}\n{big}\n{{\"text\": \"short two\"}}\n"),
    );
    dir.write(
        "r.yaml",
        recipe_over_docs("limits: {max_record_bytes: 1000}\n", ""),
    );
    let plan = plan_json(&dir, "r.yaml");
    let prose = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prose")
        .unwrap()
        .clone();
    assert_eq!(prose["records"], 3);
    assert_eq!(prose["samples"], 2);
    assert_eq!(
        prose["rejected"],
        serde_json::json!({"record_too_large": 1})
    );

    assert_cli_snapshot!(dir, &["check", "r.yaml"]);

    // A per-source setting overrides the recipe's limit.
    let other = TestDir::new();
    other.write(
        "data/docs.jsonl",
        format!("{{\"text\": \"short one\"}}\n{big}\n"),
    );
    other.write(
        "r.yaml",
        recipe_over_docs(
            "limits: {max_record_bytes: 1000}\n",
            ", max_record_bytes: 4096",
        ),
    );
    let plan = plan_json(&other, "r.yaml");
    let prose = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prose")
        .unwrap()
        .clone();
    assert_eq!(prose["samples"], 2);
    assert_eq!(prose["rejected"], serde_json::json!({}));
}
