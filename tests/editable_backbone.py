"""A user's factory module that tests write into their tmp folder and then edit, as a user
edits theirs between two runs: `write(folder, scale)` gives `module_name:factory`."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

SOURCE = '''"""A small factory whose outputs scale with SCALE: editing it changes every feature."""

SCALE = {scale}


def factory(input_shape, weights=None):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Rescaling(SCALE)(x), name="editable")


factory.backbone_spec = {{"name": "editable", "default_size": 32, "min_size": 16, "dim": 4}}
'''


def write(folder: Path, scale: float, module: str = "editable_bb") -> str:
    """The module file in `folder` (which the caller puts on sys.path / PYTHONPATH), fresh in
    this process too: the next import reads the file as it now is."""
    (folder / f"{module}.py").write_text(SOURCE.format(scale=scale))
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)  # same size, same second: stale
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    return f"{module}:factory"
