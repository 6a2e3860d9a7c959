"""The batches' Qwen2-VL inputs against transformers' own code, on a tiny randomly initialised
Qwen2.5-VL (no weights downloaded): the image processor's grids and pixel values, get_rope_index's
M-RoPE positions, and a packed forward equal to the per-sample forwards."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

import mixtape
from mixtape.torch import qwen2vl_model_inputs


def special_tokens(out: Path) -> dict[str, int]:
    """The build's tokenizer's Qwen2-VL special tokens (build.json records the tokenizer)."""
    record = json.loads((out / "_mixtape" / "build.json").read_text())
    tokenizer = json.loads(Path(record["tokenizer"]["path"]).read_text())
    return {t["content"]: t["id"] for t in tokenizer["added_tokens"]}


@pytest.fixture(scope="module")
def tokens(demo_out: Path) -> dict[str, int]:
    return special_tokens(demo_out)


@pytest.fixture(scope="module")
def model(tokens: dict[str, int]) -> Qwen2_5_VLForConditionalGeneration:
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=max(tokens.values()) + 1,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
            bos_token_id=None,
            eos_token_id=None,
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
            fullatt_block_indexes=[1],
        ),
        image_token_id=tokens["<|image_pad|>"],
        video_token_id=tokens["<|video_pad|>"],
        vision_start_token_id=tokens["<|vision_start|>"],
        vision_end_token_id=tokens["<|vision_end|>"],
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def samples(batch: dict, image_pad: int) -> Iterator[tuple[int, int, list[int], int]]:
    """(start, end, its images' indices, its first patch) of each packed sample of the batch."""
    ids, cu, grid = batch["input_ids"], batch["cu_seqlens"], batch["image_grid_thw"]
    # An image is one run of <|image_pad|>; runs are in image order.
    pads = np.flatnonzero(ids == image_pad)
    run_starts = pads[np.r_[True, np.diff(pads) > 1]] if len(pads) else pads
    assert len(run_starts) == len(grid)
    patches = np.r_[0, np.cumsum(grid[:, 1] * grid[:, 2])]
    for start, end in zip(cu[:-1], cu[1:]):
        images = [i for i, s in enumerate(run_starts) if start <= s < end]
        yield int(start), int(end), images, int(patches[images[0]]) if images else 0


def batches_with_images(count: int, **options) -> list[dict]:
    found = []
    for batch in mixtape.Reader(options.pop("out"), **options):
        if len(batch["image_grid_thw"]) and len(batch["cu_seqlens"]) > 2:
            found.append(batch)
            if len(found) == count:
                break
    assert len(found) == count
    return found


def test_grids_and_pixel_values_are_the_hf_processors_on_the_stored_images(demo_out: Path) -> None:
    # The stored images are at the training size already: the processor must keep it.
    processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 100_000)
    raw = mixtape.Reader(demo_out, seed=4, batch_size=2, images="raw")
    decoded = mixtape.Reader(demo_out, seed=4, batch_size=2, images="decoded")
    compared = 0
    worst = 0.0
    for _ in range(6):
        stored, ours = next(raw), next(decoded)
        assert np.array_equal(stored["input_ids"], ours["input_ids"])
        first = 0
        for index, data in enumerate(stored["images"]):
            image = Image.open(io.BytesIO(data)).convert("RGB")
            reference = processor(images=[image], return_tensors="np")
            grid = ours["image_grid_thw"][index]
            assert reference["image_grid_thw"][0].tolist() == grid.tolist()
            patches = int(grid[1] * grid[2])
            mine = ours["pixel_values"][first : first + patches]
            theirs = reference["pixel_values"]
            assert mine.shape == theirs.shape
            difference = np.abs(mine - theirs)
            # JPEG decoders may differ by a level or two (IDCT, chroma upsampling); one level is
            # 1 / 255 / std, about 0.015 after normalisation.
            assert difference.mean() < 0.01, f"image {index}: mean difference {difference.mean()}"
            worst = max(worst, float(difference.max()))
            first += patches
            compared += 1
        assert first == len(ours["pixel_values"])
    assert compared >= 10
    print(f"{compared} images, largest difference {worst:.4f}")
    assert worst < 0.2, worst


def test_mrope_positions_are_get_rope_indexs(demo_out: Path, model, tokens: dict[str, int]) -> None:
    image_pad = tokens["<|image_pad|>"]
    checked = 0
    for batch in batches_with_images(4, out=demo_out, seed=8, batch_size=2, images="skip"):
        ids = torch.from_numpy(batch["input_ids"])
        grid = torch.from_numpy(batch["image_grid_thw"])
        for start, end, images, _ in samples(batch, image_pad):
            sample = ids[start:end][None]
            expected, _ = model.model.get_rope_index(
                sample,
                mm_token_type_ids=(sample == image_pad).int(),
                image_grid_thw=grid[images] if images else None,
            )
            ours = torch.from_numpy(batch["mrope_position_ids"][:, start:end])
            assert torch.equal(expected[:, 0], ours), f"sample at {start}"
            checked += 1
    assert checked >= 8


@torch.no_grad()
def test_a_packed_forward_equals_the_per_sample_forwards(demo_out: Path, model, tokens) -> None:
    image_pad = tokens["<|image_pad|>"]
    (batch,) = batches_with_images(1, out=demo_out, seed=1, batch_size=1, images="decoded")
    inputs = qwen2vl_model_inputs(mixtape.torch.to_tensors(batch))
    packed = model(**inputs, use_cache=False).logits[0]
    grid = torch.from_numpy(batch["image_grid_thw"])
    pixels = torch.from_numpy(batch["pixel_values"])
    with_images = 0
    for start, end, images, first_patch in samples(batch, image_pad):
        patches = int((grid[images, 1] * grid[images, 2]).sum()) if images else 0
        alone = model(
            input_ids=torch.from_numpy(batch["input_ids"][start:end])[None],
            position_ids=torch.from_numpy(batch["mrope_position_ids"][:, start:end])[:, None],
            pixel_values=pixels[first_patch : first_patch + patches] if images else None,
            image_grid_thw=grid[images] if images else None,
            use_cache=False,
        ).logits[0]
        difference = (packed[start:end] - alone).abs().max().item()
        assert difference < 1e-4, f"sample at {start}: {difference}"
        print(f"sample {start}..{end} ({len(images)} images): max |packed - alone| {difference:.2e}")
        with_images += bool(images)
    assert with_images >= 1 and len(batch["cu_seqlens"]) > 2
    # The loss over the packed row is the per-token loss of the labels (no cross-sample target).
    assert torch.isfinite(model(**inputs, use_cache=False).loss)
