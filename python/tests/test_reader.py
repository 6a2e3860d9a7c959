"""mixtape.Reader is the Rust reader: same order, same state, same tally, same integrity errors."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import mixtape


def stream_order(mixtape_bin: Path, out: Path, *args: str) -> list[tuple[str, int, int, int]]:
    """`mixtape stream --order` as (stage, epoch, shard, row) per row."""
    text = subprocess.run(
        [str(mixtape_bin), "stream", str(out), "--order", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in text.splitlines():
        stage, epoch, shard, row = line.split()
        rows.append((stage, int(epoch), int(shard), int(row)))
    return rows


def python_order(batches: list[dict]) -> list[tuple[str, int, int, int]]:
    return [
        (b["stage"], b["epoch"], int(shard), int(row))
        for b in batches
        for _, shard, row in b["row_origins"]
    ]


def test_the_order_is_the_cli_readers_order(mixtape_bin: Path, demo_out: Path) -> None:
    batches = list(mixtape.Reader(demo_out, seed=11, batch_size=3, rank=1, world_size=2, images="skip"))
    cli = stream_order(
        mixtape_bin, demo_out, "--seed", "11", "--batch-size", "3", "--rank", "1", "--world-size", "2",
        "--images", "skip",
    )
    assert python_order(batches) == cli
    assert len(cli) > 100


def test_a_state_saved_in_python_resumes_in_rust_and_back(
    mixtape_bin: Path, demo_out: Path, tmp_path: Path
) -> None:
    options = dict(seed=5, batch_size=2, images="skip")
    whole = python_order(list(mixtape.Reader(demo_out, **options)))
    reader = mixtape.Reader(demo_out, **options)
    first = [next(reader) for _ in range(40)]
    assert first[-1]["state"] == reader.state()
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(reader.state()))
    # Rust continues where Python stopped...
    rest = stream_order(
        mixtape_bin, demo_out, "--seed", "5", "--batch-size", "2", "--images", "skip",
        "--resume", str(state_file), "--steps", "30", "--save-state", str(tmp_path / "rust.json"),
    )
    assert python_order(first) + rest == whole[: len(python_order(first)) + len(rest)]
    # ...and Python continues where Rust stopped.
    rust_state = json.loads((tmp_path / "rust.json").read_text())
    tail = python_order(list(mixtape.Reader(demo_out, state=rust_state, **options)))
    assert python_order(first) + rest + tail == whole


def test_a_state_from_another_order_is_refused(demo_out: Path) -> None:
    reader = mixtape.Reader(demo_out, seed=1, images="skip")
    next(reader)
    with pytest.raises(mixtape.ReaderError, match="cannot resume"):
        mixtape.Reader(demo_out, seed=2, images="skip", state=reader.state())


def test_batches_hold_qwen2vl_inputs_consistent_with_the_rows(demo_out: Path) -> None:
    reader = mixtape.Reader(demo_out, seed=2, batch_size=2, images="decoded")
    for batch in [next(reader) for _ in range(3)]:
        ids, labels, mask = batch["input_ids"], batch["labels"], batch["loss_mask"]
        tokens = len(ids)
        assert ids.dtype == np.int64 and labels.shape == (tokens,) and mask.shape == (tokens,)
        cu = batch["cu_seqlens"]
        assert cu[0] == 0 and cu[-1] == tokens and np.all(np.diff(cu) > 0)
        assert len(batch["sample_sources"]) == len(cu) - 1
        starts = cu[:-1]
        assert np.all(labels[starts] == -100), "a sample's first token carries a label"
        inside = np.ones(tokens, bool)
        inside[starts] = False
        trained = inside & (mask == 1)
        assert np.array_equal(labels[trained], ids[trained])
        assert np.all(labels[~trained] == -100)
        assert batch["mrope_position_ids"].shape == (3, tokens)
        # Text-only samples have M-RoPE positions equal to the 1-D ones on all three rows.
        grid = batch["image_grid_thw"]
        patches = int((grid[:, 1] * grid[:, 2]).sum())
        assert batch["pixel_values"].shape == (patches, 1176)
        assert batch["pixel_values"].dtype == np.float32
        assert batch["row_offsets"][-1] == tokens


def test_decoded_images_without_pixel_values_are_rgb_arrays_at_the_grids_size(demo_out: Path) -> None:
    reader = mixtape.Reader(demo_out, seed=2, batch_size=2, images="decoded", pixel_values=False)
    batch = next(reader)
    assert "pixel_values" not in batch
    assert len(batch["images"]) == len(batch["image_grid_thw"]) > 0
    for image, (_, grid_h, grid_w) in zip(batch["images"], batch["image_grid_thw"]):
        assert image.dtype == np.uint8 and image.shape == (grid_h * 14, grid_w * 14, 3)
        assert not image.flags.owndata


def test_arrays_are_handed_over_without_a_copy(demo_out: Path) -> None:
    batch = next(mixtape.Reader(demo_out, images="skip"))
    for name in ("input_ids", "labels", "position_ids", "cu_seqlens"):
        array = batch[name]
        # numpy owns nothing: the buffer is the Rust vector's, kept alive by its base object.
        assert not array.flags.owndata and array.base is not None, name


def test_the_tally_counts_what_was_yielded(demo_out: Path) -> None:
    reader = mixtape.Reader(demo_out, images="skip", batch_size=4)
    batches = list(reader)
    tally = reader.tally()
    assert tally["batches"] == len(batches)
    assert tally["total"]["samples"] == sum(len(b["sample_sources"]) for b in batches)
    assert tally["total"]["tokens"] == sum(len(b["input_ids"]) for b in batches)
    assert sum(c["samples"] for c in tally["by_category"].values()) == tally["total"]["samples"]


def test_reading_releases_the_gil(demo_out: Path) -> None:
    # Two readers on two threads finish with the same batches as one after the other; while one
    # reads (GIL released), the other thread's Python code keeps running.
    results: dict[int, list] = {}

    def read(index: int) -> None:
        reader = mixtape.Reader(demo_out, seed=index, images="decoded", epochs=1)
        # One batch at a time: a decoded batch's pixel_values are tens of megabytes.
        results[index] = [row for batch in reader for row in python_order([batch])]

    ticks = 0
    threads = [threading.Thread(target=read, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        ticks += 1
        threads[0].join(0.001)
    for t in threads:
        t.join()
    assert results[1] == python_order(list(mixtape.Reader(demo_out, seed=1, images="skip")))
    assert ticks > 10


def test_a_changed_byte_raises_corrupt_shard_error_naming_shard_row_group_and_column(
    demo_copy: Path,
) -> None:
    shard = sorted((demo_copy / "warmup").glob("shard-*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    with pytest.raises(mixtape.CorruptShardError) as caught:
        for _ in mixtape.Reader(demo_copy / "warmup", images="raw", shuffle=False):
            pass
    message = str(caught.value)
    assert shard.name in message and "row group" in message and "column" in message, message
    assert isinstance(caught.value, mixtape.ReaderError)


def test_bad_options_say_what_to_change(demo_out: Path) -> None:
    with pytest.raises(mixtape.ReaderError, match="rank 2 is not below world_size 2"):
        mixtape.Reader(demo_out, rank=2, world_size=2)
    with pytest.raises(ValueError, match="expected \"decoded\""):
        mixtape.Reader(demo_out, images="pixels")
    with pytest.raises(mixtape.ReaderError, match="holds no built stage|is not a shard set|does not exist"):
        mixtape.Reader(demo_out / "nope")


def test_check_plan_and_audit_are_the_clis_documents(mixtape_bin: Path, demo_out: Path, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    recipe = repo / "recipes" / "demo.yaml"
    checked = mixtape.check(recipe)
    assert checked["ok"] and checked["errors"] == 0 and len(checked["fingerprint"]) == 64
    cli_plan = json.loads(
        subprocess.run([str(mixtape_bin), "plan", str(recipe), "--json"], check=True, capture_output=True, text=True).stdout
    )
    assert mixtape.plan(recipe) == cli_plan
    report = mixtape.audit(demo_out, recipe=recipe)
    cli_audit = json.loads(
        subprocess.run(
            [str(mixtape_bin), "audit", str(demo_out), "--recipe", str(recipe), "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    assert report == cli_audit and report["passed"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("seq_len:", "seq_lenn:", 1))
    checked = mixtape.check(bad)
    assert not checked["ok"]
    assert any(d["position"] and d["position"].startswith(str(bad)) for d in checked["diagnostics"])
    with pytest.raises(mixtape.RecipeError, match="bad.yaml"):
        mixtape.plan(bad)
