#!/usr/bin/env python3
"""The Python package's reader against the Rust reader, same shards, same run (issue 17's goal:
>= 0.9x the Rust reader's tokens/s and images/s through a 2-worker DataLoader).

Measured, each REPS times, interleaved, medians:
- `mixtape stream STAGE... --images MODE --batch-size B --json`: the Rust reader (its own timer);
- `mixtape.Reader` in this process, same options: the Rust reader plus the Python side (each batch
  converted to a dict of numpy arrays; the per-batch overhead is the difference of the two);
- `mixtape.torch.ShardDataset` through `DataLoader(num_workers=THREADS, batch_size=None)`, the reader's
  decode threads split between the workers (THREADS // workers each, at least 1);
- the same with `pixel_values=True`: Qwen2-VL's normalised float32 patches (8x the bytes of the RGB
  pixels), the inputs a Qwen2-VL model takes, reported beside the others (not the same work).

Needs the `mixtape` package (built with `maturin develop --release` from python/) and torch.
Usage: python benches/reader/python_reader.py MIXTAPE_BIN STAGE... [--threads 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

import mixtape
import torch
from mixtape.torch import ShardDataset

BATCH = 4


def rust(binary, stages, images, threads):
    out = subprocess.run(
        [binary, "stream", *stages, "--images", images, "--batch-size", str(BATCH),
         "--decode-threads", str(threads), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    report = json.loads(out)
    return report["seconds"], report["tokens"], report["images"]


def counted(batches):
    started = time.perf_counter()
    tokens = images = 0
    for batch in batches:
        tokens += len(batch["input_ids"])
        images += len(batch["image_grid_thw"])
    return time.perf_counter() - started, tokens, images


def python_reader(stages, images, threads):
    return counted(mixtape.Reader(stages, images=images, batch_size=BATCH, decode_threads=threads,
                                  pixel_values=False))


def dataloader(stages, images, threads, pixel_values=False):
    workers = threads
    dataset = ShardDataset(stages, images=images, batch_size=BATCH, pixel_values=pixel_values,
                           decode_threads=max(1, threads // workers))
    return counted(dataset.loader(num_workers=workers))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    runs = {}
    for _ in range(args.reps):
        for images in ("skip", "decoded"):
            for name, measure in (
                ("rust", lambda: rust(args.binary, args.stages, images, args.threads)),
                ("python", lambda: python_reader(args.stages, images, args.threads)),
                ("dataloader", lambda: dataloader(args.stages, images, args.threads)),
            ):
                runs.setdefault(f"{name}/{images}", []).append(measure())
        runs.setdefault("dataloader/pixel_values", []).append(
            dataloader(args.stages, "decoded", args.threads, pixel_values=True))
    result = {}
    for key, measured in runs.items():
        seconds = statistics.median(m[0] for m in measured)
        _, tokens, images = measured[0]
        result[key] = {"seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds),
                       "images_per_s": round(images / seconds, 1)}
    for images in ("skip", "decoded"):
        base = result[f"rust/{images}"]["seconds"]
        for name in ("python", "dataloader"):
            result[f"{name}/{images}"]["speed_vs_rust"] = round(base / result[f"{name}/{images}"]["seconds"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
