"""The feature store on S3: a real S3-compatible server (moto) on localhost, resume included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cifar_ray.source import cifar
from cifar_ray.store import latents
from cifar_ray.store.locations import Location
from tests.conftest import run_cli
from tests.moto_s3 import moto_server

pytestmark = pytest.mark.ray


@pytest.fixture
def s3_env(monkeypatch):
    """moto's server in this process, stopped afterwards; the env points pyarrow and boto at it."""
    with moto_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env


def test_extract_to_s3_resume_and_read_back(s3_env, cifar_archive):
    import boto3

    out = "s3://feats/run1"
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
            "--image-size", "75", "--limit", "30", "--shard-size", "10", "--out", out]  # fmt: skip
    first = run_cli(*args, env=s3_env)
    assert first.returncode == 0, first.stderr[-3000:]

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="feats")["Contents"]]
    assert sum(k.endswith(".parquet") for k in keys) == 6
    assert not [k for k in keys if ".tmp-" in k]

    again = run_cli(*args, env=s3_env)
    assert again.returncode == 0, again.stderr[-3000:]
    body = s3.get_object(Bucket="feats", Key="run1/features/inceptionv3/manifest.json")["Body"]
    manifest = json.loads(body.read())
    assert manifest["complete"] and manifest["last_run"]["skipped"] == 6
    assert manifest["last_run"]["computed"] == 0

    lat = latents.load(Location(out), "inceptionv3")
    source = cifar.load(str(cifar_archive), limit=30)
    assert lat.features("train").shape == (30, 2048)
    assert lat.y["test"].tolist() == source.splits["test"].labels.tolist()
    assert run_cli("inspect", out, env=s3_env).returncode == 0


@pytest.fixture
def weights_in_bucket(s3_env, tmp_path):
    """A weights file as an offline cluster keeps it: saved from keras.applications, in S3."""
    import boto3
    import keras

    keras.utils.set_random_seed(5)
    model = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg"
    )
    local = tmp_path / "inception_v3_notop.weights.h5"
    model.save_weights(local)
    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.upload_file(str(local), "feats", "weights/inception_v3_notop.weights.h5")
    return "s3://feats/weights/inception_v3_notop.weights.h5", local


def test_weights_are_staged_once_per_node_and_verified(weights_in_bucket, tmp_path, monkeypatch):
    from cifar_ray.embed import weights_cache
    from cifar_ray.errors import UserError

    uri, original = weights_in_bucket
    monkeypatch.setenv("CIFAR_RAY_CACHE", str(tmp_path / "cache"))
    first = Path(weights_cache.resolve(uri))
    assert first.read_bytes() == original.read_bytes()
    stamp = first.stat().st_mtime_ns
    assert Path(weights_cache.resolve(uri)).stat().st_mtime_ns == stamp  # reused, not fetched

    first.write_bytes(first.read_bytes()[:1000])  # a corrupt cache entry is fetched again
    again = Path(weights_cache.resolve(uri))
    assert again == first and again.read_bytes() == original.read_bytes()
    assert not [p for p in first.parent.iterdir() if ".tmp-" in p.name]

    with pytest.raises(UserError, match="cannot download"):
        weights_cache.resolve("s3://feats/weights/missing.h5")


def test_extract_with_weights_from_s3(weights_in_bucket, s3_env, tmp_path, cifar_archive):
    uri, local = weights_in_bucket
    env = {**s3_env, "CIFAR_RAY_CACHE": str(tmp_path / "cache")}
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", uri,
            "--image-size", "75", "--limit", "10", "--out", tmp_path / "o"]  # fmt: skip
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    fingerprint = json.loads((tmp_path / "o/features/inceptionv3/fingerprint.json").read_text())
    # known by its bytes, not its path or name (a copy elsewhere resumes the same store)
    assert fingerprint["weights"] == {"name": "file", "sha256": _sha256(local)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
