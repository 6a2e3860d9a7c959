//! `mixtape diff`: what changed between two recipes or lock files, per stage.

use crate::util::{TestDir, assert_cli_snapshot, small_recipe};

#[test]
fn identical_recipes_say_so() {
    let dir = TestDir::new();
    dir.write("a.yaml", small_recipe());
    dir.write(
        "b.yaml",
        small_recipe().replace("name: small", "name: same-but-renamed"),
    );
    assert_cli_snapshot!(dir, &["diff", "a.yaml", "b.yaml", "--exit-code"]);
}

#[test]
fn ratio_and_budget_changes_show_their_effect_on_tokens() {
    let dir = TestDir::new();
    dir.write("a.yaml", small_recipe());
    dir.write(
        "b.yaml",
        small_recipe()
            .replace("{caption: 0.7, vqa: 0.3}", "{caption: 0.5, vqa: 0.5}")
            .replace("budget: {tokens: 40000}", "budget: {tokens: 30000}"),
    );
    // Exit code 1: `--exit-code` reports a difference.
    assert_cli_snapshot!(dir, &["diff", "a.yaml", "b.yaml", "--exit-code"]);
}

#[test]
fn inherited_changes_show_in_every_stage_they_reach() {
    let dir = TestDir::new();
    let with_child =
        small_recipe() + "  - name: sft\n    extends: main\n    budget: {samples: 20}\n";
    dir.write("a.yaml", &with_child);
    dir.write(
        "b.yaml",
        with_child.replace("seq_len: 4096", "seq_len: 3072"),
    );
    assert_cli_snapshot!(dir, &["diff", "a.yaml", "b.yaml"]);
}

#[test]
fn sources_added_removed_and_policy_changes_are_listed() {
    let dir = TestDir::new();
    dir.write("a.yaml", small_recipe());
    let b = small_recipe()
        .replace(
            "  qa: {format: synthetic, kind: shapes-vqa, count: 300, category: vqa}",
            "  qa2: {format: synthetic, kind: shapes-vqa, count: 300, category: vqa}",
        )
        .replace("image: {max_pixels: 200704}", "image: {max_pixels: 401408}");
    dir.write("b.yaml", b);
    assert_cli_snapshot!(dir, &["diff", "a.yaml", "b.yaml"]);
}

#[test]
fn lock_files_diff_like_recipes_and_json_is_available() {
    let dir = TestDir::new();
    dir.write("a.yaml", small_recipe());
    dir.write("b.yaml", small_recipe().replace("seed: 7", "seed: 8"));
    assert_eq!(
        dir.run(&["plan", "a.yaml", "--lock", "a.lock.json"]).code,
        0
    );
    let out = dir.run(&["diff", "a.lock.json", "b.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(d["identical"], false);
    assert_eq!(d["recipe"][0]["field"], "seed");
    assert_eq!(d["recipe"][0]["before"], 7);
    assert_eq!(d["recipe"][0]["after"], 8);
}
