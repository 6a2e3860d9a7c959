//! Text longer than a stage's `seq_len`: `long_text: split` (windows, each a sample), `truncate`
//! (the first `seq_len` tokens, one sample) or `drop` (rejected as `too_long`), set per stage under
//! `pack` or per source, with the plan and the built shards agreeing on every count, and a token
//! budget landing exactly under each.

use serde_json::Value;

use crate::util::{TestDir, assert_cli_snapshot, tokenizer};

const SEQ_LEN: u64 = 1024;

/// One long-text source (documents of 150 to 5,000 words, most over 1,024 tokens) and one stage of
/// 30 samples; `source` and `pack` are extra settings of each.
fn recipe(source: &str, pack: &str) -> String {
    format!(
        "version: 1\nname: long\nseed: 3\ntokenizer: {{path: {tok}}}\nsources:\n  \
         prose: {{format: synthetic, kind: long-text, count: 200, category: text{source}}}\n\
         stages:\n  - name: only\n    seq_len: {SEQ_LEN}\n    budget: {{samples: 30}}\n    \
         mix: {{text: 1.0}}\n{pack}",
        tok = tokenizer()
    )
}

fn plan_source(dir: &TestDir, recipe: &str) -> Value {
    let out = dir.run(&["plan", recipe, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).expect("plan JSON");
    plan["stages"][0]["categories"][0]["sources"][0].clone()
}

/// Builds `recipe` into `out` and returns the stage's manifest and the drawn records it rejected.
fn build(dir: &TestDir, recipe: &str, out: &str) -> (Value, Vec<Value>) {
    let run = dir.run(&[
        "build",
        recipe,
        "--out",
        out,
        "--quiet",
        "--max-reject-fraction",
        "1",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let layout = mixtape_shards::BuildLayout::new(dir.path(out));
    let manifest =
        serde_json::from_slice(&std::fs::read(layout.stage("only").manifest()).unwrap()).unwrap();
    let rejects = std::fs::read_to_string(layout.stage("only").rejects())
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (manifest, rejects)
}

fn draws(source: &Value) -> u64 {
    source["end"].as_u64().unwrap() - source["start"].as_u64().unwrap()
}

#[test]
fn split_makes_windows_that_each_count_as_a_sample_on_a_samples_budget() {
    let dir = TestDir::new();
    dir.write("r.yaml", recipe("", ""));
    let source = plan_source(&dir, "r.yaml");
    // Whole documents are drawn until the next would overshoot more than stopping short does.
    let samples = source["expected"]["samples"].as_u64().unwrap();
    assert!((24..=36).contains(&samples), "{source}");
    // Far fewer documents than samples: the long ones fill several windows each.
    assert!(draws(&source) * 2 < samples, "{source}");
    assert!(
        source["rejected"].as_object().unwrap().is_empty(),
        "{source}"
    );

    let (manifest, rejects) = build(&dir, "r.yaml", "out");
    assert_eq!(manifest["totals"]["samples"], samples, "{manifest}");
    assert_eq!(manifest["totals"]["tokens"], source["expected"]["tokens"]);
    assert!(rejects.is_empty(), "{rejects:?}");
}

#[test]
fn truncate_keeps_the_first_seq_len_tokens_of_each_document_as_one_sample() {
    let dir = TestDir::new();
    dir.write("r.yaml", recipe("", "    pack: {long_text: truncate}\n"));
    let source = plan_source(&dir, "r.yaml");
    // One sample per document, none rejected, and no document counted past seq_len.
    assert_eq!(draws(&source), 30, "{source}");
    assert_eq!(source["expected"]["samples"], 30);
    assert!(
        source["rejected"].as_object().unwrap().is_empty(),
        "{source}"
    );
    let tokens = source["expected"]["tokens"].as_u64().unwrap();
    assert!(tokens <= 30 * SEQ_LEN, "{source}");
    // Most documents are longer than seq_len, so most samples are exactly seq_len.
    assert!(tokens > 20 * SEQ_LEN, "{source}");
    assert_eq!(source["expected"]["loss_tokens"], tokens);

    let (manifest, rejects) = build(&dir, "r.yaml", "out");
    assert_eq!(manifest["totals"]["samples"], 30, "{manifest}");
    assert_eq!(manifest["totals"]["tokens"], tokens, "{manifest}");
    assert_eq!(manifest["totals"]["loss_tokens"], tokens, "{manifest}");
    assert!(rejects.is_empty(), "{rejects:?}");
}

#[test]
fn drop_rejects_each_long_document_as_too_long_in_the_plan_and_the_build_alike() {
    let dir = TestDir::new();
    dir.write("r.yaml", recipe("", "    pack: {long_text: drop}\n"));
    let source = plan_source(&dir, "r.yaml");
    let too_long = source["rejected"]["too_long"].as_u64().unwrap();
    assert!(too_long > 0, "{source}");
    assert_eq!(draws(&source), 30 + too_long, "{source}");
    let tokens = source["expected"]["tokens"].as_u64().unwrap();
    assert!(tokens <= 30 * SEQ_LEN, "{source}");

    let (manifest, rejects) = build(&dir, "r.yaml", "out");
    assert_eq!(manifest["totals"]["samples"], 30, "{manifest}");
    assert_eq!(manifest["totals"]["tokens"], tokens, "{manifest}");
    // Every drawn document is in a shard or in the reject list with its reason.
    assert_eq!(rejects.len() as u64, too_long, "{rejects:?}");
    for reject in &rejects {
        assert_eq!(reject["reason"], "too_long", "{reject}");
        assert!(
            reject["message"]
                .as_str()
                .unwrap()
                .contains("long_text: drop"),
            "{reject}"
        );
    }
}

#[test]
fn a_sources_long_text_wins_over_its_stages_and_changes_the_fingerprint() {
    let dir = TestDir::new();
    dir.write("stage.yaml", recipe("", "    pack: {long_text: drop}\n"));
    dir.write(
        "both.yaml",
        recipe(", long_text: truncate", "    pack: {long_text: drop}\n"),
    );
    dir.write(
        "truncate.yaml",
        recipe("", "    pack: {long_text: truncate}\n"),
    );
    let both = plan_source(&dir, "both.yaml");
    assert!(both["rejected"].as_object().unwrap().is_empty(), "{both}");
    assert_eq!(
        both["expected"],
        plan_source(&dir, "truncate.yaml")["expected"]
    );

    let fingerprint = |recipe: &str| {
        let out = dir.run(&["plan", recipe, "--json"]);
        serde_json::from_str::<Value>(&out.stdout).unwrap()["fingerprint"].clone()
    };
    assert_ne!(fingerprint("stage.yaml"), fingerprint("both.yaml"));
}

#[test]
fn the_old_split_long_text_switch_still_reads_and_cannot_be_mixed_with_long_text() {
    let dir = TestDir::new();
    dir.write(
        "old.yaml",
        recipe("", "    pack: {split_long_text: false}\n"),
    );
    dir.write("new.yaml", recipe("", "    pack: {long_text: drop}\n"));
    assert_eq!(plan_source(&dir, "old.yaml"), plan_source(&dir, "new.yaml"));
    dir.write(
        "r.yaml",
        recipe(
            ", long_text: trim",
            "    pack: {split_long_text: true, long_text: split}\n",
        ),
    );
    assert_cli_snapshot!("long_text_errors", dir, &["check", "r.yaml"]);
}

#[test]
fn a_token_budget_lands_exactly_under_every_long_text_policy() {
    // The stage's last document is cut to the tokens the budget has left, whether long documents
    // are split, truncated or dropped: a cut keeps fewer tokens than the document's usable ones, so
    // it always fits a window.
    let dir = TestDir::new();
    for policy in ["split", "truncate", "drop"] {
        let text = recipe("", &format!("    pack: {{long_text: {policy}}}\n"))
            .replace("budget: {samples: 30}", "budget: {tokens: 20000}");
        let name = format!("{policy}.yaml");
        dir.write(&name, text);
        let source = plan_source(&dir, &name);
        assert_eq!(source["expected"]["tokens"], 20000, "{policy}: {source}");
        let (manifest, _) = build(&dir, &name, &format!("out-{policy}"));
        assert_eq!(manifest["totals"]["tokens"], 20000, "{policy}: {manifest}");
        assert_eq!(
            manifest["totals"]["loss_tokens"], 20000,
            "{policy}: {manifest}"
        );
    }
}
