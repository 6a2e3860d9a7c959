#!/usr/bin/env python3
"""MosaicML Streaming against `mixtape stream`, both reading the same rows from the same local
S3-compatible server, cold (issue 18's goal: >= 5x its images/s and tokens/s). Run by
benches/objstore/mosaic.sh, which starts the server and builds the recipe into a folder and into
s3://bench/set.

Each rep, interleaved, every byte from the server on both sides:
- mixtape: `mixtape stream s3://bench/set/STAGE... --images decoded --decode-threads THREADS
  --batch-size 4`, no chunk cache;
- Mosaic: the same packed rows written as MDS (benches/reader/compare.py's `write_mds`, not timed) and
  uploaded to s3://bench/mds; a shuffled `StreamingDataset(remote=..., local=<a new empty folder>)`
  through a DataLoader of THREADS workers decoding each row's images with PIL (compare.py's reader),
  timed from creating the dataset to the last batch, as `mixtape stream` times itself.

With `--cache-fraction F --epochs E --count-url URL --count-file FILE` (benches/objstore/mosaic.sh
with CACHE_FRACTION set), each side instead reads E epochs with a cache of F of its own set's bytes:
mixtape with `--chunk-cache DIR --chunk-cache-limit` (Belady's rule over the reader's future
order), Mosaic with `StreamingDataset(cache_limit=...)` (whole shards, least recently used evicted
first). Both go through a proxy that counts the bytes the server sends (benches/objstore/
latency_proxy.py at URL, keeping its count in FILE), so the downloads are counted the same way on
both sides; `--mds-shard-bytes` sizes the MDS shards (Mosaic refuses a limit under a few shards).

Usage: mosaic.py MIXTAPE_BIN LOCAL_BUILD_DIR STAGE... [--threads 2] [--reps 3]
       [--cache-fraction F --epochs E --count-url URL --count-file FILE] [--mds-shard-bytes N]
Needs `streaming`, `torch`, `boto3`, `pyarrow` and `PIL` in the interpreter; prints one JSON object.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reader"))
from compare import _decoded_dataset_class, collate_rows, settle, shard_paths, write_mds  # noqa: E402

BUCKET = "bench"


def upload(folder, prefix):
    import boto3

    s3 = boto3.client("s3")
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            s3.upload_file(path, BUCKET, f"{prefix}/{os.path.relpath(path, folder)}")


def mosaic_remote(remote, workers, seed, cache_limit=None, epochs=1):
    """`epochs` cold epochs of one StreamingDataset over the MDS copy on the server, its shard cache
    limited to `cache_limit` bytes (None: no eviction); (seconds, tokens, images)."""
    import torch.utils.data
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    local = tempfile.mkdtemp(prefix="mixtape-mosaic-local-")
    try:
        settle()
        start = time.perf_counter()
        dataset = _decoded_dataset_class()(
            remote=remote, local=local, shuffle=True, shuffle_seed=seed, batch_size=4,
            cache_limit=cache_limit,
        )
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=4, num_workers=workers, collate_fn=collate_rows
        )
        tokens = images = 0
        for _ in range(epochs):
            for batch in loader:
                for row in batch:
                    tokens += len(row["input_ids"])
                    images += len(row["images"])
        seconds = time.perf_counter() - start
        del loader, dataset
        return seconds, tokens, images
    finally:
        shutil.rmtree(local, ignore_errors=True)


def mixtape_remote(binary, stages, threads, extra=(), env=None):
    settle()
    cmd = [binary, "stream", *stages, "--json", "--images", "decoded",
           "--decode-threads", str(threads), "--batch-size", "4", *extra]
    report = json.loads(
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    )
    return report["seconds"], report["tokens"], report["images"], report["remote"]["bytes_downloaded"]


def counted_bytes(count_file):
    """The proxy's running total, once it has settled (it rewrites the file every 50 ms)."""
    time.sleep(0.3)
    with open(count_file) as f:
        return int(f.read() or 0)


def set_size(prefix):
    """(bytes, shards) of the objects under s3://BUCKET/prefix/ (asked of the server directly)."""
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/"
    )
    objects = [o for page in pages for o in page.get("Contents", [])]
    shards = sum(o["Key"].endswith((".parquet", ".mds")) for o in objects)
    return sum(o["Size"] for o in objects), shards


