"""Assembled latents: a complete, single-fingerprint feature store, read into numpy once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cifar_ray.errors import UserError
from cifar_ray.store.claims import read_claim
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import Shard, plan


@dataclass(frozen=True)
class Latents:
    """Checked on load, labels in memory; the features (the large part) are read on demand,
    from the very files that were checked."""

    backbone: str
    classes: tuple[str, ...]
    y: dict[str, np.ndarray]  # split -> (N,) int64, id order
    manifest: dict
    store: FeatureStore
    shards: dict[str, list[Shard]]
    files: dict[str, str]  # shard key -> the data file its record named when checked
    dim: int
    counts: dict[str, int] | None = None  # shard key -> rows stored (bad images left out)

    def features(self, split: str) -> np.ndarray:
        """(N, dim) float32 in id order."""
        return self.read(split)[0]

    def read(self, split: str, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(features, labels) with row i the image `order[i]` (id order by default), each
        shard decoded straight into its rows: how training gets fit-then-validation order
        without a copy (`train.splits.latent_parts`)."""
        return self.store.read_split(self.shards[split], self.files, self.dim, order, self.counts)


def load(loc: Location, backbone: str) -> Latents:
    """Refuse an incomplete store or one that mixes fingerprints, naming the shards. Each
    shard's record and file are read once here (checksum, labels, width)."""
    store = FeatureStore(loc, backbone)
    manifest, _ = read_claim(store)
    if manifest is None:
        raise UserError(f"{store.dir}: no features here; run `cifar-ray extract` first")
    if "classes" in manifest and not manifest["classes"]:
        raise UserError(f"{store.dir}: made from unlabelled images, so there is nothing to "
                        "train; give class folders or a label column")  # fmt: skip
    shards = plan(manifest["split_sizes"], manifest["shard_size"])
    labels, files, dims, bad = {}, {}, set(), {}
    for shard in shards:  # one shard's bytes at a time: the whole store never sits in memory
        checked = store.verify(shard, manifest["fingerprint"])
        if isinstance(checked, str):
            bad[shard.key] = checked
            continue
        labels[shard.key], files[shard.key] = checked.labels(), checked.record.file
        dims.add(checked.dim())
    if bad:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items())[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise UserError(f"{store.dir}: incomplete feature store: {listed}{more}")
    if len(dims) != 1:  # one fingerprint, one model: a mix would be a bug, not a store
        raise UserError(f"{store.dir}: shards of different widths {sorted(dims)}")
    by_split = {split: [s for s in shards if s.split == split] for split in manifest["split_sizes"]}
    y = {split: np.concatenate([labels[s.key] for s in group] or [np.empty(0, np.int64)])
         for split, group in by_split.items()}  # fmt: skip
    counts = {key: len(values) for key, values in labels.items()}
    return Latents(backbone, tuple(manifest["classes"]), y, manifest, store, by_split, files,
                   dims.pop(), counts)  # fmt: skip
