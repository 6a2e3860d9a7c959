//! `mixtape build --task I --tasks N` and `--finish`: a build split into tasks by shard, run at once
//! in one folder, finishes byte-identical to a one-machine build for every N; a killed task is
//! rerun alone; the task comes from Slurm's or Kubernetes' variables.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use mixtape_shards::layout;
use mixtape_testdata::SplitMix64;
use serde_json::Value;

use crate::util::{TestDir, file_tree, small_recipe, walk};

/// Small shards, so that each stage of the small recipe has several (one per task and more).
const SHARD_BYTES: &str = "20000";

fn build_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "build",
        "recipe.yaml",
        "--out",
        out,
        "--shard-bytes",
        SHARD_BYTES,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

/// `mixtape build ... --task I --tasks N` started in `dir`, not waited for.
fn spawn_task(dir: &TestDir, out: &str, task: usize, tasks: usize) -> Child {
    let (task, tasks) = (task.to_string(), tasks.to_string());
    Command::new(env!("CARGO_BIN_EXE_mixtape"))
        .args(build_args(
            out,
            &["--task", &task, "--tasks", &tasks, "--jobs", "1"],
        ))
        .current_dir(dir.root())
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a task")
}

/// Runs every task of `tasks` at once into `out`, then the finish.
fn split_build(dir: &TestDir, out: &str, tasks: usize) {
    let children: Vec<Child> = (0..tasks).map(|t| spawn_task(dir, out, t, tasks)).collect();
    for (task, child) in children.into_iter().enumerate() {
        let done = child.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "task {task} of {tasks}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let finish = dir.run(&build_args(out, &["--finish"]));
    assert_eq!(finish.code, 0, "{}", finish.stderr);
}

fn whole_build(dir: &TestDir) {
    let whole = dir.run(&build_args("whole", &[]));
    assert_eq!(whole.code, 0, "{}", whole.stderr);
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap()
}

fn shards_written(report: &Value) -> u64 {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shards_written"].as_u64().unwrap())
        .sum()
}

#[test]
fn tasks_run_at_once_finish_into_the_one_machine_build_byte_for_byte() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    whole_build(&dir);
    let whole = file_tree(&dir.path("whole"));
    let shards = whole.keys().filter(|k| k.ends_with(".parquet")).count();
    assert!(
        shards >= 6,
        "only {shards} shards: the test needs several per task"
    );
    for tasks in [1, 2, 3, 8] {
        let out = format!("split-{tasks}");
        split_build(&dir, &out, tasks);
        let split = file_tree(&dir.path(&out));
        assert_eq!(
            split.keys().collect::<Vec<_>>(),
            whole.keys().collect::<Vec<_>>(),
            "{tasks} tasks"
        );
        for (name, bytes) in &whole {
            assert!(split[name] == *bytes, "{tasks} tasks: {name} differs");
        }
    }
}

#[test]
fn a_killed_task_is_rerun_alone_and_the_result_is_still_byte_identical() {
    // Kill points drawn at random: a task's shard deleted (killed before its sidecar), a sidecar
    // deleted (killed before the rename of the next), temporaries left behind. Only the damaged
    // tasks are rerun.
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    whole_build(&dir);
    let whole = file_tree(&dir.path("whole"));
    let mut rng = SplitMix64::new(19);
    for round in 0..3 {
        let tasks = 1 + rng.below(8) as usize;
        let out = format!("split-{round}");
        split_build(&dir, &out, tasks);
        let shard_files: Vec<_> = walk(&dir.path(&out))
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.ends_with(".parquet") || name.ends_with(".done.json")
            })
            .collect();
        let mut damaged = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let victim = &shard_files[rng.below(shard_files.len() as u64) as usize];
            let name = victim.file_name().unwrap().to_string_lossy().into_owned();
            let index = layout::shard_index(&name)
                .or_else(|| layout::sidecar_index(&name))
                .unwrap() as usize;
            if victim.exists() {
                std::fs::remove_file(victim).unwrap();
            }
            // What a kill mid-write leaves.
            std::fs::write(victim.with_file_name(format!(".{name}.tmp")), b"partial").unwrap();
            damaged.insert(index % tasks);
        }
        for &task in &damaged {
            let rerun = dir.run(&build_args(
                &out,
                &[
                    "--task",
                    &task.to_string(),
                    "--tasks",
                    &tasks.to_string(),
                    "--json",
                ],
            ));
            assert_eq!(rerun.code, 0, "{}", rerun.stderr);
            assert!(shards_written(&report(&rerun.stdout)) >= 1);
        }
        // A task that lost nothing rebuilds nothing.
        if let Some(intact) = (0..tasks).find(|t| !damaged.contains(t)) {
            let again = dir.run(&build_args(
                &out,
                &[
                    "--task",
                    &intact.to_string(),
                    "--tasks",
                    &tasks.to_string(),
                    "--json",
                ],
            ));
            assert_eq!(
                shards_written(&report(&again.stdout)),
                0,
                "{}",
                again.stderr
            );
        }
        let finish = dir.run(&build_args(&out, &["--finish"]));
        assert_eq!(finish.code, 0, "{}", finish.stderr);
        assert!(
            file_tree(&dir.path(&out)) == whole,
            "round {round}: {tasks} tasks, tasks {damaged:?} rerun: not the one-machine build"
        );
    }
}

