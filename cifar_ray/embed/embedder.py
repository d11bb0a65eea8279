"""The frozen embedder: uint8 32x32 batches in, pooled float32 features out, resize in-graph."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cifar_ray.embed import backbones, weights_cache
from cifar_ray.errors import UserError, first_line

log = logging.getLogger(__name__)

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything an actor needs to build an identical embedder; small and picklable."""

    backbone: str
    image_size: int
    weights: str  # "imagenet", "none" or a path to a weights file
    seed: int = 0
    batch_size: int = 0  # 0: chosen for the device and image size (see auto_batch_size)
    threads: int = 0  # TensorFlow intra-op threads; 0 lets TensorFlow decide
    precision: str = "float32"  # or a Keras mixed policy: mixed_float16, mixed_bfloat16
    xla: bool = False  # compile the whole embed step with XLA


def _preprocessing_layers(mode: str, scale_offset: tuple = ()) -> list:
    """keras.applications' preprocess_input for `mode` as layers; they also cast uint8 to float.
    "scale_offset" is a Keras Hub ImageConverter's x * scale + offset, per channel."""
    import keras

    if mode == "scale_offset":  # per channel; Rescaling casts to the policy's dtype too
        scale, offset = scale_offset
        return [keras.layers.Rescaling(list(scale), offset=list(offset))]
    if mode == "tf":  # x/127.5 - 1
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0)]
    if mode == "torch":  # x/255, then (x - mean) / std per RGB channel
        var = [s**2 for s in _TORCH_STD]
        return [
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Normalization(mean=list(_TORCH_MEAN), variance=var),
        ]
    if mode == "caffe":  # RGB -> BGR, minus the ImageNet mean (BGR), no scaling
        return [keras.layers.Rescaling(1.0), _CaffeLayer()]
    if mode == "raw":
        return [keras.layers.Rescaling(1.0)]  # the backbone preprocesses itself; cast only
    raise ValueError(f"unknown preprocessing {mode!r}")


@functools.cache
def _caffe_layer_class():
    """Defined once, on first use: this module does not import Keras at import time."""
    import keras

    class CaffePreprocess(keras.layers.Layer):
        """RGB to BGR and ImageNet mean subtraction, as keras.applications' caffe mode."""

        def call(self, x):
            # The mean in x's dtype: under a mixed policy x is float16/bfloat16, and a float32
            # constant would make the subtraction fail.
            mean = keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)
            return keras.ops.flip(x, axis=-1) - mean

    return CaffePreprocess


def _CaffeLayer():
    return _caffe_layer_class()()


def build_model(spec: EmbedderSpec):
    """uint8 (N,32,32,3) -> float32 (N,dim); weights load errors become UserError."""
    import keras

    backbone = backbones.get(spec.backbone)
    size = backbones.check_image_size(backbone, spec.image_size)
    keras.utils.set_random_seed(spec.seed)  # --weights none: identical in every actor
    if backbone.factory is not None:  # a user's model: errors and what it returns, checked
        backbone = replace(backbone, factory=_checked_factory(backbone))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(spec.precision)  # weights stay float32
    try:
        inner = _build_backbone(backbone, (size, size, 3), spec.weights)
        inputs = keras.Input((32, 32, 3), dtype="uint8", name="pixels")
        x = inputs
        for layer in _preprocessing_layers(backbone.preprocessing, backbone.scale_offset):
            x = layer(x)
        if size != 32:
            x = keras.layers.Resizing(size, size, interpolation="bilinear", name="upscale")(x)
        features = inner(x)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model = keras.Model(inputs, features, name=f"embed_{backbone.name}_{size}")
    model.trainable = False
    _check_output(model, spec.backbone)
    return model


def _checked_factory(backbone: backbones.Backbone):
    """The factory, wrapped: what it raises, and a model that does not map the images it is
    given to float vectors (of the declared dim), become UserErrors naming the factory."""
    import keras

    who = f"backbone factory {backbone.application}"

    def build(input_shape, weights):
        try:
            model = backbone.factory(input_shape=input_shape, weights=weights)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"{who} failed: {first_line(exc)}") from exc
        if not isinstance(model, keras.Model):
            raise UserError(f"{who} returned {type(model).__name__}, not a keras.Model")
        try:  # symbolic: what it does with these images, nothing computed
            out = model(keras.Input(input_shape))
        except Exception as exc:
            raise UserError(f"{who}: its model does not take {input_shape} images "
                            f"({first_line(exc)})") from exc  # fmt: skip
        if not isinstance(out, keras.KerasTensor):
            raise UserError(f"{who} must return a model with one output, not {type(out).__name__}")
        if len(out.shape) != 2 or "float" not in str(out.dtype):
            raise UserError(f"{who} must map images to float vectors (batch, dim); its model "
                            f"gives {out.dtype} {tuple(out.shape)}")  # fmt: skip
        if backbone.dim and out.shape[-1] != backbone.dim:
            raise UserError(f"{who} gives {out.shape[-1]} features; its spec says {backbone.dim}")
        return model

    return build


