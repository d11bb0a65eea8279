"""Keras Hub image backbones: `--backbone hub:<preset>` for any image classifier's backbone (and
DINOv2/v3) that Keras Hub offers, by a preset name, a `kaggle://`/`hf://` handle or a local
preset directory.

Everything is read from the preset, as Keras Hub's own ImageClassifier would use it: the input
size and the scale/offset of its ImageConverter (applied in our graph, before the resize: both
are linear, so the order does not change the values), the backbone class, and the feature
dimension of the pooled output. Pooling follows the family's ImageClassifier: the class token
for ViT-style backbones, the mean over tokens for other token outputs (Swin), global average
pooling of a feature map otherwise. Weights come through Keras Hub's own download and cache.

keras-hub is an optional extra; without it a hub backbone is one line naming the extra.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from importlib import metadata
from pathlib import Path

from cifar_ray.embed.backbones import Backbone
from cifar_ray.errors import UserError, first_line

log = logging.getLogger(__name__)

PREFIX = "hub:"
INSTALL = 'pip install -e ".[hub]"'
# ImageClassifier pooling="token" (ViT, DeiT) and the DINO families: the class token, first.
TOKEN_FAMILIES = frozenset({"ViTBackbone", "DeiTBackbone", "DINOV2Backbone", "DINOV3Backbone"})
# Feature backbones Keras Hub offers without an ImageClassifier, beside those that have one.
FEATURE_FAMILIES = ("DINOV2Backbone", "DINOV3Backbone")
DEFAULT_SIZE = 224  # a preset without an image converter names no size


def is_hub(name: str) -> bool:
    return name.strip().lower().startswith(PREFIX)


def keras_hub():
    """The module, or one line naming the extra that installs it."""
    try:
        import keras_hub as module
    except ImportError as exc:
        raise UserError(
            f"Keras Hub backbones need keras-hub ({first_line(exc)}): {INSTALL}"
        ) from None
    return module


def preset_of(name: str) -> str:
    preset = name.strip()[len(PREFIX) :].strip()
    if not preset:
        raise UserError(f"backbone {name!r}: name a Keras Hub preset, e.g. hub:resnet_50_imagenet")
    return preset


def is_local(preset: str) -> bool:
    return "://" not in preset and Path(preset).expanduser().is_dir()


def store_name(preset: str) -> str:
    """A valid store directory name: `hub-` and the preset (a local directory: its name)."""
    base = Path(preset).expanduser().resolve().name if is_local(preset) else preset
    text = re.sub(r"[^a-z0-9_.-]+", "-", base.split("://")[-1].lower()).strip("-._")
    return f"hub-{text or 'preset'}"[:120]


@functools.cache
def spec(name: str) -> Backbone:
    """The backbone as its preset describes it. Building it once with random weights (cached
    per process) is the one public way to learn its class and feature dimension."""
    preset = preset_of(name)
    hub = keras_hub()
    origin = f"backbone {name!r}"
    size, scale, offset = _converter(hub, preset, origin)
    model = _load(hub, preset, origin, load_weights=False)
    config = model.get_config()
    family = type(model).__name__
    dim = int(_pool(model, family, origin).shape[-1])
    return Backbone(
        name=store_name(preset),
        application=f"keras_hub.models.{family}",
        default_size=size,
        min_size=min(32, size),
        preprocessing="scale_offset",
        dim=dim,
        params_m=round(model.count_params() / 1e6, 2),
        extra={"image_shape": "image_shape" in config},
        preset=preset,
        scale_offset=(scale, offset),
    )


def _converter(hub, preset: str, origin: str) -> tuple[int, tuple, tuple]:
    """(size, per-channel scale, per-channel offset) of the preset's ImageConverter, on 0..255
    RGB. A preset without one is fed raw 0..255 values at 224 px, said in the log."""
    try:
        converter = hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError:
        log.warning("%s: the preset has no image converter; feeding 0..255 RGB at %d px",
                    origin, DEFAULT_SIZE)  # fmt: skip
        return DEFAULT_SIZE, (1.0,) * 3, (0.0,) * 3
    except Exception as exc:
        raise UserError(f"{origin}: cannot read the preset ({first_line(exc)})") from None
    size = converter.image_size
    return (
        int(max(size)) if size and all(size) else DEFAULT_SIZE,
        _per_channel(converter.scale, 1.0),
        _per_channel(converter.offset, 0.0),
    )


def _per_channel(value, default: float) -> tuple[float, float, float]:
    if value is None:
        return (default,) * 3
    values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)] * 3
    if len(values) != 3:
        raise UserError(f"image converter: expected 1 or 3 values, got {value!r}")
    return tuple(values)


def _load(hub, preset: str, origin: str, load_weights: bool, **kwargs):
    try:
        return hub.models.Backbone.from_preset(preset, load_weights=load_weights, **kwargs)
    except Exception as exc:  # unknown preset, no network, a file that does not fit
        raise UserError(f"{origin}: cannot load the Keras Hub preset ({first_line(exc)})") from None


def build(backbone: Backbone, input_shape: tuple[int, int, int], weights: str | None):
    """Images of `input_shape` to pooled vectors; weights "imagenet" are the preset's own."""
    import keras

    hub = keras_hub()
    origin = f"backbone hub:{backbone.preset}"
    kwargs = {"image_shape": tuple(input_shape)} if backbone.extra.get("image_shape") else {}
    try:
        model = _load(hub, backbone.preset, origin, load_weights=weights is not None, **kwargs)
    except UserError as exc:
        if input_shape[0] == backbone.default_size:
            raise
        own = f"hub:{backbone.preset}={backbone.default_size}"
        raise UserError(f"{exc}; its weights may need its own size: --image-size {own}") from None
    family = backbone.application.rpartition(".")[2]
    inputs = keras.Input(tuple(input_shape), name="images")
    return keras.Model(inputs, _pool(model, family, origin, inputs), name=backbone.name)


