#!/usr/bin/env bash
# MosaicML Streaming against mixtape on the same local S3-compatible server (moto's, from .venv):
# builds RECIPE into a folder and into s3://bench/set, then runs benches/objstore/mosaic.py (see
# its docstring) with PYTHON, an interpreter with mosaicml-streaming, torch, boto3, pyarrow and
# pillow (benches/reader/README.md says how to make one).
#
#   PYTHON=/tmp/mosaic-venv/bin/python benches/objstore/mosaic.sh MIXTAPE_BIN RECIPE [REPS=3]
#
# With CACHE_FRACTION (0.25, say), both read EPOCHS (default 3) epochs with a cache of that fraction
# of their own set, through a proxy that counts the bytes the server sends (mosaic.py's docstring);
# the set is built in shards of SHARD_BYTES (default 1 MB) and the MDS copy in shards of
# MDS_SHARD_BYTES (default twice that: MDS stores tokens uncompressed), so both have many shards.
set -euo pipefail
bin="$(realpath "$1")"
recipe="$(realpath "$2")"
reps="${3:-3}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# shellcheck source=moto.sh
source "$repo/benches/objstore/moto.sh"
export MIXTAPE_CACHE_DIR="$work/cache"
build_args=()
cache_args=()
if [ -n "${CACHE_FRACTION:-}" ]; then
  shard_bytes="${SHARD_BYTES:-1000000}"
  build_args=(--shard-bytes "$shard_bytes")
  proxy_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$py" "$repo/benches/objstore/latency_proxy.py" "$proxy_port" "${AWS_ENDPOINT_URL#http://}" 0 \
    "$work/proxy.count" &
  proxy=$!
  trap 'kill $moto $proxy 2>/dev/null; rm -rf "$work"' EXIT
  cache_args=(--cache-fraction "$CACHE_FRACTION" --epochs "${EPOCHS:-3}"
    --count-url "http://127.0.0.1:$proxy_port" --count-file "$work/proxy.count"
    --mds-shard-bytes "${MDS_SHARD_BYTES:-$((2 * shard_bytes))}")
fi
"$bin" build "$recipe" --out "$work/local" --quiet "${build_args[@]}" >/dev/null
"$bin" build "$recipe" --out s3://bench/set --quiet "${build_args[@]}" >/dev/null
mapfile -t stages < <("$py" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["stages"]))' "$work/local/_mixtape/build.json")
"${PYTHON:?set PYTHON to an interpreter with mosaicml-streaming}" "$repo/benches/objstore/mosaic.py" \
  "$bin" "$work/local" "${stages[@]}" --reps "$reps" "${cache_args[@]}"
