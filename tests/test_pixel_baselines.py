"""Raw-pixel baselines learn a planted signal, report like the latent baselines, and reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_ray.train import pixel_baselines
from tests import cifar_files

KEYS = {"name", "kind", "params", "accuracy", "test", "history", "fit_s", "infer_s",
        "sample_predictions", "test_predictions"}  # fmt: skip


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    batch = cifar_files.planted_batch(n, seed)
    images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(batch[b"labels"], dtype=np.int64)


@pytest.fixture(scope="module")
def data() -> dict:
    return {"train": _split(500, 1), "val": _split(100, 2), "test": _split(200, 3)}


def _run(name: str, data: dict, seed: int = 0) -> dict:
    return pixel_baselines.run(
        name, data["train"], data["val"], data["test"], 10, epochs=3, seed=seed
    )


@pytest.mark.parametrize("name", sorted(pixel_baselines.CANDIDATES))
def test_learns_planted_signal_and_reproduces(name, data):
    first = _run(name, data)
    assert set(first) == KEYS
    assert first["name"] == name and first["kind"] == "raw-pixel baseline"
    assert first["accuracy"]["test"] > 0.4, first["accuracy"]  # chance is 0.1
    assert first["test"]["accuracy"] == first["accuracy"]["test"]
    assert np.asarray(first["test"]["confusion"]).sum() == len(data["test"][1])
    assert len(first["sample_predictions"]) == 64
    assert len(first["test_predictions"]) == len(data["test"][1])  # the audit's cleaned score
    history = first["history"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len({len(v) for v in history.values()}) == 1
    assert 1 <= first["params"]["epochs_run"] <= 3
    again = _run(name, data)
    assert again["accuracy"] == first["accuracy"]
    assert again["sample_predictions"] == first["sample_predictions"]


def test_unknown_name_is_refused(data):
    with pytest.raises(ValueError, match="unknown pixel baseline"):
        _run("pixel_transformer", data)
