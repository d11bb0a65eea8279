"""Extraction on a real embedded Ray: features equal a direct single-process Keras predict."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.embed.embedder import Embedder, EmbedderSpec
from cifar_ray.extract import job
from cifar_ray.source import cifar
from cifar_ray.store import latents
from cifar_ray.store.locations import Location

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A weights file as a user would bring one: saved from keras.applications.InceptionV3."""
    import keras

    keras.utils.set_random_seed(123)
    model = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg"
    )
    path = tmp_path_factory.mktemp("w") / "inception_v3_notop.weights.h5"
    model.save_weights(path)
    return path


def test_ray_features_equal_direct_predict(ray_local, tmp_path, cifar_archive, weights_file):
    cfg = ExtractConfig(out=str(tmp_path), data_dir=str(cifar_archive), weights=str(weights_file),
                        image_size=75, limit=40, shard_size=16, batch_size=8)  # fmt: skip
    summary = job.execute(job.prepare(cfg))
    assert summary.computed == 6 and not summary.failed  # 40 = 16 + 16 + 8, for each split

    lat = latents.load(Location(str(tmp_path)), "inceptionv3")
    data = cifar.load(str(cifar_archive), limit=40)
    direct = Embedder(EmbedderSpec("inceptionv3", 75, str(weights_file)))
    for split in cifar.SPLITS:
        np.testing.assert_array_equal(lat.y[split], data.splits[split].labels)
        expected = direct(data.splits[split].images)
        np.testing.assert_allclose(lat.features(split), expected, atol=1e-4)

    (first,) = (tmp_path / "features/inceptionv3/train").glob("part-00000-*.parquet")
    meta = pq.read_schema(first).metadata
    assert b"cifar_ray" in meta


def test_rerun_of_finished_job_does_no_work(ray_local, tmp_path, cifar_archive):
    cfg = ExtractConfig(out=str(tmp_path), data_dir=str(cifar_archive), weights="none",
                        image_size=75, limit=20, shard_size=10)  # fmt: skip
    first = job.execute(job.prepare(cfg))
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    again = job.prepare(cfg)
    assert again.todo == [] and again.skipped == first.shards == 4
    assert job.execute(again).computed == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == files
