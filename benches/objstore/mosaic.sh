#!/usr/bin/env bash
# MosaicML Streaming against mixtape on the same local S3-compatible server (moto's, from .venv):
# builds RECIPE into a folder and into s3://bench/set, then runs benches/objstore/mosaic.py (see
# its docstring) with PYTHON, an interpreter with mosaicml-streaming, torch, boto3, pyarrow and
# pillow (benches/reader/README.md says how to make one).
#
#   PYTHON=/tmp/mosaic-venv/bin/python benches/objstore/mosaic.sh MIXTAPE_BIN RECIPE [REPS=3]
set -euo pipefail
bin="$(realpath "$1")"
recipe="$(realpath "$2")"
reps="${3:-3}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# shellcheck source=moto.sh
source "$repo/benches/objstore/moto.sh"
export MIXTAPE_CACHE_DIR="$work/cache"
"$bin" build "$recipe" --out "$work/local" --quiet >/dev/null
"$bin" build "$recipe" --out s3://bench/set --quiet >/dev/null
mapfile -t stages < <("$py" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["stages"]))' "$work/local/_mixtape/build.json")
"${PYTHON:?set PYTHON to an interpreter with mosaicml-streaming}" "$repo/benches/objstore/mosaic.py" \
  "$bin" "$work/local" "${stages[@]}" --reps "$reps"
