#!/usr/bin/env bash
# End-to-end throughput comparison: `mixtape build` against the per-record floor and the HF-datasets
# pipeline, on the same corpus, in one invocation. See benches/e2e/README.md.
#
#   bash benches/e2e/run.sh
#
# Settings (environment):
#   N=2000            images in the corpus (and samples built)
#   REPS=3            repetitions of each configuration, interleaved (medians are reported)
#   MEM_SCALES="1 2 4"  corpus sizes, as multiples of N, for the peak-RSS-versus-size builds
#   SMALL_SHARD=16777216  --shard-bytes of the second series of memory builds (empty: skip it)
#   JOBS=2            --jobs of the builds, threads of the floor, num_proc of the HF pipeline
#   WORK=/tmp/mixtape-e2e   where the corpus, outputs and raw results go (kept out of git)
#   VENV=$WORK/venv   Python venv for the HF pipeline (created with datasets, pillow, pyarrow, tokenizers)
#   QUIET_WAIT=120    seconds each run may wait for the machine to be quiet before it starts
#   CARGO_TARGET_DIR  honoured (default: target/ of this checkout)
#   BENCH_COMMIT      commit to report when this checkout is not a git work tree (e.g. a `git archive`)
set -euo pipefail

N=${N:-2000}
REPS=${REPS:-3}
MEM_SCALES=${MEM_SCALES:-"1 2 4"}
SMALL_SHARD=${SMALL_SHARD-16777216}
JOBS=${JOBS:-2}
WORK=${WORK:-/tmp/mixtape-e2e}
VENV=${VENV:-$WORK/venv}
QUIET_WAIT=${QUIET_WAIT:-120}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOKENIZER="$ROOT/recipes/tokenizers/demo.json"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MIXTAPE="$WORK/bin/mixtape"
MAKE_CORPUS="$WORK/bin/make_corpus"
RESULTS="$WORK/runs.jsonl"
step() { printf '\n== %s\n' "$*"; }

mkdir -p "$WORK"
rm -f "$RESULTS" "$WORK"/runs.*.time "$WORK"/runs.*.stdout "$WORK"/runs.*.stderr

step "tools"
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (apt-get)"
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
(cd "$ROOT" && cargo build --release --quiet --bin mixtape --example make_corpus)
# Private copies: a concurrent `cargo build` in the work tree must not swap the binary mid-run.
mkdir -p "$WORK/bin"
cp "$TARGET/release/mixtape" "$TARGET/release/examples/make_corpus" "$WORK/bin/"
if ! "$VENV/bin/python" -c "import datasets, PIL, pyarrow, tokenizers" 2>/dev/null; then
  echo "creating $VENV (datasets pillow pyarrow tokenizers)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet datasets pillow pyarrow tokenizers
fi
PY="$VENV/bin/python"

corpus() { # corpus N -> prints its folder; generated once per N
  local n=$1 dir="$WORK/corpus-$1"
  if [ ! -f "$dir/corpus.json" ]; then
    rm -rf "$dir"
    "$MAKE_CORPUS" corpus --out "$dir" --n "$n" --median-mp 0.2 > "$dir.json.tmp"
    mv "$dir.json.tmp" "$dir/corpus.json"
  fi
  echo "$dir"
}

recipe() { # recipe CORPUS_DIR N ENCODING -> prints the recipe path
  local path="$WORK/recipe-$2-$3.yaml"
  sed -e "s|@CORPUS@|$1|g" -e "s|@N@|$2|g" -e "s|@ENCODING@|$3|g" -e "s|@TOKENIZER@|$TOKENIZER|g" \
    "$HERE/bench.yaml" > "$path"
  echo "$path"
}

measure() { # measure LABEL REP [EXTRA_JSON] -- CMD...
  local label=$1 rep=$2 extra=$3
  shift 4
  python3 "$HERE/measure.py" --label "$label" --rep "$rep" --results "$RESULTS" --quiet-wait "$QUIET_WAIT" \
    --extra "$extra" -- "$@"
}

step "corpus (N=$N)"
CORPUS=$(corpus "$N")
cp "$CORPUS/corpus.json" "$WORK/corpus.json"
cat "$WORK/corpus.json"
R_JPEG=$(recipe "$CORPUS" "$N" jpeg)
R_SOURCE=$(recipe "$CORPUS" "$N" source)

