//! `mixtape build`: packed shard sets with an exact mix, deterministic, resumable, nothing lost.
//!
//! What `build` says when it refuses a folder or fails (and what the other commands say about an
//! old-layout build) is pinned by CLI snapshots in `snapshots/`; the builds themselves are checked
//! on their bytes, manifests and samples.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{TestDir, assert_cli_snapshot, copy_dir, file_tree, repo, small_recipe, walk};
use mixtape_shards::{BuildLayout, BuildRecord};
use mixtape_testdata::SplitMix64;
use serde_json::Value;

fn manifest(dir: &Path, stage: &str) -> Value {
    let path = BuildLayout::new(dir).stage(stage).manifest();
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Whether `key` (a path relative to a build output) is one of stage `stage`'s files: a shard in
/// its folder, or its manifest, rejects or a sidecar under `_mixtape/`.
fn of_stage(key: &str, stage: &str) -> bool {
    key.starts_with(&format!("{stage}/")) || key.starts_with(&format!("_mixtape/{stage}/"))
}

/// Every packed sample of a build output, read back from its shards: (stage, source, key) -> count.
fn samples(root: &Path) -> BTreeMap<(String, String, String), u32> {
    let mut out = BTreeMap::new();
    for path in walk(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
    {
        let stage = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for row in mixtape_shards::read_rows(&path).unwrap() {
            for s in row.samples {
                *out.entry((stage.clone(), s.source, s.key)).or_insert(0) += 1;
            }
        }
    }
    out
}

#[test]
fn the_demo_builds_with_the_recipes_mix() {
    let dir = TestDir::new();
    let demo = repo().join("recipes/demo.yaml");
    let out = dir.run(&[
        "build",
        demo.to_str().unwrap(),
        "--out",
        "out",
        "--quiet",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["stages"].as_array().unwrap().len(), 3);
    // Realized shares, recomputed from the manifest, within 0.5 percentage points of the recipe.
    // (stage, budget basis, share per category)
    type Targets<'a> = (&'a str, &'a str, &'a [(&'a str, f64)]);
    let targets: [Targets; 3] = [
        (
            "warmup",
            "tokens",
            &[("caption", 0.6), ("ocr", 0.25), ("grounding", 0.15)],
        ),
        (
            "multitask",
            "tokens",
            &[
                ("caption", 0.25),
                ("vqa", 0.3),
                ("ocr", 0.2),
                ("grounding", 0.1),
                ("long-text", 0.15),
            ],
        ),
        (
            "sft",
            "samples",
            &[("vqa", 0.6), ("ocr", 0.3), ("long-text", 0.1)],
        ),
    ];
    for (stage, basis, mix) in targets {
        let m = manifest(&dir.path("out"), stage);
        let total: f64 = m["by_category"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c[basis].as_f64().unwrap())
            .sum();
        for (category, share) in mix {
            let got = m["by_category"][category][basis].as_f64().unwrap() / total;
            assert!(
                (got - share).abs() < 0.005,
                "{stage}/{category}: {got} vs {share}"
            );
        }
        assert!(
            m["totals"]["efficiency"].as_f64().unwrap() > 0.98,
            "{stage} packs well: {}",
            m["totals"]["efficiency"]
        );
        for shard in m["shards"].as_array().unwrap() {
            let file = dir
                .path("out")
                .join(stage)
                .join(shard["file"].as_str().unwrap());
            let hash = blake3::hash(&std::fs::read(&file).unwrap())
                .to_hex()
                .to_string();
            assert_eq!(shard["blake3"], hash, "manifest hash of {}", file.display());
        }
    }
}

#[test]
fn shards_are_byte_identical_for_any_number_of_jobs() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let one = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "one",
        "--jobs",
        "1",
        "--quiet",
        "--shard-bytes",
        "200000",
    ]);
    let two = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "two",
        "--jobs",
        "2",
        "--quiet",
        "--shard-bytes",
        "200000",
    ]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(two.code, 0, "{}", two.stderr);
    let (a, b) = (file_tree(&dir.path("one")), file_tree(&dir.path("two")));
    assert!(
        a.keys().filter(|k| k.ends_with(".parquet")).count() > 2,
        "several shards: {:?}",
        a.keys()
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between --jobs 1 and --jobs 2");
    }
}

#[test]
fn a_killed_build_resumes_to_the_same_bytes() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let args = [
        "build",
        "r.yaml",
        "--out",
        "ref",
        "--quiet",
        "--shard-bytes",
        "100000",
    ];
    assert_eq!(dir.run(&args).code, 0);
    let reference = file_tree(&dir.path("ref"));

    // Start the same build elsewhere, kill -9 it once a shard is done, then run it again.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mixtape"))
        .args([
            "build",
            "r.yaml",
            "--out",
            "resumed",
            "--quiet",
            "--shard-bytes",
            "100000",
            "--jobs",
            "1",
        ])
        .current_dir(dir.root())
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .spawn()
        .unwrap();
    let first_done = dir.path("resumed/_mixtape/warmup/shard-00000.done.json");
    let started = std::time::Instant::now();
    while !first_done.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = file_tree(&dir.path("resumed"));
    assert!(
        partial.len() < reference.len(),
        "the kill interrupted the build"
    );
    assert!(
        partial
            .keys()
            .all(|k| !k.ends_with(".parquet") || reference.contains_key(k)),
        "no partial shard under a final name: {:?}",
        partial.keys()
    );

    // Another copy of the killed state, resumed with another shard size: a fresh build's bytes.
    copy_dir(&dir.path("resumed"), &dir.path("resized"));
    let resized = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "resized",
        "--quiet",
        "--shard-bytes",
        "60000",
    ]);
    assert_eq!(resized.code, 0, "{}", resized.stderr);
    assert_eq!(
        dir.run(&[
            "build",
            "r.yaml",
            "--out",
            "fresh",
            "--quiet",
            "--shard-bytes",
            "60000"
        ])
        .code,
        0
    );
    // Cut anew, except the first stage if it was finished before the kill landed.
    let warmup_finished = partial.contains_key("_mixtape/warmup/manifest.json");
    let expected: BTreeMap<String, Vec<u8>> = file_tree(&dir.path("fresh"))
        .into_iter()
        .filter(|(k, _)| !(warmup_finished && of_stage(k, "warmup")))
        .chain(
            reference
                .clone()
                .into_iter()
                .filter(|(k, _)| warmup_finished && of_stage(k, "warmup")),
        )
        .collect();
    assert!(
        file_tree(&dir.path("resized")) == expected,
        "resized resume differs from a fresh build"
    );
    assert!(
        samples(&dir.path("resized")) == samples(&dir.path("fresh")),
        "samples lost or duplicated"
    );

    let again = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "resumed",
        "--shard-bytes",
        "100000",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    // Stale temporaries are removed too.
    let resumed = file_tree(&dir.path("resumed"));
    assert_eq!(
        resumed.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (k, v) in &reference {
        assert!(v == &resumed[k], "{k} differs after resume");
    }
    // A finished build reruns as a no-op: every stage already built, every shard reused.
    assert_cli_snapshot!(
        "a_finished_build_reruns_as_a_no_op",
        dir,
        &["build", "r.yaml", "--out", "resumed"]
    );
}

