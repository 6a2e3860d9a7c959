//! The recipe's `template` settings: a system prompt (recipe-wide, replaced or turned off per
//! source) and where the loss falls at the end of an assistant turn, seen in the plan's counts, the
//! fingerprint and the built rows.

use serde_json::Value;

use crate::util::{TestDir, assert_cli_snapshot, tokenizer};

const SYSTEM: &str = "You are a helpful assistant.";

/// Two conversation sources; `template` is the recipe's setting (empty for none) and `plain` is the
/// second source's extra settings.
fn recipe(template: &str, plain: &str) -> String {
    format!(
        "version: 1\nname: chat\nseed: 5\ntokenizer: {{path: {tok}}}\n{template}sources:\n  \
         qa: {{format: synthetic, kind: shapes-vqa, count: 200, category: vqa}}\n  \
         plain: {{format: synthetic, kind: shapes-vqa, count: 200, seed: 1, category: vqa{plain}}}\n\
         stages:\n  - name: only\n    seq_len: 2048\n    budget: {{samples: 40}}\n    \
         mix: {{vqa: 1.0}}\n    image: {{max_pixels: 200704}}\n",
        tok = tokenizer()
    )
}

/// Per source: (draws, tokens, loss tokens) in the plan.
fn plan(dir: &TestDir, recipe: &str) -> (Value, Vec<(u64, u64, u64)>) {
    let out = dir.run(&["plan", recipe, "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).expect("plan JSON");
    let sources = plan["stages"][0]["categories"][0]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["end"].as_u64().unwrap() - s["start"].as_u64().unwrap(),
                s["expected"]["tokens"].as_u64().unwrap(),
                s["expected"]["loss_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    (plan["fingerprint"].clone(), sources)
}

#[test]
fn a_system_prompt_is_added_to_every_conversation_of_the_sources_that_keep_it() {
    let dir = TestDir::new();
    dir.write("bare.yaml", recipe("", ""));
    dir.write(
        "system.yaml",
        recipe(
            &format!("template: {{format: chatml, system: \"{SYSTEM}\"}}\n"),
            ", system: null",
        ),
    );
    let (bare_fp, bare) = plan(&dir, "bare.yaml");
    let (system_fp, system) = plan(&dir, "system.yaml");
    assert_ne!(bare_fp, system_fp);
    // Sources in name order: `plain` turned the prompt off and is unchanged.
    assert_eq!(system[0], bare[0]);
    // `qa` draws the same samples, each longer by the same system turn, which carries no loss.
    let ((draws, bare_tokens, bare_loss), (same_draws, tokens, loss)) = (bare[1], system[1]);
    assert_eq!(draws, same_draws);
    assert_eq!(loss, bare_loss);
    let added = tokens - bare_tokens;
    assert!(
        added > 0 && added % draws == 0,
        "{added} over {draws} draws"
    );

    // The built rows show it: the system turn first, no loss on it (no ⟦…⟧).
    let out = dir.run(&["build", "system.yaml", "--out", "out", "--quiet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dir.run(&["inspect", "out/only", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let (mut with, mut without) = (0, 0);
    for row in doc["rows"].as_array().unwrap() {
        for sample in row["samples"].as_array().unwrap() {
            let first = &sample["segments"][0];
            let opens_with_system = first["text"].as_str().unwrap().starts_with(&format!(
                "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user"
            ));
            assert_eq!(opens_with_system, sample["source"] == "qa", "{sample}");
            assert_eq!(first["loss"], false, "{sample}");
            if opens_with_system {
                with += 1;
            } else {
                without += 1;
            }
        }
    }
    assert!(with > 0 && without > 0);
}

#[test]
fn turn_end_loss_moves_the_loss_on_each_assistant_turns_end() {
    let dir = TestDir::new();
    let with = |setting: &str| {
        let name = format!("{setting}.yaml");
        dir.write(
            &name,
            recipe(&format!("template: {{turn_end_loss: {setting}}}\n"), ""),
        );
        plan(&dir, &name).1
    };
    let (im_end, newline, none) = (with("im_end"), with("im_end_newline"), with("none"));
    dir.write("default.yaml", recipe("", ""));
    assert_eq!(
        plan(&dir, "default.yaml").1,
        im_end,
        "im_end is the default"
    );
    for k in 0..2 {
        let ((draws, tokens, loss), (_, tokens_nl, loss_nl), (_, tokens_none, loss_none)) =
            (im_end[k], newline[k], none[k]);
        // The same tokens; one more loss token per assistant turn with the newline, one fewer
        // without `<|im_end|>` (each sample has at least one assistant turn).
        assert_eq!((tokens_nl, tokens_none), (tokens, tokens));
        assert_eq!(loss_nl - loss, loss - loss_none);
        assert!(
            loss_nl - loss >= draws,
            "{loss_nl} vs {loss} over {draws} draws"
        );
    }

    // In a built row: loss (⟦…⟧) runs over `<|im_end|>` and the newline after it.
    let out = dir.run(&["build", "im_end_newline.yaml", "--out", "out", "--quiet"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = dir.run(&["inspect", "out/only", "--rows", "0..1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("<|im_end|>\n⟧"), "{}", out.stdout);
    assert!(!out.stdout.contains("<|im_end|>⟧"), "{}", out.stdout);
}

#[test]
fn bad_template_settings_are_errors_at_their_place() {
    let dir = TestDir::new();
    dir.write(
        "r.yaml",
        recipe(
            "template: {system: \"<image> Describe it.\", turn_end_loss: im_end_nl}\n",
            ", system: [1, 2]",
        ),
    );
    assert_cli_snapshot!("template_errors", dir, &["check", "r.yaml"]);
}

#[test]
fn template_settings_reach_only_sources_with_conversations() {
    let dir = TestDir::new();
    let with_prose = |template: &str, prose: &str| {
        format!(
            "version: 1\nname: mixed\ntokenizer: {{path: {tok}}}\n{template}sources:\n  \
             qa: {{format: synthetic, kind: shapes-vqa, count: 100, category: vqa}}\n  \
             prose: {{format: synthetic, kind: long-text, count: 40, category: text{prose}}}\n\
             stages:\n  - name: only\n    seq_len: 2048\n    budget: {{samples: 20}}\n    \
             mix: {{vqa: 0.5, text: 0.5}}\n",
            tok = tokenizer()
        )
    };
    dir.write("bare.yaml", with_prose("", ""));
    dir.write(
        "styled.yaml",
        with_prose(
            &format!("template: {{system: \"{SYSTEM}\", turn_end_loss: none}}\n"),
            "",
        ),
    );
    let settings = |recipe: &str| {
        let out = dir.run(&["plan", recipe, "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let plan: Value = serde_json::from_str(&out.stdout).unwrap();
        let by_name = |name: &str| {
            plan["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap()["settings"]
                .clone()
        };
        (by_name("qa"), by_name("prose"))
    };
    let (bare_qa, bare_prose) = settings("bare.yaml");
    let (qa, prose) = settings("styled.yaml");
    assert_eq!(prose, bare_prose, "text renders without a chat template");
    assert_eq!(qa["system"], SYSTEM);
    assert_eq!(qa["turn_end_loss"], "none");
    assert!(bare_qa.get("system").is_none(), "{bare_qa}");

    // A source's own `system` on records that are not conversations, or `long_text` on records
    // that are not text, is an error at the key.
    dir.write(
        "r.yaml",
        with_prose("", ", system: Be brief.")
            .replace("category: vqa}", "category: vqa, long_text: drop}"),
    );
    assert_cli_snapshot!("settings_for_other_records", dir, &["check", "r.yaml"]);
}
