"""mixtape shard sets as a PyTorch ``IterableDataset``.

``ShardDataset`` yields the reader's batches (already batched: use ``DataLoader(batch_size=None)``)
with numpy arrays turned into tensors without a copy. Rank and world size come from
``torch.distributed`` when it is initialised, else from ``RANK`` / ``WORLD_SIZE``. With
``num_workers=N``, worker ``w`` reads the rank's batches ``w, w + N, ...``; the DataLoader takes one
from each worker in turn, so the order is the one a single reader gives, whatever ``N``.

Every batch carries ``state``: the reader state after it. ``ShardLoader`` (``dataset.loader()``)
remembers the last batch's, so its ``state_dict()`` / ``load_state_dict()`` checkpoint and resume
exactly, with workers or without::

    dataset = ShardDataset("out/", batch_size=4, images="decoded")
    loader = dataset.loader()    # no worker processes needed: the reader decodes on its own threads
    for batch in loader:
        ...                      # batch["input_ids"], batch["pixel_values"], ...
        checkpoint = {"data": loader.state_dict()}
    # later
    loader.load_state_dict(checkpoint["data"])
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.utils.data

from . import PathLike, Reader, _native

__all__ = ["ShardDataset", "ShardLoader", "qwen2vl_model_inputs", "to_tensors"]


def to_tensors(batch: Dict[str, Any], min_bytes: int = 0) -> Dict[str, Any]:
    """The batch with its numpy arrays of at least ``min_bytes`` bytes as tensors sharing their
    memory (``torch.from_numpy``)."""
    return {
        k: torch.from_numpy(v) if isinstance(v, np.ndarray) and v.nbytes >= min_bytes else v
        for k, v in batch.items()
    }


# Arrays a DataLoader worker hands over as tensors (one shared-memory segment each); smaller ones
# are pickled by value, which costs less than a segment (measured on the demo: a token-only epoch
# through 2 workers 1.42 s with every array a tensor, 0.38 s with none; pixel_values, tens of
# megabytes per batch, 37 s as tensors, 107 s pickled).
_SHARED_MIN_BYTES = 1 << 20


def _rank_and_world(rank: Optional[int], world_size: Optional[int]) -> Tuple[Optional[int], Optional[int]]:
    if rank is not None and world_size is not None:
        return rank, world_size
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return (
            dist.get_rank() if rank is None else rank,
            dist.get_world_size() if world_size is None else world_size,
        )
    # None: the reader reads RANK and WORLD_SIZE, as torchrun sets them.
    return rank, world_size


class ShardDataset(torch.utils.data.IterableDataset):
    """A mixtape shard set (build output, stage folder, or a list of stage folders) as batches.

    ``options`` are ``mixtape.Reader``'s (``seed``, ``batch_size``, ``images``, ``epochs``...);
    ``tensors=False`` yields numpy arrays.
    """

    def __init__(
        self,
        stages: Union[PathLike, Sequence[PathLike]],
        *,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        tensors: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        for reserved in ("worker", "workers", "state", "wire"):
            if reserved in options:
                raise TypeError(
                    f"ShardDataset sets {reserved!r} itself (from the DataLoader's workers and "
                    "load_state_dict)"
                )
        self.stages = stages
        self.rank = rank
        self.world_size = world_size
        self.tensors = tensors
        self.options = options
        self._resume: Optional[Dict[str, Any]] = None
        self._last: Optional[Dict[str, Any]] = None
        # Set by ShardLoader, which finishes the wire batches its workers yield.
        self._wire = False

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world_size = _rank_and_world(self.rank, self.world_size)
        options = dict(self.options)
        wire = info is not None and self._wire
        if wire:
            # Stored images cross to the training process, which decodes them (WireDecoder).
            if options.get("images", "decoded") == "decoded":
                options["images"] = "raw"
            options["wire"] = True
        reader = Reader(
            self.stages,
            rank=rank,
            world_size=world_size,
            worker=worker,
            workers=workers,
            state=self._resume,
            **options,
        )
        for batch in reader:
            if wire:
                yield batch
                continue
            self._last = batch["state"]
            if info is None:
                yield to_tensors(batch) if self.tensors else batch
            else:
                # In a DataLoader worker: ShardLoader makes the rest tensors in the main process.
                yield to_tensors(batch, _SHARED_MIN_BYTES) if self.tensors else batch

    def state_dict(self) -> Dict[str, Any]:
        """Where iterating this object (in this process) stands; with DataLoader workers, use
        ``ShardLoader.state_dict()``, which sees the batches the workers hand over."""
        return {"reader": self._last if self._last is not None else self._resume}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The next iteration continues after the batch ``state`` was taken at."""
        self._resume = None if state.get("reader") is None else dict(state["reader"])
        self._last = None

    def loader(self, **dataloader_options: Any) -> "ShardLoader":
        """A ``ShardLoader`` over this dataset (``num_workers``, ``pin_memory``... as DataLoader's)."""
        return ShardLoader(self, **dataloader_options)