/// The on-disk states a kill can leave, taken from a full build cut with one `--shard-bytes`,
/// resumed with another (and another `--jobs`): the unfinished stage and later ones are byte for
/// byte a fresh build with the resume's settings, finished stages stay as they were, so no sample is
/// lost or duplicated and no orphan is left behind.
#[test]
fn resuming_any_kill_point_with_any_shard_size_loses_and_duplicates_nothing() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let sizes = ["60000", "100000", "250000"];
    for size in sizes {
        let out = dir.run(&[
            "build",
            "r.yaml",
            "--out",
            &format!("ref-{size}"),
            "--quiet",
            "--shard-bytes",
            size,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    // Every cut holds the same samples, each exactly as often as drawn.
    let reference = samples(&dir.path("ref-60000"));
    assert!(reference.len() > 100, "{}", reference.len());
    for size in &sizes[1..] {
        assert!(
            samples(&dir.path(&format!("ref-{size}"))) == reference,
            "--shard-bytes {size} holds other samples"
        );
    }
    let stages = ["warmup", "main"];
    let mut rng = SplitMix64::new(15);
    for case in 0..14 {
        let from = sizes[rng.below(3) as usize];
        let to = sizes[rng.below(3) as usize];
        let jobs = (1 + rng.below(2)).to_string();
        // Kill point: stage `s` is unfinished with its first `done` shards finished; earlier
        // stages are finished, later ones never started.
        let s = rng.below(2) as usize;
        let source = dir.path(&format!("ref-{from}"));
        let out = dir.path(&format!("case-{case}"));
        copy_dir(&source, &out);
        let stage = out.join(stages[s]);
        let meta = out.join("_mixtape").join(stages[s]);
        let shards = walk(&stage)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count() as u64;
        let done = rng.below(shards + 1);
        let renamed_without_sidecar = done < shards && rng.below(2) == 0;
        for name in ["manifest.json", "rejects.jsonl"] {
            std::fs::remove_file(meta.join(name)).unwrap();
        }
        for k in done..shards {
            if !(renamed_without_sidecar && k == done) {
                std::fs::remove_file(stage.join(format!("shard-{k:05}.parquet"))).unwrap();
            }
            std::fs::remove_file(meta.join(format!("shard-{k:05}.done.json"))).unwrap();
        }
        if done < shards && rng.below(2) == 0 {
            std::fs::write(
                meta.join(format!(".shard-{done:05}.parquet.tmp")),
                b"half a shard",
            )
            .unwrap();
        }
        for later in &stages[s + 1..] {
            std::fs::remove_dir_all(out.join(later)).unwrap();
            std::fs::remove_dir_all(out.join("_mixtape").join(later)).unwrap();
        }
        let what = format!(
            "case {case}: cut {from} -> {to}, jobs {jobs}, {} killed after {done}/{shards} shards{}",
            stages[s],
            if renamed_without_sidecar {
                " (one renamed without its sidecar)"
            } else {
                ""
            }
        );
        let run = dir.run(&[
            "build",
            "r.yaml",
            "--out",
            &format!("case-{case}"),
            "--quiet",
            "--shard-bytes",
            to,
            "--jobs",
            &jobs,
        ]);
        assert_eq!(run.code, 0, "{what}: {}", run.stderr);
        // Stages finished before the kill keep the cut they were built with; the rest are a fresh
        // build's with the resume's settings.
        let resumed = file_tree(&out);
        let expected: BTreeMap<String, Vec<u8>> = file_tree(&dir.path(&format!("ref-{to}")))
            .into_iter()
            .filter(|(k, _)| !stages[..s].iter().any(|f| of_stage(k, f)))
            .chain(
                file_tree(&source)
                    .into_iter()
                    .filter(|(k, _)| stages[..s].iter().any(|f| of_stage(k, f))),
            )
            .collect();
        assert_eq!(
            resumed.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{what}: other files"
        );
        for (k, v) in &expected {
            assert!(
                v == &resumed[k],
                "{what}: {k} differs from the expected build"
            );
        }
        assert!(
            samples(&out) == reference,
            "{what}: samples lost or duplicated"
        );
    }
}

#[test]
fn a_build_folder_written_by_another_jpeg_encoder_is_not_resumed() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let args = ["build", "r.yaml", "--out", "out", "--quiet"];
    assert_eq!(dir.run(&args).code, 0);
    let record = BuildRecord::read(dir.path("out/_mixtape/build.json")).unwrap();
    let ours = record.jpeg_encoder.clone();
    assert!(
        ours.starts_with("libjpeg-turbo ") || ours.starts_with("jpeg-encoder "),
        "{ours}"
    );
    assert_eq!(record.stages, ["warmup", "main"]);

    let other = BuildRecord {
        jpeg_encoder: "some-other-jpeg 9.9".into(),
        ..record.clone()
    };
    other.write(dir.path("out/_mixtape/build.json")).unwrap();
    let refused = dir.run(&args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for part in ["some-other-jpeg 9.9", ours.as_str(), "--rebuild"] {
        assert!(
            refused.stderr.contains(part),
            "{part:?} missing from: {}",
            refused.stderr
        );
    }
    let rebuilt = dir.run(&["build", "r.yaml", "--out", "out", "--quiet", "--rebuild"]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert_eq!(
        BuildRecord::read(dir.path("out/_mixtape/build.json")).unwrap(),
        record
    );
}

/// A folder is resumed only when its build.json proves it is this recipe's build: missing,
/// truncated, hand-edited or another recipe's, it is refused without touching a file, and
/// `--rebuild` deletes mixtape's files (not the user's) and builds from scratch.
#[test]
fn a_folder_whose_ownership_cannot_be_proven_is_refused_until_rebuild() {
    let dir = TestDir::new();
    dir.write("a.yaml", small_recipe());
    dir.write("b.yaml", small_recipe().replace("seed: 7", "seed: 8"));
    assert_eq!(
        dir.run(&["build", "b.yaml", "--out", "fresh-b", "--quiet"])
            .code,
        0
    );
    assert_eq!(
        dir.run(&["build", "a.yaml", "--out", "a", "--quiet"]).code,
        0
    );
    let built_a = file_tree(&dir.path("a"));
    let record = std::fs::read_to_string(dir.path("a/_mixtape/build.json")).unwrap();
    let fingerprint = BuildRecord::read(dir.path("a/_mixtape/build.json"))
        .unwrap()
        .fingerprint;

    let cases: [(&str, Option<String>, &str); 5] = [
        ("missing", None, "missing"),
        (
            "truncated",
            // Cut before the machine's own fields (encoder version, tokenizer path), so the
            // parse error's position does not depend on them.
            Some(record[..record.find("\"jpeg_encoder\"").unwrap()].to_string()),
            "not a mixtape build record",
        ),
        (
            "edited",
            Some(record.replace(&fingerprint, &"0".repeat(fingerprint.len()))),
            "was edited",
        ),
        (
            "old format",
            Some(format!(
                "{{\"recipe\": \"small\", \"fingerprint\": \"{fingerprint}\"}}"
            )),
            "not a mixtape build record",
        ),
        (
            "another recipe",
            Some(std::fs::read_to_string(dir.path("fresh-b/_mixtape/build.json")).unwrap()),
            "another recipe",
        ),
    ];
    for (what, contents, reason) in cases {
        let out = format!("case-{}", what.replace(' ', "-"));
        copy_dir(&dir.path("a"), &dir.path(&out));
        match &contents {
            Some(text) => {
                std::fs::write(dir.path(&format!("{out}/_mixtape/build.json")), text).unwrap()
            }
            None => std::fs::remove_file(dir.path(&format!("{out}/_mixtape/build.json"))).unwrap(),
        }
        dir.write(&format!("{out}/notes.txt"), "mine");
        let before = file_tree(&dir.path(&out));
        // Exit 2, naming the folder, why it is not this recipe's build, and `--rebuild`.
        let refused = assert_cli_snapshot!(
            format!("refused_{}", what.replace(' ', "_")),
            dir,
            &["build", "a.yaml", "--out", &out, "--quiet"]
        );
        assert!(
            refused.stderr.contains(reason),
            "{what}: {}",
            refused.stderr
        );
        assert!(
            file_tree(&dir.path(&out)) == before,
            "{what}: a refused build changed the folder"
        );
        // Unless the record proves it is another recipe's build, any recipe is refused alike.
        if what != "another recipe" {
            let other = dir.run(&["build", "b.yaml", "--out", &out, "--quiet"]);
            assert_eq!(
                (other.code, &other.stderr),
                (refused.code, &refused.stderr),
                "{what}: b.yaml"
            );
            assert!(
                file_tree(&dir.path(&out)) == before,
                "{what}: a refused build changed the folder"
            );
        }
        let target = if what == "another recipe" {
            "a.yaml"
        } else {
            "b.yaml"
        };
        let rebuilt = dir.run(&["build", target, "--out", &out, "--quiet", "--rebuild"]);
        assert_eq!(rebuilt.code, 0, "{what}: {}", rebuilt.stderr);
        let mut after = file_tree(&dir.path(&out));
        assert_eq!(
            after.remove("notes.txt").as_deref(),
            Some(&b"mine"[..]),
            "{what}: the user's file stays"
        );
        let expected = if target == "a.yaml" {
            built_a.clone()
        } else {
            file_tree(&dir.path("fresh-b"))
        };
        assert!(
            after == expected,
            "{what}: --rebuild gives a fresh build's bytes"
        );
    }

    // A folder of someone else's files is not a build either; an empty one is fine.
    dir.write("theirs/data.csv", "x,y\n");
    assert_cli_snapshot!(
        "refused_a_folder_of_other_files",
        dir,
        &["build", "a.yaml", "--out", "theirs", "--quiet"]
    );
    assert_eq!(file_tree(&dir.path("theirs")).len(), 1);
    std::fs::create_dir(dir.path("empty")).unwrap();
    assert_eq!(
        dir.run(&["build", "a.yaml", "--out", "empty", "--quiet"])
            .code,
        0
    );
}

/// Every single change to build.json is reported by `verify` and by `audit` (with and without the
/// recipe), naming the file.
#[test]
fn verify_and_audit_report_any_change_to_build_json() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    assert_eq!(
        dir.run(&["build", "r.yaml", "--out", "out", "--quiet"])
            .code,
        0
    );
    assert_eq!(dir.run(&["verify", "out"]).code, 0);
    assert_eq!(dir.run(&["audit", "out"]).code, 0);
    // (The small recipe's tiny stages land a few points off their mix: not what this test is about.)
    assert_eq!(
        dir.run(&["audit", "out", "--recipe", "r.yaml", "--tolerance", "100"])
            .code,
        0
    );
    let text = std::fs::read_to_string(dir.path("out/_mixtape/build.json")).unwrap();
    let record = BuildRecord::read(dir.path("out/_mixtape/build.json")).unwrap();
    let changes: [(&str, Option<String>); 6] = [
        ("deleted", None),
        ("truncated", Some(text[..text.len() - 10].to_string())),
        (
            "fingerprint",
            Some(text.replace(&record.fingerprint[..8], "00000000")),
        ),
        ("recipe name", Some(text.replace("\"small\"", "\"smal\""))),
        (
            "jpeg encoder",
            Some(text.replace(&record.jpeg_encoder, "other 1.0")),
        ),
        ("stage list", Some(text.replace("\"main\"", "\"mian\""))),
    ];
    for (what, contents) in changes {
        let path = dir.path("out/_mixtape/build.json");
        match &contents {
            Some(changed) => {
                assert_ne!(changed, &text, "{what}: the change applies");
                std::fs::write(&path, changed).unwrap();
            }
            None => std::fs::remove_file(&path).unwrap(),
        }
        for args in [
            &["verify", "out"][..],
            &["audit", "out"],
            &["audit", "out", "--recipe", "r.yaml", "--tolerance", "100"],
        ] {
            let run = dir.run(args);
            assert_eq!(
                run.code, 1,
                "{what}: {args:?} passed:\n{}{}",
                run.stdout, run.stderr
            );
            assert!(
                run.stdout.contains("out/_mixtape/build.json"),
                "{what}: {args:?}:\n{}",
                run.stdout
            );
        }
        std::fs::write(&path, &text).unwrap();
    }
}
#[test]
fn bad_records_end_in_rejects_with_their_reason() {
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.path("data")).unwrap();
    let image = repo().join("recipes/data/images/shapes-01.jpg");
    std::fs::copy(&image, dir.path("data/ok.jpg")).unwrap();
    // A JPEG whose data stops after the scan header: its header reads, but the decoder's acceptance
    // rule (no end-of-image marker) refuses it when the source is read, in check and build alike.
    let jpeg = std::fs::read(&image).unwrap();
    let sos = jpeg.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
    dir.write("data/broken.jpg", &jpeg[..sos + 20]);
    dir.write("data/thin.png", thin_png());
    let ok = r#"{"image": "ok.jpg", "caption": "a picture"}"#;
    let lines = [
        ok.to_string(),
        "{not json".to_string(),
        r#"{"image": "missing.jpg", "caption": "gone"}"#.to_string(),
        r#"{"image": "broken.jpg", "caption": "corrupt"}"#.to_string(),
        r#"{"image": "thin.png", "caption": "too elongated"}"#.to_string(),
        r#"{"caption": "no image"}"#.to_string(),
    ];
    let mut body = lines.join("\n");
    body.push('\n');
    body.push_str(&format!("{ok}\n").repeat(30));
    dir.write("data/caps.jsonl", body);
    let recipe = format!(
        "version: 1\nname: bad\ntokenizer: {{path: {}}}\nsources:\n  caps: {{format: caption, path: data/caps.jsonl, category: caption}}\nstages:\n  - name: only\n    seq_len: 2048\n    budget: {{samples: 31}}\n    mix: {{caption: 1.0}}\n",
        crate::util::tokenizer()
    );
    dir.write("r.yaml", recipe);
    let out = dir.run(&[
        "build",
        "r.yaml",
        "--out",
        "out",
        "--quiet",
        "--max-reject-fraction",
        "0.5",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read_rejects = |p: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.path(p))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let unreadable = read_rejects("out/_mixtape/rejects.jsonl");
    let reasons: Vec<&str> = unreadable
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "invalid_json",
            "missing_image",
            "unreadable_image_header",
            "missing_field"
        ],
        "{unreadable:?}"
    );
    assert_eq!(unreadable[0]["location"], "data/caps.jsonl:2");
    let stage = read_rejects("out/_mixtape/only/rejects.jsonl");
    let mut reasons: Vec<&str> = stage
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["image_too_elongated"], "{stage:?}");
    let m = manifest(&dir.path("out"), "only");
    assert_eq!(m["rejects"]["image_too_elongated"], 1);
    // Every drawn record (the 32 readable ones) is in a shard or in the reject list.
    assert_eq!(
        m["totals"]["samples"].as_u64().unwrap() + stage.len() as u64,
        32
    );

    // With the default --max-reject-fraction (1%) the same build fails (exit 1), saying how much was
    // rejected, the limit it passed and where the rejects are listed.
    assert_cli_snapshot!(
        "over_the_default_reject_fraction",
        dir,
        &["build", "r.yaml", "--out", "strict", "--quiet"]
    );
}

