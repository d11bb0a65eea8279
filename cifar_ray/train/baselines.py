"""scikit-learn baselines on the same latents; hyper-parameters chosen on validation only."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from cifar_ray.train import metrics
from cifar_ray.train.results import BASELINE_KIND, ModelResult

# name -> (estimator for a hyper-parameter value, the parameter's name, values to try)
CANDIDATES: dict[str, tuple[Callable, str, tuple]] = {
    "logreg": (lambda c: LogisticRegression(C=c, max_iter=500), "C", (0.01, 0.1, 1.0)),
    "linear_svm": (lambda c: LinearSVC(C=c, max_iter=2000), "C", (0.001, 0.01, 0.1)),
    "knn_cosine": (
        lambda k: KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute"),
        "k",
        (5, 10, 20),
    ),
}


def select(
    name: str, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[Pipeline, dict]:
    """Fit each candidate on the fit split, keep the best on validation. Never sees test."""
    make, param, values = CANDIDATES[name]
    if param == "k":  # a neighbour count above the fit rows is no model; a tiny fit set gets all
        values = tuple(v for v in values if v <= len(y_fit)) or (len(y_fit),)
    best, best_acc, scores = None, -1.0, {}
    for value in values:
        model = make_pipeline(StandardScaler(), make(value)).fit(x_fit, y_fit)
        scores[str(value)] = acc = metrics.accuracy(y_val, model.predict(x_val))
        if acc > best_acc:
            best, best_acc, chosen = model, acc, value
    return best, {param: chosen, "val_scores": scores}


def run(name: str, fit: tuple, val: tuple, test: tuple, n_classes: int) -> dict:
    """Select on (fit, val), then report train/val/test accuracy of the chosen model: a
    `ModelResult.to_dict()` (a Ray task returns plain data)."""
    started = time.perf_counter()
    model, params = select(name, *fit, *val)
    fit_s = time.perf_counter() - started
    chosen = next(v for k, v in params.items() if k != "val_scores")
    started = time.perf_counter()
    test_pred = model.predict(test[0])
    infer_s = time.perf_counter() - started
    accuracy = {
        "train": metrics.accuracy(fit[1], model.predict(fit[0])),
        "val": params["val_scores"][str(chosen)],  # scored during selection
        "test": metrics.accuracy(test[1], test_pred),
    }
    return ModelResult.scored(
        name, BASELINE_KIND, params, accuracy, test[1], test_pred, n_classes,
        fit_s=fit_s, infer_s=infer_s,
    ).to_dict()  # fmt: skip
