//! A split build on a real single-node Slurm cluster: Debian's slurm-wlm and munge, slurmctld and
//! slurmd started on this machine by `tests/slurm/start-cluster.sh`, jobs submitted with the
//! scripts in `deploy/slurm/`. The array's result is compared byte for byte with a one-process
//! build of the demo recipe, cut into small shards so that every task has several.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mixtape_shards::layout;

use crate::util::{TestDir, file_tree, repo, walk};

const SHARD_BYTES: &str = "4194304";
const TASKS: usize = 4;

/// The cluster's slurm.conf (started once, shared by the tests: they run at once, and only one may
/// install packages and start daemons).
fn cluster() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let run = Command::new("bash")
            .arg(repo().join("tests/slurm/start-cluster.sh"))
            .output()
            .expect("run start-cluster.sh");
        assert!(
            run.status.success(),
            "the Slurm cluster did not start:\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&run.stdout).trim())
    })
    .clone()
}

/// A Slurm command (`sbatch`, `scontrol`, ...) against the test cluster, run in `dir` with the
/// binary under test as `MIXTAPE` (sbatch passes the environment to the jobs).
fn slurm(conf: &Path, dir: &TestDir, program: &str, args: &[&str]) -> String {
    let run = Command::new(program)
        .args(args)
        .current_dir(dir.root())
        .env("SLURM_CONF", conf)
        .env("MIXTAPE", env!("CARGO_BIN_EXE_mixtape"))
        .env("MIXTAPE_CACHE_DIR", dir.path(".cache"))
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{program} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// `JobState` of a job, or of each task of an array, as `scontrol show job` reports them.
fn job_states(conf: &Path, dir: &TestDir, job: &str) -> Vec<String> {
    slurm(conf, dir, "scontrol", &["show", "job", "--oneliner", job])
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("JobState="))
                .map(str::to_string)
        })
        .collect()
}

/// Waits until `job` (every task of an array) has ended; its final states.
fn wait_for(conf: &Path, dir: &TestDir, job: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let states = job_states(conf, dir, job);
        let running = |s: &String| {
            matches!(
                s.as_str(),
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "REQUEUED"
            )
        };
        if !states.is_empty() && !states.iter().any(running) {
            return states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "job {job} still not done after 10 minutes: {states:?}\n{}",
            job_logs(dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finished shards (sidecars) of task `task` in the build output `out`.
fn finished_by(out: &Path, task: usize) -> usize {
    walk(&out.join("_mixtape"))
        .iter()
        .filter_map(|p| layout::sidecar_index(&p.file_name()?.to_string_lossy()))
        .filter(|&k| k as usize % TASKS == task)
        .count()
}

/// The jobs' output files (`slurm-*.out` in the submit folder), for failure messages.
fn job_logs(dir: &TestDir) -> String {
    walk(dir.root())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("slurm-"))
        })
        .map(|p| {
            format!(
                "{}:\n{}",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            )
        })
        .collect()
}

/// The demo recipe, built in one process into `whole`, the reference.
fn demo_and_reference(dir: &TestDir) -> String {
    let recipe = repo().join("recipes/demo.yaml").display().to_string();
    let whole = dir.run(&[
        "build",
        &recipe,
        "--out",
        "whole",
        "--shard-bytes",
        SHARD_BYTES,
        "--quiet",
    ]);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    recipe
}

/// `deploy/slurm/submit.sh`: an index array, the build array after it, the finish after that.
#[test]
fn a_job_array_and_its_dependent_finish_build_the_one_process_folder() {
    let conf = cluster();
    let dir = TestDir::new();
    let recipe = demo_and_reference(&dir);
    let submit = repo().join("deploy/slurm/submit.sh").display().to_string();
    let ids = slurm(
        &conf,
        &dir,
        "bash",
        &[
            &submit,
            &TASKS.to_string(),
            &recipe,
            "out",
            "--shard-bytes",
            SHARD_BYTES,
        ],
    );
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let [index, array, finish] = ids[..] else {
        panic!("submit.sh printed {ids:?}, not three job ids");
    };
    let finished = wait_for(&conf, &dir, finish);
    assert_eq!(finished, ["COMPLETED"], "{}", job_logs(&dir));
    for job in [index, array] {
        assert!(wait_for(&conf, &dir, job).iter().all(|s| s == "COMPLETED"));
    }
    assert!(
        file_tree(&dir.path("out")) == file_tree(&dir.path("whole")),
        "the array's build differs from the one-process build"
    );
}

#[test]
fn a_task_cancelled_mid_way_and_requeued_still_gives_the_same_bytes() {
    let conf = cluster();
    let dir = TestDir::new();
    let recipe = demo_and_reference(&dir);
    let script = repo()
        .join("deploy/slurm/build.sbatch")
        .display()
        .to_string();
    let finish_script = repo()
        .join("deploy/slurm/finish.sbatch")
        .display()
        .to_string();
    let array = format!("0-{}", TASKS - 1);
    let job = slurm(
        &conf,
        &dir,
        "sbatch",
        &[
            "--parsable",
            "--array",
            &array,
            &script,
            &recipe,
            "out",
            "--shard-bytes",
            SHARD_BYTES,
        ],
    );
    let job = job.trim().split(';').next().unwrap().to_string();
    let victim = format!("{job}_1");
    // Cancel task 1 once it has finished its first shard (a sidecar of a shard k with k % 4 == 1).
    let started = Instant::now();
    while !(dir.path("out/_mixtape").is_dir() && finished_by(&dir.path("out"), 1) > 0) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "task 1 wrote no shard:\n{}",
            job_logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    slurm(&conf, &dir, "scancel", &["--signal=KILL", &victim]);
    let cancelled = wait_for(&conf, &dir, &victim);
    assert_eq!(
        cancelled,
        ["CANCELLED"],
        "task 1 ended before it was cancelled"
    );
    // Cut off mid-way: some of its shards are not there.
    let sidecars_of_task_1 = finished_by(&dir.path("out"), 1);
    let whole_shards = walk(&dir.path("whole"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(
        sidecars_of_task_1 * TASKS < whole_shards,
        "task 1 had finished before the kill"
    );
    // Requeued, it runs again as task 1 of the same array, keeping the shards it finished. Not in
    // the second of the kill: slurmd refuses a job's new credential when it was issued no later than
    // the old one's revocation, which it compares in whole seconds ("Job credential revoked", and the
    // requeued task fails at launch).
    std::thread::sleep(Duration::from_secs(2));
    slurm(&conf, &dir, "scontrol", &["requeue", &victim]);
    slurm(
        &conf,
        &dir,
        "scontrol",
        &["update", &format!("jobid={victim}"), "StartTime=now"],
    );
    let states = wait_for(&conf, &dir, &job);
    assert!(
        states.iter().all(|s| s == "COMPLETED"),
        "{states:?}\n{}",
        job_logs(&dir)
    );
    assert_eq!(job_states(&conf, &dir, &victim), ["COMPLETED"]);
    let finish = slurm(
        &conf,
        &dir,
        "sbatch",
        &[
            "--parsable",
            "--wait",
            &finish_script,
            &recipe,
            "out",
            "--shard-bytes",
            SHARD_BYTES,
        ],
    );
    assert_eq!(
        job_states(&conf, &dir, finish.trim()),
        ["COMPLETED"],
        "{}",
        job_logs(&dir)
    );
    assert!(
        file_tree(&dir.path("out")) == file_tree(&dir.path("whole")),
        "after the requeue the build differs from the one-process build"
    );
}
