"""scikit-learn baselines on the same latents; hyper-parameters chosen on validation only.

Every input is standardised (logistic regression and the linear SVM need it to converge, and
cosine neighbours then weigh every dimension alike). A grid whose best value sits on its edge
is extended past that edge until the score stops improving: on pretrained features the best
values lay outside the fixed grids. The solvers scale to 50,000 x 2,048: lbfgs on standardised
inputs for logistic regression, stochastic gradient descent for the hinge loss, one neighbour
query for every k; a linear model's value is chosen on at most SELECT_ROWS fit rows and then
fitted once on all of them (benchmarks/baselines_fit.py measures it)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from cifar_ray.train import metrics
from cifar_ray.train.results import BASELINE_KIND, ModelResult

SELECT_ROWS = 10_000  # fit rows a linear model's grid is scored on
# The hinge loss gets five epochs: on 10,000 x 2,048 it scored 0.720, 0.719 and 0.717 after
# 5, 10 and 20 (never converging to tol), at 3.0, 5.5 and 9.8 s. Its warning is expected.
SCORE_ROWS = 10_000  # train rows its train accuracy is measured on
MAX_STEPS = 4  # extensions past each edge of a grid


@dataclass(frozen=True)
class Grid:
    """A parameter's first values, and how it extends: times `step` up, divided by it down,
    within [low, high]."""

    param: str
    values: tuple
    step: float
    low: float
    high: float

    def beyond(self, value, up: bool):
        nxt = value * self.step if up else value / self.step
        nxt = round(nxt) if isinstance(value, int) else float(f"{nxt:.3g}")  # 1e-06, not 1.0..2e-06
        return nxt if self.low <= nxt <= self.high and nxt != value else None


# name -> (estimator for a hyper-parameter value, its grid)
CANDIDATES: dict[str, tuple[Callable, Grid]] = {
    "logreg": (lambda c: LogisticRegression(C=c, max_iter=300, tol=1e-3),
               Grid("C", (0.01, 0.1, 1.0), 10, 1e-6, 1e3)),
    "linear_svm": (lambda a: SGDClassifier(loss="hinge", alpha=a, max_iter=5, tol=1e-3,
                                           random_state=0),
                   Grid("alpha", (1e-5, 1e-4, 1e-3), 10, 1e-8, 1.0)),
    "knn_cosine": (lambda k: KNeighborsClassifier(n_neighbors=k, metric="cosine",
                                                  algorithm="brute"),
                   Grid("k", (5, 10, 20), 2, 1, 320)),
}  # fmt: skip


def select(
    name: str, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[Pipeline, dict]:
    """Score the grid on (fit, val), extending it past an edge that wins; fit the chosen
    value on every fit row. Never sees test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed epoch budget, on purpose
        return _select(name, x_fit, y_fit, x_val, y_val)


def _select(name, x_fit, y_fit, x_val, y_val) -> tuple[Pipeline, dict]:
    make, grid = CANDIDATES[name]
    score = _knn_scorer(x_fit, y_fit, x_val, y_val, grid) if grid.param == "k" else (
        _linear_scorer(make, x_fit, y_fit, x_val, y_val))  # fmt: skip
    values = [v for v in grid.values if grid.param != "k" or v <= len(y_fit)] or [len(y_fit)]
    scores = {v: score(v) for v in values}
    chosen = _best(scores)
    for _ in range(MAX_STEPS * 2):
        ranked = sorted(scores)
        if len(ranked) < 2 or ranked[0] < chosen < ranked[-1]:
            break  # inside the grid: it is the best of its neighbours
        nxt = grid.beyond(chosen, up=chosen == ranked[-1])
        if nxt is None or nxt in scores or (grid.param == "k" and nxt > len(y_fit)):
            break
        scores[nxt] = score(nxt)
        if scores[nxt] <= scores[chosen]:
            break  # past the edge it does no better: the edge value stays
        chosen = nxt
    model = make_pipeline(StandardScaler(), make(chosen)).fit(x_fit, y_fit)
    return model, {grid.param: chosen, "val_scores": {str(v): scores[v] for v in sorted(scores)}}


def _best(scores: dict) -> float:
    """The best score's value; a tie goes to the smallest value, as to the first of a grid."""
    ranked = sorted(scores)
    return max(ranked, key=lambda v: (scores[v], -ranked.index(v)))


def _linear_scorer(make, x_fit, y_fit, x_val, y_val) -> Callable:
    """Scored on at most SELECT_ROWS fit rows (seeded), standardised once."""
    rows = np.random.default_rng(0).permutation(len(y_fit))[:SELECT_ROWS]
    scaler = StandardScaler().fit(x_fit[rows])
    xs, xv = scaler.transform(x_fit[rows]), scaler.transform(x_val)
    return lambda v: metrics.accuracy(y_val, make(v).fit(xs, y_fit[rows]).predict(xv))


def _knn_scorer(x_fit, y_fit, x_val, y_val, grid: Grid) -> Callable:
    """One neighbour query for the largest k; each k votes among its first k (a tie goes to
    the smallest label, as KNeighborsClassifier does)."""
    scaler = StandardScaler().fit(x_fit)
    k_max = int(min(len(y_fit), grid.high))
    knn = KNeighborsClassifier(n_neighbors=k_max, metric="cosine", algorithm="brute")
    knn.fit(scaler.transform(x_fit), y_fit)
    near = y_fit[knn.kneighbors(scaler.transform(x_val), return_distance=False)]
    n_labels = int(y_fit.max()) + 1

    def score(k: int) -> float:
        counts = np.zeros((len(near), n_labels), np.int64)
        np.add.at(counts, (np.arange(len(near))[:, None], near[:, :k]), 1)
        return metrics.accuracy(y_val, counts.argmax(axis=1))

    return score


def run(name: str, fit: tuple, val: tuple, test: tuple, n_classes: int) -> dict:
    """Select on (fit, val), then report train/val/test accuracy of the chosen model: a
    `ModelResult.to_dict()` (a Ray task returns plain data). Train accuracy is measured on at
    most SCORE_ROWS fit rows (neighbours of 50,000 rows against 50,000 cost more than the fit)."""
    started = time.perf_counter()
    model, params = select(name, *fit, *val)
    fit_s = time.perf_counter() - started
    chosen = next(v for k, v in params.items() if k != "val_scores")
    started = time.perf_counter()
    test_pred = model.predict(test[0])
    infer_s = time.perf_counter() - started
    rows = np.random.default_rng(0).permutation(len(fit[1]))[:SCORE_ROWS]
    accuracy = {
        "train": metrics.accuracy(fit[1][rows], model.predict(fit[0][rows])),
        "val": params["val_scores"][str(chosen)],  # scored during selection
        "test": metrics.accuracy(test[1], test_pred),
    }
    return ModelResult.scored(
        name, BASELINE_KIND, params, accuracy, test[1], test_pred, n_classes,
        fit_s=fit_s, infer_s=infer_s,
    ).to_dict()  # fmt: skip
