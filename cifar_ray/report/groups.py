"""CIFAR-100 at a readable size: its 100 classes grouped into the 20 superclasses, computed
from the fine confusion matrix results.json already holds (a 100x100 matrix is not readable,
a 20x20 one is; the pairs a model mixes up most say the rest)."""

from __future__ import annotations

import numpy as np

TOP_PAIRS = 15


def has_superclasses(res: dict) -> bool:
    """A store's results that carry CIFAR-100's superclasses (names and the fine mapping)."""
    return bool(res.get("superclasses")) and len(res.get("fine_to_coarse", ())) == len(
        res["classes"]
    )


def _onehot(fine_to_coarse, n_coarse: int) -> np.ndarray:
    """(fine, coarse) 0/1 matrix: fine class i belongs to superclass fine_to_coarse[i]."""
    mapping = np.asarray(fine_to_coarse, dtype=np.int64)
    return np.eye(n_coarse, dtype=np.int64)[mapping]


def superclass_confusion(confusion, fine_to_coarse, n_coarse: int) -> np.ndarray:
    """(true superclass, predicted superclass) counts: each fine prediction mapped to its
    superclass, so a cat taken for a tiger counts as right at this level only if both are."""
    groups = _onehot(fine_to_coarse, n_coarse)
    return groups.T @ np.asarray(confusion, dtype=np.int64) @ groups


def per_superclass(confusion, fine_to_coarse, n_coarse: int) -> list[float]:
    """Fine-label test accuracy of the images of each superclass (0 where it has none)."""
    m = np.asarray(confusion, dtype=np.int64)
    groups = _onehot(fine_to_coarse, n_coarse)
    right, total = groups.T @ np.diag(m), groups.T @ m.sum(axis=1)
    return [float(r / t) if t else 0.0 for r, t in zip(right, total, strict=True)]


def superclass_accuracy(confusion, fine_to_coarse, n_coarse: int) -> float:
    """The share of test images whose predicted fine class is in their true superclass."""
    m = superclass_confusion(confusion, fine_to_coarse, n_coarse)
    return float(np.trace(m) / m.sum()) if m.sum() else 0.0


def confused_pairs(confusion, top: int = TOP_PAIRS) -> list[tuple[int, int, int, float]]:
    """The most frequent mistakes: (true class, predicted class, images, share of the true
    class's test images), most images first, ties in class order."""
    m = np.asarray(confusion, dtype=np.int64)
    support = m.sum(axis=1)
    off = m.copy()
    np.fill_diagonal(off, 0)
    order = np.lexsort((np.arange(off.size), -off.ravel()))  # stable: count, then index
    pairs = []
    for flat in order[:top]:
        i, j = divmod(int(flat), m.shape[1])
        if off[i, j] == 0:
            break
        pairs.append((i, j, int(off[i, j]), float(off[i, j] / support[i])))
    return pairs
