"""mixtape.torch: ShardDataset through a DataLoader keeps the reader's order whatever the number of
workers, resumes exactly from ShardLoader's state_dict, and splits ranks as the reader does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mixtape
from mixtape.torch import ShardDataset


def origins(batches) -> list[tuple[str, int, int, int]]:
    return [
        (b["stage"], b["epoch"], int(shard), int(row))
        for b in batches
        for _, shard, row in b["row_origins"].tolist()
    ]


OPTIONS = dict(seed=9, batch_size=2, images="skip")


@pytest.fixture(scope="module")
def reader_order(demo_out: Path) -> list:
    return origins(mixtape.Reader(demo_out, **OPTIONS))


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_the_dataloader_gives_the_readers_order_with_any_number_of_workers(
    demo_out: Path, reader_order: list, workers: int
) -> None:
    loader = ShardDataset(demo_out, **OPTIONS).loader(num_workers=workers)
    batches = list(loader)
    assert isinstance(batches[0]["input_ids"], torch.Tensor)
    assert batches[0]["input_ids"].dtype == torch.int64
    assert origins(batches) == reader_order


@pytest.mark.parametrize("workers", [0, 2])
def test_a_checkpointed_loader_resumes_exactly(demo_out: Path, reader_order: list, workers: int) -> None:
    dataset = ShardDataset(demo_out, **OPTIONS)
    loader = dataset.loader(num_workers=workers)
    first = []
    for batch in loader:
        first.append(batch)
        if len(first) == 37:
            break
    checkpoint = loader.state_dict()
    assert checkpoint["reader"] == first[-1]["state"]
    resumed = ShardDataset(demo_out, **OPTIONS).loader(num_workers=workers)
    resumed.load_state_dict(checkpoint)
    assert origins(first) + origins(resumed) == reader_order


def test_ranks_come_from_the_environment_as_torchrun_sets_them(
    demo_out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        per_rank.append(origins(ShardDataset(demo_out, tensors=False, **OPTIONS)))
        explicit = mixtape.Reader(demo_out, rank=rank, world_size=2, **OPTIONS)
        assert per_rank[-1] == origins(explicit)
    assert not set(per_rank[0]) & set(per_rank[1])
    assert len(per_rank[0]) == len(per_rank[1]) > 0


def test_ranks_come_from_torch_distributed_when_it_is_initialised(
    demo_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        # The process group (rank 0 of 1) wins over the variables.
        got = origins(ShardDataset(demo_out, tensors=False, **OPTIONS))
    finally:
        torch.distributed.destroy_process_group()
    assert got == origins(mixtape.Reader(demo_out, rank=0, world_size=1, **OPTIONS))


def test_options_the_dataset_sets_itself_are_refused(demo_out: Path) -> None:
    with pytest.raises(TypeError, match="worker"):
        ShardDataset(demo_out, worker=1)
    with pytest.raises(TypeError, match="batch_size on the ShardDataset"):
        ShardDataset(demo_out).loader(batch_size=4)


def assert_same_batch(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key == "images":
            assert len(got[key]) == len(value)
            for a, b in zip(got[key], value):
                assert type(a) is type(b)
                assert (a == b) if isinstance(b, bytes) else torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        elif isinstance(value, torch.Tensor):
            assert value.dtype == got[key].dtype and torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize(
    "images", [dict(images="skip"), dict(images="raw"), dict(pixel_values=False), dict()],
    ids=["skip", "raw", "rgb", "pixel_values"],
)
def test_workers_hand_over_the_batches_a_reader_in_this_process_gives(demo_out: Path, images: dict) -> None:
    # The workers send what they read (stored images, int32 tokens) and this process decodes the
    # images and computes the inputs: the batches must not depend on where that happens.
    options = dict(seed=3, batch_size=2, **images)
    alone = ShardDataset(demo_out, **options).loader(num_workers=0)
    workers = ShardDataset(demo_out, **options).loader(num_workers=2)
    compared = 0
    for got, want in zip(workers, alone):
        assert_same_batch(got, want)
        compared += 1
        if compared == 40:
            break
    assert compared == 40


def test_a_wire_batch_that_does_not_decode_names_its_row_and_image(demo_out: Path) -> None:
    wire = next(mixtape.Reader(demo_out, seed=3, batch_size=2, images="raw", wire=True))
    assert isinstance(wire, bytes)
    # The first stored JPEG's start-of-image marker, broken.
    start = wire.index(b"\xff\xd8\xff")
    broken = wire[:start] + b"\x00\x00" + wire[start + 2:]
    decoder = mixtape._native.WireDecoder(images="decoded", threads=2)
    with pytest.raises(mixtape.ReaderError, match=r"stage \w+, shard \d+, row \d+, image 0: "):
        decoder.submit(broken).wait()
    with pytest.raises(mixtape.ReaderError, match="not a mixtape wire batch"):
        decoder.submit(b"junk").wait()
    with pytest.raises(mixtape.ReaderError, match="ends early"):
        decoder.submit(wire[: len(wire) // 2]).wait()
