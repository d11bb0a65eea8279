"""The backbone registry: one spec per frozen feature extractor, beside how to build it.

`get(name)` knows the built-in table, packages' entry points in the `cifar_ray.backbones` group
(each loads to a `Backbone` or a factory), `hub:<preset>` for a Keras Hub image backbone (hub.py)
and `module.path:factory` for a user's own
`factory(input_shape=(h, w, 3), weights="imagenet"|None)`: a Keras model from float images to
vectors, described by an optional `factory.backbone_spec` dict with keys from SPEC_KEYS.

A factory's code is part of the fingerprint (fingerprint.factory_identity): its module file's
sha256. Weights it loads itself for weights="imagenet" are only known if it declares them:
`weights_file` (absolute, or a name under KERAS_HOME/models) and optionally `weights_hash` (as
Keras' get_file takes it), or a `version` string it bumps when anything it loads changes.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

from cifar_ray.errors import UserError, first_line

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cifar_ray.backbones"
# On float 0..255 RGB, as keras.applications' preprocess_input: "tf" x/127.5-1, "torch" x/255
# then ImageNet mean/std, "caffe" RGB->BGR minus ImageNet mean, "raw" as is (model preprocesses).
PREPROCESSING = ("tf", "torch", "caffe", "raw")
SPEC_KEYS = {"name", "default_size", "min_size", "preprocessing", "dim", "weights_file",
             "weights_hash", "version"}  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names the feature-store directory


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str  # class name in keras.applications, or where the factory comes from
    default_size: int  # the size its ImageNet weights were trained at
    min_size: int  # the smallest input Keras accepts for it (include_top=False)
    preprocessing: str  # one of PREPROCESSING
    dim: int  # length of the pooled feature vector (0: unknown until built)
    params_m: float = 0.0  # parameters, millions (no top)
    gmacs: float = 0.0  # multiply-adds per image at default_size, billions (no top)
    weights_file: str | None = None  # the no-top .h5 Keras caches under ~/.keras/models/
    weights_hash: str | None = None  # Keras' file_hash for it (md5 or sha256; None: unchecked)
    extra: dict = field(default_factory=dict)  # extra keyword arguments for the builder
    factory: Callable | None = None  # a user's own builder: (input_shape, weights) -> model
    version: str = ""  # a factory's declared version: bumped when what it builds or loads changes
    preset: str = ""  # a Keras Hub preset (`hub:<preset>`, see hub.py); "" for the others
    scale_offset: tuple = ()  # preprocessing "scale_offset": per-channel (scale, offset) on 0..255

    def build(self, input_shape: tuple[int, int, int], weights: str | None):
        """The backbone, pooled to a vector; weights is "imagenet" or None. build_model freezes it
        (after any weights file loads: legacy .h5 files load by trainable-first order)."""
        import keras

        if self.factory is not None:  # embedder.build_model checks what it gives back
            return self.factory(input_shape=tuple(input_shape), weights=weights)
        if self.preset:
            from cifar_ray.embed import hub

            return hub.build(self, input_shape, weights)
        cls = getattr(keras.applications, self.application, None)
        if cls is None:
            raise UserError(f"backbone {self.name!r}: no keras.applications.{self.application}")
        return cls(include_top=False, weights=weights, input_shape=input_shape, pooling="avg",
                   **self.extra)  # fmt: skip


_REGISTRY: dict[str, Backbone] = {}


def register(spec: Backbone) -> Backbone:
    _REGISTRY[spec.name] = spec
    return spec


# Sizes from keras' obtain_input_shape; params: count_params() with weights=None; GMACs: conv and
# dense layers at default_size, no classifier head; weights file and file_hash as
# keras/src/applications/*.py pass them to get_file (MobileNetV2 passes no hash and picks its file
# by input size: 96, 128, 160, 192, else 224).
_H5 = "_weights_tf_dim_ordering_tf_kernels_notop.h5"
_PRE = {"include_preprocessing": True}
for _spec in (
    Backbone("inceptionv3", "InceptionV3", 299, 75, "tf", 2048, 21.80, 5.71,
             "inception_v3" + _H5, "bcbd6486424b2319ff4ef7d526e38f63"),
    Backbone("xception", "Xception", 299, 71, "tf", 2048, 20.86, 8.36,
             "xception" + _H5, "b0042744bf5b25fce3cb969f33bebb97"),
    Backbone("resnet50", "ResNet50", 224, 32, "caffe", 2048, 23.59, 3.86,
             "resnet50" + _H5, "4d473c1dd8becc155b73f8504c6f6626"),
    Backbone("resnet50v2", "ResNet50V2", 224, 32, "tf", 2048, 23.56, 3.48,
             "resnet50v2" + _H5, "fac2f116257151a9d068a22e544a4917"),
    Backbone("mobilenetv2", "MobileNetV2", 224, 32, "tf", 1280, 2.26, 0.30,
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", None),
    Backbone("mobilenetv3small", "MobileNetV3Small", 224, 32, "raw", 576, 0.94, 0.055,
             "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
             "d3e8ec802a04aa4fc771ee12a9a9b836", extra=_PRE),
    Backbone("mobilenetv3large", "MobileNetV3Large", 224, 32, "raw", 960, 3.00, 0.21,
             "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
             "07fb09a5933dd0c8eaafa16978110389", extra=_PRE),
    Backbone("efficientnetb0", "EfficientNetB0", 224, 32, "raw", 1280, 4.05, 0.39,
             "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
    Backbone("efficientnetv2b0", "EfficientNetV2B0", 224, 32, "raw", 1280, 5.92, 0.72,
             "efficientnetv2-b0_notop.h5", "893217f2bb855e2983157299931e43ff", extra=_PRE),
    Backbone("densenet121", "DenseNet121", 224, 32, "torch", 1024, 7.04, 2.83,
             "densenet121" + _H5, "30ee3e1110167f948a6b9946edeeb738"),
    Backbone("vgg16", "VGG16", 224, 32, "caffe", 512, 14.71, 15.35,
             "vgg16" + _H5, "6d6bbae143d832006294945121d1f1fc"),
    Backbone("vgg19", "VGG19", 224, 32, "caffe", 512, 20.02, 19.51,
             "vgg19" + _H5, "253f8cb515780f3b799900260a226db6"),
    Backbone("convnexttiny", "ConvNeXtTiny", 224, 32, "raw", 768, 27.82, 4.46,
             "convnext_tiny_notop.h5",
             "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1", extra=_PRE),
):  # fmt: skip
    register(_spec)


def key(name: str) -> str:
    """The one spelling a backbone is known by: `ResNet-50`, `resnet_50` and `resnet50` are one
    backbone to the registry, to entry points and to `--image-size name=N`."""
    return name.lower().replace("_", "").replace("-", "")


def names() -> list[str]:
    """Built-in and entry-point names; entry points are listed here, loaded by `get`."""
    return sorted({*_REGISTRY, *_entry_points()})


def get(name: str) -> Backbone:
    """A registered name, an entry point's name, `hub:<preset>` or `module.path:factory`."""
    from cifar_ray.embed import hub

    if hub.is_hub(name):
        return hub.spec(name.strip())
    if ":" in name:
        return _custom(name)
    known = key(name)
    if known in _REGISTRY:
        return _REGISTRY[known]
    if known in _entry_points():
        return _load_entry_point(known)
    raise UserError(f"unknown backbone {name!r}; choose from: {', '.join(names())}")


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = key(ep.name)
        if name in _REGISTRY or name in found or not _NAME.fullmatch(name):
            log.warning("ignoring backbone entry point %s = %s: name taken or invalid",
                        ep.name, ep.value)  # fmt: skip
        else:
            found[name] = ep
    return found


