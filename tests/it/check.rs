//! `mixtape check`: every rule of the recipe language, valid and invalid.

use crate::util::{TestDir, small_recipe, tokenizer};

fn check(dir: &TestDir, recipe: &str) -> crate::util::Output {
    dir.write("recipe.yaml", recipe);
    dir.run(&["check", "recipe.yaml"])
}

#[test]
fn the_demo_recipe_is_valid() {
    let dir = TestDir::new();
    let demo = crate::util::repo().join("recipes/demo.yaml");
    let out = dir.run(&["check", demo.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("ok: ") && out.stderr.contains("11 sources, 3 stages"), "{}", out.stderr);
}

#[test]
fn a_valid_recipe_exits_zero() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.starts_with("ok: recipe.yaml: 3 sources, 2 stages, fingerprint "), "{}", out.stderr);
}

#[test]
fn unknown_keys_get_a_location_and_a_did_you_mean() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace("seed: 7", "sede: 7").replace("    seq_len: 4096", "    seq_len: 4096\n    budgte: 3");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: unknown key `sede` in the recipe\n  --> recipe.yaml:3:1"), "{}", out.stderr);
    assert!(out.stderr.contains("= hint: did you mean `seed`?"), "{}", out.stderr);
    assert!(out.stderr.contains("unknown key `budgte` in a stage\n  --> recipe.yaml:17:5"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `budget`?"), "{}", out.stderr);
}

#[test]
fn mix_shares_must_sum_to_one_and_the_hint_gives_the_sum() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{caption: 0.7, vqa: 0.25}"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: mix shares sum to 0.95, not 1\n  --> recipe.yaml:13:10"), "{}", out.stderr);
    assert!(out.stderr.contains("adjust them by +0.05"), "{}", out.stderr);
}

