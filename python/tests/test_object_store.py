"""mixtape.Reader on object storage: a copy of the demo build in a bucket of moto's S3-compatible
server, started on 127.0.0.1 by these tests, reads as the folder does, and the chunk cache serves a
second pass and keeps to its limit."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterator

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

import mixtape

BUCKET = "mixtape-tests"
OPTIONS = dict(seed=7, batch_size=4, images="skip")


@pytest.fixture(scope="module")
def bucket_copy(demo_out: Path) -> Iterator[str]:
    """`s3://mixtape-tests/demo`: the demo build uploaded object for object, with the `AWS_*`
    variables pointing this process (and the Rust store in it) at the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for path in sorted(demo_out.rglob("*")):
            if path.is_file():
                key = "demo/" + path.relative_to(demo_out).as_posix()
                s3.upload_file(str(path), BUCKET, key)
        yield f"s3://{BUCKET}/demo"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def read_all(stages: object, **options: object) -> list[dict]:
    return list(mixtape.Reader(stages, **OPTIONS, **options))


def origins(batches: list[dict]) -> list[list[int]]:
    return [origin for batch in batches for origin in batch["row_origins"].tolist()]


def cache_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*.range"))


def test_a_build_in_a_bucket_reads_as_its_folder_does(bucket_copy: str, demo_out: Path) -> None:
    local = read_all(demo_out)
    remote = read_all(bucket_copy)
    assert len(remote) > 50
    assert origins(remote) == origins(local)
    for ours, theirs in zip(remote, local):
        np.testing.assert_array_equal(ours["input_ids"], theirs["input_ids"])
        np.testing.assert_array_equal(ours["labels"], theirs["labels"])
    # Decoded images too: the image column's bytes come from the server.
    decoded = dict(OPTIONS, images="decoded")
    remote_images = [b for _, b in zip(range(4), mixtape.Reader(bucket_copy, **decoded))]
    local_images = [b for _, b in zip(range(4), mixtape.Reader(demo_out, **decoded))]
    assert sum(len(b["image_grid_thw"]) for b in remote_images) > 0
    for ours, theirs in zip(remote_images, local_images):
        np.testing.assert_array_equal(ours["pixel_values"], theirs["pixel_values"])
        np.testing.assert_array_equal(ours["image_grid_thw"], theirs["image_grid_thw"])


def test_a_warm_chunk_cache_serves_a_second_pass(bucket_copy: str, tmp_path: Path) -> None:
    cache = tmp_path / "chunks"
    before = mixtape.remote_counters()
    cold = read_all(bucket_copy, chunk_cache=cache)
    between = mixtape.remote_counters()
    warm = read_all(bucket_copy, chunk_cache=cache)
    after = mixtape.remote_counters()
    assert origins(warm) == origins(cold)
    cold_bytes = between["bytes_downloaded"] - before["bytes_downloaded"]
    warm_bytes = after["bytes_downloaded"] - between["bytes_downloaded"]
    served = after["cache_hit_bytes"] - between["cache_hit_bytes"]
    # The warm pass fetches manifests and shard tails only; every column chunk comes from the cache.
    assert served > 0
    assert warm_bytes + served >= cold_bytes
    assert warm_bytes < cold_bytes / 2, (warm_bytes, cold_bytes)
    # One subfolder per rank and DataLoader worker.
    assert [p.name for p in cache.iterdir()] == ["rank-0-worker-0"]


def test_a_chunk_cache_keeps_to_its_limit(bucket_copy: str, tmp_path: Path) -> None:
    unlimited = tmp_path / "unlimited"
    whole = read_all(bucket_copy, chunk_cache=unlimited, epochs=2)
    limit = cache_bytes(unlimited) // 4
    assert limit > 0
    small = tmp_path / "small"
    limited = read_all(bucket_copy, chunk_cache=small, chunk_cache_limit=limit, epochs=2)
    assert origins(limited) == origins(whole)
    assert 0 < cache_bytes(small) <= limit
