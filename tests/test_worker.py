"""An actor checks its own weights and backbone code against the store's fingerprint before it
publishes anything: a node with an old copy, or another version of the factory, refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.embed import backbones, fingerprint
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.errors import UserError
from cifar_ray.extract.worker import ShardWorker
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import Shard
from tests import editable_backbone
from tests.test_weights_cache import s3  # noqa: F401  (the moto fixture)


@pytest.fixture
def factory_ref(tmp_path, monkeypatch):
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield editable_backbone.write(folder, 1.0)
    sys.modules.pop("editable_bb", None)


def saved_weights(ref: str, seed: int, path: Path) -> bytes:
    """The factory's model with seeded random weights, as a weights file's bytes."""
    import keras

    keras.utils.set_random_seed(seed)
    backbones.get(ref).build((32, 32, 3), None).save_weights(path)
    return path.read_bytes()


def worker_for(spec: EmbedderSpec, identity: dict, out: Path) -> ShardWorker:
    """What the driver hands each actor: the fingerprint's weights identity in the metadata."""
    metadata = {"fingerprint": "f" * 16, "backbone": "editable", "weights": identity}
    return ShardWorker(spec, Location(str(out)), metadata, node_id="node-7")


def test_a_node_whose_weights_changed_under_it_refuses(s3, factory_ref, tmp_path):  # noqa: F811
    a = saved_weights(factory_ref, 1, tmp_path / "a.weights.h5")
    b = saved_weights(factory_ref, 2, tmp_path / "b.weights.h5")
    uri = s3("models/editable.weights.h5", a)
    spec = EmbedderSpec(factory_ref, 32, uri, batch_size=8)
    driver = fingerprint.weights_identity(uri, 0, backbones.get(factory_ref))  # A, on this node

    s3("models/editable.weights.h5", b)  # replaced in the bucket after the store was made
    with pytest.raises(UserError) as caught:
        worker_for(spec, driver, tmp_path / "out")
    message = str(caught.value)
    assert "node-7" in message and "sha256" in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # nothing published

    now = fingerprint.weights_identity(uri, 0, backbones.get(factory_ref))
    worker = worker_for(spec, now, tmp_path / "out")  # a fingerprint made with B: accepted
    images = np.zeros((4, 32, 32, 3), np.uint8)
    record = worker.process(Shard("train", 0, 0, 4), images, np.zeros(4, np.int64))
    assert record.rows == 4


def test_a_node_running_another_version_of_the_factory_refuses(factory_ref, tmp_path):
    spec = EmbedderSpec(factory_ref, 32, "none", batch_size=8)
    driver = fingerprint.weights_identity("none", 0, backbones.get(factory_ref))
    assert worker_for(spec, driver, tmp_path / "out").embedder.dim == 4  # same code: accepted

    editable_backbone.write(Path(sys.modules["editable_bb"].__file__).parent, 2.0)
    with pytest.raises(UserError, match=r"node-7: .*factory\.module_sha256"):
        worker_for(spec, driver, tmp_path / "out")


# A job script that drives extraction through the library: the store is planned (fingerprint
# made with the object as it is), then the object is replaced before any actor starts.
JOB = """
import sys
import boto3
from cifar_ray.extract import job
from cifar_ray.config import ExtractConfig
from cifar_ray.errors import UserError
from cifar_ray.ray_runtime import ray_session

out, data, uri, replacement = sys.argv[1:5]
cfg = ExtractConfig(out=out, data_dir=data, backbone="editable_bb:factory", weights=uri,
                    image_size=32, limit=16, shard_size=8, actors=1)
plan = job.prepare(cfg)
bucket, _, key = uri.removeprefix("s3://").partition("/")
boto3.client("s3").upload_file(replacement, bucket, key)
try:
    with ray_session(local=True):
        job.execute(plan)
except UserError as exc:
    print(f"refused: {exc}")
    sys.exit(2)
"""


@pytest.mark.ray
def test_an_actor_refusal_stops_the_run_before_anything_is_published(
    s3,  # noqa: F811
    factory_ref,
    tmp_path,
    cifar_archive,
):
    import os
    import subprocess

    from tests.conftest import kill_group

    a = saved_weights(factory_ref, 1, tmp_path / "a.weights.h5")
    saved_weights(factory_ref, 2, tmp_path / "b.weights.h5")
    uri = s3("models/editable.weights.h5", a)
    mods = str(Path(sys.modules["editable_bb"].__file__).parent)
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), mods]))
    out = tmp_path / "out"
    args = [str(out), str(cifar_archive), uri, str(tmp_path / "b.weights.h5")]
    proc = subprocess.Popen(
        [sys.executable, "-c", JOB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": path}, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 2, stderr[-3000:]
    refused = [line for line in stdout.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 1 and "is not what the store's fingerprint was made with" in refused[0]
    assert not list(out.rglob("*.parquet"))
