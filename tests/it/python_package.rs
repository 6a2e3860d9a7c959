//! The `mixtape` Python package (python/): built from this checkout with maturin into the project's
//! virtual environment, then its pytest suite run against this build's CLI. pytest's exit code is
//! the verdict: a failing, erroring or empty suite fails this test.

use std::process::Command;

use crate::util::{repo, venv_python};

#[test]
fn the_python_packages_tests_pass_against_this_checkout() {
    let python = venv_python();
    let venv = python
        .parent()
        .and_then(|bin| bin.parent())
        .expect("the venv's folder")
        .to_path_buf();
    let maturin = venv.join("bin/maturin");
    assert!(
        maturin.is_file(),
        "{} is missing: run `bash tests/python/setup-venv.sh`",
        maturin.display()
    );
    // The dev profile reuses this test build's compiled dependencies (they are optimised, see the
    // workspace Cargo.toml); a user's `pip install ./python` builds release.
    let built = Command::new(&maturin)
        .args(["develop", "--profile", "dev", "--manifest-path"])
        .arg(repo().join("python/Cargo.toml"))
        .env("VIRTUAL_ENV", &venv)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run maturin");
    assert!(
        built.status.success(),
        "maturin develop failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join("python/tests"))
        .env("MIXTAPE_BIN", env!("CARGO_BIN_EXE_mixtape"))
        .current_dir(repo())
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pytest exited {:?}:\n{stdout}\n{}",
        run.status.code(),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains(" passed"), "pytest ran nothing:\n{stdout}");
}
