"""One result record for every model (the dense head, the baselines, the raw-pixel baselines):
built in one place, written to results.json with the same keys as always, read back by the
report through the same type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cifar_ray.train import metrics

HEAD = "dense_head"  # the trained dense head's name in results.json and the report
HEAD_KIND = "dense-head (Ray Train)"
BASELINE_KIND = "baseline"
PIXEL_KIND = "raw-pixel baseline"  # trained on pixels: no extraction, so no extraction speed
SPLITS = ("train", "val", "test")
SAMPLE_PREDICTIONS = 64  # the first test predictions kept, for the report's prediction grid


@dataclass(frozen=True)
class ModelResult:
    """What one model scored. `accuracy` has "train", "val" and "test"; `test` is the test
    split's full metrics (`metrics.evaluate`); `history` only for models fitted per epoch."""

    name: str
    kind: str
    params: dict
    accuracy: dict[str, float]
    test: dict
    fit_s: float | None  # None only when read from a record that lacks it
    infer_s: float | None
    sample_predictions: list[int]
    history: dict[str, list[float]] | None = None
    test_predictions: list[int] | None = None  # every test image's, in id order (cleaned score)

    @classmethod
    def scored(cls, name: str, kind: str, params: dict, accuracy: dict[str, float],
               y_test: np.ndarray, test_pred: np.ndarray, n_classes: int, *, fit_s: float,
               infer_s: float, history: dict | None = None) -> ModelResult:  # fmt: skip
        """The record of a model whose test predictions are `test_pred`."""
        return cls(
            name, kind, params, accuracy, metrics.evaluate(y_test, test_pred, n_classes),
            round(fit_s, 3), round(infer_s, 3),
            np.asarray(test_pred)[:SAMPLE_PREDICTIONS].tolist(), history,
            np.asarray(test_pred).tolist(),
        )  # fmt: skip

    def to_dict(self) -> dict:
        """results.json's keys, in the order they have always been written."""
        out = {"name": self.name, "kind": self.kind, "params": self.params,
               "accuracy": self.accuracy, "test": self.test}  # fmt: skip
        if self.history is not None:
            out["history"] = self.history
        out.update(fit_s=self.fit_s, infer_s=self.infer_s,
                   sample_predictions=self.sample_predictions)  # fmt: skip
        if self.test_predictions is not None:
            out["test_predictions"] = self.test_predictions
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> ModelResult:
        """Reads every results.json written so far: only `accuracy` is required (older
        records may lack `kind`, and the report draws what a record has)."""
        return cls(
            name=raw.get("name", ""), kind=raw.get("kind", ""), params=raw.get("params", {}),
            accuracy=raw["accuracy"], test=raw.get("test", {}), fit_s=raw.get("fit_s"),
            infer_s=raw.get("infer_s"), sample_predictions=raw.get("sample_predictions", []),
            history=raw.get("history"), test_predictions=raw.get("test_predictions"),
        )  # fmt: skip

    @property
    def test_accuracy(self) -> float:
        return self.accuracy["test"]

    @property
    def per_class(self) -> list[float]:
        """Per-class test accuracy (recall), in class order."""
        return self.test["recall"]


def models_of(backbone_results: dict) -> dict[str, ModelResult]:
    """One backbone's results.json models, by name, in the order they were written."""
    return {n: ModelResult.from_dict({**m, "name": n})
            for n, m in backbone_results["models"].items()}  # fmt: skip
