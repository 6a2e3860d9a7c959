#!/usr/bin/env python3
"""The Python package's reader against the Rust reader, same shards, same run (issue 17's goal:
>= 0.9x the Rust reader's tokens/s and images/s through a 2-worker DataLoader).

Measured, each REPS times, interleaved, medians:
- `mixtape stream STAGE... --images MODE --batch-size B --json`: the Rust reader (its own timer);
- `mixtape.Reader` in this process, same options: the Rust reader plus the Python side (each batch
  converted to a dict of numpy arrays; the per-batch overhead is the difference of the two);
- `mixtape.torch.ShardDataset` through its `ShardLoader` (`DataLoader(num_workers=THREADS,
  batch_size=None)`): the workers read the token columns and the stored image bytes, and the
  training process decodes the images on THREADS threads, one batch ahead;
- with `--pixel-values`, the same with `pixel_values=True`: Qwen2-VL's normalised float32 patches (8x the bytes of the RGB
  pixels), the inputs a Qwen2-VL model takes, reported beside the others (not the same work).

Needs the `mixtape` package (built with `maturin develop --release` from python/) and torch.
Usage: python benches/reader/python_reader.py MIXTAPE_BIN STAGE... [--threads 2] [--reps 3]
       [--pixel-values]
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
    return (report["seconds"], report["tokens"], report["images"], report["batches"],
            report["first_batch_seconds"])


def counted(batches):
    started = time.perf_counter()
    tokens = images = count = 0
    first = None
    for batch in batches:
        tokens += len(batch["input_ids"])
        images += len(batch["image_grid_thw"])
        count += 1
        if first is None:
            first = time.perf_counter() - started
    return time.perf_counter() - started, tokens, images, count, first


def python_reader(stages, images, threads):
    return counted(mixtape.Reader(stages, images=images, batch_size=BATCH, decode_threads=threads,
                                  pixel_values=False))


def dataloader(stages, images, threads, pixel_values=False):
    dataset = ShardDataset(stages, images=images, batch_size=BATCH, pixel_values=pixel_values,
                           decode_threads=threads)
    return counted(dataset.loader(num_workers=threads))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("stages", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pixel-values", action="store_true",
                        help="also time the DataLoader with pixel_values=True (8x the pixels' bytes)")
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
        if args.pixel_values:
            runs.setdefault("dataloader/pixel_values", []).append(
                dataloader(args.stages, "decoded", args.threads, pixel_values=True))
    result = {}
    for key, measured in runs.items():
        seconds = statistics.median(m[0] for m in measured)
        # After the first batch: start-up (worker processes, opening the shards) left out.
        after_first = statistics.median(m[0] - m[4] for m in measured)
        _, tokens, images, batches, _ = measured[0]
        result[key] = {"seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds),
                       "images_per_s": round(images / seconds, 1), "batches": batches,
                       "first_batch_s": round(statistics.median(m[4] for m in measured), 3),
                       "after_first_s": round(after_first, 3)}
    for images in ("skip", "decoded"):
        base = result[f"rust/{images}"]
        for name in ("python", "dataloader"):
            entry = result[f"{name}/{images}"]
            entry["speed_vs_rust"] = round(base["seconds"] / entry["seconds"], 3)
            entry["after_first_speed_vs_rust"] = round(base["after_first_s"] / entry["after_first_s"], 3)
            # What each batch costs beyond the Rust reader's own time per batch.
            entry["overhead_ms_per_batch"] = round(
                1000 * (entry["seconds"] - base["seconds"]) / entry["batches"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
