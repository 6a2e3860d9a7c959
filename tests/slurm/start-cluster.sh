#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine for the tests (tests/it/slurm.rs): Debian's
# slurm-wlm and munge (installed with apt-get when missing, as .ci/run does for libjpeg), munged, then
# slurmctld and slurmd on localhost with their configuration, state and logs under STATE_DIR
# (default: target/slurm). Idempotent: a cluster this script already started is reused. Prints the
# slurm.conf path; point SLURM_CONF at it for sbatch, squeue and scontrol.
set -euo pipefail
state="${1:-$(cd "$(dirname "$0")/../.." && pwd)/target/slurm}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
conf="$state/slurm.conf"
# One starter at a time (test processes may call this at once).
exec 9>"$state/start.lock"
flock 9
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "start-cluster.sh: slurm-wlm and munge are missing: apt-get install slurm-wlm munge" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
export SLURM_CONF="$conf"
if [ -f "$conf" ] && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "$conf"
  exit 0
fi

# munge: the key the package made, a socket folder, the daemon (as root it needs --force).
if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
    chmod 400 /etc/munge/munge.key
  fi
  if [ "$(id -u)" = 0 ]; then
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    runuser -u munge -- munged 9>&- || munged --force 9>&-
  else
    munged 9>&-
  fi
fi

host="$(hostname -s)"
cpus="$(nproc)"
memory="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
mkdir -p "$state/ctld" "$state/d" "$state/log"
cat >"$conf" <<CONF
ClusterName=mixtape-test
SlurmctldHost=$host
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
# The daemons must not inherit the lock.
slurmctld -f "$conf" 9>&-
slurmd -f "$conf" 9>&-
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "$conf"
    exit 0
  fi
  sleep 0.5
done
echo "start-cluster.sh: the node did not come up; logs in $state/log" >&2
sinfo >&2 || true
tail -20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
exit 1
