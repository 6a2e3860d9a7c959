#!/usr/bin/env bash
# Time to the first batch on 10,000 one-row shards (benches/objstore/many.yaml, `--shard-bytes 1`)
# in a bucket of a local S3-compatible server (moto's, from .venv), against the same shards in a
# folder, same run. Issue 18's goal: under 2 s from the bucket. `mixtape stream`'s timer starts
# before the reader opens the stage (manifest included) and stops at the first batch; with the
# default options that batch's rows lie in 8 shards.
#
#   benches/objstore/first_batch.sh MIXTAPE_BIN [REPS=5]
#
# Prints the build's shard count, then the medians and the requests the first batch took.
set -euo pipefail
bin="$(realpath "$1")"
reps="${2:-5}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# shellcheck source=moto.sh
source "$repo/benches/objstore/moto.sh"
export MIXTAPE_CACHE_DIR="$work/cache"
recipe="$repo/benches/objstore/many.yaml"

t0=$(date +%s.%N)
"$bin" build "$recipe" --out "$work/local" --shard-bytes 1 --quiet >/dev/null
t1=$(date +%s.%N)
"$bin" build "$recipe" --out s3://bench/many --shard-bytes 1 --quiet >/dev/null
t2=$(date +%s.%N)
shards=$(find "$work/local/many" -name '*.parquet' | wc -l)
echo "built $shards shards: into a folder in $(echo "$t1 - $t0" | bc) s, into s3:// in $(echo "$t2 - $t1" | bc) s"

for rep in $(seq 1 "$reps"); do
  "$bin" stream "$work/local" --steps 1 --seed "$rep" --json >"$work/l.json" 2>/dev/null
  field "$work/l.json" 'r["first_batch_seconds"]' >>"$work/local-first"
  "$bin" stream s3://bench/many --steps 1 --seed "$rep" --json >"$work/r.json" 2>/dev/null
  field "$work/r.json" 'r["first_batch_seconds"]' >>"$work/remote-first"
  field "$work/r.json" 'r["remote"]["requests"]' >>"$work/remote-requests"
done
echo "first batch: folder $(median <"$work/local-first") s, s3:// $(median <"$work/remote-first") s ($(median <"$work/remote-requests") requests)"
