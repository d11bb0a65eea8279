"""Exact duplicates: images whose pixels are byte for byte the same, found by a hash of each
image's pixels.

The pixels come from a `PixelSource`: a function from a split's name to its images in id
order (or None when the source cannot be read). For CIFAR it reads the archive extraction
recorded (`cifar_source`); another input kind passes its own reader. Without pixels the audit
finds near-duplicates only, and says so."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

from cifar_ray.errors import UserError

log = logging.getLogger(__name__)

PixelSource = Callable[[str], np.ndarray | None]  # (N, H, W, C) uint8, id order


def digest(image: np.ndarray) -> bytes:
    """16 bytes of BLAKE2b over the shape and the bytes: equal only for identical pixels."""
    image = np.ascontiguousarray(image)
    h = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
    h.update(image.tobytes())
    return h.digest()


def digests(images: Iterable[np.ndarray]) -> list[bytes]:
    return [digest(image) for image in images]


def cross_pairs(test: list[bytes], train: list[bytes]) -> list[tuple[int, int]]:
    """(test id, train id) for every test image with the same pixels as a training image."""
    where = defaultdict(list)
    for i, h in enumerate(train):
        where[h].append(i)
    return [(t, j) for t, h in enumerate(test) for j in where.get(h, ())]


def within_pairs(hashes: list[bytes]) -> list[tuple[int, int]]:
    """(i, j), i < j, for every two images of one split with the same pixels."""
    groups = defaultdict(list)
    for i, h in enumerate(hashes):
        groups[h].append(i)
    return [(a, b) for ids in groups.values() for n, a in enumerate(ids) for b in ids[n + 1 :]]


def cifar_pixels_for(data_dir: str | None) -> Callable:
    """For `audit.run.audit_store`: a store's CIFAR pixels, from `data_dir` or, when None,
    from the source its extraction recorded."""

    def pixels_for(lat) -> PixelSource:
        dataset = lat.manifest.get("dataset", "cifar10")
        return cifar_source(data_dir or lat.manifest.get("data_dir"), dataset, lat.y)

    return pixels_for


def cifar_source(data_dir: str | None, dataset: str, labels: dict[str, np.ndarray]) -> PixelSource:
    """The CIFAR archive at `data_dir` (extraction records it in the manifest; None: Keras'
    cache, as extraction used), read once on first use, each split cut to the store's size.
    Unreadable, or labelled unlike the store (not the data it was made from): None."""
    loaded: dict = {}

    def split(name: str) -> np.ndarray | None:
        if "dataset" not in loaded:
            loaded["dataset"] = _load(data_dir, dataset, labels)
        ds = loaded["dataset"]
        return None if ds is None else ds.splits[name].images[: len(labels[name])]

    return split


def _load(data_dir: str | None, dataset: str, labels: dict[str, np.ndarray]):
    from cifar_ray.source import cifar

    try:
        ds = cifar.load(data_dir, dataset=dataset)
    except UserError as exc:
        log.warning("exact duplicates skipped (pixels unreadable): %s", exc)
        return None
    for name, y in labels.items():
        if not np.array_equal(ds.splits[name].labels[: len(y)], y):
            log.warning("exact duplicates skipped: %s is not the data of this store", data_dir)
            return None
    return ds
