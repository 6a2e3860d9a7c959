#!/usr/bin/env bash
# Submits a split `mixtape build` to Slurm: TASKS array tasks, then the finish once all succeeded.
#
#   deploy/slurm/submit.sh TASKS RECIPE OUT [build options...]
#
# Prints the array job's id and the finish job's id. Extra sbatch options (partition, account, time
# limit) go in SBATCH_* environment variables, e.g. SBATCH_PARTITION=cpu.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tasks="$1"
shift
array=$(sbatch --parsable --array="0-$((tasks - 1))" "$here/build.sbatch" "$@")
finish=$(sbatch --parsable --dependency="afterok:${array%%;*}" "$here/finish.sbatch" "$@")
echo "${array%%;*} $finish"
