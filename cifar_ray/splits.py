"""The validation split, carved from train: stratified and seeded, the same for every model."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def train_val_indices(labels: np.ndarray, fraction: float, seed: int):
    """Stratified where every class has two or more images; otherwise a plain seeded split."""
    index = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    try:
        fit, val = train_test_split(index, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:  # too few images per class for the requested split
        fit, val = train_test_split(index, test_size=fraction, random_state=seed)
    return np.sort(fit), np.sort(val)


def parts(x: dict, y: dict, fraction: float, seed: int) -> dict[str, tuple]:
    """{"train": fit share of train, "val": the rest of train, "test": test}, each (x, y);
    the one split every model (head, baselines, raw pixels) trains and selects on."""
    fit, val = train_val_indices(y["train"], fraction, seed)
    return {
        "train": (x["train"][fit], y["train"][fit]),
        "val": (x["train"][val], y["train"][val]),
        "test": (x["test"], y["test"]),
    }
