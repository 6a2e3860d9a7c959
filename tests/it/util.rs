//! Test harness: a temp folder per test, a command builder for the real binary, output capture.

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
        let out = Command::new(env!("CARGO_BIN_EXE_mixtape"))
            .args(args)
            .current_dir(self.dir.path())
            .env("MIXTAPE_CACHE_DIR", self.dir.path().join(".cache"))
            .env_remove("RUST_LOG")
            .output()
            .expect("run mixtape");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Replaces this folder's path in `text` with `[TMP]` for snapshots.
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
    }
}

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
