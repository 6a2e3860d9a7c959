"""Turns the runs.jsonl that run.sh collected into the Markdown tables of benches/e2e/README.md.

    python3 summarize.py WORK_DIR

Reads WORK_DIR/runs.jsonl, WORK_DIR/corpus.json and WORK_DIR/pil.json; prints Markdown.
Every figure is the median over the repetitions of a configuration (the spread is shown as min-max).
"""

import json
import os
import statistics
import sys

CLEAN = 0.3


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def jpeg_encoder(work):
    """The JPEG encoder the measured binary builds with, as the jpeg build's build.json records it."""
    try:
        with open(os.path.join(work, "out-jpeg", "_mixtape", "build.json")) as f:
            return json.load(f).get("jpeg_encoder") or "JPEG encoder unrecorded"
    except (OSError, ValueError):
        return "JPEG encoder unknown"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def mib(kb):
    return None if kb is None else kb / 1024


def main():
    work = sys.argv[1]
    runs = [r for r in load(os.path.join(work, "runs.jsonl")) if r.get("rc") == 0]
    failed = [r for r in load(os.path.join(work, "runs.jsonl")) if r.get("rc") != 0]
    corpus = json.load(open(os.path.join(work, "corpus.json")))
    pil = json.load(open(os.path.join(work, "pil.json"))) if os.path.exists(os.path.join(work, "pil.json")) else None
    env = json.load(open(os.path.join(work, "env.json")))

    by = {}
    for r in runs:
        by.setdefault(r["label"], []).append(r)
    # Repetitions during which other processes kept more than CLEAN cores busy are left out of the medians
    # when at least one clean repetition of that configuration exists.
    dropped = {}
    for label, rs in by.items():
        clean = [r for r in rs if r["others_cores"] <= CLEAN]
        if clean and len(clean) < len(rs):
            dropped[label] = len(rs) - len(clean)
            by[label] = clean

    def build_stats(label):
        rs = by.get(label, [])
        if not rs:
            return None
        walls = [r["wall_s"] for r in rs]
        man = [r["stdout"]["stages"][0]["manifest"] for r in rs if isinstance(r.get("stdout"), dict)]
        tokens = man[0]["totals"]["tokens"] if man else None
        samples = man[0]["totals"]["samples"] if man else None
        out_bytes = sum(s["bytes"] for s in man[0]["shards"]) if man else None
        return {
            "wall": med(walls), "min": min(walls), "max": max(walls), "n": len(rs),
            "samples": samples, "tokens": tokens, "out_bytes": out_bytes,
            "rss_mib": mib(med([r["max_rss_kb"] for r in rs])),
            "cpu": med([r["user_s"] + r["sys_s"] for r in rs]),
            "others": med([r["others_cores"] for r in rs]),
            "shards": len(man[0]["shards"]) if man else None,
        }

    a = build_stats("build-jpeg")
    b = build_stats("build-source")
    d_runs = by.get("hf", [])
    f_runs = by.get("floor", [])
    d = None
    if d_runs:
        walls = [r["wall_s"] for r in d_runs]
        out = d_runs[0]["stdout"]
        d = {
            "wall": med(walls), "min": min(walls), "max": max(walls), "n": len(d_runs),
            "samples": out["samples"], "tokens": out["tokens"], "out_bytes": out["output_bytes"],
            "rss_mib": mib(med([r["max_rss_kb"] for r in d_runs])),
            "tree_mib": mib(med([r["tree_rss_kb"] for r in d_runs])),
            "cpu": med([r["user_s"] + r["sys_s"] for r in d_runs]),
            "others": med([r["others_cores"] for r in d_runs]),
            "phases": {k: med([r["stdout"][k] for r in d_runs]) for k in ("import_s", "load_s", "map_s", "write_s")},
        }
    c = None
    if f_runs:
        fl = [r["stdout"] for r in f_runs]
        walls = [x["floor_s"] for x in fl]
        c = {
            "wall": med(walls), "min": min(walls), "max": max(walls), "n": len(fl),
            "source_wall": med([x["floor_source_s"] for x in fl]),
            "samples": fl[0]["records"], "tokens": fl[0]["tokens"], "out_bytes": fl[0]["output_image_bytes"],
            "others": med([r["others_cores"] for r in f_runs]),
            "one": {k: med([x["one_thread"][k] for x in fl]) for k in fl[0]["one_thread"]},
        }

    p = []
    p.append(f"Corpus: {corpus['images']:,} JPEG files (q90), median {corpus['median_mp']:.3f} MP "
             f"(min {corpus['min_mp']:.3f}, max {corpus['max_mp']:.3f}), {corpus['jpeg_bytes'] / 1e6:.1f} MB on disk; "
             f"tokenizer recipes/tokenizers/demo.json; seq_len 4096; max_pixels 1,003,520.")
    p.append("")
    p.append(f"Machine: {env['cpu']}, {env['cores']} cores, {env['mem_gib']} GiB; {env['date']}; "
             f"mixtape at {env['commit']}{' (with uncommitted changes in the work tree)' if env['dirty'] else ''}; "
             f"{env['python']}, datasets {env['datasets']}, Pillow {env['pillow']}, pyarrow {env['pyarrow']}, tokenizers {env['tokenizers']}.")
    p.append("")
    p.append("| configuration | wall s (median, min-max) | samples/s | tokens/s | output MB/s | peak RSS MiB | CPU s | vs HF datasets | % of floor |")
    p.append("|---|---|---|---|---|---|---|---|---|")

    def row(name, s, floor_wall, rss=None):
        if s is None:
            return
        sps = s["samples"] / s["wall"] if s.get("samples") else None
        tps = s["tokens"] / s["wall"] if s.get("tokens") else None
        mbs = s["out_bytes"] / 1e6 / s["wall"] if s.get("out_bytes") else None
        vs_hf = f"{d['wall'] / s['wall']:.2f}x" if d else "-"
        pct = f"{100 * floor_wall / s['wall']:.0f}%" if floor_wall else "-"
        spread = f"{s['wall']:.2f} ({s['min']:.2f}-{s['max']:.2f})" if s["n"] > 1 else f"{s['wall']:.2f}"
        p.append(f"| {name} | {spread} | {fmt(sps, 0)} | {fmt(tps, 0)} | {fmt(mbs, 1)} | "
                 f"{rss if rss is not None else fmt(s.get('rss_mib'), 0)} | {fmt(s.get('cpu'))} | {vs_hf} | {pct} |")

    row("(a) `mixtape build`, `encoding: jpeg`, `--jobs 2`", a, c["wall"] if c else None)
    row("(b) `mixtape build`, `encoding: source`, `--jobs 2`", b, c["source_wall"] if c else None)
    if c:
        row("(c) floor: decode + resize + encode + tokenize, 2 threads", c, c["wall"], rss="-")
    if d:
        row("(d) HF `datasets` map(num_proc=2) + PIL + pyarrow", d, c["wall"] if c else None,
            rss=f"{fmt(d['rss_mib'], 0)} (tree {fmt(d['tree_mib'], 0)})")
    p.append("")
    p.append("`vs HF datasets` is (d)'s wall time over the row's (higher is faster); `% of floor` is the floor's wall "
             "time over the row's (for (b) the floor is tokenizing alone, "
             f"{c['source_wall']:.3f} s, since a `source` build decodes nothing)." if c else "")
    if dropped:
        p.append("")
        p.append("Left out of the medians, because other processes kept more than "
                 f"{CLEAN} of a core busy during them: " + ", ".join(f"{k} x{v}" for k, v in sorted(dropped.items())) + ".")
    others = [s["others"] for s in (a, b, c, d) if s]
    p.append("")
    p.append(f"Other processes' CPU use during the runs (median per configuration, in cores of the 2): "
             f"{', '.join(fmt(x) for x in others)} for (a)-(d). Each run first waited up to QUIET_WAIT seconds "
             "for less than 0.25 of a core busy.")

    if c:
        o = c["one"]
        p.append("")
        encoder = jpeg_encoder(work)
        p.append("Where the per-record time goes (one thread, mean ms per image; mixtape's stack vs Pillow):")
        p.append("")
        p.append(f"| step | mixtape engine (zune-jpeg, fast_image_resize, {encoder}) | Pillow (libjpeg-turbo) |")
        p.append("|---|---|---|")
        p.append(f"| decode | {o['decode_ms']:.2f} | {pil['decode_ms']:.2f} |" if pil else f"| decode | {o['decode_ms']:.2f} | - |")
        p.append(f"| resize (bicubic, Qwen rule) | {o['resize_ms']:.2f} | {pil['resize_ms']:.2f} |" if pil else f"| resize | {o['resize_ms']:.2f} | - |")
        p.append(f"| JPEG q90 encode | {o['encode_ms']:.2f} | {pil['encode_ms']:.2f} |" if pil else f"| encode | {o['encode_ms']:.2f} | - |")
        p.append(f"| tokenize (template, per sample) | {o['tokenize_ms']:.3f} | - |")
        total_pil = f"{pil['total_ms']:.2f}" if pil else "-"
        p.append(f"| total | {o['decode_ms'] + o['resize_ms'] + o['encode_ms'] + o['tokenize_ms']:.2f} | {total_pil} (+ tokenize) |")
    if d:
        ph = d["phases"]
        p.append("")
        p.append(f"HF pipeline phases (median s): import {ph['import_s']:.2f}, load_dataset {ph['load_s']:.2f}, "
                 f"map {ph['map_s']:.2f}, write Parquet {ph['write_s']:.2f}.")
    if "plan" in by:
        p.append("")
        p.append(f"`mixtape plan` alone (cold length cache): {med([r['wall_s'] for r in by['plan']]):.2f} s, "
                 f"{fmt(mib(med([r['max_rss_kb'] for r in by['plan']])), 0)} MiB.")

    mem = sorted((r for r in runs if r["label"].startswith("mem-")), key=lambda r: (r.get("shard_bytes", 0), r["samples"]))
    if mem:
        p.append("")
        p.append("Peak RSS against dataset size (`encoding: jpeg`, `--jobs 2`, one run each):")
        p.append("")
        p.append("| samples | --shard-bytes | shards | row groups | wall s | peak RSS MiB | KiB per sample |")
        p.append("|---|---|---|---|---|---|---|")
        for r in mem:
            man = r["stdout"]["stages"][0]["manifest"]
            rows_groups = sum(s.get("row_groups", 1) for s in man["shards"])
            p.append(f"| {r['samples']:,} | {r.get('shard_bytes_label', 'default')} | {len(man['shards'])} | {rows_groups} | "
                     f"{r['wall_s']:.2f} | {r['max_rss_kb'] / 1024:.0f} | {r['max_rss_kb'] / r['samples']:.0f} |")
    if failed:
        p.append("")
        p.append("FAILED runs: " + ", ".join(f"{r['label']} rep {r['rep']} (rc {r['rc']})" for r in failed))
    print("\n".join(p))


if __name__ == "__main__":
    main()
