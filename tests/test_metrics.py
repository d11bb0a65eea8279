"""Classification metrics: hand-checked values, JSON-ready types, no warnings on absent classes."""

from __future__ import annotations

import json
import warnings

import numpy as np

from cifar_ray.train import metrics


def test_accuracy_values_and_empty_input():
    assert metrics.accuracy(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])) == 0.5
    assert metrics.accuracy(np.array([], dtype=int), np.array([], dtype=int)) == 0.0
    assert type(metrics.accuracy(np.array([1]), np.array([1]))) is float


def test_evaluate_hand_computed_with_a_class_never_seen():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 2, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # class 3: no support, no predictions, no warning
        got = metrics.evaluate(y_true, y_pred, n_classes=4)
    assert got["accuracy"] == 4 / 6
    assert got["precision"] == [0.5, 0.5, 1.0, 0.0]
    assert got["recall"] == [0.5, 1.0, round(2 / 3, 6), 0.0]
    assert got["support"] == [2, 1, 3, 0]
    assert got["confusion"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert json.loads(json.dumps(got)) == got  # plain Python values only


def test_recall_is_per_class_accuracy():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    got = metrics.evaluate(y_true, y_pred, 5)
    for c in range(5):
        mine = y_true == c
        assert got["recall"][c] == round(float(np.mean(y_pred[mine] == c)), 6)
    assert np.sum(got["confusion"]) == 200 and got["support"] == np.bincount(y_true).tolist()