@functools.cache
def _load_entry_point(name: str) -> Backbone:
    ep = _entry_points()[name]
    origin = f"backbone {name!r} (entry point {ep.value})"
    try:
        obj = ep.load()
    except Exception as exc:
        raise UserError(f"{origin}: cannot load ({first_line(exc)})") from exc
    if isinstance(obj, Backbone):  # the name a user types is the name of its store
        return _checked(replace(obj, name=name), origin)
    if not callable(obj):
        raise UserError(f"{origin}: a {type(obj).__name__}, neither a Backbone nor a factory")
    return _from_factory(obj, ep.value, origin, name=name)


def _custom(ref: str) -> Backbone:
    module_name, _, attr = ref.partition(":")
    try:
        factory = functools.reduce(getattr, attr.split("."), _import(module_name))
    except Exception as exc:  # ImportError, AttributeError, or whatever the module raises
        raise UserError(f"backbone {ref!r}: cannot import ({first_line(exc)}); "
                        "expected module.path:factory") from None  # fmt: skip
    if not callable(factory):
        raise UserError(f"backbone {ref!r}: {attr} is a {type(factory).__name__}, not callable")
    return _from_factory(factory, ref, f"backbone {ref!r}")


def _import(module_name: str):
    """As `python -m` would: the console script leaves the working directory off sys.path (Ray
    puts the driver's on its workers' path)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.partition(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.append(os.getcwd())
        return importlib.import_module(module_name)


def _from_factory(factory: Callable, ref: str, origin: str, name: str | None = None) -> Backbone:
    spec = getattr(factory, "backbone_spec", None) or {}
    if not isinstance(spec, dict) or set(spec) - SPEC_KEYS:
        raise UserError(f"{origin}: backbone_spec must be a dict with keys from "
                        f"{sorted(SPEC_KEYS)}, got {spec!r}")  # fmt: skip
    fields = {"name": ref.rpartition(":")[2].rpartition(".")[2], "default_size": 224,
              "min_size": 32, "preprocessing": "tf", "dim": 0, **spec}  # fmt: skip
    return _checked(Backbone(**fields, application=ref, factory=factory), origin, name)


def _checked(b: Backbone, origin: str, name: str | None = None) -> Backbone:
    b = replace(b, name=name) if name else b
    sizes = (b.default_size, b.min_size, b.dim)
    if not (isinstance(b.name, str) and _NAME.fullmatch(b.name)):
        problem = f"name {b.name!r} must be letters, digits, '.', '_' or '-'"
    elif b.preprocessing not in PREPROCESSING:
        problem = f"preprocessing {b.preprocessing!r} is not one of {', '.join(PREPROCESSING)}"
    elif not all(isinstance(v, int) for v in sizes) or not 1 <= b.min_size <= b.default_size:
        problem = f"(default_size, min_size, dim) {sizes}: need ints, 1 <= min_size <= default"
    elif b.dim < 0:
        problem = f"dim {b.dim} is negative (0: unknown)"
    elif not all(isinstance(v, str | None) for v in (b.weights_file, b.weights_hash, b.version)):
        problem = "weights_file, weights_hash and version must be strings"
    else:
        return b
    raise UserError(f"{origin}: {problem}")


def keras_models_dir() -> Path:
    """Where keras.utils.get_file caches weights files: KERAS_HOME (or ~/.keras), or
    /tmp/.keras when that is not writable (its rule)."""
    from cifar_ray.locks import keras_home

    home = keras_home()
    if not os.access(home, os.W_OK):
        home = Path("/tmp/.keras")
    return home / "models"


def check_image_size(spec: Backbone, image_size: int | None) -> int:
    size = spec.default_size if image_size is None else image_size
    if size < spec.min_size:
        raise UserError(
            f"--image-size {size} is below {spec.name}'s minimum of {spec.min_size} pixels"
        )
    if size > 1024:
        raise UserError(f"--image-size {size} is too large (at most 1024)")
    return size
