"""A near-free backbone, `--backbone benchmarks.nearfree:factory`: global average pooling,
then Dense(2048). It costs ~6k multiply-adds per image, so a run measures everything around
the model (start-up, reading the archive, Ray, writing Parquet), as on a fast GPU."""

from __future__ import annotations

DIM = 2048


def factory(input_shape, weights=None):
    import keras  # here, not at import: the driver loads this module without TensorFlow

    if weights is not None:
        raise ValueError(f"nearfree has no pretrained weights ({weights!r})")
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(DIM)],
        name="nearfree",
    )


factory.backbone_spec = {
    "name": "nearfree",
    "default_size": 32,
    "min_size": 32,
    "preprocessing": "tf",
    "dim": DIM,
}
