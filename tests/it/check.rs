//! `mixtape check`: every rule of the recipe language, valid and invalid.

//!
//! Each diagnostic's full rendering (message, location, snippet, hint, summary line) is pinned by a
//! CLI snapshot in `snapshots/`.

use crate::util::{TestDir, assert_cli_snapshot, small_recipe, tokenizer};

/// `mixtape check recipe.yaml`: the tests write `recipe.yaml`, then check it.
const CHECK: &[&str] = &["check", "recipe.yaml"];

fn check(dir: &TestDir, recipe: &str) -> crate::util::Output {
    dir.write("recipe.yaml", recipe);
    dir.run(&["check", "recipe.yaml"])
}

#[test]
fn the_demo_recipe_is_valid() {
    let dir = TestDir::new();
    let demo = crate::util::repo().join("recipes/demo.yaml");
    assert_cli_snapshot!(dir, &["check", demo.to_str().unwrap()]);
}

#[test]
fn a_valid_recipe_exits_zero() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn unknown_keys_get_a_location_and_a_did_you_mean() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("seed: 7", "sede: 7")
        .replace("    seq_len: 4096", "    seq_len: 4096\n    budgte: 3");
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn mix_shares_must_sum_to_one_and_the_hint_gives_the_sum() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{caption: 0.7, vqa: 0.25}"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn missing_files_name_the_glob() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: text, path: books/*.jsonl, category: long-text}",
    );
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn undefined_categories_are_reported_with_the_known_ones() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{captions: 0.7, ocr: 0.3}"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn stage_extends_must_name_a_stage_and_not_cycle() {
    let dir = TestDir::new();
    let unknown =
        small_recipe().replace("  - name: main\n", "  - name: main\n    extends: warmpu\n");
    dir.write("recipe.yaml", unknown);
    assert_cli_snapshot!("stage_extends_unknown", dir, CHECK);

    let cyclic = small_recipe()
        .replace("  - name: main\n", "  - name: main\n    extends: warmup\n")
        .replace(
            "  - name: warmup\n",
            "  - name: warmup\n    extends: main\n",
        );
    dir.write("recipe.yaml", cyclic);
    assert_cli_snapshot!("stage_extends_cycle", dir, CHECK);
}

#[test]
fn recipe_extends_cycles_are_reported() {
    let dir = TestDir::new();
    dir.write("a.yaml", "extends: b.yaml\nversion: 1\n");
    dir.write("b.yaml", "extends: a.yaml\nname: b\n");
    assert_cli_snapshot!(dir, &["check", "a.yaml"]);
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
    let caps = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "caps")
        .unwrap();
    assert_eq!(caps["samples"], 400);
    assert_eq!(
        caps["settings"]["synthetic"]["kind"], "shapes-caption",
        "the base's other keys are kept"
    );
}

#[test]
fn a_budget_needs_exactly_one_basis() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("budget: {tokens: 20000}", "budget: {}"),
    );
    assert_cli_snapshot!("budget_without_basis", dir, CHECK);
    dir.write(
        "recipe.yaml",
        small_recipe().replace(
            "budget: {tokens: 20000}",
            "budget: {tokens: 20000, samples: 10}",
        ),
    );
    assert_cli_snapshot!("budget_with_two_bases", dir, CHECK);
}

