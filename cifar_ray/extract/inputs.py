"""What the driver sends an actor for each shard. CIFAR: its uint8 pixels, put into Ray's
object store once (`ShardPixels`). Your own images: the shard's descriptors (paths, byte
ranges, row groups) and labels (`ShardItems`); the actor reads and decodes the images
itself, so the driver never holds image bytes and its memory does not grow with them."""

from __future__ import annotations

import ray

from cifar_ray.source.cifar import Dataset
from cifar_ray.source.images.dataset import ImageDataset
from cifar_ray.source.images.read import ReadSpec
from cifar_ray.store.shards import Shard


class ShardItems:
    """What `RayBackend.submit` sends for an image input (ShardPixels' counterpart)."""

    def __init__(self, dataset: ImageDataset, spec: ReadSpec):
        self.dataset, self.spec = dataset, spec

    def submit(self, actor, shard: Shard, metadata):
        split = self.dataset.splits[shard.split]
        items = list(split.items[shard.start : shard.stop])
        labels = split.labels[shard.start : shard.stop]
        return actor.process_images.remote(shard, items, labels, self.spec, metadata)


class ShardPixels:
    """Each shard's uint8 pixels go into the object store once; with `keep`, every backbone's
    pool reuses them instead of moving them again."""

    def __init__(self, dataset: Dataset, keep: bool = False):
        self.dataset, self.keep = dataset, keep
        self._refs: dict[str, tuple] = {}

    def submit(self, actor, shard: Shard, metadata):
        images, labels, *coarse = self.get(shard)  # coarse: CIFAR-100's superclasses
        coarse_ref = coarse[0] if coarse else None
        return actor.process.remote(shard, images, labels, coarse_ref, metadata)

    def get(self, shard: Shard) -> tuple:
        if shard.key in self._refs:
            return self._refs[shard.key]
        split = self.dataset.splits[shard.split]
        refs = (
            ray.put(split.images[shard.start : shard.stop]),
            ray.put(split.labels[shard.start : shard.stop]),
        )
        if split.coarse is not None:  # CIFAR-100: the superclass goes beside the fine label
            refs += (ray.put(split.coarse[shard.start : shard.stop]),)
        if self.keep:
            self._refs[shard.key] = refs
        return refs
