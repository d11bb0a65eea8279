"""Assembled latents: a complete, single-fingerprint feature store read into numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cifar_ray.errors import UserError
from cifar_ray.shards import plan
from cifar_ray.storage import Location
from cifar_ray.store import FeatureStore


@dataclass(frozen=True)
class Latents:
    backbone: str
    classes: tuple[str, ...]
    x: dict[str, np.ndarray]  # split -> (N, dim) float32
    y: dict[str, np.ndarray]  # split -> (N,) int64
    manifest: dict

    @property
    def dim(self) -> int:
        return int(self.x["train"].shape[1])


def load(loc: Location, backbone: str) -> Latents:
    """Refuse an incomplete store or one that mixes fingerprints, naming the shards."""
    store = FeatureStore(loc, backbone)
    manifest = store.read_json("manifest.json")
    if manifest is None:
        raise UserError(f"{store.dir}: no features here; run `cifar-ray extract` first")
    shards = plan(manifest["split_sizes"], manifest["shard_size"])
    bad = {s.key: p for s in shards if (p := store.problem(s, manifest["fingerprint"]))}
    if bad:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items())[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise UserError(f"{store.dir}: incomplete feature store: {listed}{more}")
    x, y = {}, {}
    for split in manifest["split_sizes"]:
        x[split], y[split] = store.read_split([s for s in shards if s.split == split])
    return Latents(backbone, tuple(manifest["classes"]), x, y, manifest)