#[test]
fn missing_files_name_the_glob() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: text, path: books/*.jsonl, category: long-text}",
    );
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: no files match `books/*.jsonl`\n  --> recipe.yaml:8:31"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: looked for books/*.jsonl; paths are relative to the recipe file"), "{}", out.stderr);
}

#[test]
fn undefined_categories_are_reported_with_the_known_ones() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{captions: 0.7, ocr: 0.3}"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: undefined category `captions`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `caption`?"), "{}", out.stderr);
    assert!(out.stderr.contains("error: undefined category `ocr`"), "{}", out.stderr);
    assert!(out.stderr.contains("known categories: `caption`, `long-text` or `vqa`"), "{}", out.stderr);
}

#[test]
fn stage_extends_must_name_a_stage_and_not_cycle() {
    let dir = TestDir::new();
    let unknown = small_recipe().replace("  - name: main\n", "  - name: main\n    extends: warmpu\n");
    let out = check(&dir, &unknown);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: stage extends unknown stage `warmpu`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `warmup`?"), "{}", out.stderr);

    let cyclic = small_recipe()
        .replace("  - name: main\n", "  - name: main\n    extends: warmup\n")
        .replace("  - name: warmup\n", "  - name: warmup\n    extends: main\n");
    let out = check(&dir, &cyclic);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("stage `extends` forms a cycle: "), "{}", out.stderr);
}

#[test]
fn recipe_extends_cycles_are_reported() {
    let dir = TestDir::new();
    dir.write("a.yaml", "extends: b.yaml\nversion: 1\n");
    dir.write("b.yaml", "extends: a.yaml\nname: b\n");
    let out = dir.run(&["check", "a.yaml"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("recipe `extends` forms a cycle:"), "{}", out.stderr);
    assert!(out.stderr.contains("  --> b.yaml:1:10"), "{}", out.stderr);
}

#[test]
fn recipe_extends_merges_maps_and_replaces_lists() {
    let dir = TestDir::new();
    dir.write("base.yaml", small_recipe());
    // The child changes one source's count (map merge) and replaces the stage list.
    dir.write(
        "child.yaml",
        "extends: base.yaml\nname: child\nsources:\n  caps: {count: 400}\nstages:\n  - name: only\n    seq_len: 1024\n    budget: {samples: 50}\n    mix: {caption: 1.0}\n",
    );
    let out = dir.run(&["plan", "child.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["name"], "child");
    assert_eq!(plan["stages"].as_array().unwrap().len(), 1);
    let caps = plan["sources"].as_array().unwrap().iter().find(|s| s["name"] == "caps").unwrap();
    assert_eq!(caps["samples"], 400);
    assert_eq!(caps["settings"]["synthetic"]["kind"], "shapes-caption", "the base's other keys are kept");
}

#[test]
fn a_budget_needs_exactly_one_basis() {
    let dir = TestDir::new();
    let none = small_recipe().replace("budget: {tokens: 20000}", "budget: {}");
    let out = check(&dir, &none);
    assert!(out.stderr.contains("error: `budget` needs exactly one basis, found none"), "{}", out.stderr);
    let two = small_recipe().replace("budget: {tokens: 20000}", "budget: {tokens: 20000, samples: 10}");
    let out = check(&dir, &two);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("found both `tokens` and `samples`"), "{}", out.stderr);
}

#[test]
fn negative_nan_and_zero_numbers_are_rejected() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("seq_len: 2048", "seq_len: -5")
        .replace("{caption: 0.7, vqa: 0.3}", "{caption: .nan, vqa: 0.3}")
        .replace("budget: {tokens: 40000}", "budget: {tokens: 0}");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("`seq_len` must be greater than 0, found -5"), "{}", out.stderr);
    assert!(out.stderr.contains("share of `caption` must be a finite number, found NaN"), "{}", out.stderr);
    assert!(out.stderr.contains("budget `tokens` must be greater than 0, found 0"), "{}", out.stderr);
}

#[test]
fn an_image_policy_that_can_yield_a_zero_side_is_refused() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace("image: {max_pixels: 200704}", "image: {max_pixels: 50176}"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("image max_pixels 50176 can resize an image to a zero side"), "{}", out.stderr);
    assert!(out.stderr.contains("raise max_pixels to at least 156800, or lower max_aspect_ratio to at most 64"), "{}", out.stderr);
}

#[test]
fn sources_that_cannot_satisfy_a_stage_within_max_repeat_are_named() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace("budget: {tokens: 40000}", "budget: {tokens: 4000000}"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("source `caps` cannot satisfy stage `main` within max_repeat 1: needs 1,200,000 tokens"), "{}", out.stderr);
    assert!(out.stderr.contains("or set `max_repeat: "), "{}", out.stderr);
}

#[test]
fn every_error_is_reported_at_once() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("version: 1", "version: 2")
        .replace("kind: shapes-vqa", "kind: shapes-qa")
        .replace("seq_len: 2048", "seq_len: lots")
        .replace("{caption: 0.3, vqa: 0.4, long-text: 0.3}", "{caption: 0.3, vqa: 0.4, long-text: 0.4}");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid: recipe.yaml: 4 errors"), "{}", out.stderr);
    insta::assert_snapshot!("every_error_at_once", dir.redact(&out.stderr));
}

#[test]
fn yaml_syntax_errors_point_at_the_line() {
    let dir = TestDir::new();
    let out = check(&dir, "version: 1\nname: [unclosed\n");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: invalid YAML: "), "{}", out.stderr);
    assert!(out.stderr.contains("--> recipe.yaml:"), "{}", out.stderr);
}

#[test]
fn json_output_gives_one_object_per_diagnostic() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe().replace("seed: 7", "sede: 7"));
    let out = dir.run(&["check", "--json", "recipe.yaml"]);
    assert_eq!(out.code, 1);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["position"], "recipe.yaml:3:1");
    assert_eq!(lines[0]["hint"], "did you mean `seed`?");
}

#[test]
fn bad_records_are_warnings_with_their_location() {
    let dir = TestDir::new();
    dir.write("data/caps.jsonl", "{\"text\": \"fine\"}\n{not json\n{\"text\": \"\"}\n");
    let recipe = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: text, path: data/caps.jsonl, category: long-text}",
    ).replace("budget: {tokens: 40000}", "budget: {samples: 2}").replace("long-text: 0.3}", "long-text: 0.3}\n    max_repeat: 3");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("warning: source `prose`: 2 of 3 records rejected"), "{}", out.stderr);
    assert!(out.stderr.contains("caps.jsonl:2"), "{}", out.stderr);
}

#[test]
fn a_missing_tokenizer_is_an_error_at_its_path() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace(&tokenizer(), "nope/tokenizer.json"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: tokenizer file not found: nope/tokenizer.json\n  --> recipe.yaml:4:19"), "{}", out.stderr);
}

#[test]
fn the_mindvl_example_is_valid_but_for_the_data_it_points_at() {
    let dir = TestDir::new();
    let recipe = crate::util::repo().join("recipes/mindvl.yaml");
    dir.write("recipe.yaml", "");
    let out = dir.run(&["check", "--json", recipe.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 12, "one error per source path: {}", out.stdout);
    for l in &lines {
        assert!(l["message"].as_str().unwrap().starts_with("no files match `data/"), "{l}");
    }
}
