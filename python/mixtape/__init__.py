"""Read mixtape shard sets from Python.

``Reader`` is mixtape's Rust shard reader (the one ``mixtape stream`` and the tch trainer use): the
same options, the same order, the same resume state (a state saved here resumes in Rust and back)
and the same tally. Each batch is a dict of numpy arrays with the inputs a Qwen2-VL-style model
takes, the batch's rows concatenated (no padding)::

    input_ids           int64 [T]
    labels              int64 [T]     -100 outside the loss and at each sample's first token
    loss_mask           uint8 [T]
    position_ids        int64 [T]     0, 1, ... restarting at each packed sample
    mrope_position_ids  int64 [3, T]  Qwen2-VL's (temporal, height, width) positions per sample
    cu_seqlens          int32 [S+1]   sample boundaries, for varlen attention
    row_offsets         int64 [R+1]   row boundaries
    row_origins         int64 [R, 3]  (stage index, shard, row) of each row, as `mixtape stream --order`
    pixel_values        float32 [P, 1176]  (images="decoded") HF Qwen2VLImageProcessor's layout
    image_grid_thw      int64 [I, 3]
    images              list[bytes]   (images="raw") the stored image bytes, or
                        list[uint8 [H, W, 3]]  (images="decoded", pixel_values=False) RGB pixels
    sample_sources, sample_categories, sample_keys: list[str] per sample
    stage (str), epoch, offset (int), state (dict): the state after this batch

``check``, ``plan`` and ``audit`` return what ``mixtape check/plan/audit --json`` print, as dicts;
``remote_counters`` what this process has fetched from object stores.
For PyTorch, see ``mixtape.torch``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _native
from ._native import CorruptShardError, ReaderError, RecipeError

__all__ = [
    "Reader",
    "ReaderError",
    "CorruptShardError",
    "RecipeError",
    "check",
    "plan",
    "audit",
    "remote_counters",
]
__version__ = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]


def _paths(stages: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    if isinstance(stages, (str, os.PathLike)):
        return [os.fspath(stages)]
    return [os.fspath(s) for s in stages]


def _state_json(state: Union[None, str, Mapping[str, Any]]) -> Optional[str]:
    if state is None or isinstance(state, str):
        return state
    return json.dumps(dict(state))


class Reader:
    """mixtape's shard reader.

    ``stages``: a build output folder (all its stages, in recipe order), a stage folder, or a list
    of them. Options (defaults as in Rust's ``ReaderOptions``): ``seed``, ``batch_size`` (rows per
    batch), ``stage_batch_sizes`` ({stage: rows}), ``rank`` and ``world_size`` (default: the
    ``RANK`` and ``WORLD_SIZE`` variables, else 0 and 1), ``worker`` and ``workers`` (a rank's
    batches dealt round-robin between DataLoader workers), ``epochs``, ``shuffle``,
    ``shuffle_window``, ``prefetch``, ``decode_threads``, ``images`` ("decoded", "raw" or "skip"),
    ``pixel_values`` (lay out ``pixel_values`` for decoded images), ``verify`` (blake3 every shard
    first; every byte read is CRC-checked regardless), ``state`` (a state dict or its JSON, to
    continue after the batch it was taken at), ``wire`` (yield each batch as bytes, for
    ``mixtape.torch``'s DataLoader workers to hand to the training process, which finishes them),
    ``chunk_cache`` and ``chunk_cache_limit`` (a local folder, and its size in bytes, default 10 GiB,
    where column chunks of shards on object storage are kept between epochs; each rank and worker
    uses its own subfolder), ``remote_requests`` (range requests in flight at once for shards on
    object storage, default 8) and ``read_ahead`` (fetch and decode a remote stage's next shuffle
    window while this one's batches go out, default True).

    ``stages`` may be object-store URLs (``s3://bucket/prefix``; credentials and endpoint from the
    ``AWS_*`` variables).

    Reading and decoding run with the GIL released. A failure raises ``ReaderError``; a shard whose
    bytes changed since it was built raises ``CorruptShardError``, naming shard, row group and
    column.
    """

    def __init__(
        self,
        stages: Union[PathLike, Sequence[PathLike]],
        *,
        state: Union[None, str, Mapping[str, Any]] = None,
        **options: Any,
    ) -> None:
        self._native = _native.Reader(_paths(stages), state=_state_json(state), **options)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        batch = self._native.__next__()
        if batch is None:
            raise StopIteration
        return batch

    def state(self) -> Dict[str, Any]:
        """The state after the last batch yielded; ``Reader(..., state=it)`` continues there."""
        return self._native.state()

    def tally(self) -> Dict[str, Any]:
        """Batches, rows and counts yielded so far, in total, per category and per source."""
        return self._native.tally()

    @property
    def stages(self) -> List[str]:
        return self._native.stages

    @property
    def current_stage(self) -> int:
        return self._native.current_stage

    @property
    def warnings(self) -> List[str]:
        return self._native.warnings

    def skip_to_stage(self, index: int) -> None:
        self._native.skip_to_stage(index)


def check(recipe: PathLike, *, cache_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Every problem of ``recipe``: ``{"ok", "errors", "warnings", "diagnostics", "fingerprint"}``,
    each diagnostic with its ``severity``, ``position`` (file:line:col), ``message`` and ``hint``."""
    return json.loads(_native.check(os.fspath(recipe), cache_dir=_opt(cache_dir)))


def plan(recipe: PathLike, *, cache_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """The resolved plan of ``recipe`` (``mixtape plan --json``); ``RecipeError`` if it has errors."""
    return json.loads(_native.plan(os.fspath(recipe), cache_dir=_opt(cache_dir)))


def audit(
    out: PathLike,
    *,
    recipe: Optional[PathLike] = None,
    tolerance: float = 0.5,
    cache_dir: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """``mixtape audit --json`` of a build output: what the shards contain, against ``recipe``'s
    plan when given (``passed`` says whether every category is within ``tolerance`` points)."""
    return json.loads(
        _native.audit(
            os.fspath(out),
            recipe=_opt(recipe),
            tolerance=tolerance,
            cache_dir=_opt(cache_dir),
        )
    )


def _opt(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)


def remote_counters() -> Dict[str, int]:
    """What this process has read from object stores so far, as ``mixtape stream`` reports it under
    ``remote``: ``requests`` (GETs), ``bytes_downloaded``, ``retries`` (reads retried after a short
    or failed body) and ``cache_hit_bytes`` (bytes a ``chunk_cache`` served instead of the store).
    Take it before and after an epoch to see what the epoch cost."""
    return _native.remote_counters()