def _as_is(batch: Dict[str, Any]) -> Dict[str, Any]:
    """The DataLoader's collate function: the reader made the batch already."""
    return batch


class ShardLoader:
    """A ``DataLoader(dataset, batch_size=None, ...)`` that remembers the state of the last batch it
    handed out, for ``state_dict()``.

    With ``num_workers > 0``, each worker hands over its batches as the reader read them (int32
    tokens, the loss mask, sample and image records, the stored compressed images) in one byte
    string, and this process finishes them on ``decode_threads`` threads, one batch ahead of the
    loop: it decodes the images and computes the model inputs. Pixels and int64 inputs, tens of
    times the bytes, never cross processes, and the batches are the ones ``num_workers=0`` gives.
    """

    def __init__(self, dataset: ShardDataset, **dataloader_options: Any) -> None:
        if dataloader_options.get("batch_size") is not None:
            raise TypeError("the reader makes the batches: set batch_size on the ShardDataset")
        dataloader_options["batch_size"] = None
        dataloader_options.setdefault("collate_fn", _as_is)
        self.dataset = dataset
        self.dataloader_options = dataloader_options
        self._last: Optional[Dict[str, Any]] = None

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        dataset = self.dataset
        decoder = None
        if self.dataloader_options.get("num_workers", 0) > 0:
            decoder = _native.WireDecoder(
                images=dataset.options.get("images", "decoded"),
                pixel_values=dataset.options.get("pixel_values", True),
                threads=dataset.options.get("decode_threads"),
            )
        dataset._wire = decoder is not None
        try:
            loader = torch.utils.data.DataLoader(dataset, **self.dataloader_options)
            pending = None
            for batch in loader:
                job = decoder.submit(batch) if decoder is not None else None
                if pending is not None:
                    yield self._finish(*pending)
                pending = (batch, job)
            if pending is not None:
                yield self._finish(*pending)
        finally:
            dataset._wire = False

    def _finish(self, batch: Any, job: Any) -> Dict[str, Any]:
        if job is not None:
            batch = job.wait()
        self._last = batch["state"]
        return to_tensors(batch) if self.dataset.tensors else batch

    def state_dict(self) -> Dict[str, Any]:
        return {"reader": self._last if self._last is not None else self.dataset._resume}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dataset.load_state_dict(state)
        self._last = None


def qwen2vl_model_inputs(batch: Dict[str, Any]) -> Dict[str, Any]:
    """The keyword arguments of a Qwen2-VL / Qwen2.5-VL ``forward`` for a batch of tensors (see
    ``to_tensors``), its rows packed into one sequence: ``input_ids`` and ``labels`` ``[1, T]``,
    ``position_ids`` ``[4, 1, T]`` (the 1-D positions, which restart at each sample, then the three
    M-RoPE rows: transformers builds the block-diagonal causal mask from the first, so samples do
    not attend to each other with ``sdpa``, ``eager`` or ``flash_attention_2``), ``pixel_values``
    and ``image_grid_thw`` when the batch has them. Call the model with ``use_cache=False``."""
    positions = torch.cat([batch["position_ids"][None], batch["mrope_position_ids"]])
    inputs = {
        "input_ids": batch["input_ids"][None],
        "labels": batch["labels"][None],
        "position_ids": positions[:, None],
    }
    if batch.get("pixel_values") is not None and len(batch["image_grid_thw"]):
        inputs["pixel_values"] = batch["pixel_values"]
        inputs["image_grid_thw"] = batch["image_grid_thw"]
    return inputs