#[test]
fn negative_nan_and_zero_numbers_are_rejected() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("seq_len: 2048", "seq_len: -5")
        .replace("{caption: 0.7, vqa: 0.3}", "{caption: .nan, vqa: 0.3}")
        .replace("budget: {tokens: 40000}", "budget: {tokens: 0}");
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn an_image_policy_that_can_yield_a_zero_side_is_refused() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("image: {max_pixels: 200704}", "image: {max_pixels: 50176}"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn sources_that_cannot_satisfy_a_stage_within_max_repeat_are_named() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("budget: {tokens: 40000}", "budget: {tokens: 4000000}"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn every_error_is_reported_at_once() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("version: 1", "version: 2")
        .replace("kind: shapes-vqa", "kind: shapes-qa")
        .replace("seq_len: 2048", "seq_len: lots")
        .replace(
            "{caption: 0.3, vqa: 0.4, long-text: 0.3}",
            "{caption: 0.3, vqa: 0.4, long-text: 0.4}",
        );
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn yaml_syntax_errors_point_at_the_line() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", "version: 1\nname: [unclosed\n");
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn json_output_gives_one_object_per_diagnostic() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe().replace("seed: 7", "sede: 7"));
    let out = dir.run(&["check", "--json", "recipe.yaml"]);
    assert_eq!(out.code, 1);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["position"], "recipe.yaml:3:1");
    assert_eq!(lines[0]["hint"], "did you mean `seed`?");
}

