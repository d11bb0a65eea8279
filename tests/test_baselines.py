"""Baseline selection: the validation split alone picks the hyper-parameter, and run() reports
the chosen model's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifar_ray.errors import UserError
from cifar_ray.train import baselines, metrics


def _arc(rng, angle: float, n: int, spread: float) -> np.ndarray:
    a, r = angle + rng.normal(0, spread, n), rng.uniform(1, 2, n)
    return np.c_[r * np.cos(a), r * np.sin(a)]


def _few_near_many():
    """Four class-1 points at 90 degrees among sixty class-0 points at 0 and 180: cosine k=5
    sees the four, k=10 and k=20 are outvoted by class 0."""
    rng = np.random.default_rng(0)
    x_fit = np.r_[_arc(rng, 0, 30, 0.3), _arc(rng, np.pi / 2, 4, 0.05), _arc(rng, np.pi, 30, 0.3)]
    y_fit = np.r_[np.zeros(30, int), np.ones(4, int), np.zeros(30, int)]
    return x_fit, y_fit, _arc(rng, np.pi / 2, 6, 0.05)


def test_validation_labels_decide_the_chosen_value():
    x_fit, y_fit, x_val = _few_near_many()
    _, small = baselines.select("knn_cosine", x_fit, y_fit, x_val, np.ones(6, int))
    assert small["k"] == 5  # on the edge: k=2 was tried past it, and did no better
    assert small["val_scores"] == {"2": 1.0, "5": 1.0, "10": 0.0, "20": 0.0}
    _, large = baselines.select("knn_cosine", x_fit, y_fit, x_val, np.zeros(6, int))
    assert large == {"k": 10, "val_scores": {"5": 0.0, "10": 1.0, "20": 1.0}}  # tie: first


def test_neighbour_counts_above_the_fit_rows_are_not_tried():
    x_fit, y_fit, x_val = _few_near_many()
    _, params = baselines.select("knn_cosine", x_fit[:8], y_fit[:8], x_val, np.zeros(6, int))
    assert params == {"k": 5, "val_scores": {"5": 1.0}}


def test_fewer_fit_rows_than_any_k_is_a_user_error_or_a_model():
    x_fit, y_fit, x_val = _few_near_many()
    try:
        model, _ = baselines.select("knn_cosine", x_fit[:4], y_fit[:4], x_val, np.zeros(6, int))
    except UserError:
        return
    assert len(model.predict(x_val)) == 6


def test_run_records_the_chosen_models_numbers():
    x_fit, y_fit, x_val = _few_near_many()
    y_val = np.ones(6, int)
    rng = np.random.default_rng(1)
    x_test = np.r_[_arc(rng, np.pi / 2, 30, 0.05), _arc(rng, 0, 40, 0.3), _arc(rng, np.pi, 30, 0.3)]
    y_test = np.r_[np.ones(30, int), np.zeros(70, int)]
    record = baselines.run("knn_cosine", (x_fit, y_fit), (x_val, y_val), (x_test, y_test), 3)

    model, params = baselines.select("knn_cosine", x_fit, y_fit, x_val, y_val)
    test_pred = model.predict(x_test)
    assert record["name"] == "knn_cosine" and record["kind"] == "baseline"
    assert record["params"] == params and params["k"] == 5
    assert record["accuracy"] == {
        "train": metrics.accuracy(y_fit, model.predict(x_fit)),
        "val": 1.0,
        "test": metrics.accuracy(y_test, test_pred),
    }
    assert record["accuracy"]["test"] > 0.9  # k=5 finds the 30 class-1 test points
    assert record["test"] == metrics.evaluate(y_test, test_pred, 3)
    assert record["test"]["support"] == [70, 30, 0]
    assert record["sample_predictions"] == test_pred[:64].tolist()
    assert record["fit_s"] >= 0 and record["infer_s"] >= 0
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("name", ["logreg", "linear_svm"])
def test_linear_baselines_record_their_c_and_score_every_value(name):
    x_fit, y_fit, x_val = _few_near_many()
    record = baselines.run(name, (x_fit, y_fit), (x_val, np.ones(6, int)),
                           (x_val, np.ones(6, int)), 2)  # fmt: skip
    _, grid = baselines.CANDIDATES[name]
    scores = record["params"]["val_scores"]
    assert grid.param == ("C" if name == "logreg" else "alpha")
    assert {str(v) for v in grid.values} <= set(scores)  # the grid, and any value past its edge
    chosen = record["params"][grid.param]
    assert record["accuracy"]["val"] == scores[str(chosen)] == max(scores.values())


def _separable(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A noiseless linear rule in 20 dimensions: the weaker the regularisation, the better."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20))
    return x, (x.sum(axis=1) > 0).astype(int)


def _noisy_halves(seed: int, n: int, flip: float) -> tuple[np.ndarray, np.ndarray]:
    """Two half-rings with a share of labels flipped: many neighbours outvote the noise."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.c_[np.cos(angle), np.sin(angle)] * rng.uniform(1, 2, (n, 1))
    y = (np.cos(angle) > 0).astype(int)
    flipped = rng.random(n) < flip
    return x, np.where(flipped, 1 - y, y)


def test_grids_extend_past_an_edge_that_wins():
    """Today's grids stopped at C = 1 and k = 20; on these problems the best lies beyond."""
    _, logreg = baselines.select("logreg", *_separable(0, 2000), *_separable(1, 1000))
    assert logreg["C"] > 1.0 and "10.0" in logreg["val_scores"]
    assert logreg["val_scores"][str(logreg["C"])] > logreg["val_scores"]["1.0"]
    _, knn = baselines.select("knn_cosine", *_noisy_halves(0, 3000, 0.35),
                              *_noisy_halves(1, 2000, 0.0))  # fmt: skip
    assert knn["k"] > 20 and knn["val_scores"][str(knn["k"])] > knn["val_scores"]["20"]
    past = max(map(int, knn["val_scores"]))
    assert knn["val_scores"][str(past)] <= knn["val_scores"][str(knn["k"])]  # where it stopped
