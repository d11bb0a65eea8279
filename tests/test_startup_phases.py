"""The first seconds of a job say what is happening, in order; the bar moves per batch, and a
--data-dir that is not there is refused before Ray starts."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_ray.embed.embedder import Embedder, EmbedderSpec
from cifar_ray.progress import ImageBar
from tests.conftest import run_cli, tree_files

PHASES = ["reading cifar10 from", "starting Ray on this machine", "starting 1 embedder actor",
          "read 48 images", "first actor ready after"]  # fmt: skip


@pytest.mark.ray
def test_start_up_phases_are_said_in_order(tmp_path, cifar_archive):
    out = tmp_path / "out"
    result = run_cli("-v", "extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                     "--backbone", "tests.custom_backbone:small_cnn", "--image-size", "32",
                     "--limit", "24", "--shard-size", "24", "--actors", "1",
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    at = {p: next(i for i, ln in enumerate(lines) if p in ln) for p in PHASES}
    assert at["reading cifar10 from"] < at["starting Ray on this machine"]
    assert at["starting Ray on this machine"] < at["starting 1 embedder actor"]
    assert at["starting 1 embedder actor"] < at["first actor ready after"]
    assert "img/s whole job" in result.stdout  # the summary names its rate


def test_a_missing_data_dir_is_refused_before_ray_starts(tmp_path):
    result = run_cli("-v", "extract", "--local", "--data-dir", tmp_path / "cifar-10-batchs-py",
                     "--weights", "none", "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr
    assert "starting Ray" not in result.stderr and "reading" not in result.stderr
    assert tree_files(tmp_path / "out") == set()


def test_the_embedder_reports_each_batch():
    embedder = Embedder(EmbedderSpec("tests.custom_backbone:small_cnn", 32, "none", batch_size=4))
    seen = []
    features = embedder(np.zeros((10, 32, 32, 3), np.uint8), seen.append)
    assert seen == [4, 4, 2] and features.shape == (10, 16)


def test_the_bar_adds_batches_in_flight_never_goes_back_or_past_the_total():
    shown = []
    bar = ImageBar(shown.append, total=100)
    bar.embedding(30)  # batches of shards in flight
    bar.done(64)  # a shard published...
    bar.embedding(0)  # ...and no longer in flight: the bar does not drop back
    bar.embedding(50)
    assert shown == [30, 94, 94, 100]
