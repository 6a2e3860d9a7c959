#!/usr/bin/env python3
"""Reader comparison on the same shards, in one run: `mixtape stream` against the Python floors.

- Token columns: pyarrow reading every shard's input_ids, loss_mask, position_ids and seq_lens into
  numpy (no shuffle, no partition, no prefetch, no images): the floor a Python user gets. Compared with
  `mixtape stream --images skip` (shuffled, partitioned, prefetched), in tokens/s.
- Images: PIL (libjpeg-turbo) decoding the same image bytes to RGB on THREADS processes, the bare-decode
  floor; compared with `mixtape stream --images decoded`, in images/s and megapixels/s.
- MosaicML Streaming is not compared here (yet): it needs torch and the rows rewritten as MDS, which
  this script does not do.

Usage: python benches/reader/compare.py MIXTAPE_BIN STAGE_DIR... [--threads 2] [--reps 3]
Prints one JSON object: medians of each measurement and the ratios.
"""

import argparse
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import pyarrow.parquet as pq

TOKEN_COLUMNS = ["input_ids", "loss_mask", "position_ids", "seq_lens"]


def shard_paths(stages):
    out = []
    for stage in stages:
        with open(os.path.join(stage, "manifest.json")) as f:
            manifest = json.load(f)
        out += [os.path.join(stage, s["file"]) for s in manifest["shards"]]
    return out


def pyarrow_tokens(paths):
    tokens = 0
    for path in paths:
        table = pq.read_table(path, columns=TOKEN_COLUMNS)
        arrays = [table.column(c).combine_chunks().flatten().to_numpy() for c in TOKEN_COLUMNS]
        tokens += len(arrays[0])
    return tokens


def image_bytes(paths):
    out = []
    for path in paths:
        table = pq.read_table(path, columns=["images"])
        for row in table.column("images").to_pylist():
            out += [(img["bytes"], img["height"] * img["width"]) for img in row]
    return out


def pil_decode(chunk):
    from PIL import Image

    n = 0
    for data in chunk:
        img = Image.open(io.BytesIO(data))
        img = img.convert("RGB")
        img.load()
        n += 1
    return n


def pil_images(images, threads, pool):
    data = [b for b, _ in images]
    chunks = [data[i::threads] for i in range(threads)]
    return sum(pool.map(pil_decode, chunks))


def stream(binary, stages, images, threads):
    cmd = [binary, "stream", *stages, "--json", "--images", images, "--decode-threads", str(threads), "--batch-size", "4"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    paths = shard_paths(args.stages)
    images = image_bytes(paths)
    megapixels = sum(p for _, p in images) / 1e6
    runs = {"pyarrow_tokens_s": [], "mixtape_tokens_s": [], "pil_images_s": [], "mixtape_images_s": []}
    tokens = None
    with multiprocessing.Pool(args.threads) as pool:
        pil_images(images[:4], args.threads, pool)  # warm the workers
        for _ in range(args.reps):
            seconds, tokens = timed(lambda: pyarrow_tokens(paths))
            runs["pyarrow_tokens_s"].append(seconds)
            report = stream(args.binary, args.stages, "skip", args.threads)
            runs["mixtape_tokens_s"].append(report["seconds"])
            seconds, _ = timed(lambda: pil_images(images, args.threads, pool))
            runs["pil_images_s"].append(seconds)
            report = stream(args.binary, args.stages, "decoded", args.threads)
            runs["mixtape_images_s"].append(report["seconds"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "shards": len(paths),
        "tokens": tokens,
        "images": len(images),
        "megapixels": round(megapixels, 3),
        "threads": args.threads,
        "median_seconds": {k: round(v, 4) for k, v in med.items()},
        "tokens_per_s": {
            "pyarrow": round(tokens / med["pyarrow_tokens_s"]),
            "mixtape": round(tokens / med["mixtape_tokens_s"]),
        },
        "images_per_s": {
            "pil": round(len(images) / med["pil_images_s"], 1),
            "mixtape": round(len(images) / med["mixtape_images_s"], 1),
        },
        "megapixels_per_s": {
            "pil": round(megapixels / med["pil_images_s"], 2),
            "mixtape": round(megapixels / med["mixtape_images_s"], 2),
        },
        "ratios": {
            "mixtape_token_time_over_pyarrow": round(med["mixtape_tokens_s"] / med["pyarrow_tokens_s"], 3),
            "mixtape_image_time_over_pil": round(med["mixtape_images_s"] / med["pil_images_s"], 3),
        },
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
