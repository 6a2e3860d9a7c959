#!/usr/bin/env python3
"""Reader comparison on the same shards, in one run: `mixtape stream` against the Python floors.

- Token columns: pyarrow reading every shard's input_ids, loss_mask, position_ids and seq_lens into
  numpy (no shuffle, no partition, no prefetch, no images): the floor a Python user gets. Compared with
  `mixtape stream --images skip` (shuffled, partitioned, prefetched), in tokens/s.
- Images: PIL (libjpeg-turbo) decoding the same image bytes to RGB on THREADS processes, the bare-decode
  floor; compared with `mixtape stream --images decoded`, in images/s and megapixels/s.
- MosaicML Streaming (`mosaicml-streaming`): the same packed rows (input_ids, loss_mask, position_ids,
  seq_lens, and each row's image bytes with height and width) are first written as MDS with
  `streaming.MDSWriter` to a temp dir (not timed); then a shuffled `streaming.StreamingDataset(local=...)`
  is iterated through a `torch.utils.data.DataLoader(num_workers=THREADS, batch_size=4)`, each sample
  decoding its images to RGB numpy arrays with PIL in the workers (as `--images decoded` does). Timed from
  creating the dataset to the last batch, like `mixtape stream`'s own timer (which starts before
  `Reader::try_new`), and compared with `mixtape stream --images decoded` in tokens/s and images/s.
  Needs `streaming` and `torch`; without them the script says so on stderr and reports the rest.
- The `mixtape` Python package, when it imports: `mixtape.torch.ShardDataset` through its 2-worker
  `ShardLoader` (`--threads` workers, RGB images as `--images decoded` gives them, `pixel_values=False`),
  compared with `mixtape stream --images decoded` and with MosaicML Streaming, in tokens/s and images/s.

Usage: python benches/reader/compare.py MIXTAPE_BIN STAGE_DIR... [--threads 2] [--reps 3]
Prints one JSON object: medians of each measurement and the ratios.
"""

import argparse
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

# The quiet-machine check of the end-to-end bench (benches/e2e/measure.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from measure import busy_cores  # noqa: E402

TOKEN_COLUMNS = ["input_ids", "loss_mask", "position_ids", "seq_lens"]


def shard_paths(stages):
    out = []
    for stage in stages:
        # A stage's manifest is BUILD/_mixtape/STAGE/manifest.json (FORMAT.md, layout).
        build, name = os.path.split(os.path.normpath(stage))
        with open(os.path.join(build, "_mixtape", name, "manifest.json")) as f:
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


MDS_COLUMNS = {
    "input_ids": "ndarray:int32",
    "loss_mask": "ndarray:uint8",
    "position_ids": "ndarray:int32",
    "seq_lens": "ndarray:int32",
    # A row's images, concatenated (MDS has no list-of-bytes type; no pickling): image i is
    # image_bytes[image_index[i, 0]:image_index[i + 1, 0]], of height image_index[i + 1, 1] and width
    # image_index[i + 1, 2]. Row 0 is (0, 0, 0), so the array is never empty (MDS refuses empty ones).
    "image_bytes": "bytes",
    "image_index": "ndarray:int64",
}


