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
