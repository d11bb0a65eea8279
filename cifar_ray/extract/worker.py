"""One extraction worker without Ray: embed a shard's pixels and publish its Parquet file."""

from __future__ import annotations

import os
import resource
import threading
import time

import numpy as np

from cifar_ray.embed import backbones, fingerprint
from cifar_ray.embed.embedder import Embedder, EmbedderSpec
from cifar_ray.embed.tfsetup import configure_tensorflow
from cifar_ray.errors import UserError
from cifar_ray.source.decode import Decoder
from cifar_ray.source.images import read
from cifar_ray.source.images.dataset import Item
from cifar_ray.source.images.read import ReadSpec
from cifar_ray.store import quality
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.records import Rows, ShardRecord
from cifar_ray.store.shards import Shard

# Test-only fault hooks, read from the environment so they reach Ray workers unchanged.
FAIL_ENV = "CIFAR_RAY_TEST_FAIL_SHARDS"  # comma-separated shard keys that always raise
DELAY_ENV = "CIFAR_RAY_TEST_SHARD_DELAY_S"  # seconds to sleep before each shard

# On CPU two forward passes at once fill the gaps one leaves in the thread pool: InceptionV3
# at 75 px on 2 cores ran 630 img/s (190% CPU) one at a time, 665 (197%) two at a time.
# A GPU runs one at a time, which bounds its activation memory; Parquet writes still overlap.
CPU_FORWARD_SLOTS = 2


class ShardWorker:
    def __init__(self, spec: EmbedderSpec, loc: Location, metadata: dict, node_id: str = ""):
        configure_tensorflow(spec.threads)
        self.embedder = Embedder(spec)
        check_weights(spec, metadata["weights"], node_id)  # after the build: what it loaded
        self.store = FeatureStore(loc, metadata.get("store", metadata["backbone"]))
        self.metadata = {**metadata, "weights_digest": self.embedder.digest}
        self.node_id = node_id
        self._device = threading.Semaphore(1 if self.embedder.on_gpu else CPU_FORWARD_SLOTS)
        self._decoder = Decoder()  # your own images: a pool of threads, idle for CIFAR
        self._embedded: dict[str, int] = {}  # shard key -> images embedded, until it returns

    def info(self) -> dict:
        return {"digest": self.embedder.digest, "dim": self.embedder.dim, "node_id": self.node_id}

    def embedding(self) -> int:
        """Images embedded in shards not yet returned: the progress bar moves per batch."""
        return sum(self._embedded.values())

    def _count(self, key: str, n: int) -> None:
        self._embedded[key] = self._embedded.get(key, 0) + n

    def process(
        self, shard: Shard, images: np.ndarray, labels: np.ndarray,
        coarse: np.ndarray | None = None, metadata: dict | None = None, rows: Rows | None = None,
    ) -> ShardRecord:  # fmt: skip
        """Safe to call from two threads: one shard embeds while the last one is written.
        `coarse`: CIFAR-100's superclass labels, stored beside the fine ones. `metadata`: the
        plan's, for an actor started before the dataset was read (it was built with the
        backbone, weights and store part alone, which it checked)."""
        if rows is None:
            _test_hooks(shard)  # process_images ran them before reading
        if metadata is not None:
            if not fingerprint.same_weights(metadata["weights"], self.metadata["weights"]):
                check_weights(self.embedder.spec, metadata["weights"], self.node_id)
            metadata = {**metadata, "weights_digest": self.embedder.digest}
        try:
            with self._device:
                started = time.perf_counter()
                features = self.embedder(images, lambda n: self._count(shard.key, n))
            return self._publish(shard, labels, features, metadata, coarse, started, rows)
        finally:
            self._embedded.pop(shard.key, None)

    def _publish(self, shard, labels, features, metadata, coarse, started, rows) -> ShardRecord:
        """Only finite features are published: NaN or Inf fails the shard (retried like any
        failure), naming the backbone and the count."""
        if bad := quality.non_finite(features):
            raise ValueError(f"{self.metadata['backbone']}: {bad} of {features.size} feature "
                             f"values of {shard.key} are NaN or Inf")  # fmt: skip
        return self.store.publish(
            shard, labels, features, metadata or self.metadata, coarse, rows,
            node_id=self.node_id, seconds=round(time.perf_counter() - started, 4),
            worker_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            **quality.shard_stats(features),
        )  # fmt: skip

    def process_images(
        self, shard: Shard, items: list[Item], labels: np.ndarray, spec: ReadSpec,
        metadata: dict | None = None,
    ) -> ShardRecord:  # fmt: skip
        """Your own images: this actor reads its shard's items from storage and decodes them
        on its node's cores; only the descriptors came through Ray. A storage error raises
        (the shard is retried); a bad image is skipped and named in the record."""
        _test_hooks(shard)
        pixels, good, bad = read.shard_pixels(spec, items, self._decoder)
        if pixels is None:  # every image bad: a shard of no rows, its record names them
            pixels = np.zeros((0, spec.size, spec.size, 3), np.uint8)
        rows = Rows([shard.start + i for i in good], [items[i].path for i in good], bad)
        return self.process(shard, pixels, np.asarray(labels)[good], None, metadata, rows)


def check_weights(spec: EmbedderSpec, expected: dict, node_id: str = "") -> None:
    """This node's weights (and factory code) must be the ones the store's fingerprint was made
    with: a node that kept an old copy, or runs another version of the factory, would publish
    features that mix silently with the others. Same function as the driver's, so one fact."""
    backbone = backbones.get(spec.backbone)
    here = fingerprint.weights_identity(spec.weights, spec.seed, backbone, built=True)
    if fingerprint.same_weights(here, expected):
        return
    shown = "; ".join(
        f"{key} {_short(_at(here, key))} here, {_short(_at(expected, key))} in the fingerprint"
        for key in fingerprint.differences(expected, here)
    )
    raise UserError(f"node {node_id or 'local'}: --weights {spec.weights} for {spec.backbone} "
                    f"is not what the store's fingerprint was made with ({shown}); make the "
                    "weights and backbone code the same on every node")  # fmt: skip


def _at(identity: dict, dotted: str):
    for key in dotted.split("."):
        identity = identity.get(key) if isinstance(identity, dict) else None
    return identity


def _short(value) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) > 16 else text


def _test_hooks(shard: Shard) -> None:
    if shard.key in os.environ.get(FAIL_ENV, "").split(","):
        raise RuntimeError(f"injected failure for shard {shard.key}")
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)