def importable(what, *modules):
    """Whether every module imports; when one does not, says on stderr that `what` is skipped."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as err:
        print(f"{what} not compared: {err}", file=sys.stderr)
        return False
    return True


def write_mds(paths, out, shard_bytes=None):
    """The packed rows of every shard, as MDS samples in `out` (one sample per packed row), in
    shards of about `shard_bytes` (Mosaic's default size limit when None)."""
    from streaming import MDSWriter

    columns = TOKEN_COLUMNS + ["images"]
    rows = 0
    limit = {} if shard_bytes is None else {"size_limit": shard_bytes}
    with MDSWriter(out=out, columns=MDS_COLUMNS, compression=None, **limit) as writer:
        for path in paths:
            table = pq.read_table(path, columns=columns)
            lists = {c: table.column(c).to_pylist() for c in TOKEN_COLUMNS}
            for i, images in enumerate(table.column("images").to_pylist()):
                data = [img["bytes"] for img in images]
                index = np.zeros((len(images) + 1, 3), dtype=np.int64)
                index[1:, 0] = np.cumsum([len(b) for b in data])
                index[1:, 1] = [img["height"] for img in images]
                index[1:, 2] = [img["width"] for img in images]
                writer.write({
                    "input_ids": np.array(lists["input_ids"][i], dtype=np.int32),
                    "loss_mask": np.array(lists["loss_mask"][i], dtype=np.uint8),
                    "position_ids": np.array(lists["position_ids"][i], dtype=np.int32),
                    "seq_lens": np.array(lists["seq_lens"][i], dtype=np.int32),
                    "image_bytes": b"".join(data),
                    "image_index": index,
                })
                rows += 1
    return rows


def _decoded_dataset_class():
    from streaming import StreamingDataset

    class DecodedDataset(StreamingDataset):
        """Each sample with its images decoded to RGB uint8 HWC numpy arrays (PIL, in the worker)."""

        def __getitem__(self, index):
            from PIL import Image

            sample = super().__getitem__(index)
            data, spans = sample["image_bytes"], sample["image_index"]
            images = []
            for i in range(len(spans) - 1):
                img = Image.open(io.BytesIO(data[spans[i, 0]:spans[i + 1, 0]])).convert("RGB")
                pixels = np.asarray(img)
                assert pixels.shape[:2] == (spans[i + 1, 1], spans[i + 1, 2])
                images.append(pixels)
            return {
                "input_ids": sample["input_ids"],
                "loss_mask": sample["loss_mask"],
                "position_ids": sample["position_ids"],
                "seq_lens": sample["seq_lens"],
                "image_index": sample["image_index"],
                "images": images,
            }

    return DecodedDataset


def collate_rows(samples):
    """A batch as the list of its rows (rows differ in length, so nothing is stacked); the numpy arrays
    are pickled to the main process. Returning torch tensors instead (moved through shared memory) was
    not faster on the 2-core test machine (13.2 s vs 14.7 s median of 4, under load), so this is kept."""
    return samples


def mosaic_read(local, workers, rep):
    """One pass over the MDS copy through a DataLoader; (tokens, images) seen."""
    import torch.utils.data
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    dataset = _decoded_dataset_class()(local=local, shuffle=True, shuffle_seed=rep, batch_size=4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate_rows)
    tokens = images = 0
    for batch in loader:
        for row in batch:
            tokens += len(row["input_ids"])
            images += len(row["images"])
    del loader, dataset
    return tokens, images


def python_read(stages, workers):
    """One pass through `ShardDataset`'s loader with `workers` DataLoader workers; (tokens, images)."""
    from mixtape.torch import ShardDataset

    dataset = ShardDataset(stages, batch_size=4, pixel_values=False, decode_threads=workers)
    tokens = images = 0
    for batch in dataset.loader(num_workers=workers):
        tokens += len(batch["input_ids"])
        images += len(batch["images"])
    return tokens, images


def settle(limit=5.0):
    """Waits (up to `limit` s) until under 0.25 of a core is busy, so that no measurement starts while
    the previous one's processes are still exiting (a DataLoader's workers, the PIL pool's work) and the
    tens-of-milliseconds token passes measure themselves, not that."""
    start = time.time()
    while busy_cores(0.2) > 0.25 and time.time() - start < limit:
        pass


def stream(binary, stages, images, threads):
    settle()
    cmd = [binary, "stream", *stages, "--json", "--images", images, "--decode-threads", str(threads), "--batch-size", "4"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def timed(fn):
    settle()
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
    mixtape_decoded = None
    mosaic = importable("MosaicML Streaming", "streaming", "torch")
    mds_dir = None
    if mosaic:
        mds_dir = tempfile.mkdtemp(prefix="mixtape-compare-mds-")
        seconds, mds_rows = timed(lambda: write_mds(paths, os.path.join(mds_dir, "mds")))
        print(f"wrote {mds_rows} rows as MDS in {seconds:.1f} s (not timed)", file=sys.stderr)
        runs["mosaic_s"] = []
        mosaic_counts = None
    python = importable("the mixtape Python package", "mixtape.torch")
    if python:
        runs["python_s"] = []
        python_counts = None
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
            mixtape_decoded = (report["tokens"], report["images"])
            if mosaic:
                seconds, mosaic_counts = timed(
                    lambda: mosaic_read(os.path.join(mds_dir, "mds"), args.threads, len(runs["mosaic_s"]))
                )
                runs["mosaic_s"].append(seconds)
            if python:
                seconds, python_counts = timed(lambda: python_read(args.stages, args.threads))
                runs["python_s"].append(seconds)
    if mds_dir is not None:
        shutil.rmtree(mds_dir, ignore_errors=True)
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
    if mosaic:
        # Each reader's own counts: mixtape drops the last partial batch of an epoch, the DataLoader does not.
        mix_tok_s = mixtape_decoded[0] / med["mixtape_images_s"]
        mix_img_s = mixtape_decoded[1] / med["mixtape_images_s"]
        mos_tok_s = mosaic_counts[0] / med["mosaic_s"]
        mos_img_s = mosaic_counts[1] / med["mosaic_s"]
        result["mosaic"] = {
            "workers": args.threads,
            "batch_size": 4,
            "tokens": mosaic_counts[0],
            "images": mosaic_counts[1],
            "tokens_per_s": round(mos_tok_s),
            "images_per_s": round(mos_img_s, 1),
            "mixtape_decoded_tokens": mixtape_decoded[0],
            "mixtape_decoded_images": mixtape_decoded[1],
            "mixtape_decoded_tokens_per_s": round(mix_tok_s),
            "mixtape_decoded_images_per_s": round(mix_img_s, 1),
        }
        result["ratios"]["mixtape_over_mosaic_tokens_per_s"] = round(mix_tok_s / mos_tok_s, 3)
        result["ratios"]["mixtape_over_mosaic_images_per_s"] = round(mix_img_s / mos_img_s, 3)
    else:
        result["mosaic"] = None
    if python:
        py_tok_s = python_counts[0] / med["python_s"]
        py_img_s = python_counts[1] / med["python_s"]
        result["python"] = {
            "workers": args.threads,
            "batch_size": 4,
            "tokens": python_counts[0],
            "images": python_counts[1],
            "tokens_per_s": round(py_tok_s),
            "images_per_s": round(py_img_s, 1),
        }
        ratios = result["ratios"]
        ratios["python_over_mixtape_images_per_s"] = round(py_img_s / (mixtape_decoded[1] / med["mixtape_images_s"]), 3)
        if mosaic:
            ratios["python_over_mosaic_tokens_per_s"] = round(py_tok_s / mos_tok_s, 3)
            ratios["python_over_mosaic_images_per_s"] = round(py_img_s / mos_img_s, 3)
    else:
        result["python"] = None
    result["all_seconds"] = {k: [round(x, 4) for x in v] for k, v in runs.items()}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
