//! `mixtape verify`: a clean build verifies; a flipped byte, a deleted shard and an edited manifest
//! are each named with a fix, and following the fix gives back a build that verifies.
//!
//! The report's table, problems and fixes are pinned by CLI snapshots in `snapshots/`; the JSON
//! report is checked field by field, and following a fix is checked on the bytes it gives back.

use std::path::Path;

use crate::util::{TestDir, assert_cli_snapshot, copy_dir, small_recipe};
use serde_json::Value;

/// Builds the small recipe into `out` with many small shards (one or two rows each).
fn build(dir: &TestDir) {
    dir.write("r.yaml", small_recipe());
    let out = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "out",
        "--quiet",
        "--shard-bytes",
        "200000",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_clean_build_verifies_and_every_kind_of_damage_is_named() {
    let dir = TestDir::new();
    build(&dir);

    // One line per stage (shards, rows, bytes, ok), exit 0.
    assert_cli_snapshot!("clean", dir, &["verify", "out"]);
    // One stage folder verifies on its own.
    assert_cli_snapshot!("one_stage_folder", dir, &["verify", "out/main"]);

    // A flipped byte, exit 1: a blake3 mismatch naming the shard, and the checksums say where
    // (the footer, or a row group and column); each problem's fix names the files to delete and
    // the build to rerun. The other stage stays ok.
    copy_dir(&dir.path("out"), &dir.path("flipped"));
    flip_middle_byte(&dir.path("flipped/warmup/shard-00001.parquet"));
    assert_cli_snapshot!("flipped_byte", dir, &["verify", "flipped"]);

    // A deleted shard: named as missing.
    copy_dir(&dir.path("out"), &dir.path("deleted"));
    std::fs::remove_file(dir.path("deleted/main/shard-00002.parquet")).unwrap();
    let out = dir.run(&["verify", "deleted", "--json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let problems: Vec<&Value> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["problems"].as_array().unwrap())
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["kind"], "missing_shard");
    assert_eq!(problems[0]["path"], "deleted/main/shard-00002.parquet");

    // Edited rows of a shard entry: the manifest is named, with the shard whose entry is wrong.
    copy_dir(&dir.path("out"), &dir.path("edited"));
    let manifest_path = dir.path("edited/_mixtape/main/manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let rows = manifest["shards"][0]["rows"].as_u64().unwrap();
    manifest["shards"][0]["rows"] = (rows + 5).into();
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    // Exit 1: the shard's rows against its entry, and the manifest's totals against its entries.
    assert_cli_snapshot!("edited_manifest", dir, &["verify", "edited"]);
}

#[test]
fn following_the_fix_for_a_damaged_shard_gives_back_the_original_bytes() {
    let dir = TestDir::new();
    build(&dir);
    let shard = dir.path("out/warmup/shard-00003.parquet");
    let original = std::fs::read(&shard).unwrap();
    flip_middle_byte(&shard);
    let out = dir.run(&["verify", "out", "--json"]);
    assert_eq!(out.code, 1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    // Stages in recipe order: warmup first.
    let problem = &report["stages"][0]["problems"][0];
    assert_eq!(problem["kind"], "blake3_mismatch", "{report}");
    // The fix names the files to delete: "delete A, B and C, then rerun ...".
    let fix = problem["fix"].as_str().unwrap();
    let files = fix
        .strip_prefix("delete ")
        .unwrap()
        .split(", then")
        .next()
        .unwrap();
    for file in files.split(", ").flat_map(|f| f.split(" and ")) {
        std::fs::remove_file(dir.path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    assert!(
        fix.contains("rerun `mixtape build RECIPE --out out`"),
        "{fix}"
    );
    let rebuilt = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "out",
        "--quiet",
        "--shard-bytes",
        "200000",
    ]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert_eq!(std::fs::read(&shard).unwrap(), original);
    let out = dir.run(&["verify", "out"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
}

#[test]
fn a_folder_that_is_no_shard_set_exits_2_and_says_what_to_pass() {
    let dir = TestDir::new();
    dir.write("notes/readme.txt", "hello");
    assert_cli_snapshot!(dir, &["verify", "notes"]);
}