/// A valid PNG 2100 wide and 10 high: an aspect ratio of 210, over the resize rule's 200.
fn thin_png() -> Vec<u8> {
    let img = mixtape_engine::image::RgbImage::try_filled(2100, 10, [200, 30, 30]).unwrap();
    mixtape_engine::image::encode_png(&img).unwrap()
}

#[test]
fn pyarrow_reads_the_shards() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    assert_eq!(
        dir.run(&["build", "r.yaml", "--out", "out", "--quiet"])
            .code,
        0
    );
    let stdout = crate::util::run_python(
        "tests/python/read_with_pyarrow.py",
        &[&dir.path("out/main")],
    );
    assert!(stdout.contains("ok: "), "{stdout}");
}

/// A build in the layout before `_mixtape/` (record and manifests beside the shards, hidden
/// sidecars) is refused by every command with the fix, and `--rebuild` turns it into a fresh build.
#[test]
fn an_old_layout_build_is_refused_with_the_rebuild_fix_and_rebuild_converts_it() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let args = ["build", "r.yaml", "--out", "out", "--quiet"];
    assert_eq!(dir.run(&args).code, 0);
    let fresh = file_tree(&dir.path("out"));
    // Move everything back where the old layout kept it.
    copy_dir(&dir.path("out"), &dir.path("old"));
    let old = dir.path("old");
    std::fs::rename(old.join("_mixtape/build.json"), old.join("build.json")).unwrap();
    std::fs::rename(
        old.join("_mixtape/rejects.jsonl"),
        old.join("rejects.jsonl"),
    )
    .unwrap();
    std::fs::remove_file(old.join("README.md")).unwrap();
    for stage in ["warmup", "main"] {
        for entry in std::fs::read_dir(old.join("_mixtape").join(stage)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let hidden = if name.ends_with(".done.json") {
                format!(".{name}")
            } else {
                name
            };
            std::fs::rename(&path, old.join(stage).join(hidden)).unwrap();
        }
    }
    std::fs::remove_dir_all(old.join("_mixtape")).unwrap();
    dir.write("old/notes.txt", "mine");
    let before = file_tree(&old);

    // Exit 2 from each, naming the old layout and the `--rebuild` that converts it.
    for (name, command) in [
        (
            "old_layout_build",
            &["build", "r.yaml", "--out", "old", "--quiet"][..],
        ),
        ("old_layout_verify", &["verify", "old"]),
        ("old_layout_verify_stage", &["verify", "old/main"]),
        ("old_layout_audit", &["audit", "old"]),
        ("old_layout_stream", &["stream", "old"]),
    ] {
        assert_cli_snapshot!(name, dir, command);
        assert!(file_tree(&old) == before, "{command:?} changed the folder");
    }

    let rebuilt = dir.run(&["build", "r.yaml", "--out", "old", "--quiet", "--rebuild"]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    let mut after = file_tree(&old);
    assert_eq!(after.remove("notes.txt").as_deref(), Some(&b"mine"[..]));
    assert!(after == fresh, "--rebuild gives a fresh build's bytes");
}

