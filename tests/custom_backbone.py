"""A user's own backbone factories for `--backbone tests.custom_backbone:NAME`: one that works,
and the ways a factory goes wrong."""

from __future__ import annotations

from cifar_ray.backbones import Backbone


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
