"""Your own images through Ray: each shard's descriptors (paths, byte ranges, row groups)
and labels go to an actor, which reads and decodes the images itself. The driver never
holds image bytes, so its memory does not grow with the images' size."""

from __future__ import annotations

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
