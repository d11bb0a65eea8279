"""What the report shows of an audit, computed once when the audit is built: similarity
histograms, per-class kNN agreement, the pairs and neighbour strips with their pixels, and
the test score without the leaked images."""

from __future__ import annotations

import numpy as np

from cifar_ray.audit.duplicates import Pairs
from cifar_ray.audit.files import EXAMPLES, IndexFolder
from cifar_ray.audit.pixels import PixelSource

BINS = 60
SHOWN_PAIRS = 16  # the most similar test/train pairs drawn
STRIPS = 6  # test images whose nearest training images are drawn
STRIP_LENGTH = 8


def histogram(values: np.ndarray, low: float) -> dict:
    """Counts over [low, 1]: what the report draws, without the raw similarities."""
    finite = values[np.isfinite(values)]
    counts, edges = np.histogram(np.clip(finite, low, 1.0), bins=BINS, range=(low, 1.0))
    return {"counts": counts.tolist(), "edges": np.round(edges, 5).tolist()}


def knn_agreement(nn_ids: np.ndarray, y_test: np.ndarray, y_train: np.ndarray,
                  n_classes: int) -> list[float | None]:  # fmt: skip
    """Per class: the share of its test images whose nearest training image has its label,
    a view of the embedding's quality that needs no training (1-NN accuracy)."""
    valid = nn_ids >= 0
    same = np.zeros(len(y_test), bool)
    same[valid] = y_train[nn_ids[valid]] == y_test[valid]
    out = []
    for c in range(n_classes):
        mine = y_test == c
        out.append(round(float(same[mine].mean()), 4) if mine.any() else None)
    return out


def leaked(pairs: Pairs, y_test: np.ndarray) -> list[list[int]]:
    """[test id, label] of every test image with a duplicate in train: what the cleaned
    score leaves out (the label lets the report rescore from stored predictions)."""
    ids = np.unique(pairs.of("test").query)
    return [[int(i), int(y_test[i])] for i in ids]


def cleaned_accuracy(test_accuracy: float, predictions: list[int] | None, n_test: int,
                     leaked_ids: list[list[int]]) -> float | None:  # fmt: skip
    """The test accuracy over the test images without a duplicate in train, from the model's
    stored predictions (None when it has none, or they are not of this test set)."""
    if predictions is None or len(predictions) != n_test:
        return None
    if not leaked_ids:
        return test_accuracy
    correct = round(test_accuracy * n_test)
    lost = sum(predictions[i] == label for i, label in leaked_ids)
    kept = n_test - len(leaked_ids)
    return round((correct - lost) / kept, 6) if kept else None


def examples(folder: IndexFolder, pairs: Pairs, nn: tuple[np.ndarray, np.ndarray],
             y: tuple[np.ndarray, np.ndarray], pixels: PixelSource | None) -> dict:  # fmt: skip
    """The pairs and strips the report draws, by id and similarity (in audit.json); their
    pixels in examples.npz when the source can be read."""
    top = pairs.of("test")
    top = Pairs(*(getattr(top, f)[:SHOWN_PAIRS] for f in ("split", "query", "train",
                                                          "similarity", "kind")))  # fmt: skip
    sims, ids = nn
    queries = _strip_queries(len(ids), top)
    label = np.append(y[1], -1)  # id -1 (no neighbour): label -1
    listed = zip(top.query, top.train, top.similarity, top.kind, strict=True)
    shown = {
        "pairs": [[int(q), int(t), round(float(s), 5), str(k), int(y[0][q]), int(y[1][t])]
                  for q, t, s, k in listed],
        "strips": [{"test_id": int(q), "test_label": int(y[0][q]),
                    "train_ids": ids[q, :STRIP_LENGTH].tolist(),
                    "train_labels": label[ids[q, :STRIP_LENGTH]].tolist(),
                    "similarities": np.round(sims[q, :STRIP_LENGTH], 5).tolist()}
                   for q in queries],
        "pixels": False,
    }  # fmt: skip
    test_px = pixels("test") if pixels else None
    train_px = pixels("train") if pixels else None
    if test_px is None or train_px is None:
        return shown
    strip_ids = np.array([s["train_ids"] for s in shown["strips"]], np.int64).reshape(-1)
    folder.write_arrays(
        EXAMPLES, pair_test=test_px[top.query], pair_train=train_px[top.train],
        strip_test=test_px[queries], strip_train=train_px[np.maximum(strip_ids, 0)],
    )  # fmt: skip
    return {**shown, "pixels": True}


def _strip_queries(n_test: int, top: Pairs) -> np.ndarray:
    """The most similar leaked test image first (its strip shows the leak), then test images
    spread evenly over the split."""
    lead = top.query[:1]
    rest = np.linspace(0, n_test - 1, STRIPS, dtype=np.int64) if n_test else lead
    return np.array(list(dict.fromkeys([*lead.tolist(), *rest.tolist()]))[:STRIPS], np.int64)
