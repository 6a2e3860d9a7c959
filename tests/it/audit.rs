//! `mixtape audit`: figures recounted from the shards equal the manifests and a direct recount,
//! targets come from the recipe, tampering is reported as `verify` reports it and a changed recipe
//! fails with a clear message, and the HTML report is self-contained.
//!
//! The text report (tables, histograms, problems with their fixes) and the errors are pinned by
//! CLI snapshots in `snapshots/`; the figures themselves are checked field by field in the JSON
//! report, against the manifests and against a recount of the rows.

use std::collections::BTreeMap;
use std::path::Path;

use mixtape_shards::{ShardFile, ShardOptions, ShardWriter, read_rows};
use serde_json::Value;

use crate::util::{TestDir, assert_cli_snapshot, small_recipe};

/// Builds the small recipe (two stages, several shards each) into `out`.
fn built() -> TestDir {
    let dir = TestDir::new();
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
    dir
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn manifest(dir: &Path) -> Value {
    json(&std::fs::read_to_string(mixtape_shards::StageLayout::of_dir(dir).manifest()).unwrap())
}

#[test]
fn figures_equal_the_manifests_the_recipe_and_a_direct_recount() {
    let dir = built();
    let out = dir.run(&[
        "audit",
        "out",
        "--recipe",
        "r.yaml",
        "--tolerance",
        "5",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let audit = json(&out.stdout);
    assert_eq!(audit["passed"], true);
    assert_eq!(audit["problems"].as_array().unwrap().len(), 0);
    let stages = audit["stages"].as_array().unwrap();
    assert_eq!(
        stages
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["warmup", "main"]
    );
    let mixes: [&[(&str, f64)]; 2] = [
        &[("caption", 0.7), ("vqa", 0.3)],
        &[("caption", 0.3), ("long-text", 0.3), ("vqa", 0.4)],
    ];
    for (stage, mix) in stages.iter().zip(mixes) {
        let name = stage["name"].as_str().unwrap();
        let m = manifest(&dir.path("out").join(name));
        assert!(
            m["shards"].as_array().unwrap().len() >= 2,
            "{name}: several shards"
        );
        for field in [
            "rows",
            "samples",
            "tokens",
            "loss_tokens",
            "image_tokens",
            "images",
            "padded_capacity",
            "efficiency",
        ] {
            assert_eq!(
                stage["totals"][field], m["totals"][field],
                "{name} totals.{field}"
            );
        }
        assert_eq!(stage["basis"], "tokens");
        // Targets are the recipe's mix; deviations are realized minus target, in points.
        let categories = stage["categories"].as_array().unwrap();
        assert_eq!(categories.len(), mix.len());
        for (line, (category, share)) in categories.iter().zip(mix) {
            assert_eq!(line["name"], *category);
            assert_eq!(
                line["counts"], m["by_category"][category],
                "{name}/{category}"
            );
            let realized = line["counts"]["tokens"].as_f64().unwrap()
                / m["totals"]["tokens"].as_f64().unwrap();
            assert!((line["share"]["tokens"].as_f64().unwrap() - realized).abs() < 1e-12);
            assert_eq!(line["target_share"].as_f64().unwrap(), *share);
            let deviation = line["deviation_pp"].as_f64().unwrap();
            assert!(
                (deviation - 100.0 * (realized - share)).abs() < 1e-9,
                "{name}/{category}: {deviation}"
            );
            assert!(deviation.abs() <= 5.0, "{name}/{category}: {deviation}");
        }
        for source in stage["sources"].as_array().unwrap() {
            let s = source["name"].as_str().unwrap();
            assert_eq!(source["counts"], m["by_source"][s], "{name}/{s}");
            // Every drawn record is a first window or a reject, so passes are the plan's exactly.
            let (passes, planned) = (
                source["passes"].as_f64().unwrap(),
                source["planned_passes"].as_f64().unwrap(),
            );
            assert!(
                (passes - planned).abs() < 1e-9,
                "{name}/{s}: {passes} vs plan {planned}"
            );
        }
        for (line, listed) in stage["shards"]
            .as_array()
            .unwrap()
            .iter()
            .zip(m["shards"].as_array().unwrap())
        {
            assert_eq!(line["file"], listed["file"]);
            assert_eq!(line["efficiency"], listed["efficiency"]);
            assert_eq!(line["bytes"], listed["bytes"]);
        }
        assert_eq!(stage["rejects"], m["rejects"]);

        // A direct recount of the rows, independent of the audit's code.
        let mut tokens: BTreeMap<String, u64> = BTreeMap::new();
        let (mut rows, mut samples, mut most_images) = (0u64, 0u64, 0u64);
        for listed in m["shards"].as_array().unwrap() {
            for row in read_rows(
                dir.path("out")
                    .join(name)
                    .join(listed["file"].as_str().unwrap()),
            )
            .unwrap()
            {
                rows += 1;
                samples += row.seq_lens.len() as u64;
                most_images =
                    most_images.max(row.images.iter().map(|i| u64::from(i.num_tokens)).sum());
                for (meta, len) in row.samples.iter().zip(&row.seq_lens) {
                    *tokens.entry(meta.category.clone()).or_default() += *len as u64;
                }
            }
        }
        for line in categories {
            assert_eq!(
                line["counts"]["tokens"].as_u64().unwrap(),
                tokens[line["name"].as_str().unwrap()]
            );
        }
        let packs = &stage["packs"];
        let mean = packs["samples_per_pack"]["mean"].as_f64().unwrap();
        assert!((mean - samples as f64 / rows as f64).abs() < 1e-9);
        assert_eq!(
            packs["image_tokens_per_pack"]["max"].as_u64().unwrap(),
            most_images
        );
        let histogram: u64 = packs["sample_length_histogram"]["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(histogram, samples);
        let packs_counted: u64 = packs["image_tokens_per_pack_histogram"]["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(packs_counted, rows);
    }

    // The table says the same, in words, and passes (exit 0).
    assert_cli_snapshot!(
        "table_against_its_recipe",
        dir,
        &["audit", "out", "--recipe", "r.yaml", "--tolerance", "5"]
    );
}

#[test]
fn another_mix_or_recipe_fails_the_gate_naming_stage_and_category() {
    let dir = built();
    // Same data, another mix: the fingerprint differs and caption is about 10 points off in warmup.
    dir.write(
        "other.yaml",
        small_recipe().replace(
            "mix: {caption: 0.7, vqa: 0.3}",
            "mix: {caption: 0.6, vqa: 0.4}",
        ),
    );
    // Exit 1: both warmup categories FAIL the 5 pp gate, and every stage's shards and build.json
    // name the fingerprint they were built from.
    assert_cli_snapshot!(
        "another_mix",
        dir,
        &["audit", "out", "--recipe", "other.yaml", "--tolerance", "5"]
    );
    // The recipe it was built from: the planner lands every category of these 20k-token stages
    // within the default 0.5 pp gate (closest draws, carried over from source to source).
    let strict = dir.run(&["audit", "out", "--recipe", "r.yaml", "--json"]);
    assert_eq!(strict.code, 0, "{}\n{}", strict.stdout, strict.stderr);
    let audit = json(&strict.stdout);
    for stage in audit["stages"].as_array().unwrap() {
        for category in stage["categories"].as_array().unwrap() {
            assert_eq!(
                category["within_tolerance"].as_bool(),
                Some(true),
                "{category}"
            );
        }
    }
    let loose = dir.run(&["audit", "out", "--recipe", "r.yaml", "--tolerance", "5"]);
    assert_eq!(loose.code, 0, "{}", loose.stdout);
}

#[test]
fn a_lock_file_or_one_stage_folder_is_audited_too() {
    let dir = built();
    let lock = dir.run(&["plan", "r.yaml", "--lock", "lock.json"]);
    assert_eq!(lock.code, 0, "{}", lock.stderr);
    let out = dir.run(&[
        "audit",
        "out",
        "--lock",
        "lock.json",
        "--tolerance",
        "5",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(json(&out.stdout)["recipe"], "small");
    // One stage folder: only that stage, and the others are not reported missing.
    let one = dir.run(&[
        "audit",
        "out/main",
        "--lock",
        "lock.json",
        "--tolerance",
        "5",
        "--json",
    ]);
    assert_eq!(one.code, 0, "{}\n{}", one.stdout, one.stderr);
    let audit = json(&one.stdout);
    assert_eq!(audit["stages"].as_array().unwrap().len(), 1);
    assert_eq!(audit["stages"][0]["name"], "main");
    // Without a recipe: figures only, no targets.
    let bare = dir.run(&["audit", "out", "--json"]);
    assert_eq!(bare.code, 0, "{}", bare.stderr);
    assert_eq!(
        json(&bare.stdout)["stages"][0]["categories"][0]["target_share"],
        Value::Null
    );
    // A folder that holds no shards cannot be audited.
    std::fs::create_dir_all(dir.path("empty")).unwrap();
    assert_cli_snapshot!("an_empty_folder", dir, &["audit", "empty"]);
}

#[test]
fn a_rewritten_row_is_caught_against_the_manifest() {
    let dir = built();
    let stage = dir.path("out/warmup");
    let shard_path = stage.join("shard-00001.parquet");
    let shard = ShardFile::open(&shard_path).unwrap();
    let meta = shard.meta().clone();
    let mut rows = shard.read_all().unwrap();
    // Relabel one caption sample as vqa: a valid shard, but not the one the manifest describes.
    let sample = rows[0]
        .samples
        .iter_mut()
        .find(|s| s.category == "caption")
        .expect("a caption sample");
    sample.category = "vqa".into();
    std::fs::remove_file(&shard_path).unwrap();
    let mut writer = ShardWriter::try_new(&stage, meta, ShardOptions::default()).unwrap();
    for row in rows {
        writer.write(row).unwrap();
    }
    writer.finish().unwrap();

    // The audit reports what `verify` finds: the shard is not the one the manifest lists, and how
    // to rebuild just that shard.
    let out = assert_cli_snapshot!(
        dir,
        &["audit", "out", "--recipe", "r.yaml", "--tolerance", "5"]
    );
    let verify = dir.run(&["verify", "out"]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    for line in verify.stdout.lines().filter(|l| l.starts_with("problem: ")) {
        let problem = line.trim_start_matches("problem: ");
        assert!(out.stdout.contains(problem), "audit lacks `{problem}`");
    }
}

#[test]
fn damaged_bytes_and_an_edited_manifest_fail_with_the_file_named() {
    let dir = built();
    // Garbage in the middle of a shard: it no longer decodes (or hashes) as built.
    let shard = dir.path("out/main/shard-00000.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5A;
    }
    std::fs::write(&shard, &bytes).unwrap();
    // And a manifest whose caption tokens were edited by hand.
    let path = dir.path("out/_mixtape/warmup/manifest.json");
    let mut m = manifest(&dir.path("out/warmup"));
    let tokens = m["by_category"]["caption"]["tokens"].as_u64().unwrap();
    m["by_category"]["caption"]["tokens"] = (tokens + 1).into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();

    let out = dir.run(&[
        "audit",
        "out",
        "--recipe",
        "r.yaml",
        "--tolerance",
        "5",
        "--json",
    ]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let problems = json(&out.stdout)["problems"].clone();
    let problems = problems.as_array().unwrap();
    // Integrity problems are `verify --json`'s objects.
    let blake3 = problems
        .iter()
        .find(|p| p["kind"] == "blake3_mismatch")
        .expect("hash mismatch");
    assert_eq!(blake3["path"], "out/main/shard-00000.parquet");
    assert!(blake3["fix"].as_str().unwrap().contains("mixtape build"));
    let edited = problems
        .iter()
        .find(|p| p["kind"] == "totals_mismatch" && p["field"] == "by_category[caption]")
        .expect("edited field");
    assert_eq!(edited["path"], "out/_mixtape/warmup/manifest.json");
    let stated = edited["stated"].as_str().unwrap();
    assert!(
        stated.contains(&format!("tokens {},", tokens + 1)),
        "{stated}"
    );
    let sum = edited["sum"].as_str().unwrap();
    assert!(sum.contains(&format!("tokens {tokens},")), "{sum}");
    // The damaged shard is marked incomplete, the others complete: no 0% efficiency for a shard
    // that was only partly read.
    let doc = json(&out.stdout);
    let main = doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "main")
        .unwrap();
    for shard in main["shards"].as_array().unwrap() {
        let damaged = shard["file"] == "shard-00000.parquet";
        assert_eq!(shard["complete"], !damaged, "{shard}");
    }
    // The table names the same problems, each with its fix.
    assert_cli_snapshot!(
        "table_of_a_damaged_build",
        dir,
        &["audit", "out", "--recipe", "r.yaml", "--tolerance", "5"]
    );
}

#[test]
fn the_html_report_is_one_self_contained_file_with_labelled_charts() {
    let dir = built();
    let out = dir.run(&[
        "audit",
        "out",
        "--recipe",
        "r.yaml",
        "--tolerance",
        "5",
        "--html",
        "report.html",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let html = std::fs::read_to_string(dir.path("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for external in [
        "http:", "https:", "//", "<script", "<link", "src=", "href=", "url(", "@import", "<iframe",
        "<img",
    ] {
        let outside_comments = html.replace("<!--", "");
        assert!(
            !outside_comments.contains(external),
            "the report must not reference `{external}`"
        );
    }
    for title in [
        "Stage warmup: target vs realized share per category, on tokens",
        "Stage main: per-source share of tokens (coloured by category)",
        "Stage main: packing efficiency per shard",
        "Stage warmup: sequence length of packed samples",
        "Stage warmup: image tokens per pack (vision load balance)",
    ] {
        assert!(html.contains(title), "missing chart `{title}`");
    }
    assert_eq!(html.matches("<svg").count(), 10, "five charts per stage");
    assert!(html.contains("Passed:"));
    // Names are escaped: a category called <b> would not become markup.
    assert!(!html.contains("<b>small</b>") || html.contains("against recipe <b>small</b>"));
}

#[test]
fn the_stream_audit_reports_what_the_training_reader_yields_window_by_window() {
    let dir = built();
    let args = [
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--rank",
        "0",
        "--world-size",
        "1",
    ];
    let mut audit_args = vec![
        "audit", "--stream", "out", "--recipe", "r.yaml", "--window", "2", "--json",
    ];
    audit_args.extend(args);
    let out = dir.run(&audit_args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["steps_read"], 6);
    let windows = report["windows"].as_array().unwrap();
    assert!(windows.len() >= 3, "6 steps in windows of 2: {windows:?}");
    assert_eq!(
        windows[0]["stage"], "warmup",
        "stages are read in the recipe's order"
    );

    // Windows tile steps 1..=6 and each one's categories add up to its total.
    let mut next_step = 1;
    let mut summed: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for w in windows {
        assert_eq!(w["first_step"], next_step);
        let last = w["last_step"].as_u64().unwrap();
        assert!(
            last - next_step < 2,
            "a window holds at most --window steps: {w}"
        );
        next_step = last + 1;
        let mut tokens = 0;
        for c in w["categories"].as_array().unwrap() {
            let counts = &c["counts"];
            tokens += counts["tokens"].as_u64().unwrap();
            let entry = summed
                .entry(c["name"].as_str().unwrap().to_owned())
                .or_default();
            for (i, key) in ["samples", "tokens", "loss_tokens", "image_tokens", "images"]
                .iter()
                .enumerate()
            {
                entry[i] += counts[key].as_u64().unwrap();
            }
            // Targets come from the window's stage in the recipe.
            let target = c["target_share"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&target));
        }
        assert_eq!(tokens, w["total"]["tokens"].as_u64().unwrap());
    }
    assert_eq!(next_step, 7);

    // The same reader settings through `mixtape stream` consume exactly the windows' sum.
    let mut stream_args = vec![
        "stream",
        "out/warmup",
        "out/main",
        "--images",
        "skip",
        "--json",
    ];
    stream_args.extend(args);
    let out = dir.run(&stream_args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let stream = json(&out.stdout);
    let tally = stream["tally"]["by_category"].as_object().unwrap();
    let from_stream: BTreeMap<String, [u64; 5]> = tally
        .iter()
        .map(|(name, c)| {
            let keys = ["samples", "tokens", "loss_tokens", "image_tokens", "images"];
            (name.clone(), keys.map(|k| c[k].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(summed, from_stream);
}

#[test]
fn the_stream_audit_warns_about_a_stage_smaller_than_one_global_step() {
    let dir = built();
    let rows = json(&std::fs::read_to_string(dir.path("out/_mixtape/main/manifest.json")).unwrap())
        ["totals"]["rows"]
        .as_u64()
        .unwrap();
    let batch = (rows + 1).to_string();
    // Exit 0, the warning on stderr and in the report, and no step read.
    let out = assert_cli_snapshot!(
        dir,
        &[
            "audit",
            "--stream",
            "out/main",
            "--steps",
            "3",
            "--batch-size",
            &batch,
            "--json",
        ]
    );
    let report = json(&out.stdout);
    assert_eq!(report["steps_read"], 0);
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1, "{report}");
}