def _pool(model, family: str, origin: str, inputs=None):
    """The pooled output (symbolic), as the family's ImageClassifier pools it."""
    import keras

    x = model(inputs) if inputs is not None else model.output
    if not isinstance(x, keras.KerasTensor):
        raise UserError(f"{origin}: {family} has several outputs; not an image feature backbone")
    if len(x.shape) == 3 and family in TOKEN_FAMILIES:
        return x[:, 0]  # the class token
    if len(x.shape) == 3:
        return keras.ops.mean(x, axis=1)
    if len(x.shape) == 4:
        return keras.layers.GlobalAveragePooling2D()(x)
    raise UserError(f"{origin}: {family} gives {tuple(x.shape)}; expected a feature map or tokens")


def identity(preset: str) -> dict:
    """The preset in the fingerprint: a local directory by the sha256 of its files; a built-in
    name with the versioned Kaggle handle it resolves to in this keras-hub; any other handle as
    given (name its version, e.g. kaggle://…/2, or the weights may change under it)."""
    out = {"preset": preset, "keras_hub": _version()}
    if is_local(preset):
        out["preset"] = store_name(preset)
        out["sha256"] = directory_sha256(Path(preset).expanduser())
    else:
        handle = _builtin_handles().get(preset)
        if handle:
            out["handle"] = handle
    return out


def directory_sha256(folder: Path) -> str:
    """Every file's relative path and content, in a fixed order."""
    from cifar_ray.embed.weights_cache import sha256_of

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        digest.update(f"{rel}\0{sha256_of(path)}\n".encode())
    return digest.hexdigest()


def _version() -> str:
    try:
        return metadata.version("keras-hub")
    except metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def _builtin_handles() -> dict[str, str]:
    out = {}
    for name, info in keras_hub().models.Backbone.presets.items():
        handle = info.get("kaggle_handle") if isinstance(info, dict) else None
        if handle:
            out[name] = handle
    return out


def families() -> list[tuple[str, list[str]]]:
    """(backbone class, its built-in preset names): the image classifiers' backbones and the
    DINO feature backbones, from this keras-hub's own tables (no network)."""
    models = keras_hub().models
    found = set(FEATURE_FAMILIES)
    for attr in dir(models):
        cls = getattr(models, attr)
        if attr.endswith("ImageClassifier") and getattr(cls, "backbone_cls", None) is not None:
            found.add(cls.backbone_cls.__name__)
    out = []
    for family in sorted(found):
        cls = getattr(models, family, None)
        if cls is not None:
            out.append((family, list(getattr(cls, "presets", {}) or {})))
    return out
