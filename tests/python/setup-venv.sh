#!/usr/bin/env bash
# Creates .venv/ at the repository root with the Python packages the tests read shards with
# (tests/requirements.txt: pyarrow, datasets, duckdb, polars). Idempotent: a second run only checks
# that the pinned versions are installed. The tests run .venv/bin/python and fail, naming this
# script, when it is missing; the system interpreter is never touched (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
