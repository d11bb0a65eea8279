"""Weights staged from object storage: a cached copy is used only while the object it came
from is unchanged; a real S3-compatible server (moto) on localhost replaces it under us."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cifar_ray.embed import weights_cache
from cifar_ray.errors import UserError
from tests.moto_s3 import moto_server

BUCKET = "weights-bucket"


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """moto's server in this process, stopped afterwards; a bucket, a node cache in tmp_path.
    Yields a function that puts bytes at a key and gives back its s3:// URI."""
    import boto3

    with moto_server(BUCKET) as env:
        for key, value in {**env, "CIFAR_RAY_CACHE": str(tmp_path / "node-cache")}.items():
            monkeypatch.setenv(key, value)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])

        def put(key: str, data: bytes) -> str:
            client.put_object(Bucket=BUCKET, Key=key, Body=data)
            return f"s3://{BUCKET}/{key}"

        yield put


def test_a_replaced_object_is_downloaded_again(s3):
    """Same size, same second: only the ETag tells the two apart."""
    uri = s3("models/w.h5", b"A" * 4096)
    first = Path(weights_cache.resolve(uri))
    assert first.read_bytes() == b"A" * 4096
    stamp = first.stat().st_mtime_ns
    assert Path(weights_cache.resolve(uri)).stat().st_mtime_ns == stamp  # unchanged: reused

    s3("models/w.h5", b"B" * 4096)  # the object replaced while this node keeps its copy
    again = Path(weights_cache.resolve(uri))
    assert again == first and again.read_bytes() == b"B" * 4096
    assert not [p for p in again.parent.iterdir() if ".tmp-" in p.name]


def test_the_source_version_names_size_and_etag(s3):
    uri = s3("models/v.h5", b"x" * 10)
    version = weights_cache.source_version(uri)
    assert version["size"] == 10 and version["etag"] and version["mtime"]
    s3("models/v.h5", b"y" * 10)
    assert weights_cache.source_version(uri)["etag"] != version["etag"]


def test_a_cache_entry_that_names_no_source_is_not_trusted(s3):
    """An older release recorded only the copy's own sha256: that says nothing about the
    object now, so such an entry (or one a crash left without its record) is fetched again."""
    uri = s3("models/r.h5", b"new bytes")
    path = Path(weights_cache.resolve(uri))
    path.with_name(path.name + ".source.json").unlink(missing_ok=True)
    path.write_bytes(b"old bytes")
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(b"old bytes").hexdigest())
    assert Path(weights_cache.resolve(uri)).read_bytes() == b"new bytes"


def test_a_deleted_object_is_refused_even_with_a_cached_copy(s3):
    import boto3

    uri = s3("models/gone.h5", b"z" * 10)
    weights_cache.resolve(uri)
    boto3.client("s3").delete_object(Bucket=BUCKET, Key="models/gone.h5")
    with pytest.raises(UserError, match="cannot download"):
        weights_cache.resolve(uri)
