"""The pipeline users write today, as the baseline of `bash benches/e2e/run.sh`.

HF `datasets` loads the caption JSONL, `map(num_proc=2)` opens each image with PIL, resizes it by the
Qwen2.5-VL `smart_resize` rule (bicubic), re-encodes it as JPEG q90 and tokenizes the caption with the
image's pad tokens using the HF `tokenizers` package and the same tokenizer.json as the mixtape recipe;
pyarrow then writes the result as zstd Parquet. No packing: users pack later, in the training loader.

    python hf_pipeline.py CORPUS_DIR TOKENIZER_JSON OUT_DIR [--num-proc 2] [--max-pixels 1003520]

Prints one JSON line with phase times, the sample and token counts and the output size.
"""

import argparse
import io
import json
import math
import os
import time

T_START = time.perf_counter()

import datasets  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

T_IMPORTED = time.perf_counter()

PATCH, MERGE = 14, 2
FACTOR = PATCH * MERGE
MIN_PIXELS = 3136
MAX_ASPECT = 200


def smart_resize(height, width, max_pixels, min_pixels=MIN_PIXELS, factor=FACTOR):
    """Qwen2.5-VL's rule (transformers image_processing_qwen2_vl.py); Python's round is half-to-even."""
    if height < factor or width < factor:
        raise ValueError(f"image {height}x{width} below {factor}")
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise ValueError(f"aspect ratio over {MAX_ASPECT}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


_TOKENIZER = None


def tokenizer(path):
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = Tokenizer.from_file(path)
    return _TOKENIZER


def make_process(corpus, tokenizer_path, max_pixels):
    def process(example):
        with Image.open(os.path.join(corpus, example["image"])) as im:
            im = im.convert("RGB")
            h, w = smart_resize(im.height, im.width, max_pixels)
            im = im.resize((w, h), Image.BICUBIC)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=90)
        n = h * w // (FACTOR * FACTOR)
        # What the Qwen2-VL processor does: expand the image pads in the text, then tokenize.
        prefix = "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>"
        tok = tokenizer(tokenizer_path)
        head = tok.encode(prefix, add_special_tokens=False).ids
        body = tok.encode(example["caption"], add_special_tokens=False).ids
        ids = head + body + [tok.token_to_id("<|endoftext|>")]
        return {
            "image_bytes": buf.getvalue(),
            "height": h,
            "width": w,
            "input_ids": ids,
            "loss_mask": [0] * len(head) + [1] * (len(body) + 1),
        }

    return process


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--max-pixels", type=int, default=1003520)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    t0 = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=os.path.join(a.corpus, "captions.jsonl"), split="train")
    t1 = time.perf_counter()
    ds = ds.map(
        make_process(a.corpus, os.path.abspath(a.tokenizer), a.max_pixels),
        num_proc=a.num_proc,
        remove_columns=ds.column_names,
        desc="process",
    )
    t2 = time.perf_counter()
    path = os.path.join(a.out, "data.parquet")
    pq.write_table(ds.data.table, path, compression="zstd")
    t3 = time.perf_counter()
    tokens = sum(len(x) for x in ds["input_ids"])
    print(
        json.dumps(
            {
                "samples": len(ds),
                "tokens": tokens,
                "output_bytes": os.path.getsize(path),
                "import_s": T_IMPORTED - T_START,
                "load_s": t1 - t0,
                "map_s": t2 - t1,
                "write_s": t3 - t2,
            }
        )
    )


if __name__ == "__main__":
    main()