step "environment"
"$PY" - "$ROOT" "$WORK/env.json" <<'EOF'
import json, os, subprocess, sys, datetime, platform
import datasets, PIL, pyarrow, tokenizers
root, out = sys.argv[1], sys.argv[2]
git = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, text=True).stdout.strip()
in_git = git("rev-parse", "--show-toplevel") == os.path.realpath(root)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
env = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "mem_gib": round(mem / 2**20),
    "commit": git("rev-parse", "--short", "HEAD") if in_git else os.environ.get("BENCH_COMMIT", "unknown"),
    "dirty": in_git and bool(git("status", "--porcelain", "--untracked-files=no", "--", "engine", "shards", "src", "Cargo.toml", "Cargo.lock")),
    "python": "Python " + platform.python_version(), "datasets": datasets.__version__, "pillow": PIL.__version__,
    "pyarrow": pyarrow.__version__, "tokenizers": tokenizers.__version__,
}
json.dump(env, open(out, "w"))
print(json.dumps(env))
EOF

step "PIL per-step cost (one thread, context only)"
"$PY" "$HERE/pil_breakdown.py" "$CORPUS" --limit 500 | tee "$WORK/pil.json"

step "throughput: $REPS interleaved repetitions of (a) jpeg build, (b) source build, (c) floor, (d) HF datasets"
for rep in $(seq 1 "$REPS"); do
  rm -rf "$WORK/out-jpeg" "$WORK/cache-jpeg"
  measure build-jpeg "$rep" '{}' -- "$MIXTAPE" --cache-dir "$WORK/cache-jpeg" build "$R_JPEG" \
    --out "$WORK/out-jpeg" --jobs "$JOBS" --quiet --json
  rm -rf "$WORK/out-source" "$WORK/cache-source"
  measure build-source "$rep" '{}' -- "$MIXTAPE" --cache-dir "$WORK/cache-source" build "$R_SOURCE" \
    --out "$WORK/out-source" --jobs "$JOBS" --quiet --json
  measure floor "$rep" '{}' -- "$MAKE_CORPUS" floor --dir "$CORPUS" --tokenizer "$TOKENIZER" \
    --threads "$JOBS" --reps 1
  rm -rf "$WORK/out-hf" "$WORK/hf-cache"
  HF_DATASETS_CACHE="$WORK/hf-cache" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    measure hf "$rep" '{}' -- "$PY" "$HERE/hf_pipeline.py" "$CORPUS" "$TOKENIZER" "$WORK/out-hf" --num-proc "$JOBS"
done
rm -rf "$WORK/cache-plan"
measure plan 1 '{}' -- "$MIXTAPE" --cache-dir "$WORK/cache-plan" plan "$R_JPEG" --json

step "peak RSS against dataset size (N x $MEM_SCALES)"
for k in $MEM_SCALES; do
  n=$((N * k))
  dir=$(corpus "$n")
  r=$(recipe "$dir" "$n" jpeg)
  rm -rf "$WORK/out-mem" "$WORK/cache-mem"
  measure "mem-$n" 1 "{\"samples\": $n, \"shard_bytes\": 0}" -- "$MIXTAPE" --cache-dir "$WORK/cache-mem" build "$r" \
    --out "$WORK/out-mem" --jobs "$JOBS" --quiet --json
  if [ -n "$SMALL_SHARD" ]; then
    rm -rf "$WORK/out-mem" "$WORK/cache-mem"
    measure "mem-$n-small" 1 "{\"samples\": $n, \"shard_bytes\": $SMALL_SHARD, \"shard_bytes_label\": \"$SMALL_SHARD\"}" -- \
      "$MIXTAPE" --cache-dir "$WORK/cache-mem" build "$r" --out "$WORK/out-mem" --shard-bytes "$SMALL_SHARD" \
      --jobs "$JOBS" --quiet --json
  fi
done
rm -rf "$WORK/out-mem" "$WORK/cache-mem"

step "results (raw: $RESULTS)"
python3 "$HERE/summarize.py" "$WORK" | tee "$WORK/results.md"
