"""Fixtures of the mixtape package's tests: a demo build made by the mixtape CLI itself.

The tests run from `tests/python_package.rs` (`cargo test`), which passes the CLI's path in
MIXTAPE_BIN and a build of the demo recipe in MIXTAPE_DEMO_OUT; run alone, pytest builds the demo
with the CLI at target/debug/mixtape.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mixtape_bin() -> Path:
    path = Path(os.environ.get("MIXTAPE_BIN", REPO / "target" / "debug" / "mixtape"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build` (or set MIXTAPE_BIN)")
    return path


@pytest.fixture(scope="session")
def demo_out(mixtape_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("MIXTAPE_DEMO_OUT")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("demo") / "out"
    subprocess.run(
        [str(mixtape_bin), "build", str(REPO / "recipes" / "demo.yaml"), "--quiet", "--out", str(out)],
        check=True,
        cwd=REPO,
    )
    return out


@pytest.fixture()
def demo_copy(demo_out: Path, tmp_path: Path) -> Path:
    """A private copy of the demo build, for tests that damage it."""
    copy = tmp_path / "out"
    shutil.copytree(demo_out, copy)
    return copy
