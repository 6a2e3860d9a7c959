//! `mixtape build`: packed shard sets with an exact mix, deterministic, resumable, nothing lost.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{TestDir, repo, small_recipe};
use serde_json::Value;

fn manifest(dir: &Path, stage: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(stage).join("manifest.json")).unwrap()).unwrap()
}

/// Every file of a build output (hidden sidecars included), by relative path.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(root) {
        let rel = entry.strip_prefix(root).unwrap().display().to_string();
        out.insert(rel, std::fs::read(&entry).unwrap());
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { files.extend(walk(&p)) } else { files.push(p) }
    }
    files
}

#[test]
fn the_demo_builds_with_the_recipes_mix() {
    let dir = TestDir::new();
    let demo = repo().join("recipes/demo.yaml");
    let out = dir.run(&["build", demo.to_str().unwrap(), "--out", "out", "--quiet", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["stages"].as_array().unwrap().len(), 3);
    // Realized shares, recomputed from the manifest, within 0.5 percentage points of the recipe.
    let targets: [(&str, &str, &[(&str, f64)]); 3] = [
        ("warmup", "tokens", &[("caption", 0.6), ("ocr", 0.25), ("grounding", 0.15)]),
        ("multitask", "tokens", &[("caption", 0.25), ("vqa", 0.3), ("ocr", 0.2), ("grounding", 0.1), ("long-text", 0.15)]),
        ("sft", "samples", &[("vqa", 0.6), ("ocr", 0.3), ("long-text", 0.1)]),
    ];
    for (stage, basis, mix) in targets {
        let m = manifest(&dir.path("out"), stage);
        let total: f64 = m["by_category"].as_object().unwrap().values().map(|c| c[basis].as_f64().unwrap()).sum();
        for (category, share) in mix {
            let got = m["by_category"][category][basis].as_f64().unwrap() / total;
            assert!((got - share).abs() < 0.005, "{stage}/{category}: {got} vs {share}");
        }
        assert!(m["totals"]["efficiency"].as_f64().unwrap() > 0.98, "{stage} packs well: {}", m["totals"]["efficiency"]);
        for shard in m["shards"].as_array().unwrap() {
            let file = dir.path("out").join(stage).join(shard["file"].as_str().unwrap());
            let hash = blake3::hash(&std::fs::read(&file).unwrap()).to_hex().to_string();
            assert_eq!(shard["blake3"], hash, "manifest hash of {}", file.display());
        }
    }
}

#[test]
fn shards_are_byte_identical_for_any_number_of_jobs() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let one = dir.run(&["build", "r.yaml", "--out", "one", "--jobs", "1", "--quiet", "--shard-bytes", "200000"]);
    let two = dir.run(&["build", "r.yaml", "--out", "two", "--jobs", "2", "--quiet", "--shard-bytes", "200000"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(two.code, 0, "{}", two.stderr);
    let (a, b) = (snapshot(&dir.path("one")), snapshot(&dir.path("two")));
    assert!(a.keys().filter(|k| k.ends_with(".parquet")).count() > 2, "several shards: {:?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between --jobs 1 and --jobs 2");
    }
}

#[test]
fn a_killed_build_resumes_to_the_same_bytes() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let args = ["build", "r.yaml", "--out", "ref", "--quiet", "--shard-bytes", "100000"];
    assert_eq!(dir.run(&args).code, 0);
    let reference = snapshot(&dir.path("ref"));

    // Start the same build elsewhere, kill -9 it once a shard is done, then run it again.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mixtape"))
        .args(["build", "r.yaml", "--out", "resumed", "--quiet", "--shard-bytes", "100000", "--jobs", "1"])
        .current_dir(dir.root())
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .spawn()
        .unwrap();
    let first_done = dir.path("resumed/warmup/.shard-00000.done.json");
    let started = std::time::Instant::now();
    while !first_done.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = snapshot(&dir.path("resumed"));
    assert!(partial.len() < reference.len(), "the kill interrupted the build");
    assert!(
        partial.keys().all(|k| !k.ends_with(".parquet") || reference.contains_key(k)),
        "no partial shard under a final name: {:?}",
        partial.keys()
    );

    let again = dir.run(&["build", "r.yaml", "--out", "resumed", "--shard-bytes", "100000"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let resumed: BTreeMap<String, Vec<u8>> =
        snapshot(&dir.path("resumed")).into_iter().filter(|(k, _)| !k.contains(".tmp")).collect();
    assert_eq!(resumed.keys().collect::<Vec<_>>(), reference.keys().collect::<Vec<_>>());
    for (k, v) in &reference {
        assert!(v == &resumed[k], "{k} differs after resume");
    }
    // A finished build reruns as a no-op.
    let noop = dir.run(&["build", "r.yaml", "--out", "resumed"]);
    assert_eq!(noop.code, 0);
    assert!(noop.stderr.contains("warmup already built"), "{}", noop.stderr);
}

#[test]
fn a_build_folder_written_by_another_jpeg_encoder_is_not_resumed() {
    let dir = TestDir::new();
    dir.write("r.yaml", small_recipe());
    let args = ["build", "r.yaml", "--out", "out", "--quiet"];
    assert_eq!(dir.run(&args).code, 0);
    let state: Value = serde_json::from_slice(&std::fs::read(dir.path("out/build.json")).unwrap()).unwrap();
    let ours = state["jpeg_encoder"].as_str().unwrap().to_string();
    assert!(ours.starts_with("libjpeg-turbo ") || ours.starts_with("jpeg-encoder "), "{ours}");

    let mut other = state.clone();
    other["jpeg_encoder"] = "some-other-jpeg 9.9".into();
    std::fs::write(dir.path("out/build.json"), serde_json::to_vec(&other).unwrap()).unwrap();
    let refused = dir.run(&args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for part in ["some-other-jpeg 9.9", ours.as_str(), "delete the folder"] {
        assert!(refused.stderr.contains(part), "{part:?} missing from: {}", refused.stderr);
    }
    // A folder from before the encoder was recorded is refused too.
    other.as_object_mut().unwrap().remove("jpeg_encoder");
    std::fs::write(dir.path("out/build.json"), serde_json::to_vec(&other).unwrap()).unwrap();
    let refused = dir.run(&args);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("unrecorded"), "{}", refused.stderr);
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
    let out = dir.run(&["build", "r.yaml", "--out", "out", "--quiet", "--max-reject-fraction", "0.5"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read_rejects = |p: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.path(p)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let unreadable = read_rejects("out/rejects.jsonl");
    let reasons: Vec<&str> = unreadable.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_json", "missing_image", "unreadable_image_header", "missing_field"], "{unreadable:?}");
    assert_eq!(unreadable[0]["location"], "data/caps.jsonl:2");
    let stage = read_rejects("out/only/rejects.jsonl");
    let mut reasons: Vec<&str> = stage.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["image_too_elongated"], "{stage:?}");
    let m = manifest(&dir.path("out"), "only");
    assert_eq!(m["rejects"]["image_too_elongated"], 1);
    // Every drawn record (the 32 readable ones) is in a shard or in the reject list.
    assert_eq!(m["totals"]["samples"].as_u64().unwrap() + stage.len() as u64, 32);

    let strict = dir.run(&["build", "r.yaml", "--out", "strict", "--quiet"]);
    assert_eq!(strict.code, 1);
    assert!(strict.stderr.contains("over --max-reject-fraction 1.00%"), "{}", strict.stderr);
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
    assert_eq!(dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]).code, 0);
    let script = repo().join("tests/read_with_pyarrow.py");
    let run = std::process::Command::new("python3").arg(&script).arg(dir.path("out/main")).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "pyarrow could not read the shards:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok: "), "{stdout}");
}
