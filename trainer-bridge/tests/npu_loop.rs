//! The whole training loop on `--device npu:0`, through the NPU shim and the fake PrivateUse1 backend
//! (shim/fake_npu.cpp, built by build.rs): the real `mixtape-train` binary trains every stage of the
//! demo recipe once on the CPU and once on the "npu", and every logged loss (training steps and
//! held-back evaluations) and the final checkpoint must be bit-identical.
//!
//! The fake runs every kernel as the CPU does, so a difference could only come from the device
//! plumbing: a tensor created on the wrong device, a value read back wrongly, a parameter that
//! stopped being the one the optimizer updates, a checkpoint not read back through the placement.
//! Each run is its own process: the backend must load before the process's first backward pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use mixtape_trainer_bridge::log::{Record, read};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn fake_backend() -> PathBuf {
    Path::new(env!("MIXTAPE_NPU_TEST_BACKENDS")).join("libmixtape_fake_npu.so")
}

/// The demo's shards (the same build folder as tests/it.rs: the builder skips finished stages).
fn demo_build() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trainer-bridge-demo");
    let mut options = mixtape_engine::build::BuildOptions::new(root.join("out"));
    options.cache.dir = Some(root.join("cache"));
    let build =
        || mixtape_engine::build::build(&repo().join("recipes/demo.yaml"), &options, &|_| {});
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
}

/// The small model and step count of tests/it.rs.
const TEST_MODEL: &str = r#"{"vision_dim": 32, "vision_heads": 2, "vision_mlp": 64, "llm_dim": 64, "llm_heads": 2, "llm_mlp": 128}"#;

/// Trains the demo on `device` into `dir/run` and returns the run folder.
fn train_on(dir: &Path, data: &Path, device: &[&str]) -> PathBuf {
    let config = dir.join("model.json");
    std::fs::write(&config, TEST_MODEL).unwrap();
    let run = dir.join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_mixtape-train"))
        .arg("train")
        .arg(repo().join("recipes/demo.yaml"))
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(&run)
        .arg("--model-config")
        .arg(&config)
        .args(["--max-steps", "2", "--lr-multiplier", "200", "--seed", "3"])
        .args(device)
        // The option must win over the environment; a wrong variable would make a test of the
        // fallback pass for the wrong reason.
        .env_remove("MIXTAPE_NPU_LIB")
        .output()
        .expect("run mixtape-train");
    assert_eq!(
        out.status.code(),
        Some(0),
        "mixtape-train {device:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    run
}

/// Every logged loss, as bits: `("step" | "eval:SET", global step, loss bits)`.
fn losses(run: &Path) -> Vec<(String, u64, u64)> {
    read(&run.join("train.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some(("step".to_string(), s.global_step, s.loss.to_bits())),
            Record::Eval {
                set,
                global_step,
                loss,
                ..
            } => Some((format!("eval:{set}"), global_step, loss.to_bits())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_training_loop_on_npu_logs_the_cpu_losses_bit_for_bit() {
    let data = demo_build();
    let (cpu_dir, npu_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cpu = train_on(cpu_dir.path(), &data, &["--device", "cpu"]);
    let lib = fake_backend();
    let npu = train_on(
        npu_dir.path(),
        &data,
        &["--device", "npu:0", "--npu-lib", lib.to_str().unwrap()],
    );

    let (cpu_losses, npu_losses) = (losses(&cpu), losses(&npu));
    let steps: Vec<_> = cpu_losses
        .iter()
        .filter(|(kind, ..)| kind == "step")
        .collect();
    // Three demo stages of two steps each, plus evaluations.
    assert_eq!(steps.len(), 6, "{cpu_losses:?}");
    assert!(
        cpu_losses
            .iter()
            .any(|(kind, ..)| kind.starts_with("eval:")),
        "{cpu_losses:?}"
    );
    for (_, _, bits) in &cpu_losses {
        let loss = f64::from_bits(*bits);
        assert!(
            loss.is_finite() && loss > 0.0,
            "loss {loss} in {cpu_losses:?}"
        );
    }
    assert_eq!(npu_losses, cpu_losses, "npu losses differ from cpu losses");

    // The last checkpoint (weights read back from the device) holds the same bytes.
    let last = |run: &Path| std::fs::read(run.join("stage-sft.safetensors")).unwrap();
    assert!(last(&npu) == last(&cpu), "the final checkpoints differ");
}

/// `--device npu:0` without `--npu-lib`: no library at all says how to give one; `$MIXTAPE_NPU_LIB`
/// is the fallback, named in the error when its file is missing.
#[test]
fn npu_without_a_usable_backend_library_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mixtape-train"));
        command
            .arg("train")
            .arg(repo().join("recipes/demo.yaml"))
            .args(["--data", "unused", "--out"])
            .arg(dir.path().join("run"))
            .args(["--device", "npu:0"])
            .env_remove("MIXTAPE_NPU_LIB");
        if let Some(path) = env {
            command.env("MIXTAPE_NPU_LIB", path);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let none = run(None);
    assert!(
        none.contains("--npu-lib PATH") && none.contains("MIXTAPE_NPU_LIB"),
        "{none}"
    );
    let missing = dir.path().join("libtorch_npu.so");
    let from_env = run(Some(&missing));
    assert!(
        from_env.contains(&missing.display().to_string()) && from_env.contains("$MIXTAPE_NPU_LIB"),
        "{from_env}"
    );
}
