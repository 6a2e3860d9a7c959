#!/usr/bin/env bash
# Creates .venv/ at the repository root with the Python packages the tests use: the shard readers
# of tests/requirements.txt (pyarrow, datasets, duckdb, polars), and what the mixtape Python
# package's tests need (python/requirements-test.txt: maturin, pytest, transformers; torch comes
# from .libtorch/, installed with its CUDA libraries by trainer-bridge/install-libtorch.sh --cuda and
# put on the venv's path by a .pth file). Idempotent: a second run only checks that the pinned
# versions are installed. The tests run .venv/bin/python and fail, naming this script, when it is
# missing; the system interpreter is never touched (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r tests/requirements.txt -r python/requirements-test.txt
bash trainer-bridge/install-libtorch.sh --cuda
# The test servers from the npm registry (tests/node/package.json: Azurite, for az:// URLs), pinned by
# its package-lock.json, into tests/node/node_modules/.
if ! [ -x tests/node/node_modules/.bin/azurite-blob ]; then
  npm ci --prefix tests/node --no-audit --no-fund --silent
fi
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$PWD/.libtorch" > "$site/mixtape-libtorch.pth"
.venv/bin/python -c 'import torch' || {
  echo "setup-venv.sh: torch from .libtorch/ does not import in .venv (see the error above)" >&2
  exit 1
}