#[test]
fn the_finish_refuses_while_a_shard_is_missing_and_writes_nothing() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    // Task 0 of 2 only: the odd shards are missing.
    let task = dir.run(&build_args("out", &["--task", "0", "--tasks", "2"]));
    assert_eq!(task.code, 0, "{}", task.stderr);
    let finish = dir.run(&build_args("out", &["--finish"]));
    assert_eq!(finish.code, 1, "{}", finish.stderr);
    assert!(
        finish
            .stderr
            .contains("shards are not built (the first is shard 1,"),
        "{}",
        finish.stderr
    );
    let manifests = walk(&dir.path("out"))
        .into_iter()
        .filter(|p| p.ends_with("manifest.json") || p.ends_with("README.md"))
        .count();
    assert_eq!(
        manifests, 0,
        "the finish wrote summary files for an unfinished build"
    );
    // A task writes no manifest either, and no file another task or the finish owns.
    assert!(!Path::new(&dir.path("out/_mixtape/rejects.jsonl")).exists());
}

#[test]
fn the_task_comes_from_a_slurm_array_or_a_kubernetes_indexed_job() {
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    let run_with = |out: &str, env: &[(&str, &str)], extra: &[&str]| {
        let mut args = build_args(out, extra);
        args.push("--json");
        let run = Command::new(env!("CARGO_BIN_EXE_mixtape"))
            .args(&args)
            .current_dir(dir.root())
            .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            run.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&run.stdout).into_owned(),
            String::from_utf8_lossy(&run.stderr).into_owned(),
        )
    };
    // `sbatch --array=4-5`: the second task is task 1 of 2.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_ARRAY_TASK_MIN", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ];
    let (code, stdout, stderr) = run_with("slurm", &slurm, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report(&stdout)["scope"],
        serde_json::json!({"task": {"task": 1, "tasks": 2}})
    );
    // An Indexed Job's index, with its completions passed as --tasks.
    let (code, stdout, stderr) =
        run_with("k8s", &[("JOB_COMPLETION_INDEX", "0")], &["--tasks", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report(&stdout)["scope"],
        serde_json::json!({"task": {"task": 0, "tasks": 2}})
    );
    let (code, _, stderr) = run_with("k8s", &[("JOB_COMPLETION_INDEX", "1")], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass --tasks N"), "{stderr}");
    let (code, _, stderr) = run_with("bad", &[], &["--task", "2", "--tasks", "2"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("numbered from 0 to --tasks minus 1"),
        "{stderr}"
    );
    let (code, _, stderr) = run_with("bad", &[], &["--tasks", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("pass --task I (0 to 1)"), "{stderr}");
}

#[test]
fn the_kubernetes_indexed_job_in_deploy_builds_the_one_machine_folder() {
    // The manifests are checked as Jobs (tests/python/kubernetes_jobs.py), then their containers'
    // commands run here as the pods would: for the index Job and then the build Job, one process
    // per completion index, at once, with JOB_COMPLETION_INDEX set; then the finish. /data is this
    // test's folder, and the shards are small so that every task has some.
    let deploy = crate::util::repo().join("deploy/kubernetes");
    let jobs: Value = serde_json::from_str(&crate::util::run_python(
        "tests/python/kubernetes_jobs.py",
        &[
            &deploy.join("index-job.yaml"),
            &deploy.join("build-job.yaml"),
            &deploy.join("finish-job.yaml"),
        ],
    ))
    .unwrap();
    let dir = TestDir::new();
    dir.write("recipe.yaml", small_recipe());
    let root = dir.root().display().to_string();
    let local = |value: &Value| value.as_str().unwrap().replace("/data", &root);
    let command = |name: &str| -> Command {
        let words: Vec<String> = jobs[name].as_array().unwrap().iter().map(local).collect();
        assert_eq!(words[0], "mixtape");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mixtape"));
        command.args(&words[1..]).current_dir(dir.root());
        if words[1] == "build" {
            command.args(["--shard-bytes", SHARD_BYTES]);
        }
        for (key, value) in jobs["env"].as_object().unwrap() {
            command.env(key, local(value));
        }
        command
    };
    let run_indexed_job = |name: &str, completions: &str| {
        let completions = jobs[completions].as_u64().unwrap();
        let pods: Vec<Child> = (0..completions)
            .map(|index| {
                command(name)
                    .env("JOB_COMPLETION_INDEX", index.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for pod in pods {
            let done = pod.wait_with_output().unwrap();
            assert!(
                done.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
    };
    run_indexed_job("index", "index_completions");
    run_indexed_job("build", "completions");
    let finish = command("finish").output().unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );

    let whole = dir.run(&build_args("whole", &[]));
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert!(file_tree(&dir.path("out")) == file_tree(&dir.path("whole")));
}

/// `index --json`'s parts: (source, file, cached).
fn measured(stdout: &str) -> Vec<(String, Option<String>, bool)> {
    report(stdout)["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap().to_string(),
                p["file"].as_str().map(str::to_string),
                p["cached"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The small recipe with a text source over three files of its own.
fn recipe_with_files(dir: &TestDir) {
    for (name, topic) in [("a", "rivers"), ("b", "towns"), ("c", "clocks")] {
        let lines: String = (0..40)
            .map(|i| {
                let words = "Words. ".repeat(100 + i);
                format!("{{\"text\": \"Article {i} about {topic}. {words}\"}}\n")
            })
            .collect();
        dir.write(&format!("books/{name}.jsonl"), lines);
    }
    let recipe = small_recipe().replace(
        "  prose: {format: synthetic, kind: long-text, count: 40, category: long-text}",
        "  prose: {format: text, path: books/*.jsonl, category: long-text}",
    );
    assert!(recipe.contains("books/*.jsonl"));
    dir.write("recipe.yaml", recipe);
}

#[test]
fn index_tasks_measure_disjoint_shares_of_the_files_into_the_shared_cache() {
    let dir = TestDir::new();
    recipe_with_files(&dir);
    let task = |i: &str| {
        dir.run(&[
            "index",
            "recipe.yaml",
            "--task",
            i,
            "--tasks",
            "2",
            "--json",
        ])
    };
    let (first, second) = (task("0"), task("1"));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(second.code, 0, "{}", second.stderr);
    // Parts in order: the sources by name (caps, prose, qa), prose's files in order; part p is
    // task p mod 2's.
    let part =
        |source: &str, file: Option<&str>| (source.to_string(), file.map(str::to_string), false);
    assert_eq!(
        measured(&first.stdout),
        [
            part("caps", None),
            part("prose", Some("books/b.jsonl")),
            part("qa", None)
        ]
    );
    assert_eq!(
        measured(&second.stdout),
        [
            part("prose", Some("books/a.jsonl")),
            part("prose", Some("books/c.jsonl"))
        ]
    );
    // Everything is measured now: a whole index measures nothing, and neither does a plan.
    let all = dir.run(&["index", "recipe.yaml", "--json"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(measured(&all.stdout).len(), 5);
    assert!(
        measured(&all.stdout).iter().all(|(_, _, cached)| *cached),
        "{}",
        all.stdout
    );
    // Editing one file re-measures that file only.
    let mut b = std::fs::read_to_string(dir.path("books/b.jsonl")).unwrap();
    b.push_str("{\"text\": \"One more article about towns.\"}\n");
    dir.write("books/b.jsonl", b);
    let again = dir.run(&["index", "recipe.yaml", "--json"]);
    let remeasured: Vec<_> = measured(&again.stdout)
        .into_iter()
        .filter(|(_, _, cached)| !cached)
        .collect();
    assert_eq!(remeasured, [part("prose", Some("books/b.jsonl"))]);
    let bad = dir.run(&["index", "recipe.yaml", "--task", "2", "--tasks", "2"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("numbered from 0"), "{}", bad.stderr);
}

#[test]
fn a_source_indexed_file_by_file_plans_as_one_indexed_whole() {
    // The plan (and its fingerprint) from a cache filled by index tasks equals the plan of a fresh
    // cache, and of no cache at all.
    let dir = TestDir::new();
    recipe_with_files(&dir);
    for i in ["0", "1", "2"] {
        let task = dir.run(&["index", "recipe.yaml", "--task", i, "--tasks", "3"]);
        assert_eq!(task.code, 0, "{}", task.stderr);
    }
    let cached = dir.run(&["plan", "recipe.yaml", "--json"]);
    let fresh = dir.run(&["--no-cache", "plan", "recipe.yaml", "--json"]);
    assert_eq!(cached.code, 0, "{}", cached.stderr);
    assert_eq!(cached.stdout, fresh.stdout);
}
