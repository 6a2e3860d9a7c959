#!/usr/bin/env bash
# Submits a split `mixtape build` to Slurm: TASKS index tasks (measuring the sources into the shared
# length cache), then TASKS build tasks once all succeeded, then the finish once those succeeded.
#
#   MIXTAPE_CACHE_DIR=/shared/cache deploy/slurm/submit.sh TASKS RECIPE OUT [build options...]
#
# Prints the three jobs' ids (index array, build array, finish). MIXTAPE_CACHE_DIR must be on storage
# every node shares (sbatch passes the environment on). Extra sbatch options (partition, account,
# time limit) go in SBATCH_* environment variables, e.g. SBATCH_PARTITION=cpu.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tasks="$1"
recipe="$2"
shift
index=$(sbatch --parsable --array="0-$((tasks - 1))" "$here/index.sbatch" "$recipe")
index="${index%%;*}"
array=$(sbatch --parsable --array="0-$((tasks - 1))" --dependency="afterok:$index" "$here/build.sbatch" "$@")
array="${array%%;*}"
finish=$(sbatch --parsable --dependency="afterok:$array" "$here/finish.sbatch" "$@")
echo "$index $array $finish"
