"""The dense classifier head on frozen features, and its epoch loop with resumable state."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EPOCH_DELAY_ENV = "CIFAR_RAY_TEST_EPOCH_DELAY_S"  # test-only: slow epochs so a test can kill one


def build(
    dim: int,
    n_classes: int,
    hidden: int,
    dropout: float,
    learning_rate: float,
    seed: int,
    x_fit: np.ndarray | None = None,
):
    """The seeds' head: Dense(hidden, relu) -> Dropout -> Dense(n_classes, softmax), Adam.

    With `x_fit`, features are standardised first (as the baselines are), with statistics
    of the training split saved inside the model: frozen features can have tiny variance.
    """
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()  # before Keras imports TensorFlow
    import keras

    keras.utils.set_random_seed(seed)
    scale = []
    if x_fit is not None:
        scale = [keras.layers.Normalization(name="standardise")]
        scale[0].adapt(x_fit)
    model = keras.Sequential(
        [
            keras.Input((dim,), name="features"),
            *scale,
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dropout(dropout, seed=seed),
            keras.layers.Dense(n_classes, activation="softmax"),
        ],
        name="dense_head",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@dataclass
class LoopState:
    """Saved with every checkpoint, so a resumed run continues the same schedule."""

    epoch: int = 0  # epochs finished
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    waited: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    resumed_from: int | None = None
    stopped_early: bool = False
    run_key: str | None = None  # train_head.run_key: the config and data this state belongs to

    def save(self, folder: Path) -> None:
        (folder / "state.json").write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, folder: Path) -> LoopState:
        return cls(**json.loads((folder / "state.json").read_text()))


def fit(
    model,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    patience: int,
    seed: int,
    state: LoopState,
    on_epoch: Callable[[LoopState, bool], None],
) -> LoopState:
    """One Keras epoch at a time; `on_epoch(state, improved)` checkpoints after each."""
    import keras

    x_fit, y_fit, x_val, y_val = data
    delay = float(os.environ.get(EPOCH_DELAY_ENV, "0") or 0)
    while state.epoch < epochs and not state.stopped_early:
        keras.utils.set_random_seed(seed + state.epoch)  # same shuffles after a resume
        started = time.perf_counter()
        h = model.fit(
            x_fit, y_fit, batch_size=batch_size, epochs=1, verbose=0,
            validation_data=(x_val, y_val), shuffle=True,
        )  # fmt: skip
        for key, values in h.history.items():
            state.history.setdefault(key, []).append(float(values[-1]))
        state.history.setdefault("seconds", []).append(time.perf_counter() - started)
        val_loss = state.history["val_loss"][-1]
        improved = val_loss < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch, state.waited = val_loss, state.epoch, 0
        else:
            state.waited += 1
            state.stopped_early = state.waited >= patience
        state.epoch += 1
        on_epoch(state, improved)
        if delay:
            time.sleep(delay)
    return state
