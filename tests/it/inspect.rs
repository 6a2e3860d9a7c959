//! `mixtape inspect`: packed rows shown readably, decoded with the recipe's tokenizer, image pads
//! collapsed, images written out as real files of the size the shard states.
//!
//! What the text view shows (sample headers, ChatML turns, loss marks, collapsed pads, the errors
//! for a bad selection or a changed tokenizer) is pinned by CLI snapshots in `snapshots/`; the JSON
//! view and the written images are checked field by field.

use crate::util::{TestDir, assert_cli_snapshot, small_recipe, tokenizer};
use serde_json::Value;

fn build(dir: &TestDir) {
    dir.write("r.yaml", small_recipe());
    let out = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn rows_are_decoded_with_the_recipes_tokenizer_and_images_written_at_their_size() {
    let dir = TestDir::new();
    build(&dir);

    // The warmup stage mixes captions and VQA conversations (ChatML), each sample introduced by
    // its span, source and category; assistant turns and captions carry loss (⟦…⟧), and each
    // image's pad run is collapsed to `<|image_pad|>xN` with the image's size.
    assert_cli_snapshot!(
        dir,
        &[
            "inspect",
            "out/warmup",
            "--rows",
            "0..3",
            "--recipe",
            "r.yaml"
        ]
    );

    let out = dir.run(&[
        "inspect",
        "out/warmup/shard-00000.parquet",
        "--rows",
        "1..3",
        "--tokenizer",
        &tokenizer(),
        "--images-out",
        "imgs",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["row"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let mut written = 0;
    for row in rows {
        for image in row["images"].as_array().unwrap() {
            let file = image["file"].as_str().unwrap();
            let bytes = std::fs::read(dir.path(file)).unwrap();
            assert!(
                file.ends_with(".jpg") && bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
                "{file}"
            );
            let expected = format!("imgs/row{}-img{}.jpg", row["row"], image["index"]);
            assert_eq!(file, expected);
            let (width, height) = image::image_dimensions(dir.path(file)).unwrap();
            assert_eq!(
                (u64::from(height), u64::from(width)),
                (
                    image["height"].as_u64().unwrap(),
                    image["width"].as_u64().unwrap()
                )
            );
            written += 1;
        }
        // Each image is one collapsed segment holding its pad count.
        let pads: Vec<&Value> = row["samples"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["segments"].as_array().unwrap())
            .filter(|s| s["kind"] == "image")
            .collect();
        assert_eq!(pads.len(), row["images"].as_array().unwrap().len());
        for pad in pads {
            let image = &row["images"][pad["image"].as_u64().unwrap() as usize];
            assert_eq!(pad["pad"], "<|image_pad|>");
            assert_eq!(pad["pad_tokens"], image["num_tokens"]);
        }
    }
    assert!(written > 0);
    assert_eq!(
        std::fs::read_dir(dir.path("imgs")).unwrap().count(),
        written
    );
}

#[test]
fn without_a_tokenizer_token_ids_are_shown_and_bad_selections_are_refused() {
    let dir = TestDir::new();
    build(&dir);
    // A stage folder copied away from its build record: no tokenizer is known.
    crate::util::copy_dir(&dir.path("out/main"), &dir.path("lone/main"));
    // A note on stderr says why; ids in brackets, an image's pads collapse to `<pad id>x<count>`
    // from the shard's own records.
    let out = assert_cli_snapshot!(
        "token_ids_without_a_tokenizer",
        dir,
        &["inspect", "lone/main", "--shard", "0", "--row", "0"]
    );
    let json = dir.run(&["inspect", "lone/main", "--json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let row = &doc["rows"][0];
    let first: &Value = &row["samples"][0]["segments"][0];
    assert!(
        first["ids"].as_array().is_some_and(|ids| !ids.is_empty()),
        "{first}"
    );
    if let Some(image) = row["images"].as_array().unwrap().first() {
        assert!(out.stdout.contains(&format!(
            "x{} [image 0: {}x{} (WxH) jpeg",
            image["num_tokens"], image["width"], image["height"]
        )));
    }

    // Exit 2, each saying what is valid.
    assert_cli_snapshot!(
        "a_row_past_the_end",
        dir,
        &["inspect", "out/main", "--row", "100000"]
    );
    assert_cli_snapshot!(
        "a_reversed_range",
        dir,
        &["inspect", "out/main", "--rows", "3..1"]
    );
    assert_cli_snapshot!(
        "a_shard_index_out_of_range",
        dir,
        &["inspect", "out/main", "--shard", "9"]
    );
}

#[test]
fn rows_are_decoded_by_default_with_the_tokenizer_the_build_recorded() {
    let dir = TestDir::new();
    build(&dir);
    // Text, not ids, and nothing on stderr.
    assert_cli_snapshot!(dir, &["inspect", "out/warmup", "--row", "0"]);
}

#[test]
fn a_tokenizer_that_is_not_the_recorded_one_is_refused() {
    let dir = TestDir::new();
    // The recipe's tokenizer is a copy the test can change after the build.
    let tokenizer_text = std::fs::read_to_string(tokenizer()).unwrap();
    dir.write("tok.json", &tokenizer_text);
    dir.write("r.yaml", small_recipe().replace(&tokenizer(), "tok.json"));
    let built = dir.run(&["build", "r.yaml", "--out", "out", "--quiet"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let record = mixtape_shards::BuildRecord::read(dir.path("out/_mixtape/build.json")).unwrap();
    let recorded = record.tokenizer.expect("the build records its tokenizer");
    assert!(recorded.path.is_absolute(), "{}", recorded.path.display());
    assert_eq!(
        recorded.blake3,
        blake3::hash(tokenizer_text.as_bytes()).to_hex().to_string()
    );

    // Still a valid tokenizer, but not the same file: decoding with it could print wrong text.
    dir.write("tok.json", format!("{tokenizer_text}\n"));
    // Both hashes are named (the snapshots show them as [HASH]: the file's, then the recorded one).
    let changed = blake3::hash(format!("{tokenizer_text}\n").as_bytes())
        .to_hex()
        .to_string();
    let by_default = assert_cli_snapshot!(
        "changed_tokenizer_by_default",
        dir,
        &["inspect", "out/warmup"]
    );
    let named = assert_cli_snapshot!(
        "changed_tokenizer_named",
        dir,
        &["inspect", "out/warmup", "--tokenizer", "tok.json"]
    );
    for out in [by_default, named] {
        let positions = (out.stderr.find(&changed), out.stderr.find(&recorded.blake3));
        assert!(
            matches!(positions, (Some(file), Some(build)) if file < build),
            "{}",
            out.stderr
        );
    }
}
