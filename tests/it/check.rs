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
    assert!(
        out.stderr.contains("ok: ") && out.stderr.contains("11 sources, 3 stages"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_valid_recipe_exits_zero() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("ok: recipe.yaml: 3 sources, 2 stages, fingerprint "),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_keys_get_a_location_and_a_did_you_mean() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("seed: 7", "sede: 7")
        .replace("    seq_len: 4096", "    seq_len: 4096\n    budgte: 3");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: unknown key `sede` in the recipe\n  --> recipe.yaml:3:1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("= hint: did you mean `seed`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("unknown key `budgte` in a stage\n  --> recipe.yaml:17:5"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `budget`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn mix_shares_must_sum_to_one_and_the_hint_gives_the_sum() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{caption: 0.7, vqa: 0.25}"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: mix shares sum to 0.95, not 1\n  --> recipe.yaml:13:10"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("adjust them by +0.05"),
        "{}",
        out.stderr
    );
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
    assert!(
        out.stderr
            .contains("error: no files match `books/*.jsonl`\n  --> recipe.yaml:8:31"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hint: looked for books/*.jsonl; paths are relative to the recipe file"),
        "{}",
        out.stderr
    );
}

#[test]
fn undefined_categories_are_reported_with_the_known_ones() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace("{caption: 0.7, vqa: 0.3}", "{captions: 0.7, ocr: 0.3}"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("error: undefined category `captions`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `caption`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("error: undefined category `ocr`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("known categories: `caption`, `long-text` or `vqa`"),
        "{}",
        out.stderr
    );
}

#[test]
fn stage_extends_must_name_a_stage_and_not_cycle() {
    let dir = TestDir::new();
    let unknown =
        small_recipe().replace("  - name: main\n", "  - name: main\n    extends: warmpu\n");
    let out = check(&dir, &unknown);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: stage extends unknown stage `warmpu`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `warmup`?"),
        "{}",
        out.stderr
    );

    let cyclic = small_recipe()
        .replace("  - name: main\n", "  - name: main\n    extends: warmup\n")
        .replace(
            "  - name: warmup\n",
            "  - name: warmup\n    extends: main\n",
        );
    let out = check(&dir, &cyclic);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("stage `extends` forms a cycle: "),
        "{}",
        out.stderr
    );
}

#[test]
fn recipe_extends_cycles_are_reported() {
    let dir = TestDir::new();
    dir.write("a.yaml", "extends: b.yaml\nversion: 1\n");
    dir.write("b.yaml", "extends: a.yaml\nname: b\n");
    let out = dir.run(&["check", "a.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("recipe `extends` forms a cycle:"),
        "{}",
        out.stderr
    );
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
    let none = small_recipe().replace("budget: {tokens: 20000}", "budget: {}");
    let out = check(&dir, &none);
    assert!(
        out.stderr
            .contains("error: `budget` needs exactly one basis, found none"),
        "{}",
        out.stderr
    );
    let two = small_recipe().replace(
        "budget: {tokens: 20000}",
        "budget: {tokens: 20000, samples: 10}",
    );
    let out = check(&dir, &two);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("found both `tokens` and `samples`"),
        "{}",
        out.stderr
    );
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
    assert!(
        out.stderr
            .contains("`seq_len` must be at least 16, found -5"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("share of `caption` must be a finite number, found NaN"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("budget `tokens` must be greater than 0, found 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_image_policy_that_can_yield_a_zero_side_is_refused() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace("image: {max_pixels: 200704}", "image: {max_pixels: 50176}"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("image max_pixels 50176 can resize an image to a zero side"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "raise max_pixels to at least 156800, or lower max_aspect_ratio to at most 64"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn sources_that_cannot_satisfy_a_stage_within_max_repeat_are_named() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace("budget: {tokens: 40000}", "budget: {tokens: 4000000}"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "source `caps` cannot satisfy stage `main` within max_repeat 1: needs 1,200,000 tokens"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("or set `max_repeat: "),
        "{}",
        out.stderr
    );
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
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("invalid: recipe.yaml: 4 errors"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!("every_error_at_once", dir.redact(&out.stderr));
}

#[test]
fn yaml_syntax_errors_point_at_the_line() {
    let dir = TestDir::new();
    let out = check(&dir, "version: 1\nname: [unclosed\n");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("error: invalid YAML: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--> recipe.yaml:"), "{}", out.stderr);
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
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: source `prose`: 2 of 3 records rejected"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("caps.jsonl:2"), "{}", out.stderr);
}

#[test]
fn a_missing_tokenizer_is_an_error_at_its_path() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace(&tokenizer(), "nope/tokenizer.json"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "error: tokenizer file not found: nope/tokenizer.json\n  --> recipe.yaml:4:19"
        ),
        "{}",
        out.stderr
    );
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
    let out = check(
        &dir,
        &small_recipe().replace("  - name: main\n", "  - name: WarmUp\n"),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("error: duplicate stage name `WarmUp`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`warmup` differs only in case"),
        "{}",
        out.stderr
    );
}

#[test]
fn source_names_follow_the_same_rule() {
    let dir = TestDir::new();
    let out = check(&dir, &small_recipe().replace("  qa: {", "  ../qa: {"));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "error: source name `../qa` is not allowed: it contains `/`\n  --> recipe.yaml:7:3"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("such as `qa`"), "{}", out.stderr);
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
    let out = check(&dir, &bomb);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("error: anchors and aliases expand this recipe past 200000 copied nodes and bytes\n  --> recipe.yaml:"), "{}", out.stderr);
    assert!(out.stderr.contains("alias bomb"), "{}", out.stderr);
}

#[test]
fn ten_thousand_levels_of_nesting_are_an_error_not_a_stack_overflow() {
    let dir = TestDir::new();
    let deep: String = (0..10_000)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    let out = check(&dir, &format!("stages:\n{deep}"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: YAML nested deeper than 64 levels\n  --> recipe.yaml:65:"),
        "{}",
        out.stderr
    );
    let flow = format!("stages: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let out = check(&dir, &flow);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--> recipe.yaml:1:"), "{}", out.stderr);
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
    for reverse in [false, true] {
        let out = check(&dir, &chain(reverse));
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("error: stage `extends` chain longer than 32 stages"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn empty_and_non_utf8_recipes_are_located() {
    let dir = TestDir::new();
    let out = check(&dir, "");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: recipe file is empty\n  --> recipe.yaml:1:1"),
        "{}",
        out.stderr
    );
    let out = check(&dir, "# only a comment\n");
    assert!(
        out.stderr
            .contains("error: recipe file is empty\n  --> recipe.yaml:1:1"),
        "{}",
        out.stderr
    );
    dir.write("recipe.yaml", b"version: 1\nname: caf\xe9\n");
    let out = dir.run(&["check", "recipe.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: recipe file is not valid UTF-8 (byte 0xe9)\n  --> recipe.yaml:2:10"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("= hint: save the recipe as UTF-8"),
        "{}",
        out.stderr
    );
}

#[test]
fn numeric_settings_have_sane_bounds() {
    let dir = TestDir::new();
    let recipe = small_recipe()
        .replace("count: 300, category: caption", "count: 1000000000, category: caption")
        .replace("budget: {tokens: 20000}", "budget: {tokens: 1e16}")
        .replace("seq_len: 4096", "seq_len: 4")
        .replace("mix: {caption: 0.3, vqa: 0.4, long-text: 0.3}", "mix: {caption: 0.3, vqa: 0.4, long-text: 0.3}\n    max_repeat: 5000\n    train: {lr: 30, batch_size: 2000000}\n    pack: {buffer: 100000000}");
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 1);
    for expected in [
        "error: `count` must be at most 100,000,000, found 1000000000\n  --> recipe.yaml:6:",
        "error: budget `tokens` must be at most 1,000,000,000,000,000, found 10000000000000000\n  --> recipe.yaml:12:",
        "error: `seq_len` must be at least 16, found 4\n  --> recipe.yaml:16:",
        "error: `max_repeat` must be at most 1,000, found 5000\n  --> recipe.yaml:19:",
        "error: train `lr` must be at most 10, found 30\n  --> recipe.yaml:20:",
        "error: train `batch_size` must be at most 1,048,576, found 2000000",
        "error: pack `buffer` must be at most 16,777,216, found 100000000",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("invalid: recipe.yaml: 7 errors"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_category_no_stage_mixes_is_a_warning_with_a_did_you_mean() {
    let dir = TestDir::new();
    let recipe = small_recipe().replace(
        "  prose: {",
        "  caps2: {format: synthetic, kind: shapes-caption, count: 300, category: captio}\n  prose: {",
    );
    let out = check(&dir, &recipe);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: source `caps2` has category `captio`, which no stage's mix uses\n  --> recipe.yaml:8:74"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("= hint: did you mean `caption`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(1 warning)"), "{}", out.stderr);
}

#[test]
fn the_record_cap_is_a_bounded_setting() {
    let dir = TestDir::new();
    let out = check(
        &dir,
        &small_recipe().replace(
            "seed: 7\n",
            "seed: 7\nlimits: {max_record_bytes: 0, max_bytes: 1}\n",
        ),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: limits `max_record_bytes` must be greater than 0, found 0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown key `max_bytes` in `limits`"),
        "{}",
        out.stderr
    );
    let out = check(
        &dir,
        &small_recipe().replace(
            "count: 40, category: long-text}",
            "count: 40, category: long-text, max_record_bytes: 100}",
        ),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("`max_record_bytes` does not apply to source `prose`"),
        "{}",
        out.stderr
    );
}
