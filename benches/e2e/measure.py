"""Runs one benchmark command and appends one JSON line about it to a results file.

    python3 measure.py --label NAME --results FILE [--quiet-wait S] [--rep R] [--extra JSON] -- CMD ARGS...

- Waits (up to --quiet-wait seconds, default 120) until the machine is quiet: less than 0.25 of a core
  busy over one second, so runs do not start in the middle of someone else's compile. Runs start anyway
  after the wait, and the load is recorded either way.
- Times the command with `/usr/bin/time -v` (wall, user, sys, peak RSS of the largest process).
- Samples the RSS summed over the command's whole process tree every 50 ms (the HF pipeline runs in
  several processes; `time -v` reports only the largest one).
- Records how much CPU other processes used during the run (from /proc/stat minus the command's own
  user+sys), in cores: a busy neighbour slows every configuration and is worth seeing next to the numbers.
- The command's stdout is saved next to the results file as LABEL.repR.stdout and, if it is one JSON
  object, included under "stdout".
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_busy_jiffies():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal


def busy_cores(seconds=1.0):
    a = cpu_busy_jiffies()
    time.sleep(seconds)
    return (cpu_busy_jiffies() - a) / TICK / seconds


def wait_quiet(limit):
    start = time.time()
    load = busy_cores()
    while load > 0.25 and time.time() - start < limit:
        load = busy_cores()
    return load, time.time() - start


def children(pid):
    """Every descendant of `pid` (from the ppid field of /proc/*/stat)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def parse_time_v(text):
    def grab(pattern, conv=float):
        m = re.search(pattern, text)
        return conv(m.group(1)) if m else None

    wall = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return {
        "wall_s": wall,
        "user_s": grab(r"User time \(seconds\): (\S+)"),
        "sys_s": grab(r"System time \(seconds\): (\S+)"),
        "max_rss_kb": grab(r"Maximum resident set size \(kbytes\): (\d+)", int),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--rep", type=int, default=0)
    ap.add_argument("--quiet-wait", type=float, default=120)
    ap.add_argument("--extra", default="{}")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        sys.exit("measure.py: no command")

    load_before, waited = wait_quiet(a.quiet_wait)
    base = os.path.splitext(a.results)[0]
    time_file = f"{base}.{a.label}.rep{a.rep}.time"
    out_file = f"{base}.{a.label}.rep{a.rep}.stdout"
    err_file = f"{base}.{a.label}.rep{a.rep}.stderr"

    busy0 = cpu_busy_jiffies()
    t0 = time.perf_counter()
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_file, *cmd], stdout=out, stderr=err)
        peak_tree = 0
        stop = threading.Event()

        def sample():
            nonlocal peak_tree
            while not stop.is_set():
                pids = children(proc.pid)
                total = sum(rss_kb(p) for p in pids)  # the time process itself is not counted
                peak_tree = max(peak_tree, total)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = proc.wait()
        stop.set()
        sampler.join()
    elapsed = time.perf_counter() - t0
    busy = (cpu_busy_jiffies() - busy0) / TICK

    with open(time_file) as f:
        timing = parse_time_v(f.read())
    own = (timing["user_s"] or 0) + (timing["sys_s"] or 0)
    record = {
        "label": a.label,
        "rep": a.rep,
        "rc": rc,
        **timing,
        "tree_rss_kb": peak_tree,
        "others_cores": max(0.0, (busy - own) / max(elapsed, 1e-9)),
        "load_before_cores": load_before,
        "waited_s": waited,
        **json.loads(a.extra),
    }
    with open(out_file) as f:
        text = f.read().strip()
    try:
        record["stdout"] = json.loads(text)
    except ValueError:
        pass
    with open(a.results, "a") as f:
        f.write(json.dumps(record) + "\n")
    status = "ok" if rc == 0 else f"FAILED rc={rc} (see {err_file})"
    print(
        f"  {a.label:<14} rep {a.rep}: {timing['wall_s']:.2f} s wall, {own:.2f} s cpu, "
        f"{(timing['max_rss_kb'] or 0) / 1024:.0f} MiB peak RSS, others {record['others_cores']:.2f} cores  {status}",
        flush=True,
    )
    sys.exit(0 if rc == 0 else 1)


if __name__ == "__main__":
    main()