def _build_backbone(backbone: backbones.Backbone, shape: tuple[int, int, int], weights: str):
    if weights == "imagenet":
        return _build_imagenet(backbone, shape)
    if weights == "none":
        return backbone.build(shape, None)
    path = Path(weights_cache.resolve(weights)).expanduser()
    if not path.is_file():
        raise UserError(f"--weights {weights}: no such file (use imagenet, none or a .h5 file)")
    model = backbone.build(shape, None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError, OSError or KeyError for a bad fit
        first = first_line(exc, 160, typed=False)
        raise UserError(f"--weights {path}: does not fit {backbone.name} ({first})") from None
    skipped = [w for w in caught if "Skipping" in str(w.message) or "mismatch" in str(w.message)]
    if skipped:  # Keras only warns when part of a file does not match: never embed with that
        first = first_line(str(skipped[0].message), 160)
        raise UserError(f"--weights {path}: does not fit {backbone.name} ({first})")
    return model


def _build_imagenet(backbone: backbones.Backbone, shape: tuple[int, int, int]):
    """Keras downloads and caches the file; the lock makes that once per node, not per actor."""
    from cifar_ray.locks import file_lock, keras_home

    home = keras_home()
    with file_lock(home / "models" / f"{backbone.name}.lock"):
        verify_keras_cache(backbone)
        try:
            return backbone.build(shape, "imagenet")
        except UserError:
            raise
        except Exception as exc:  # get_file raises a bare Exception when it cannot download
            hint = (
                f"; offline, put {backbone.weights_file} in {home / 'models'} or use --weights FILE"
                if backbone.weights_file
                else ""
            )
            reason = first_line(exc)
            raise UserError(
                f"{backbone.name}: cannot load ImageNet weights ({reason}){hint}"
            ) from None


def verify_keras_cache(backbone: backbones.Backbone) -> None:
    """The cached ImageNet file must hash to the registry's value before it is used: the
    fingerprint names the file by that hash. Keras would re-download a file that does not
    match, deleting it when the download fails; offline that loses the file and the reason,
    so a mismatch is refused here, naming the file, and nothing is downloaded or deleted.
    A file not there yet is left to Keras (it checks what it downloads against the same hash)."""
    if not (backbone.weights_file and backbone.weights_hash):
        return  # MobileNetV2: Keras names no hash, nothing to check against
    path = backbones.keras_models_dir() / backbone.weights_file
    if not path.is_file():
        return
    expected = backbone.weights_hash
    algorithm = "sha256" if len(expected) == 64 else "md5"  # Keras' "auto" rule
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise UserError(
            f"{path}: its {algorithm} is {digest.hexdigest()[:12]}…, Keras expects "
            f"{expected[:12]}… for {backbone.name} (a partial download or another file); "
            "delete it to download it again, or put the right file there"
        )


def _check_output(model, name: str) -> None:
    shape = model.output_shape
    if len(shape) != 2 or "float" not in str(model.output.dtype):
        raise UserError(f"backbone {name!r} must map images to float vectors (rank 2), got {shape}")


def weights_digest(model) -> str:
    """sha256 over the weight values: actors that disagree would mix incompatible features."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
    return digest.hexdigest()


def auto_batch_size(image_size: int, on_gpu: bool) -> int:
    """Measured with InceptionV3 on 2 CPU cores: 75 px runs 519 img/s at batch 64 and 624 at
    256, while 299 px is flat from 8 to 64 (27-29 img/s) and activation memory grows with
    batch x pixels. So: the largest power of two within 256 x (75/size)^2, 32 at least.
    GPUs want large batches at any size."""
    if on_gpu:
        return 256
    budget = 256 * (75 / image_size) ** 2
    return max(32, 2 ** int(math.log2(max(1.0, budget))))


class Embedder:
    """Model-as-callable: loads once, then maps uint8 pixel batches to features."""

    def __init__(self, spec: EmbedderSpec):
        import tensorflow as tf

        self.on_gpu = bool(tf.config.list_physical_devices("GPU"))
        if spec.batch_size <= 0:
            spec = replace(spec, batch_size=auto_batch_size(spec.image_size, self.on_gpu))
        self.spec = spec
        self.model = build_model(spec)
        self.dim = int(self.model.output_shape[-1])
        self.digest = weights_digest(self.model)
        sig = tf.TensorSpec((None, 32, 32, 3), tf.uint8)
        self._forward = tf.function(
            lambda x: self.model(x, training=False), input_signature=[sig], jit_compile=spec.xla
        )
        self(np.zeros((spec.batch_size, 32, 32, 3), np.uint8))  # trace and compile up front

    def __call__(self, images: np.ndarray, on_batch=None) -> np.ndarray:
        """Fixed-size batches (the last one padded under XLA, which compiles per shape);
        `on_batch(n)` after each, so progress can move within a shard."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        step = self.spec.batch_size
        for start in range(0, len(images), step):
            batch = images[start : start + step]
            n = len(batch)
            if self.spec.xla and n < step:
                batch = np.concatenate([batch, np.zeros((step - n, 32, 32, 3), np.uint8)])
            out[start : start + n] = self._forward(batch).numpy()[:n]
            if on_batch is not None:
                on_batch(n)
        return out
