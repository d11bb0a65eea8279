"""The backbone registry: one spec per frozen feature extractor, beside how to build it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cifar_ray.errors import UserError


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str  # class name in keras.applications
    default_size: int  # the size its ImageNet weights were trained at
    min_size: int  # the smallest input Keras accepts for it
    preprocessing: str  # "tf" [-1,1], "torch" mean/std, "caffe" BGR minus mean, "raw" 0..255
    dim: int  # length of the pooled feature vector
    params_m: float = 0.0  # parameters, millions (no top)
    gmacs: float = 0.0  # multiply-adds per image at default_size, billions
    extra: dict = field(default_factory=dict)  # extra keyword arguments for the builder
    factory: Callable | None = None  # a user's own builder: (input_shape, weights) -> model

    def build(self, input_shape: tuple[int, int, int], weights: str | None):
        """The frozen backbone with global average pooling; weights is "imagenet" or None."""
        if self.factory is not None:
            return self.factory(input_shape=input_shape, weights=weights)
        import keras

        cls = getattr(keras.applications, self.application)
        return cls(
            include_top=False,
            weights=weights,
            input_shape=input_shape,
            pooling="avg",
            **self.extra,
        )


_REGISTRY: dict[str, Backbone] = {}


def register(spec: Backbone) -> Backbone:
    _REGISTRY[spec.name] = spec
    return spec


for _spec in (
    Backbone("inceptionv3", "InceptionV3", 299, 75, "tf", 2048, 21.8, 5.7),
    Backbone("xception", "Xception", 299, 71, "tf", 2048, 20.9, 8.4),
    Backbone("resnet50", "ResNet50", 224, 32, "caffe", 2048, 23.6, 4.1),
    Backbone("resnet50v2", "ResNet50V2", 224, 32, "tf", 2048, 23.6, 4.1),
    Backbone("mobilenetv2", "MobileNetV2", 224, 32, "tf", 1280, 2.3, 0.3),
    Backbone(
        "mobilenetv3small", "MobileNetV3Small", 224, 32, "raw", 576, 0.9, 0.06,
        extra={"include_preprocessing": True},
    ),
    Backbone(
        "mobilenetv3large", "MobileNetV3Large", 224, 32, "raw", 960, 3.0, 0.22,
        extra={"include_preprocessing": True},
    ),
    Backbone("efficientnetb0", "EfficientNetB0", 224, 32, "raw", 1280, 4.0, 0.39),
    Backbone("efficientnetv2b0", "EfficientNetV2B0", 224, 32, "raw", 1280, 5.9, 0.72),
    Backbone("densenet121", "DenseNet121", 224, 32, "torch", 1024, 7.0, 2.9),
    Backbone("vgg16", "VGG16", 224, 32, "caffe", 512, 14.7, 15.5),
    Backbone("vgg19", "VGG19", 224, 32, "caffe", 512, 20.0, 19.6),
    Backbone("convnexttiny", "ConvNeXtTiny", 224, 32, "raw", 768, 27.8, 4.5),
):  # fmt: skip
    register(_spec)


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Backbone:
    """A registered name, or `module.path:factory` for a user's own model."""
    if ":" in name:
        return _custom(name)
    key = name.lower().replace("_", "").replace("-", "")
    if key not in _REGISTRY:
        raise UserError(f"unknown backbone {name!r}; choose from: {', '.join(names())}")
    return _REGISTRY[key]


def _custom(ref: str) -> Backbone:
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"backbone {ref!r}: cannot import ({exc})") from None
    if not callable(factory):
        raise UserError(f"backbone {ref!r}: {attr} is not callable")
    spec = getattr(factory, "backbone_spec", {})
    return Backbone(
        name=spec.get("name", attr),
        application=ref,
        default_size=spec.get("default_size", 224),
        min_size=spec.get("min_size", 32),
        preprocessing=spec.get("preprocessing", "tf"),
        dim=spec.get("dim", 0),
        factory=lambda input_shape, weights: factory(input_shape=input_shape, weights=weights),
    )


def check_image_size(spec: Backbone, image_size: int | None) -> int:
    size = spec.default_size if image_size is None else image_size
    if size < spec.min_size:
        raise UserError(
            f"--image-size {size} is below {spec.name}'s minimum of {spec.min_size} pixels"
        )
    if size > 1024:
        raise UserError(f"--image-size {size} is too large (at most 1024)")
    return size
