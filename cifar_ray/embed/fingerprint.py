"""The fingerprint: everything that determines a feature's value, hashed to one id."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from cifar_ray.embed import weights_cache
from cifar_ray.embed.backbones import Backbone, keras_models_dir
from cifar_ray.errors import UserError

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


def weights_identity(weights: str, seed: int, backbone: Backbone, *, built: bool = False) -> dict:
    """What the model's values come from, as this node sees them: random weights by their seed,
    Keras' ImageNet file by its name and registry hash (checked before use, see
    embedder.verify_keras_cache), a user's file by its sha256; a user's factory adds its code,
    a Keras Hub backbone its preset (hub.identity: the architecture comes from the preset even
    with --weights none, and so do "imagenet" weights).

    The driver's answer goes into the fingerprint and to every actor, which computes its own
    with this same function, after it built the model (`built`), and refuses to publish when
    the two are not the same weights (`same_weights`, worker.ShardWorker)."""
    if weights == "none":
        out = {"name": "none", "seed": seed}
    elif weights == "imagenet" and backbone.preset:
        out = {"name": "imagenet"}  # the preset's own weights: named by out["hub"]
    elif weights == "imagenet":
        out = {"name": "imagenet", "file": backbone.weights_file, "hash": backbone.weights_hash}
        if backbone.factory is not None and backbone.weights_file and not backbone.weights_hash:
            out["sha256"] = _declared_sha256(backbone, built)
    else:
        path = Path(weights_cache.resolve(weights)).expanduser()
        if not path.is_file():
            raise UserError(f"--weights {weights}: no such file (use imagenet, none or a file)")
        out = {"name": "file", "sha256": weights_cache.sha256_of(path)}  # its bytes, not its path
    if backbone.factory is not None:
        out["factory"] = factory_identity(backbone)
    if backbone.preset:
        from cifar_ray.embed import hub

        out["hub"] = hub.identity(backbone.preset)
    return out


def factory_identity(backbone: Backbone) -> dict:
    """A user's factory by its code: the sha256 of the module file that defines it (as on this
    node's disk) and its qualified name, plus the `version` its backbone_spec may declare.
    Code the module imports from other files is not covered: bump `version` for that."""
    func = backbone.factory
    while isinstance(func, functools.partial):
        func = func.func
    module_name = getattr(func, "__module__", None) or ""
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    out = {
        "ref": backbone.application,
        "qualname": getattr(func, "__qualname__", type(func).__qualname__),
        "module": module_name,
        "module_sha256": weights_cache.sha256_of(Path(source)) if source else None,
    }
    if backbone.version:
        out["version"] = backbone.version
    return out


def _declared_sha256(backbone: Backbone, built: bool) -> str | None:
    """A factory's declared file by its bytes; None where it is not there before the build
    (the factory may fetch it then: the actor checks it after building)."""
    path = keras_models_dir() / Path(backbone.weights_file).expanduser()
    if not built and not path.is_file():
        return None
    return weights_cache.sha256_of(declared_weights_path(backbone))


def same_weights(a: dict, b: dict) -> bool:
    """The same weights: equal identities, where a file is known by its sha256 alone (its name
    or path is not the weights) and a declared file the driver could not see yet (None) is
    the one the actor found after building."""
    if a == b:
        return True
    keys = set(a) | set(b)
    if "sha256" not in keys:
        return False
    files = a.get("name") not in ("none", "imagenet") and b.get("name") not in ("none", "imagenet")
    skip = {"name"} if files else set()
    if a.get("sha256") is None or b.get("sha256") is None:
        skip.add("sha256")
    return all(a.get(k) == b.get(k) for k in keys - skip)


def declared_weights_path(backbone: Backbone) -> Path:
    """The weights file a factory says it loads (backbone_spec["weights_file"]): an absolute
    path, or a name under Keras' cache (KERAS_HOME/models), where keras.utils.get_file puts it."""
    path = keras_models_dir() / Path(backbone.weights_file).expanduser()  # absolute: as is
    if not path.is_file():
        raise UserError(f"backbone {backbone.application}: declares weights_file {path}, "
                        "which is not there after building it")  # fmt: skip
    return path


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ, down into nested dicts (weights.factory...)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


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
    resize: str = "bilinear",
    images: dict | None = None,
) -> dict:
    """`split_sizes` (images per split, i.e. --limit) decides which rows make the result:
    a store holds one result, so a different size is a different store. `images`: for your
    own images, how they were read and decoded and their class names (CIFAR's stores keep
    the fields they always had, so their fingerprints do not change)."""
    libs = versions()
    fields = {
        "dataset": dataset,
        "dataset_sha256": dataset_sha256,
        "shard_size": shard_size,
        "backbone": backbone.name,
        "application": backbone.application,
        "weights": weights,
        "image_size": image_size,
        "resize": resize,
        "preprocessing": backbone.preprocessing,
        "precision": precision,
        "xla": xla,
        "versions": {k: libs[k] for k in NUMERIC_LIBRARIES},
    }
    if backbone.scale_offset:  # a Keras Hub preset's ImageConverter
        fields["scale_offset"] = [list(v) for v in backbone.scale_offset]
    if split_sizes is not None:
        fields["split_sizes"] = dict(split_sizes)
    if images is not None:
        fields["images"] = images
    return fields


def fingerprint_id(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
