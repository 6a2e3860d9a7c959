//! `mixtape stream` on a real build: throughput report and state, ranks from the environment,
//! resuming from a saved state, and a damaged shard.
//!
//! The errors and warnings `stream` prints are pinned by CLI snapshots in `snapshots/` (its
//! throughput figures only where nothing was read, so they are zero, its timings redacted); what it
//! reads is checked against the manifests and against other runs.

use std::collections::BTreeSet;
use std::process::Command;

use crate::util::{TestDir, assert_cli_snapshot, small_recipe};

fn built() -> TestDir {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let out = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    dir
}

fn manifest(dir: &TestDir, stage: &str) -> serde_json::Value {
    let path = mixtape_shards::BuildLayout::new(dir.path("out"))
        .stage(stage)
        .manifest();
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `mixtape stream ARGS` with RANK / WORLD_SIZE set.
fn stream_as(dir: &TestDir, rank: usize, world: usize, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mixtape"))
        .arg("stream")
        .args(args)
        .current_dir(dir.root())
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stream_reads_a_schedule_ranks_split_it_and_a_saved_state_resumes_it() {
    let dir = built();
    let out = dir.run(&["stream", "out/warmup", "out/main", "--json", "--seed", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (warmup, main) = (manifest(&dir, "warmup"), manifest(&dir, "main"));
    let sum =
        |key: &str| warmup["totals"][key].as_u64().unwrap() + main["totals"][key].as_u64().unwrap();
    assert_eq!(report["rows"], sum("rows"));
    assert_eq!(report["tokens"], sum("tokens"));
    assert_eq!(report["images"], sum("images"));
    assert!(
        report["images"].as_u64().unwrap() > 0 && report["tokens_per_s"].as_f64().unwrap() > 0.0
    );
    assert_eq!(report["state"]["stage"], 2, "the whole schedule was read");
    // The build folder stands for its stages in recipe order: the same stream.
    let whole = dir.run(&["stream", "out", "--json", "--seed", "3"]);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    let whole: serde_json::Value = serde_json::from_str(&whole.stdout).unwrap();
    for key in ["rows", "tokens", "images", "state", "tally"] {
        assert_eq!(whole[key], report[key], "{key}");
    }
    assert_eq!(
        report["tally"]["by_category"]["caption"]["samples"]
            .as_u64()
            .unwrap(),
        warmup["by_category"]["caption"]["samples"]
            .as_u64()
            .unwrap()
            + main["by_category"]["caption"]["samples"].as_u64().unwrap()
    );

    // Two ranks from the environment: disjoint, equally long, together the step-aligned epoch.
    let args = [
        "out/warmup",
        "out/main",
        "--order",
        "--images",
        "skip",
        "--seed",
        "3",
    ];
    let ranks: Vec<Vec<String>> = (0..2)
        .map(|r| {
            stream_as(&dir, r, 2, &args)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(ranks[0].len(), ranks[1].len());
    let union: BTreeSet<&String> = ranks.iter().flatten().collect();
    assert_eq!(union.len(), 2 * ranks[0].len(), "ranks overlap");
    let single = stream_as(&dir, 0, 1, &args);
    let rows = sum("rows") as usize;
    assert_eq!(single.lines().count(), rows);
    let expected = rows
        - (warmup["totals"]["rows"].as_u64().unwrap() % 2
            + main["totals"]["rows"].as_u64().unwrap() % 2) as usize;
    assert_eq!(union.len(), expected);

    // Stop after 3 batches, save the state, resume: the two parts are the uninterrupted order.
    let first = dir.run(&[
        "stream",
        "out/warmup",
        "out/main",
        "--order",
        "--images",
        "skip",
        "--seed",
        "3",
        "--steps",
        "3",
        "--save-state",
        "state.json",
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = dir.run(&[
        "stream",
        "out/warmup",
        "out/main",
        "--order",
        "--images",
        "skip",
        "--seed",
        "3",
        "--resume",
        "state.json",
    ]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(first.stdout.lines().count(), 3);
    assert_eq!(format!("{}{}", first.stdout, second.stdout), single);

    // Another seed refuses the state: it would read another order.
    let other = dir.run(&[
        "stream",
        "out/warmup",
        "out/main",
        "--seed",
        "4",
        "--resume",
        "state.json",
    ]);
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(other.stderr.contains("seed 3"), "{}", other.stderr);
}

#[test]
fn stream_names_a_damaged_shard_and_exits_1() {
    let dir = built();
    let shard = dir.path("out/main/shard-00000.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xFF;
    }
    std::fs::write(&shard, bytes).unwrap();
    // Exit 1: the shard's blake3 is not the manifest's, before a row is read.
    assert_cli_snapshot!(
        "a_damaged_shard_with_verify",
        dir,
        &["stream", "out/main", "--verify"]
    );
    // A folder that is no build: exit 2, saying what to pass.
    dir.write("notes/readme.txt", "hello");
    assert_cli_snapshot!("a_folder_that_is_no_shard_set", dir, &["stream", "notes"]);
}

#[test]
fn stream_reports_any_changed_byte_without_verify_in_every_image_mode() {
    let dir = built();
    let shard = dir.path("out/main/shard-00000.parquet");
    let original = std::fs::read(&shard).unwrap();
    let entry = &manifest(&dir, "main")["shards"][0];
    let tail = entry["checksums"]["tail_offset"].as_u64().unwrap() as usize;
    let len = original.len();
    // The magic, column chunks across the file (image bytes included), the footer and its end.
    let mut positions = vec![
        0,
        3,
        4,
        5,
        tail - 1,
        tail,
        (tail + len) / 2,
        len - 5,
        len - 1,
    ];
    positions.extend((1..12).map(|i| 4 + (tail - 4) * i / 12));
    for position in positions {
        let mut bytes = original.clone();
        bytes[position] ^= 0x20;
        std::fs::write(&shard, &bytes).unwrap();
        for mode in ["decoded", "raw", "skip"] {
            let out = dir.run(&["stream", "out/main", "--images", mode]);
            let case = format!("byte {position} of {len}, --images {mode}");
            if mode == "skip" && out.code == 0 {
                // Only the image bytes, which skip does not read, may change unseen.
                let damaged = dir.run(&["stream", "out/main", "--images", "raw"]);
                assert!(
                    damaged.stderr.contains("column images.list.element.bytes"),
                    "{case}: {}",
                    damaged.stderr
                );
                continue;
            }
            assert_eq!(out.code, 1, "{case}: {}", out.stderr);
            assert!(
                out.stderr.contains("shard-00000.parquet") && out.stderr.contains("damaged"),
                "{case}: {}",
                out.stderr
            );
            if (4..tail).contains(&position) {
                assert!(
                    out.stderr.contains("row group") && out.stderr.contains("column"),
                    "{case}: {}",
                    out.stderr
                );
            }
        }
    }
}

#[test]
fn stream_warns_about_a_stage_smaller_than_one_global_step() {
    let dir = built();
    let rows = manifest(&dir, "main")["totals"]["rows"].as_u64().unwrap();
    let batch = (rows + 1).to_string();
    // Exit 0 with a warning naming the stage, its rows and the global step, and nothing read.
    assert_cli_snapshot!(dir, &["stream", "out/main", "--batch-size", &batch]);
}
