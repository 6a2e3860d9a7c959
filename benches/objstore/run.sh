#!/usr/bin/env bash
# Object storage against local disk, same machine, same run, against a local S3-compatible server
# (moto's, from .venv: `bash tests/python/setup-venv.sh`). Issue 18's figures:
#   - build: into s3:// against into a folder (wall seconds), outputs compared byte for byte;
#   - read, cold, --images skip: bytes downloaded against the token columns' size (pyarrow's);
#   - read, warm chunk cache, images decoded: rows/s against reading the folder;
#   - read, cold, images decoded: rows/s reading one window ahead against --no-read-ahead;
#   - 3 epochs with a chunk cache of 25% of what the read fetches (--images skip: the token columns;
#     decoded: the whole set): bytes downloaded and rows/s, against an unlimited cache and no cache.
#
#   benches/objstore/run.sh MIXTAPE_BIN RECIPE [REPS=3] [SHUFFLE_WINDOW=64]
#
# Prints one line per measurement; medians of REPS runs where timed.
set -euo pipefail
bin="$(realpath "$1")"
recipe="$(realpath "$2")"
reps="${3:-3}"
window="${4:-64}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# shellcheck source=moto.sh
source "$repo/benches/objstore/moto.sh"
export MIXTAPE_CACHE_DIR="$work/cache"
"$bin" plan "$recipe" >/dev/null

wall() { # command...: prints its wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

# Build: a folder against a prefix, interleaved.
for rep in $(seq 1 "$reps"); do
  rm -rf "$work/local"
  "$py" -c 'import boto3; s3=boto3.resource("s3"); s3.Bucket("bench").objects.all().delete()'
  wall "$bin" build "$recipe" --out "$work/local" --quiet >>"$work/build-local"
  wall "$bin" build "$recipe" --out s3://bench/set --quiet >>"$work/build-s3"
done
"$py" - "$work/local" <<'EOF'
import boto3, os, sys
root = sys.argv[1]
s3 = boto3.client("s3")
for dirpath, _, files in os.walk(root):
    for name in files:
        path = os.path.join(dirpath, name)
        key = "set/" + os.path.relpath(path, root)
        body = s3.get_object(Bucket="bench", Key=key)["Body"].read()
        assert body == open(path, "rb").read(), key
print("build: the prefix holds the folder's bytes, object for object")
EOF
echo "build into a folder: $(median <"$work/build-local") s; into s3://: $(median <"$work/build-s3") s"

# Token columns and image bytes of the set, from pyarrow.
read -r images tokens _ < <("$py" "$repo/benches/objstore/column_bytes.py" "$work/local")
echo "set: $tokens bytes of token columns, $images bytes of images"

stream() { # out-json, args...
  local out="$1"
  shift
  "$bin" stream "$@" --json >"$out" 2>/dev/null
}

# Cold, images skipped.
stream "$work/cold.json" s3://bench/set --images skip
down=$(field "$work/cold.json" 'r["remote"]["bytes_downloaded"]')
echo "cold --images skip: $down bytes downloaded = $(echo "scale=3; $down / $tokens" | bc)x the token columns"

# Warm cache against the folder, images decoded, interleaved.
stream "$work/fill.json" s3://bench/set --chunk-cache "$work/chunks"
for rep in $(seq 1 "$reps"); do
  stream "$work/l.json" "$work/local"
  field "$work/l.json" 'r["rows_per_s"]' >>"$work/local-rows"
  stream "$work/w.json" s3://bench/set --chunk-cache "$work/chunks"
  field "$work/w.json" 'r["rows_per_s"]' >>"$work/warm-rows"
  field "$work/w.json" 'r["remote"]["bytes_downloaded"]' >>"$work/warm-down"
done
l=$(median <"$work/local-rows")
w=$(median <"$work/warm-rows")
echo "images decoded: folder $l rows/s, s3:// with a warm cache $w rows/s = $(echo "scale=3; $w / $l" | bc)x (downloaded per warm pass: $(median <"$work/warm-down") bytes: manifests and footers)"

# Cold, images decoded, no cache: reading one window ahead (the default) against fetching each
# window on entering it, interleaved.
for rep in $(seq 1 "$reps"); do
  stream "$work/a.json" s3://bench/set --shuffle-window "$window"
  field "$work/a.json" 'r["rows_per_s"]' >>"$work/ahead-rows"
  stream "$work/n.json" s3://bench/set --shuffle-window "$window" --no-read-ahead
  field "$work/n.json" 'r["rows_per_s"]' >>"$work/no-ahead-rows"
done
a=$(median <"$work/ahead-rows")
n=$(median <"$work/no-ahead-rows")
echo "cold, images decoded, --shuffle-window $window: read-ahead $a rows/s, --no-read-ahead $n rows/s = $(echo "scale=3; $a / $n" | bc)x"

# Three epochs with a cache of a quarter of what the read fetches, against an unlimited cache and
# none: bytes downloaded and rows/s (each run starts with an empty cache; limits interleaved per rep).
# With images skipped the read is all requests and no work, so a miss costs its full latency; with
# images decoded (what a trainer reads) the misses are fetched while images decode.
three_epochs() { # images-mode, bytes the read fetches
  local images="$1" quarter=$(($2 / 4)) limit rep q u
  for rep in $(seq 1 "$reps"); do
    for limit in 0 "$quarter" 100GB; do
      rm -rf "$work/c3"
      stream "$work/e3.json" s3://bench/set --images "$images" --epochs 3 --shuffle-window "$window" \
        --chunk-cache "$work/c3" --chunk-cache-limit "$limit"
      field "$work/e3.json" 'r["remote"]["bytes_downloaded"]' >>"$work/e3-$images-down-$limit"
      field "$work/e3.json" 'r["rows_per_s"]' >>"$work/e3-$images-rows-$limit"
    done
  done
  for limit in 0 "$quarter" 100GB; do
    echo "3 epochs, --images $images, --shuffle-window $window, cache limit $limit: $(median <"$work/e3-$images-down-$limit") bytes downloaded, $(median <"$work/e3-$images-rows-$limit") rows/s"
  done
  q=$(median <"$work/e3-$images-rows-$quarter")
  u=$(median <"$work/e3-$images-rows-100GB")
  echo "3 epochs, --images $images: a 25% cache reads at $(echo "scale=3; $q / $u" | bc)x the rows/s of an unlimited one"
}
three_epochs skip "$tokens"
three_epochs decoded "$((tokens + images))"
