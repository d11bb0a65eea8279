"""Pairs of images that are the same picture: exact (same pixels) or near (cosine similarity
of their features at or above the threshold), test against train and within train."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

EXACT, NEAR = "exact", "near"


@dataclass(frozen=True)
class Pairs:
    """Parallel arrays, one entry per pair: `split` is the query's ("test" or "train")."""

    split: np.ndarray
    query: np.ndarray
    train: np.ndarray
    similarity: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    def table(self, y_query: dict[str, np.ndarray], y_train: np.ndarray) -> pa.Table:
        """duplicates.parquet: most similar first; a pair whose labels differ is a candidate
        labelling error (or a picture that belongs to both classes)."""
        pairs = zip(self.split, self.query, strict=True)
        q_label = np.array([y_query[s][i] for s, i in pairs], np.int64)
        t_label = y_train[self.train] if len(self) else np.empty(0, np.int64)
        return pa.table({
            "split": pa.array(self.split, pa.string()),
            "query_id": pa.array(self.query, pa.int64()),
            "train_id": pa.array(self.train, pa.int64()),
            "similarity": pa.array(self.similarity, pa.float32()),
            "kind": pa.array(self.kind, pa.string()),
            "query_label": pa.array(q_label, pa.int64()),
            "train_label": pa.array(t_label, pa.int64()),
            "labels_differ": pa.array(q_label != t_label, pa.bool_()),
        })  # fmt: skip

    def of(self, split: str) -> Pairs:
        keep = self.split == split
        return Pairs(*(getattr(self, f)[keep] for f in FIELDS))


FIELDS = ("split", "query", "train", "similarity", "kind")


def near(sims: np.ndarray, ids: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(query ids, train ids) of every neighbour at or above the threshold."""
    rows, cols = np.nonzero((sims >= threshold) & (ids >= 0))
    return rows, ids[rows, cols]


def combine(split: str, near_pairs: tuple, exact_pairs: list[tuple[int, int]],
            similarity: callable) -> Pairs:  # fmt: skip
    """Exact and near pairs of one split, each pair once ("exact" wins), most similar first.
    Within train a pair is (lower id, higher id). `similarity(q, t)`: the features' cosine."""
    found: dict[tuple[int, int], str] = {}
    for q, t in zip(*near_pairs, strict=True):
        found[_key(split, int(q), int(t))] = NEAR
    for q, t in exact_pairs:
        found[_key(split, q, t)] = EXACT
    keys = sorted(found)
    q = np.array([a for a, _ in keys], np.int64)
    t = np.array([b for _, b in keys], np.int64)
    sim = np.array([similarity(a, b) for a, b in keys], np.float32)
    kind = np.array([found[k] for k in keys], dtype=object)
    order = np.lexsort((t, q, -sim))
    return Pairs(np.full(len(keys), split, dtype=object), q[order], t[order], sim[order],
                 kind[order])  # fmt: skip


def _key(split: str, q: int, t: int) -> tuple[int, int]:
    return (min(q, t), max(q, t)) if split == "train" else (q, t)


def concat(*parts: Pairs) -> Pairs:
    return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))


def counts(pairs: Pairs, n_test: int) -> dict:
    """What audit.json and the report say: pairs by kind, and test images with a duplicate."""
    test, train = pairs.of("test"), pairs.of("train")
    leaked = np.unique(test.query)
    return {
        "test_pairs": {EXACT: int((test.kind == EXACT).sum()),
                       NEAR: int((test.kind == NEAR).sum())},
        "train_pairs": {EXACT: int((train.kind == EXACT).sum()),
                        NEAR: int((train.kind == NEAR).sum())},
        "test_images_with_duplicate": len(leaked),
        "test_images_with_exact_duplicate": len(np.unique(test.query[test.kind == EXACT])),
        "test_share_with_duplicate": round(len(leaked) / n_test, 5) if n_test else 0.0,
        "train_images_in_a_pair": len(np.unique(np.concatenate([train.query, train.train]))),
    }  # fmt: skip
