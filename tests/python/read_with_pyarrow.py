"""Reads a mixtape stage folder with pyarrow alone and checks the shard format's invariants.

Usage: .venv/bin/python tests/python/read_with_pyarrow.py STAGE_DIR
(prints "ok: ..." and exits 0 when all hold; the manifest is BUILD/_mixtape/STAGE/manifest.json)
"""
import glob
import json
import os
import sys

import pyarrow.parquet as pq

stage = os.path.normpath(sys.argv[1])
build, name = os.path.split(stage)
manifest = json.load(open(os.path.join(build, "_mixtape", name, "manifest.json")))
assert sorted(os.listdir(stage)) == [s["file"] for s in manifest["shards"]], "the stage folder holds only its shards"
files = sorted(glob.glob(os.path.join(stage, "shard-*.parquet")))
assert [os.path.basename(f) for f in files] == [s["file"] for s in manifest["shards"]], files
rows = 0
for path in files:
    table = pq.read_table(path)
    meta = pq.read_metadata(path).metadata
    assert meta[b"mixtape.format_version"] == b"1", meta
    assert meta[b"mixtape.stage"].decode() == manifest["stage"]
    assert meta[b"mixtape.recipe_fingerprint"].decode() == manifest["recipe_fingerprint"]
    seq_len = int(meta[b"mixtape.seq_len"])
    for row in table.to_pylist():
        ids, mask, pos, lens = row["input_ids"], row["loss_mask"], row["position_ids"], row["seq_lens"]
        assert len(ids) == len(mask) == len(pos) == sum(lens) <= seq_len
        start = 0
        for n in lens:
            assert pos[start:start + n] == list(range(n)), "positions restart at each sample"
            start += n
        assert len(row["sample_source"]) == len(row["sample_category"]) == len(row["sample_key"]) == len(lens)
        for image in row["images"]:
            assert image["height"] % 28 == 0 and image["width"] % 28 == 0
            assert image["num_tokens"] == image["height"] * image["width"] // 784
            assert image["token_offset"] + image["num_tokens"] <= len(ids)
            assert image["bytes"][:2] == b"\xff\xd8", "JPEG bytes"
    rows += table.num_rows
assert rows == manifest["totals"]["rows"], (rows, manifest["totals"]["rows"])
print(f"ok: {len(files)} shards, {rows} rows")
