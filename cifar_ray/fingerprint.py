"""The fingerprint: everything that determines a feature's value, hashed to one id."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from cifar_ray import weights_cache
from cifar_ray.backbones import Backbone

# Libraries whose versions can change feature values (kernels, resize, layer numerics).
NUMERIC_LIBRARIES = ("tensorflow", "keras", "numpy")


def versions() -> dict[str, str]:
    out = {}
    for name in (*NUMERIC_LIBRARIES, "pyarrow", "ray", "cifar-ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def weights_identity(weights: str, seed: int, backbone: Backbone) -> dict:
    """Random weights are identified by their seed, Keras' ImageNet file by its name and hash,
    a user's file by its sha256."""
    if weights == "none":
        return {"name": "none", "seed": seed}
    if weights == "imagenet":
        return {"name": "imagenet", "file": backbone.weights_file, "hash": backbone.weights_hash}
    path = Path(weights_cache.resolve(weights)).expanduser()
    return {"name": path.name, "sha256": weights_cache.sha256_of(path)}


def build(
    *,
    dataset: str,
    dataset_sha256: str,
    shard_size: int,
    backbone: Backbone,
    weights: dict,
    image_size: int,
    precision: str = "float32",
    xla: bool = False,
    split_sizes: dict[str, int] | None = None,
) -> dict:
    """`split_sizes` (images per split, i.e. --limit) decides which rows make the result:
    a store holds one result, so a different size is a different store."""
    libs = versions()
    fields = {
        "dataset": dataset,
        "dataset_sha256": dataset_sha256,
        "shard_size": shard_size,
        "backbone": backbone.name,
        "application": backbone.application,
        "weights": weights,
        "image_size": image_size,
        "resize": "bilinear",
        "preprocessing": backbone.preprocessing,
        "precision": precision,
        "xla": xla,
        "versions": {k: libs[k] for k in NUMERIC_LIBRARIES},
    }
    if split_sizes is not None:
        fields["split_sizes"] = dict(split_sizes)
    return fields


def fingerprint_id(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
