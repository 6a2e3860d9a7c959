"""Single-thread PIL cost per image on the corpus, step by step (context for the HF pipeline's numbers).

    python pil_breakdown.py CORPUS_DIR [--limit 500] [--max-pixels 1003520]

Prints one JSON object: mean milliseconds per image for open+decode (+RGB), resize (bicubic, Qwen rule)
and JPEG q90 encode.
"""

import argparse
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from PIL import Image  # noqa: E402

from hf_pipeline import smart_resize  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--max-pixels", type=int, default=1003520)
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "captions.jsonl")) as f:
        paths = [os.path.join(a.corpus, json.loads(line)["image"]) for line in f if line.strip()]
    paths = paths[: a.limit]
    blobs = []
    for p in paths:
        with open(p, "rb") as f:
            blobs.append(f.read())
    dec = res = enc = 0.0
    for b in blobs:
        t0 = time.perf_counter()
        im = Image.open(io.BytesIO(b)).convert("RGB")
        t1 = time.perf_counter()
        h, w = smart_resize(im.height, im.width, a.max_pixels)
        im = im.resize((w, h), Image.BICUBIC)
        t2 = time.perf_counter()
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        t3 = time.perf_counter()
        dec += t1 - t0
        res += t2 - t1
        enc += t3 - t2
    n = len(blobs)
    print(json.dumps({
        "images": n,
        "decode_ms": dec / n * 1e3,
        "resize_ms": res / n * 1e3,
        "encode_ms": enc / n * 1e3,
        "total_ms": (dec + res + enc) / n * 1e3,
    }))


if __name__ == "__main__":
    main()
