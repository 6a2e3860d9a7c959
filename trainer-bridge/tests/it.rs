//! End-to-end tests of `mixtape-train` on the demo recipe: the real binary, run in a temp folder per
//! test, over a build of `recipes/demo.yaml` made once per test process (the builder skips stages it
//! already finished, so later runs reuse it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mixtape_trainer_bridge::log::{Record, read};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn demo_recipe() -> PathBuf {
    repo().join("recipes/demo.yaml")
}

/// The demo's shards, built once.
fn demo_build() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trainer-bridge-demo");
        let mut options = mixtape_engine::build::BuildOptions::new(root.join("out"));
        options.cache.dir = Some(root.join("cache"));
        let build = || mixtape_engine::build::build(&demo_recipe(), &options, &|_| {});
        // The folder outlives test runs: one left by another recipe, JPEG encoder or mixtape is rebuilt.
        if let Err(
            mixtape_engine::build::BuildError::OtherBuild { .. }
            | mixtape_engine::build::BuildError::OtherJpegEncoder { .. }
            | mixtape_engine::build::BuildError::Unowned { .. },
        ) = build()
        {
            std::fs::remove_dir_all(root.join("out")).expect("remove the stale demo build");
        }
        build().expect("build the demo");
        root.join("out")
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn train_bin(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_mixtape-train"))
        .args(args)
        .output()
        .expect("run mixtape-train");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn train(out: &Path, extra: &[&str]) -> Run {
    let (recipe, data) = (demo_recipe(), demo_build());
    let mut args = vec![
        "train",
        recipe.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = train_bin(&args);
    assert_eq!(
        run.code, 0,
        "mixtape-train failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run
}

/// `(global step, loss)` of every optimizer step in a run's log.
fn step_losses(run_dir: &Path) -> Vec<(u64, f64)> {
    read(&run_dir.join("train.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some((s.global_step, s.loss)),
            _ => None,
        })
        .collect()
}

fn evals(run_dir: &Path, set: &str) -> Vec<f64> {
    read(&run_dir.join("train.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Eval { set: s, loss, .. } if s == set => Some(loss),
            _ => None,
        })
        .collect()
}

/// Model sizes for the tests: the default shape, narrower, so a debug-build CI run of every stage
/// stays within a couple of minutes on two cores.
const TEST_MODEL: &str = r#"{"vision_dim": 32, "vision_heads": 2, "vision_mlp": 64, "llm_dim": 64, "llm_heads": 2, "llm_mlp": 128}"#;

/// Steps per stage in the tests, and the recipe-rate multiplier a from-scratch model needs.
const STEPS: &str = "2";
const LR_MULTIPLIER: &str = "200";

fn test_args(dir: &Path) -> Vec<String> {
    let config = dir.join("model.json");
    std::fs::write(&config, TEST_MODEL).unwrap();
    [
        "--model-config",
        config.to_str().unwrap(),
        "--max-steps",
        STEPS,
        "--lr-multiplier",
        LR_MULTIPLIER,
        "--seed",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The uninterrupted run every test compares against, made once.
fn reference_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trainer-bridge-reference");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let args = test_args(&dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        train(&dir.join("run"), &args);
        dir.join("run")
    })
}

#[test]
fn all_three_demo_stages_train_and_held_back_loss_drops() {
    let run = reference_run();
    let records = read(&run.join("train.jsonl")).unwrap();
    let stages: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::StageEnd { stage, .. } => Some(stage.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stages, ["warmup", "multitask", "sft"]);
    // Warm-up trains the projector only; later stages everything, the projector at 10x (lr_scale).
    for r in &records {
        if let Record::Step(s) = r {
            let modules: Vec<&str> = s.lrs.keys().map(String::as_str).collect();
            match s.stage.as_str() {
                "warmup" => assert_eq!(modules, ["projector"]),
                _ => {
                    assert_eq!(modules, ["llm", "projector", "vision"]);
                    assert!((s.lrs["projector"] / s.lrs["llm"] - 10.0).abs() < 1e-9);
                }
            }
            assert!(s.tokens_per_s > 0.0 && s.loss.is_finite());
            let share: f64 = s.mix.values().sum();
            assert!((share - 1.0).abs() < 1e-3, "mix shares sum to {share}");
        }
    }
    // The held-back rows of every stage together: a clear drop from the untrained model.
    let all = evals(run, "all");
    assert_eq!(
        all.len(),
        2,
        "an evaluation before the first step and one at the end"
    );
    let (before, after) = (all[0], all[1]);
    // Evaluation is deterministic, so any drop is real; 0.4 nats is a third off the perplexity (measured
    // here: 8.33 -> 7.67 after 2 steps per stage).
    assert!(
        after < before - 0.4,
        "held-back loss {before} -> {after}: no clear drop"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["finished"], true);
    let svg = std::fs::read_to_string(run.join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("multitask"));
    assert!(run.join("stage-sft.safetensors").is_file());
}

#[test]
fn a_stopped_and_resumed_run_reproduces_the_losses_exactly() {
    let reference = step_losses(reference_run());
    let dir = tempfile::tempdir().unwrap();
    let args = test_args(dir.path());
    let mut first: Vec<&str> = args.iter().map(String::as_str).collect();
    // Stop in the middle of the second stage.
    first.extend_from_slice(&["--stop-after", "3"]);
    let out = dir.path().join("run");
    let stopped = train(&out, &first);
    assert!(
        stopped.stdout.starts_with("stopped after 3 steps"),
        "{}",
        stopped.stdout
    );
    assert_eq!(step_losses(&out), reference[..3]);
    let checkpoint = out.join("step-000003.safetensors");
    let mut second: Vec<&str> = args.iter().map(String::as_str).collect();
    second.extend_from_slice(&["--resume", checkpoint.to_str().unwrap()]);
    train(&out, &second);
    let resumed = step_losses(&out);
    assert_eq!(resumed.len(), reference.len());
    for ((step, a), (_, b)) in resumed.iter().zip(&reference) {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "step {step}: resumed loss {a} vs uninterrupted {b}"
        );
    }
}

#[test]
fn average_writes_the_mean_and_refuses_other_models() {
    let run = reference_run();
    let dir = tempfile::tempdir().unwrap();
    let soup = dir.path().join("soup.safetensors");
    let (a, b) = (
        run.join("stage-multitask.safetensors"),
        run.join("stage-sft.safetensors"),
    );
    let ok = train_bin(&[
        "average",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--weights",
        "1,3",
        "--out",
        soup.to_str().unwrap(),
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let load = |p: &Path| mixtape_trainer_bridge::checkpoint::Checkpoint::load(p).unwrap();
    let (ca, cb, cs) = (load(&a), load(&b), load(&soup));
    let get = |c: &mixtape_trainer_bridge::checkpoint::Checkpoint, name: &str| {
        Vec::<f32>::try_from(
            c.tensors
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .view(-1),
        )
        .unwrap()
    };
    let name = "model.projector.fc2.weight";
    for ((x, y), z) in get(&ca, name)
        .iter()
        .zip(get(&cb, name))
        .zip(get(&cs, name))
    {
        let want = (0.25 * f64::from(*x) + 0.75 * f64::from(y)) as f32;
        assert_eq!(z, want);
    }
    // A checkpoint of another model size cannot be averaged in.
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("run");
    let config = other_dir.path().join("model.json");
    std::fs::write(&config, r#"{"llm_dim": 32, "llm_heads": 2, "llm_mlp": 64}"#).unwrap();
    train(
        &other,
        &[
            "--model-config",
            config.to_str().unwrap(),
            "--max-steps",
            "1",
        ],
    );
    let bad = train_bin(&[
        "average",
        a.to_str().unwrap(),
        other.join("stage-warmup.safetensors").to_str().unwrap(),
        "--out",
        dir.path().join("bad.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("model configuration differs") || bad.stderr.contains("shape"),
        "{}",
        bad.stderr
    );
}

#[test]
fn resolution_search_reports_every_budget_and_the_best() {
    let run = reference_run();
    let (recipe, data) = (demo_recipe(), demo_build());
    let checkpoint = run.join("stage-sft.safetensors");
    let out = train_bin(&[
        "resolution-search",
        checkpoint.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-pixels",
        "50176,200704,401408",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let search: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let results = search["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let losses: Vec<f64> = results
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    let tokens: Vec<u64> = results
        .iter()
        .map(|r| r["image_tokens"].as_u64().unwrap())
        .collect();
    // A larger budget gives the held-back images more tokens; the loss tokens stay the same text.
    assert!(
        tokens[0] < tokens[1] && tokens[1] <= tokens[2],
        "{tokens:?}"
    );
    let loss_tokens: Vec<u64> = results
        .iter()
        .map(|r| r["loss_tokens"].as_u64().unwrap())
        .collect();
    assert!(
        loss_tokens.iter().all(|&t| t == loss_tokens[0]),
        "{loss_tokens:?}"
    );
    assert!(
        losses[0] != losses[1],
        "re-resizing must change what the model sees"
    );
    let best = search["best"].as_u64().unwrap() as usize;
    let min = losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(losses[best], min);
    // The human-readable table marks it.
    let table = train_bin(&[
        "resolution-search",
        checkpoint.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--max-pixels",
        "50176,200704",
    ]);
    assert!(table.stdout.contains("<- best"), "{}", table.stdout);
}

#[test]
fn an_unknown_device_is_refused_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let (recipe, data) = (demo_recipe(), demo_build());
    let out = Command::new(env!("CARGO_BIN_EXE_mixtape-train"))
        .args([
            "train",
            recipe.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
        ])
        .arg(dir.path().join("run"))
        .args(["--device", "tpu:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device `tpu:0`"));
}
