"""Raw-pixel baselines (an MLP and a small CNN on 32x32 pixels): what the frozen backbone buys."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from cifar_ray.train import metrics
from cifar_ray.train.results import PIXEL_KIND, ModelResult

KIND = PIXEL_KIND
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _mlp(keras, n_classes: int, seed: int) -> list:
    return [
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2, seed=seed),
        keras.layers.Dense(n_classes, activation="softmax"),
    ]


def _cnn(keras, n_classes: int, seed: int) -> list:
    return [
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.2, seed=seed),
        keras.layers.Dense(n_classes, activation="softmax"),
    ]


# name -> the layers after the shared Rescaling input
CANDIDATES: dict[str, Callable] = {"pixel_mlp": _mlp, "pixel_cnn": _cnn}


def build(name: str, n_classes: int, seed: int = 0, learning_rate: float = 1e-3):
    """uint8 (32, 32, 3) in, softmax out; pixels are scaled to [-1, 1] inside the model."""
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()  # a Ray task's own process: GPU memory growth before Keras loads TF
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3), name="pixels"),
            keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            *CANDIDATES[name](keras, n_classes, seed),
        ],
        name=name,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _fit(
    model, train: tuple, val: tuple, *, epochs: int, batch_size: int, patience: int, seed: int
):
    """Early stopping on validation loss, best weights restored; test is never seen here."""
    import keras

    keras.utils.set_random_seed(seed)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    h = model.fit(
        train[0], train[1], validation_data=val, epochs=epochs, batch_size=batch_size,
        shuffle=True, verbose=0, callbacks=[stop],
    )  # fmt: skip
    history = {k: [round(float(v), 6) for v in h.history.get(k, [])] for k in HISTORY_KEYS}
    val_loss = history["val_loss"]
    params = {
        "epochs": epochs,
        "epochs_run": len(val_loss),
        "best_epoch": int(np.argmin(val_loss)) if val_loss else -1,
        "stopped_early": len(val_loss) < epochs,
        "batch_size": batch_size,
        "weights": int(model.count_params()),
    }
    return history, params


def _predict(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    if not len(images):
        return np.zeros(0, dtype=np.int64)
    return np.argmax(model.predict(images, batch_size=batch_size, verbose=0), axis=1)


def run(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    *,
    epochs: int = 5,
    seed: int = 0,
    batch_size: int = 64,
    patience: int = 2,
) -> dict:
    """Train on `train`, monitor on `val`, then report like baselines.run (plus history)."""
    if name not in CANDIDATES:
        raise ValueError(f"unknown pixel baseline {name!r}; choose from {sorted(CANDIDATES)}")
    started = time.perf_counter()
    model = build(name, n_classes, seed)
    history, params = _fit(
        model, train, val, epochs=epochs, batch_size=batch_size, patience=patience, seed=seed
    )
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    test_pred = _predict(model, test[0])
    infer_s = time.perf_counter() - started
    accuracy = {
        "train": metrics.accuracy(train[1], _predict(model, train[0])),
        "val": metrics.accuracy(val[1], _predict(model, val[0])),
        "test": metrics.accuracy(test[1], test_pred),
    }
    return ModelResult.scored(
        name, KIND, params, accuracy, test[1], test_pred, n_classes, fit_s=fit_s,
        infer_s=infer_s, history=history,
    ).to_dict()  # fmt: skip
