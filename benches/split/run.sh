#!/usr/bin/env bash
# A split build against a one-process build of the same recipe, same machine, interleaved:
# N tasks of `--jobs 1` run at once (then --finish) against one `--jobs N` build (issue 19's goal on a
# 2-core machine: N = 2 finishes within 10% of the one-process wall time, total CPU within 5%).
# Both outputs are compared byte for byte after each round. The index cache is warmed first, so
# both sides measure building, not indexing (every task resolves the plan from the cache).
#
#   benches/split/run.sh MIXTAPE_BIN RECIPE [TASKS=2] [REPS=3] [SHARD_BYTES=16777216]
#
# Prints each round's wall and CPU seconds (user + sys of every process) and the medians' ratios.
set -euo pipefail
bin="$(realpath "$1")"
recipe="$(realpath "$2")"
tasks="${3:-2}"
reps="${4:-3}"
shard_bytes="${5:-16777216}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export MIXTAPE_CACHE_DIR="$work/cache"
"$bin" plan "$recipe" >/dev/null
timed() { # name, command...: appends "name wall cpu" to $work/times
  local name="$1"
  shift
  /usr/bin/time -f "$name %e %U %S" -a -o "$work/times" "$@"
}
for rep in $(seq 1 "$reps"); do
  rm -rf "$work/whole" "$work/split"
  timed whole "$bin" build "$recipe" --out "$work/whole" --jobs "$tasks" --shard-bytes "$shard_bytes" --quiet
  timed split bash -c '
    for t in $(seq 0 $(('"$tasks"' - 1))); do
      "$0" build "$1" --out "$2" --jobs 1 --shard-bytes "$3" --task "$t" --tasks '"$tasks"' --quiet &
    done
    wait
    "$0" build "$1" --out "$2" --shard-bytes "$3" --finish --quiet' "$bin" "$recipe" "$work/split" "$shard_bytes"
  diff -r "$work/whole" "$work/split" >/dev/null || { echo "round $rep: the split build differs" >&2; exit 1; }
done
python3 - "$work/times" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_ = line.split()
    runs.setdefault(name, []).append((float(wall), float(user) + float(sys_)))
for name, values in runs.items():
    print(name, "wall", [w for w, _ in values], "cpu", [round(c, 2) for _, c in values])
med = {n: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for n, v in runs.items()}
print(f"split/whole: wall {med['split'][0] / med['whole'][0]:.3f}, cpu {med['split'][1] / med['whole'][1]:.3f}")
PY