/// The dataset card names one `datasets` config per stage, in recipe order, the first the default;
/// a README.md of the user's own is left alone.
#[test]
fn the_build_root_has_a_dataset_card_with_one_config_per_stage_unless_the_user_has_a_readme() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    assert_eq!(
        dir.run(&["build", "r.yaml", "--out", "out", "--quiet"])
            .code,
        0
    );
    let card = std::fs::read_to_string(dir.path("out/README.md")).unwrap();
    let front = card
        .strip_prefix("---\n")
        .and_then(|rest| rest.split("\n---\n").next())
        .unwrap();
    assert_eq!(
        front,
        "configs:\n\
         - config_name: \"warmup\"\n  data_files:\n  - split: train\n    path: \"warmup/*.parquet\"\n  default: true\n\
         - config_name: \"main\"\n  data_files:\n  - split: train\n    path: \"main/*.parquet\""
    );

    dir.write("theirs/README.md", "# my notes\n");
    assert_eq!(
        dir.run(&["build", "r.yaml", "--out", "theirs", "--quiet", "--rebuild"])
            .code,
        0
    );
    assert_eq!(
        std::fs::read_to_string(dir.path("theirs/README.md")).unwrap(),
        "# my notes\n"
    );
}

/// Adds `delta` to every sample's text token count in each cached source index under `cache`
/// (the layout `engine/src/index.rs` writes: magic, JSON header, counts, then the columns).
fn skew_cached_text_tokens(cache: &Path, delta: u32) {
    let mut skewed = 0;
    for path in walk(cache) {
        if path.extension().is_none_or(|e| e != "idx") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let header = u64_at(&bytes, 8) as usize;
        let samples = u64_at(&bytes, 16 + header) as usize;
        // Past the two counts, `record_of` (u64 each) and `is_text` (u8 each): `text_tokens`.
        let start = 16 + header + 16 + samples * 8 + samples;
        for at in (start..start + samples * 4).step_by(4) {
            let tokens = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            bytes[at..at + 4].copy_from_slice(&(tokens + delta).to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        skewed += 1;
    }
    assert!(skewed > 0, "no cached index under {}", cache.display());
}

#[test]
fn a_sample_built_to_another_length_than_planned_fails_naming_source_and_record() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    assert_eq!(dir.run(&["plan", "r.yaml"]).code, 0);
    // A source index that disagrees with what encoding the records gives.
    skew_cached_text_tokens(&dir.path(".cache"), 1);
    // The build fails naming the stage, source and record, and both lengths.
    assert_cli_snapshot!(dir, &["build", "r.yaml", "--out", "out", "--quiet"]);
}
