"""A user's own backbone factories for `--backbone tests.custom_backbone:NAME`: one that works,
and the ways a factory goes wrong."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cifar_ray.embed.backbones import Backbone

# "DIR:N" for `rendezvous`: every actor waits there until N actors have come that far.
RENDEZVOUS_ENV = "CIFAR_RAY_TEST_RENDEZVOUS"
# A folder for `hangs_once`: the actor that renames its `armed` file to `hung-<pid>` blocks.
HANG_ENV = "CIFAR_RAY_TEST_HANG_DIR"


def small_cnn(input_shape, weights=None):
    """Two strided convolutions and average pooling: (h, w, 3) floats in [-1, 1] -> 16 floats."""
    import keras

    if weights is not None:
        raise ValueError(f"small_cnn has no pretrained weights ({weights!r})")
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ],
        name="small_cnn",
    )


small_cnn.backbone_spec = {
    "name": "smallcnn",
    "default_size": 32,
    "min_size": 16,
    "preprocessing": "tf",
    "dim": 16,
}

# What a package can register under the `cifar_ray.backbones` entry-point group instead.
SMALL_SPEC = Backbone("small", "tests.custom_backbone:small_cnn", 32, 16, "tf", 16,
                      factory=small_cnn)  # fmt: skip


def no_pooling(input_shape, weights=None):
    """Forgets the pooling: rank-4 feature maps, not vectors."""
    import keras

    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))


def int_output(input_shape, weights=None):
    """Vectors, but quantised to integers."""
    import keras

    inputs = keras.Input(input_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.ops.cast(pooled, "int32"))


def fails(input_shape, weights=None):
    raise RuntimeError("boom")


def not_a_model(input_shape, weights=None):
    return lambda images: images


def wrong_dim(input_shape, weights=None):
    return small_cnn(input_shape, weights)


wrong_dim.backbone_spec = {"dim": 99}


def bad_spec(input_shape, weights=None):
    return small_cnn(input_shape, weights)


bad_spec.backbone_spec = {"preprocessing": "imagenet"}

NOT_CALLABLE = 42


def _in_ray_actor() -> bool:
    """True inside a Ray actor; the driver, which builds custom backbones once to check them
    before Ray starts, is not one."""
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def fails_in_actor(input_shape, weights=None):
    """Builds in the driver; in an actor the model fails on the warm-up batch, as a GPU out of
    memory would: a runtime error of the model, not the user's factory failing (which is a
    user error)."""
    model = small_cnn(input_shape, weights)
    if not _in_ray_actor():
        return model
    import keras
    import tensorflow as tf

    class OutOfMemory(keras.layers.Layer):
        def compute_output_spec(self, x):  # building the model computes nothing
            return keras.KerasTensor(x.shape, x.dtype)

        def call(self, x):
            check = tf.debugging.Assert(False, [SIMULATED_OOM])
            with tf.control_dependencies([check]):
                return tf.identity(x)

    return keras.Sequential([*model.layers, OutOfMemory()], name="small_cnn")


SIMULATED_OOM = "CUDA_ERROR_OUT_OF_MEMORY: out of memory (simulated)"


def dies_in_actor(input_shape, weights=None):
    """Builds in the driver; in an actor the process itself exits, as a segfault would."""
    if _in_ray_actor():
        os._exit(3)
    return small_cnn(input_shape, weights)


def raises_in_actor(input_shape, weights=None):
    """Builds in the driver; in an actor the factory itself raises: the user's factory is at
    fault, which is a user error there too."""
    if _in_ray_actor():
        raise ValueError("these weights do not fit this node's model (simulated)")
    return small_cnn(input_shape, weights)


def rendezvous(input_shape, weights=None):
    """small_cnn, but an actor waits until RENDEZVOUS_ENV's N actors have all reached this point:
    the test decides which actors exist before any of them takes work, not the clock."""
    if _in_ray_actor() and os.environ.get(RENDEZVOUS_ENV):
        folder, _, count = os.environ[RENDEZVOUS_ENV].rpartition(":")
        import ray

        context = ray.get_runtime_context()
        gpu = context.get_assigned_resources().get("GPU", 0)
        mark = Path(folder) / f"{context.get_actor_id()}-{context.get_node_id()}-{gpu}"
        mark.touch()
        deadline = time.monotonic() + 600  # the test ends it first; never wait for ever
        while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
            time.sleep(0.1)
    return small_cnn(input_shape, weights)


def hangs_once(input_shape, weights=None):
    """small_cnn, but in an actor the run's first real batch (not the warm-up's blank one)
    blocks inside the model's call, as on a hung GPU or a stalled filesystem: the actor is
    alive, its process runs, and nothing comes back."""
    model = small_cnn(input_shape, weights)
    if not _in_ray_actor() or not os.environ.get(HANG_ENV):
        return model
    import keras
    import tensorflow as tf

    class BlocksOnce(keras.layers.Layer):
        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, x.dtype)

        def call(self, x):
            y = tf.py_function(_block_once, [x], x.dtype)
            y.set_shape(x.shape)
            return y

    return keras.Sequential([keras.Input(input_shape), BlocksOnce(), *model.layers],
                            name="small_cnn")  # fmt: skip


def _block_once(x):
    import numpy as np

    if np.ptp(x.numpy()) == 0:  # the warm-up's blank batch
        return x
    folder = Path(os.environ[HANG_ENV])
    try:
        (folder / "armed").rename(folder / f"hung-{os.getpid()}")  # one process wins
    except FileNotFoundError:
        return x
    deadline = time.monotonic() + 600  # the watchdog ends it first; never block for ever
    while time.monotonic() < deadline:
        time.sleep(0.5)
    return x


def blocks_in_actor(input_shape, weights=None):
    """Builds in the driver; in an actor the build never returns (a hung driver, a stopped
    process): the actor is placed and alive, and never ready."""
    deadline = time.monotonic() + 600  # the start bound ends it first; never block for ever
    while _in_ray_actor() and time.monotonic() < deadline:
        time.sleep(0.5)
    return small_cnn(input_shape, weights)


_STARTS = (fails_in_actor, dies_in_actor, raises_in_actor, rendezvous, hangs_once, blocks_in_actor)
for _factory in _STARTS:
    _factory.backbone_spec = {**small_cnn.backbone_spec, "name": _factory.__name__}


def nan_features(input_shape, weights=None):
    """small_cnn whose every feature is NaN, as a float16 overflow or a broken factory gives."""
    import keras

    model = small_cnn(input_shape, weights)
    return keras.Sequential([*model.layers, keras.layers.Rescaling(float("nan"))], name="nan")


def constant_features(input_shape, weights=None):
    """small_cnn whose features are the same for every image: a store that carries nothing."""
    import keras

    model = small_cnn(input_shape, weights)
    return keras.Sequential([*model.layers, keras.layers.Rescaling(0.0, offset=1.0)],
                            name="constant")  # fmt: skip


for _factory in (nan_features, constant_features):
    _factory.backbone_spec = {**small_cnn.backbone_spec, "name": _factory.__name__}
