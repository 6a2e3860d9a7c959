//! Test harness: a temp folder per test, a command builder for the real binary, output capture, and
//! [`assert_cli_snapshot!`], which snapshots a whole run (command, exit code, stdout, stderr) with insta.
//!
//! A CLI snapshot is the specification of what the user sees: review each new or changed `.snap`
//! under `tests/it/snapshots/` as you would a diff of the program's output. `cargo insta review`
//! (or `INSTA_UPDATE=always cargo test --test it`, then `git diff`) records them; in CI (`CI` set)
//! insta never writes and a mismatch fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (for the demo recipe, data and tokenizer).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo tokenizer, absolute, for recipes written into temp folders.
pub fn tokenizer() -> String {
    repo()
        .join("recipes/tokenizers/demo.json")
        .display()
        .to_string()
}

pub struct TestDir {
    dir: tempfile::TempDir,
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TestDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), returning its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// `mixtape ARGS...` run in this folder, with a private index cache.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// [`TestDir::run`] with extra environment variables (an object store's endpoint and keys).
    pub fn run_env(&self, args: &[&str], env: &[(String, String)]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_mixtape"))
            .args(args)
            .current_dir(self.dir.path())
            .env("MIXTAPE_CACHE_DIR", self.dir.path().join(".cache"))
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run mixtape");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Replaces this folder's path in `text` with `[TMP]`, the demo tokenizer's with `[TOKENIZER]`
    /// and the repository's with `[REPO]`, for snapshots that must not depend on the checkout.
    pub fn redact(&self, text: &str) -> String {
        let root = self.dir.path().display().to_string();
        let canonical = self
            .dir
            .path()
            .canonicalize()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        text.replace(&canonical, "[TMP]")
            .replace(&root, "[TMP]")
            .replace(&tokenizer(), "[TOKENIZER]")
            .replace(&repo().display().to_string(), "[REPO]")
    }

    /// A run as a CLI snapshot shows it: the command, the exit code, then stdout and stderr, each
    /// redacted (see [`TestDir::redact`]).
    pub fn render(&self, args: &[&str], out: &Output) -> String {
        format!(
            "$ mixtape {}\nexit code: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.redact(&args.join(" ")),
            out.code,
            self.redact(&out.stdout),
            self.redact(&out.stderr),
        )
    }
}

/// Regex filters applied to every CLI snapshot, for what legitimately varies between runs or
/// machines: 64-hex-digit hashes (file digests) and timings (`1.2s`, `15ms`, and the `0.004 s` of
/// `stream`'s report). Plan fingerprints stay: they must not depend on the folder a test runs in.
pub const SNAPSHOT_FILTERS: &[(&str, &str)] = &[
    (r"\b[0-9a-f]{64}\b", "[HASH]"),
    (r"\b[0-9]+(\.[0-9]+)?(s|ms|µs)\b", "[TIME]"),
    (r"\b[0-9]+\.[0-9]{3} s\b", "[TIME]"),
];

/// Runs `mixtape ARGS...` in a [`TestDir`] and checks the whole run against an insta snapshot (see
/// [`TestDir::render`] and [`SNAPSHOT_FILTERS`]); returns the [`Output`] for further checks.
///
/// `assert_cli_snapshot!(dir, &["check", "recipe.yaml"])` names the snapshot after the test (a
/// second one in the same test gets `-2`, ...); `assert_cli_snapshot!("name", dir, &[...])` names it.
macro_rules! assert_cli_snapshot {
    ($dir:expr, $args:expr $(,)?) => {{
        let dir: &$crate::util::TestDir = &$dir;
        let args: &[&str] = $args;
        let out = dir.run(args);
        insta::with_settings!({
            filters => $crate::util::SNAPSHOT_FILTERS.to_vec(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(dir.render(args, &out));
        });
        out
    }};
    ($name:expr, $dir:expr, $args:expr $(,)?) => {{
        let dir: &$crate::util::TestDir = &$dir;
        let args: &[&str] = $args;
        let out = dir.run(args);
        insta::with_settings!({
            filters => $crate::util::SNAPSHOT_FILTERS.to_vec(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, dir.render(args, &out));
        });
        out
    }};
}
pub(crate) use assert_cli_snapshot;

/// A small valid recipe over synthetic sources, for tests to mutate. `{tokenizer}` is filled in.
pub fn small_recipe() -> String {
    format!(
        r#"version: 1
name: small
seed: 7
tokenizer: {{path: {tok}}}
sources:
  caps: {{format: synthetic, kind: shapes-caption, count: 300, category: caption}}
  qa: {{format: synthetic, kind: shapes-vqa, count: 300, category: vqa}}
  prose: {{format: synthetic, kind: long-text, count: 40, category: long-text}}
stages:
  - name: warmup
    seq_len: 2048
    budget: {{tokens: 20000}}
    mix: {{caption: 0.7, vqa: 0.3}}
    image: {{max_pixels: 200704}}
  - name: main
    seq_len: 4096
    budget: {{tokens: 40000}}
    mix: {{caption: 0.3, vqa: 0.4, long-text: 0.3}}
"#,
        tok = tokenizer()
    )
}

/// Copies a folder tree (a build output, to resume or damage a copy of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target)
        } else {
            std::fs::copy(&path, &target).map(drop).unwrap()
        }
    }
}

/// The Python interpreter of the project's virtual environment (`.venv/bin/python`, with pyarrow,
/// datasets, duckdb and polars), which the tests that read shards with Python tools run. Panics
/// with the command that creates it when it is missing: such a test fails, it never skips.
pub fn venv_python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash tests/python/setup-venv.sh` (it creates .venv/ with the Python packages of tests/requirements.txt)",
        python.display()
    );
    python
}

/// Runs `script` (relative to the repository root) with [`venv_python`] and `args`; panics with
/// its output unless it exits 0. Returns its stdout.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let run = Command::new(venv_python())
        .arg(repo().join(script))
        .args(args)
        .output()
        .expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Every file of a build output (hidden sidecars included), by relative path.
pub fn file_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walk(root) {
        let rel = entry.strip_prefix(root).unwrap().display().to_string();
        out.insert(rel, std::fs::read(&entry).unwrap());
    }
    out
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p))
        } else {
            files.push(p)
        }
    }
    files
}
