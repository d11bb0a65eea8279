"""One record type for every model's result: the same results.json keys as before, built by
the head, the baselines and the pixel baselines alike, and read back by the report."""

from __future__ import annotations

import json

import numpy as np

from cifar_ray.report import plots, sections, speed_plot
from cifar_ray.train import baselines, pixel_baselines
from cifar_ray.train.results import HEAD, PIXEL_KIND, ModelResult, models_of

# A dense-head record exactly as results.json has held it since the first release.
STORED_HEAD = {
    "name": "dense_head", "kind": "dense-head (Ray Train)",
    "params": {"best_epoch": 1, "epochs_run": 3, "resumed_from": None, "run_key": "ab",
               "stopped_early": True},
    "accuracy": {"train": 0.9, "val": 0.75, "test": 0.5},
    "test": {"accuracy": 0.5, "precision": [1.0, 0.0], "recall": [1.0, 0.0], "support": [1, 1],
             "confusion": [[1, 0], [1, 0]]},
    "history": {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.9, 1.0]},
    "fit_s": 1.234, "infer_s": 0.012, "sample_predictions": [0, 0],
}  # fmt: skip


def test_a_stored_record_reads_back_and_writes_the_same_json():
    result = ModelResult.from_dict(STORED_HEAD)
    assert result.name == HEAD and result.test_accuracy == 0.5 and result.per_class == [1.0, 0.0]
    assert json.dumps(result.to_dict()) == json.dumps(STORED_HEAD)  # same keys, same order


def test_scored_builds_the_test_metrics_and_rounds_the_timings():
    y, pred = np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])
    acc = {"train": 1.0, "val": 0.5, "test": 0.75}
    result = ModelResult.scored("m", PIXEL_KIND, {}, acc, y, pred, 3, fit_s=1.23456,
                                infer_s=0.0004, history={"loss": [1.0]})  # fmt: skip
    record = result.to_dict()
    assert list(record) == ["name", "kind", "params", "accuracy", "test", "history", "fit_s",
                            "infer_s", "sample_predictions", "test_predictions"]  # fmt: skip
    assert record["test_predictions"] == [0, 1, 2, 2]  # every test image: the cleaned score
    assert record["test"]["confusion"] == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert (record["fit_s"], record["infer_s"], record["sample_predictions"]) == (
        1.235, 0.0, [0, 1, 2, 2],
    )  # fmt: skip
    assert ModelResult.from_dict(record) == result


def test_a_baseline_record_is_a_model_result_without_history():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)), np.arange(60) % 2
    record = baselines.run("logreg", (x[:40], y[:40]), (x[40:50], y[40:50]), (x[50:], y[50:]), 2)
    assert list(record) == ["name", "kind", "params", "accuracy", "test", "fit_s", "infer_s",
                            "sample_predictions", "test_predictions"]  # fmt: skip
    assert ModelResult.from_dict(record).to_dict() == record


def test_the_report_reads_the_names_the_trainers_write():
    assert plots.HEAD == sections.HEAD == HEAD and pixel_baselines.KIND == PIXEL_KIND
    models = models_of({"models": {"dense_head": STORED_HEAD,
                                   "pixel_mlp": {**STORED_HEAD, "kind": PIXEL_KIND}}})  # fmt: skip
    assert [m.name for m in models.values()] == ["dense_head", "pixel_mlp"]  # by their key
    [panel] = speed_plot.speed_panels(
        {"backbones": {"b": {"extraction": {"images_per_s": 5.0}, "classes": [0, 1], "models": {
            "dense_head": STORED_HEAD, "pixel_mlp": {**STORED_HEAD, "kind": PIXEL_KIND}}}}}
    )  # fmt: skip
    assert panel.points == [("b", 5.0, {"dense_head": 0.5})] and panel.flat == {"pixel_mlp": 0.5}
