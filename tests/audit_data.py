"""The real CIFAR-10 sample with duplicates planted across splits, and a feature store of it
written the way extraction publishes one, for the audit's tests.

Features are computed here, not by a network: a 3x3 box blur, 2x2 pooling to 16x16, each
image's mean colour removed (768 numbers). Cheap and deterministic; a JPEG re-encoding barely
moves them, a one-pixel shift moves them more than it would a trained backbone's (for a few
low-contrast images of the sample, below the similarity of unrelated pairs: seed 0 plants
one of those). The seed picks the planted images and is fixed."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_ray.source import cifar
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from tests import cifar_files

EXACT, SHIFTED, JPEG = "exact", "shifted", "jpeg"


@dataclass(frozen=True)
class Planted:
    test: np.ndarray  # (N, 32, 32, 3) uint8
    train: np.ndarray
    y_test: np.ndarray
    y_train: np.ndarray
    pairs: dict[tuple[int, int], str]  # (test id, train id) -> how the copy was made
    within: tuple[int, int]  # two training images with the same pixels
    relabelled: tuple[int, int]  # a planted pair whose train copy carries another label


def _shift(image: np.ndarray) -> np.ndarray:
    """One pixel to the right, the first column repeated (a crop shifted by one pixel)."""
    return np.concatenate([image[:, :1], image[:, :-1]], axis=1)


def _jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(buffer).convert("RGB"))


def plant(archive: Path, n_train: int | None = None, n_test: int | None = None,
          seed: int = 1) -> Planted:  # fmt: skip
    """Six test images copied into train (two exact, two shifted, two re-encoded), one of
    them under another label; and one training image copied over another."""
    ds = cifar.load(str(archive)).limited(None)
    test, y_test = ds.splits["test"].images[:n_test], ds.splits["test"].labels[:n_test]
    train = ds.splits["train"].images[:n_train].copy()
    y_train = ds.splits["train"].labels[:n_train].copy()
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(test), 6, replace=False)
    targets = rng.choice(len(train) - 2, 8, replace=False)  # the last two: the within pair
    pairs = {}
    for n, (t, r) in enumerate(zip(sources, targets, strict=False)):
        how = (EXACT, SHIFTED, JPEG)[n % 3]
        train[r] = {EXACT: test[t], SHIFTED: _shift(test[t]), JPEG: _jpeg(test[t])}[how]
        y_train[r] = y_test[t]
        pairs[(int(t), int(r))] = how
    relabelled = (int(sources[0]), int(targets[0]))
    y_train[targets[0]] = (y_test[sources[0]] + 1) % 10
    a, b = len(train) - 2, len(train) - 1
    train[b], y_train[b] = train[a], y_train[a]
    return Planted(test, train, y_test, y_train, pairs, (a, b), relabelled)


def features(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[:, i : i + 32, j : j + 32] for i in range(3) for j in range(3)) / 9
    pooled = blurred.reshape(len(x), 16, 2, 16, 2, 3).mean((2, 4)).reshape(len(x), -1)
    return pooled - pooled.mean(1, keepdims=True)


def write_store(out: str, p: Planted, data_dir: str | None, name: str = "pix",
                shard_size: int = 1024) -> FeatureStore:  # fmt: skip
    """A complete store of the planted images' features, published shard by shard."""
    store = FeatureStore(Location(out), name)
    sizes = {"train": len(p.train), "test": len(p.test)}
    manifest = Manifest(name, "fp-" + name, list(cifar.CLASSES), sizes, data_dir, shard_size)
    x = {"train": features(p.train), "test": features(p.test)}
    y = {"train": p.y_train, "test": p.y_test}
    from cifar_ray.store.shards import plan

    for shard in plan(sizes, shard_size):
        rows = slice(shard.start, shard.stop)
        store.publish(shard, y[shard.split][rows], x[shard.split][rows],
                      {"fingerprint": manifest.fingerprint, "backbone": name})  # fmt: skip
    store.write_fingerprint(manifest.fingerprint, {"backbone": name})
    manifest.write(store)
    return store


def write_archive(path: Path, p: Planted) -> Path:
    """The planted images as an official CIFAR-10 archive (train in five batches)."""

    def batch(images: np.ndarray, labels: np.ndarray) -> bytes:
        data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        return pickle.dumps({b"labels": labels.tolist(), b"data": data}, protocol=2)

    parts = zip(np.array_split(p.train, 5), np.array_split(p.y_train, 5), strict=True)
    members = {f"data_batch_{i}": batch(x, y) for i, (x, y) in enumerate(parts, 1)}
    members["test_batch"] = batch(p.test, p.y_test)
    members["batches.meta"] = pickle.dumps({b"label_names": cifar_files.CLASSES}, protocol=2)
    return cifar_files.write_archive(path, members)
