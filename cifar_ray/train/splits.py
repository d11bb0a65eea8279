"""The validation split, carved from train: stratified and seeded, the same for every model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:
    from cifar_ray.store.latents import Latents


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


def fit_then_val(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """The train ids with the fit share first, then validation, and the fit share's size."""
    fit, val = train_val_indices(labels, fraction, seed)
    return np.concatenate([fit, val]), len(fit)


def views(x_train, y_train, n_fit: int, test: tuple) -> dict[str, tuple]:
    """{"train": fit share, "val": validation, "test": test}, each (x, y), from a train split
    already in fit-then-validation order: views, not copies."""
    return {
        "train": (x_train[:n_fit], y_train[:n_fit]),
        "val": (x_train[n_fit:], y_train[n_fit:]),
        "test": test,
    }


def parts(x: dict, y: dict, fraction: float, seed: int) -> dict[str, tuple]:
    """The one split every model (head, baselines, raw pixels) trains and selects on, from
    arrays in id order (one gather of train)."""
    order, n_fit = fit_then_val(y["train"], fraction, seed)
    return views(x["train"][order], y["train"][order], n_fit, (x["test"], y["test"]))


def latent_parts(lat: Latents, fraction: float, seed: int) -> dict[str, tuple]:
    """`parts` for a feature store: train is decoded straight into fit-then-validation order,
    so "train" and "val" are views of one array and nothing is copied afterwards."""
    order, n_fit = fit_then_val(lat.y["train"], fraction, seed)
    x, y = lat.read("train", order)
    return views(x, y, n_fit, (lat.features("test"), lat.y["test"]))