#[test]
fn bad_records_are_warnings_with_their_location() {
    let dir = TestDir::new();
    dir.write(
        "data/caps.jsonl",
        "{\"text\": \"fine\"}\n{not json\n{\"text\": \"\"}\n",
    );
    let recipe = small_recipe()
        .replace(
            "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
            "  prose: {format: text, path: data/caps.jsonl, category: long-text}",
        )
        .replace("budget: {tokens: 40000}", "budget: {samples: 2}")
        .replace("long-text: 0.3}", "long-text: 0.3}\n    max_repeat: 3");
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn a_missing_tokenizer_is_an_error_at_its_path() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace(&tokenizer(), "nope/tokenizer.json"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn the_mindvl_example_is_valid_but_for_the_data_it_points_at() {
    let dir = TestDir::new();
    let recipe = crate::util::repo().join("recipes/mindvl.yaml");
    dir.write("recipe.yaml", "");
    let out = dir.run(&["check", "--json", recipe.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "one error per source path: {}", out.stdout);
    for l in &lines {
        assert!(
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("no files match `data/"),
            "{l}"
        );
    }
}

#[test]
fn stage_names_that_would_write_outside_out_are_refused_at_the_name() {
    let dir = TestDir::new();
    for bad in [
        "../../x",
        "/abs/path",
        ".",
        "..",
        "build.json",
        "rejects.jsonl",
        "_tmp",
        "a b",
    ] {
        let quoted = format!("'{bad}'");
        let out = check(
            &dir,
            &small_recipe().replace("  - name: warmup\n", &format!("  - name: {quoted}\n")),
        );
        assert_eq!(out.code, 1, "{bad}: {}", out.stderr);
        let expected = format!("error: stage name `{bad}` is not allowed: ");
        assert!(out.stderr.contains(&expected), "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("  --> recipe.yaml:10:11"),
            "{bad}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("use 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit"),
            "{}",
            out.stderr
        );
    }
    // The builder never sees such a name: nothing is written next to the output folder.
    dir.write(
        "recipe.yaml",
        small_recipe().replace("  - name: warmup\n", "  - name: ../escaped\n"),
    );
    let out = dir.run(&["build", "recipe.yaml", "--out", "out/inner", "--quiet"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("stage name `../escaped` is not allowed"),
        "{}",
        out.stderr
    );
    assert!(!dir.path("out/escaped").exists() && !dir.path("escaped").exists());
}

#[test]
fn stage_names_differing_only_in_case_are_duplicates() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("  - name: main\n", "  - name: WarmUp\n"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn source_names_follow_the_same_rule() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace("  qa: {", "  ../qa: {"),
    );
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn an_alias_bomb_is_an_error_with_a_location_not_an_out_of_memory() {
    let dir = TestDir::new();
    // 9 levels of 10 aliases: 10^9 nodes if expanded.
    let mut bomb =
        String::from("version: 1\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    dir.write("recipe.yaml", bomb);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn ten_thousand_levels_of_nesting_are_an_error_not_a_stack_overflow() {
    let dir = TestDir::new();
    let deep: String = (0..10_000)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    dir.write("recipe.yaml", format!("stages:\n{deep}"));
    assert_cli_snapshot!("nested_block_sequences", dir, CHECK);
    let flow = format!("stages: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    dir.write("recipe.yaml", flow);
    assert_cli_snapshot!("nested_flow_sequences", dir, CHECK);
}

#[test]
fn a_stage_extends_chain_is_bounded_whatever_the_stage_order() {
    let dir = TestDir::new();
    let chain = |reverse: bool| {
        let mut stages: Vec<String> = (0..40)
            .map(|i| match i {
                0 => "  - {name: s0, seq_len: 2048, budget: {samples: 10}, mix: {caption: 1.0}}\n"
                    .to_string(),
                _ => format!("  - {{name: s{i}, extends: s{}}}\n", i - 1),
            })
            .collect();
        if reverse {
            stages.reverse();
        }
        small_recipe()
            .split("stages:\n")
            .next()
            .unwrap()
            .to_string()
            + "stages:\n"
            + &stages.concat()
    };
    dir.write("recipe.yaml", chain(false));
    assert_cli_snapshot!("parents_first", dir, CHECK);
    dir.write("recipe.yaml", chain(true));
    assert_cli_snapshot!("children_first", dir, CHECK);
}

#[test]
fn empty_and_non_utf8_recipes_are_located() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", "");
    assert_cli_snapshot!("empty_recipe", dir, CHECK);
    dir.write("recipe.yaml", "# only a comment\n");
    assert_cli_snapshot!("comment_only_recipe", dir, CHECK);
    dir.write("recipe.yaml", b"version: 1\nname: caf\xe9\n");
    assert_cli_snapshot!("non_utf8_recipe", dir, CHECK);
}

#[test]
fn numeric_settings_have_sane_bounds() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("count: 300, category: caption", "count: 1000000000, category: caption")
        .replace("budget: {tokens: 20000}", "budget: {tokens: 1e16}")
        .replace("seq_len: 4096", "seq_len: 4")
        .replace("mix: {caption: 0.3, vqa: 0.4, long-text: 0.3}", "mix: {caption: 0.3, vqa: 0.4, long-text: 0.3}\n    max_repeat: 5000\n    train: {lr: 30, batch_size: 2000000}\n    pack: {buffer: 100000000}");
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn a_category_no_stage_mixes_is_a_warning_with_a_did_you_mean() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace(
        "  prose: {",
        "  caps2: {format: synthetic, kind: shapes-caption, count: 300, category: captio}\n  prose: {",
    );
    dir.write("recipe.yaml", recipe);
    assert_cli_snapshot!(dir, CHECK);
}

#[test]
fn the_record_cap_is_a_bounded_setting() {
    let dir = TestDir::new();
    dir.write(
        "recipe.yaml",
        small_recipe().replace(
            "seed: 7\n",
            "seed: 7\nlimits: {max_record_bytes: 0, max_bytes: 1}\n",
        ),
    );
    assert_cli_snapshot!("recipe_wide_cap", dir, CHECK);
    dir.write(
        "recipe.yaml",
        small_recipe().replace(
            "count: 40, category: long-text}",
            "count: 40, category: long-text, max_record_bytes: 100}",
        ),
    );
    assert_cli_snapshot!("cap_on_a_synthetic_source", dir, CHECK);
}

/// A stage's `image` override that conflicts with a recipe-level setting is reported at the
/// stage's line, where the edit was made, not at the recipe-level value it conflicts with.
#[test]
fn an_image_conflict_caused_by_a_stage_override_points_at_the_override() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("seed: 7", "seed: 7\nimage: {min_pixels: 3136}")
        .replace("image: {max_pixels: 200704}", "image: {max_pixels: 1000}");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "error: stage `warmup`: image min_pixels 3136 is above max_pixels 1000\n   --> recipe.yaml:15:25"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "this stage's max_pixels is checked against min_pixels 3136 from the recipe-level `image`"
        ),
        "{}",
        out.stderr
    );
}
