"""Reads every stage of a mixtape build with four Parquet tools, no glob, and checks what each
reads against the stage's manifest: the row count, and per category the packed samples and tokens
(summed from the per-sample list columns `sample_category` and `seq_lens`).

Usage: .venv/bin/python tests/python/read_with_parquet_tools.py BUILD_DIR
(prints one "ok: ..." line per tool and stage, and exits 0 when everything agrees)

The calls are the ones a new user would try first:
  pyarrow.dataset.dataset(STAGE_DIR)
  datasets.load_dataset("parquet", data_dir=STAGE_DIR)
  duckdb: select ... from read_parquet('STAGE_DIR/*')
  polars.scan_parquet(STAGE_DIR)
  datasets.load_dataset(BUILD_DIR, name=STAGE)   (the configs of BUILD_DIR/README.md)
"""
import json
import os
import sys
import tempfile
from collections import Counter

# Nothing is downloaded, and HF's cache goes to a temporary folder, not the user's home.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
cache = tempfile.mkdtemp(prefix="mixtape-hf-cache-")
os.environ["HF_HOME"] = cache
os.environ["HF_DATASETS_CACHE"] = os.path.join(cache, "datasets")

import datasets  # noqa: E402
import duckdb  # noqa: E402
import polars  # noqa: E402
import pyarrow.dataset  # noqa: E402

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()

build = os.path.abspath(sys.argv[1])
record = json.load(open(os.path.join(build, "_mixtape", "build.json")))
stages = record["stages"]
assert stages, "the build record lists no stage"


def expected(stage):
    """(rows, {category: (samples, tokens)}) from the stage's manifest."""
    manifest = json.load(open(os.path.join(build, "_mixtape", stage, "manifest.json")))
    by_category = {
        name: (counts["samples"], counts["tokens"]) for name, counts in manifest["by_category"].items()
    }
    return manifest["totals"]["rows"], by_category


def tally(categories_per_row, lengths_per_row):
    """{category: (samples, tokens)} from per-row lists of sample categories and lengths."""
    samples, tokens = Counter(), Counter()
    for categories, lengths in zip(categories_per_row, lengths_per_row):
        assert len(categories) == len(lengths), (categories, lengths)
        for category, length in zip(categories, lengths):
            samples[category] += 1
            tokens[category] += length
    return {c: (samples[c], tokens[c]) for c in samples}


def check(tool, stage, rows, by_category):
    want_rows, want = expected(stage)
    assert rows == want_rows, f"{tool} read {rows} rows of stage {stage}, the manifest says {want_rows}"
    assert by_category == want, f"{tool}, stage {stage}: per category (samples, tokens) {by_category}, manifest {want}"
    print(f"ok: {tool} reads stage {stage}: {rows} rows, {sum(t for _, t in want.values())} tokens")


for stage in stages:
    stage_dir = os.path.join(build, stage)

    table = pyarrow.dataset.dataset(stage_dir).to_table(columns=["sample_category", "seq_lens"])
    check(
        "pyarrow.dataset",
        stage,
        table.num_rows,
        tally(table.column("sample_category").to_pylist(), table.column("seq_lens").to_pylist()),
    )

    loaded = datasets.load_dataset("parquet", data_dir=stage_dir, split="train")
    check(
        "datasets.load_dataset(parquet, data_dir)",
        stage,
        loaded.num_rows,
        tally(loaded["sample_category"], loaded["seq_lens"]),
    )

    glob = os.path.join(stage_dir, "*").replace("'", "''")
    (rows,) = duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchone()
    # Two unnests in one select list unnest side by side: (category, length) of each sample.
    sums = duckdb.sql(
        f"""select category, count(*), sum(length) from (
              select unnest(sample_category) as category, unnest(seq_lens) as length
              from read_parquet('{glob}')
            ) group by category"""
    ).fetchall()
    check("duckdb read_parquet", stage, rows, {c: (n, int(t)) for c, n, t in sums})

    frame = polars.scan_parquet(stage_dir)
    rows = frame.select(polars.len()).collect().item()
    sums = (
        frame.select(polars.col("sample_category"), polars.col("seq_lens"))
        .explode(["sample_category", "seq_lens"])
        .group_by("sample_category")
        .agg(polars.len().alias("samples"), polars.col("seq_lens").sum().alias("tokens"))
        .collect()
    )
    check(
        "polars.scan_parquet",
        stage,
        rows,
        {r["sample_category"]: (r["samples"], r["tokens"]) for r in sums.iter_rows(named=True)},
    )

    config = datasets.load_dataset(build, name=stage, split="train")
    check(
        f"datasets.load_dataset(build, name={stage})",
        stage,
        config.num_rows,
        tally(config["sample_category"], config["seq_lens"]),
    )

# The first stage is the default config.
default = datasets.load_dataset(build, split="train")
assert default.num_rows == expected(stages[0])[0], (default.num_rows, stages[0])
print(f"ok: datasets.load_dataset(build) reads the first stage, {stages[0]}")
