#!/usr/bin/env bash
# Reading one shuffle window ahead against fetching each window on entering it (--no-read-ahead),
# from a local S3-compatible server (moto's, from .venv) behind a proxy that delays each request by
# DELAY_MS, as a real store's latency would; same run, interleaved, no chunk cache. Both with images
# decoded (the reader has work to overlap the fetches with) and skipped (it has none).
#
#   benches/objstore/read_ahead.sh MIXTAPE_BIN RECIPE [DELAY_MS=20] [REPS=3] [SHUFFLE_WINDOW=256] [SHARD_BYTES=500000]
#
# Small shards (many per window) give each window many requests to wait for. With the demo's
# default shards (one row group per stage) and window (2048 rows: a stage is one window), what is
# left to compare is the read-ahead across stages and epochs: SHUFFLE_WINDOW=2048 SHARD_BYTES=1000000000.
#
# Prints the medians of rows/s and their ratio.
set -euo pipefail
bin="$(realpath "$1")"
recipe="$(realpath "$2")"
delay="${3:-20}"
reps="${4:-3}"
window="${5:-256}"
shard_bytes="${6:-500000}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# shellcheck source=moto.sh
source "$repo/benches/objstore/moto.sh"
export MIXTAPE_CACHE_DIR="$work/cache"
"$bin" build "$recipe" --out s3://bench/set --shard-bytes "$shard_bytes" --quiet >/dev/null
slow=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$py" "$repo/benches/objstore/latency_proxy.py" "$slow" "127.0.0.1:$port" "$delay" &
proxy=$!
trap 'kill $moto $proxy 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
for images in decoded skip; do
  for rep in $(seq 1 "$reps"); do
    for mode in ahead no-ahead; do
      flag=()
      [ "$mode" = no-ahead ] && flag=(--no-read-ahead)
      "$bin" stream s3://bench/set --endpoint "http://127.0.0.1:$slow" --images "$images" \
        --shuffle-window "$window" "${flag[@]}" --json >"$work/r.json" 2>/dev/null
      field "$work/r.json" 'r["rows_per_s"]' >>"$work/$images-$mode"
    done
  done
  a=$(median <"$work/$images-ahead")
  n=$(median <"$work/$images-no-ahead")
  echo "--images $images, ${delay} ms a request, --shuffle-window $window: read-ahead $a rows/s, --no-read-ahead $n rows/s = $(echo "scale=3; $a / $n" | bc)x"
done