def cache_comparison(args, remote_stages):
    """Both readers over `args.epochs` epochs with a cache of `args.cache_fraction` of their set."""
    (mixtape_set, mixtape_shards), (mosaic_set, mosaic_shards) = set_size("set"), set_size("mds")
    mixtape_limit = int(mixtape_set * args.cache_fraction)
    mosaic_limit = int(mosaic_set * args.cache_fraction)
    through_proxy = dict(os.environ, AWS_ENDPOINT_URL=args.count_url)
    runs = {"mixtape": [], "mosaic": []}
    for rep in range(args.reps):
        cache = tempfile.mkdtemp(prefix="mixtape-chunks-")
        try:
            before = counted_bytes(args.count_file)
            seconds, tokens, images, own = mixtape_remote(
                args.binary, remote_stages, args.threads,
                ["--epochs", str(args.epochs), "--chunk-cache", cache,
                 "--chunk-cache-limit", str(mixtape_limit)],
                env=through_proxy,
            )
            runs["mixtape"].append(
                (seconds, tokens, images, counted_bytes(args.count_file) - before, own)
            )
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        os.environ["S3_ENDPOINT_URL"] = args.count_url
        before = counted_bytes(args.count_file)
        seconds, tokens, images = mosaic_remote(
            f"s3://{BUCKET}/mds", args.threads, 0, mosaic_limit, args.epochs
        )
        runs["mosaic"].append((seconds, tokens, images, counted_bytes(args.count_file) - before))
    sizes = {
        "mixtape": (mixtape_set, mixtape_limit, mixtape_shards),
        "mosaic": (mosaic_set, mosaic_limit, mosaic_shards),
    }
    result = {"threads": args.threads, "epochs": args.epochs, "cache_fraction": args.cache_fraction}
    for name, reps in runs.items():
        seconds = statistics.median(r[0] for r in reps)
        downloaded = statistics.median(r[3] for r in reps)
        tokens, images = reps[-1][1], reps[-1][2]
        result[name] = {
            "set_bytes": sizes[name][0],
            "shards": sizes[name][2],
            "cache_limit_bytes": sizes[name][1],
            "median_seconds": round(seconds, 3),
            "all_seconds": [round(r[0], 3) for r in reps],
            "tokens_per_s": round(tokens / seconds),
            "images_per_s": round(images / seconds, 1),
            "bytes_from_server": downloaded,
            "sets_downloaded": round(downloaded / sizes[name][0], 3),
        }
    result["mixtape"]["own_count_bytes"] = runs["mixtape"][-1][4]
    mix, mos = result["mixtape"], result["mosaic"]
    result["ratios"] = {
        "mixtape_over_mosaic_images_per_s": round(mix["images_per_s"] / mos["images_per_s"], 3),
        "mixtape_over_mosaic_sets_downloaded": round(
            mix["sets_downloaded"] / mos["sets_downloaded"], 3
        ),
    }
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("build")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cache-fraction", type=float)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--count-url")
    parser.add_argument("--count-file")
    parser.add_argument("--mds-shard-bytes", type=int)
    args = parser.parse_args()
    os.environ.setdefault("S3_ENDPOINT_URL", os.environ["AWS_ENDPOINT_URL"])
    paths = shard_paths([os.path.join(args.build, s) for s in args.stages])
    mds = tempfile.mkdtemp(prefix="mixtape-mosaic-mds-")
    try:
        rows = write_mds(paths, os.path.join(mds, "mds"), args.mds_shard_bytes)
        upload(os.path.join(mds, "mds"), "mds")
    finally:
        shutil.rmtree(mds, ignore_errors=True)
    print(f"wrote {rows} rows as MDS to s3://{BUCKET}/mds (not timed)", file=sys.stderr)
    remote_stages = [f"s3://{BUCKET}/set/{s}" for s in args.stages]
    if args.cache_fraction is not None:
        result = cache_comparison(args, remote_stages)
        result["rows"] = rows
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    runs = {"mixtape": [], "mosaic": []}
    for rep in range(args.reps):
        runs["mixtape"].append(mixtape_remote(args.binary, remote_stages, args.threads))
        runs["mosaic"].append(mosaic_remote(f"s3://{BUCKET}/mds", args.threads, rep))
    result = {"threads": args.threads, "batch_size": 4, "rows": rows}
    for name, reps in runs.items():
        seconds = statistics.median(r[0] for r in reps)
        # Each reader's own counts: mixtape drops an epoch's last partial batch, the DataLoader does not.
        tokens, images = reps[-1][1], reps[-1][2]
        result[name] = {
            "median_seconds": round(seconds, 3),
            "all_seconds": [round(r[0], 3) for r in reps],
            "tokens": tokens,
            "images": images,
            "tokens_per_s": round(tokens / seconds),
            "images_per_s": round(images / seconds, 1),
        }
    result["mixtape"]["bytes_downloaded"] = runs["mixtape"][-1][3]
    mix, mos = result["mixtape"], result["mosaic"]
    result["ratios"] = {
        "mixtape_over_mosaic_tokens_per_s": round(mix["tokens_per_s"] / mos["tokens_per_s"], 3),
        "mixtape_over_mosaic_images_per_s": round(mix["images_per_s"] / mos["images_per_s"], 3),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
