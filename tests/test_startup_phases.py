"""The first seconds of a job say what is happening, in order; the bar moves per batch, and a
--data-dir that is not there is refused before Ray starts."""

from __future__ import annotations

import numpy as np

from cifar_ray.embed.embedder import Embedder, EmbedderSpec
from cifar_ray.progress import ImageBar
from tests.conftest import run_cli, tree_files


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


def test_the_watch_reports_the_ready_actors_images_and_stops():
    from cifar_ray.extract.embedding_watch import EmbeddingWatch

    class Backend:
        def embedding(self, actors: list) -> int:
            if not actors:
                raise RuntimeError("Ray is shutting down")  # a failed ask shows nothing
            return 7 * len(actors)

    class Pool:
        def __init__(self) -> None:
            self.ready = ["a", "b"]

    seen, pool = [], Pool()
    watch = EmbeddingWatch(Backend(), pool, seen.append, every_s=0.01)
    while not seen:
        watch.stop.wait(0.01)
    pool.ready = []
    watch.close()
    assert set(seen) == {14} and not watch.thread.is_alive()
