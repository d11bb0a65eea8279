"""The 2-D maps of the test features live in training, where the features are in memory;
the report only draws what results.json holds."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from cifar_ray.train import maps

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_ray"


def _points(n: int = 60, dim: int = 8):
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, (n, dim)).astype(np.float32), rng.integers(0, 10, n)


def test_the_pca_map_is_a_seeded_subsample_with_its_labels():
    x, y = _points()
    first = maps.pca_map((x, y), 3, n=40)
    assert first == maps.pca_map((x, y), 3, n=40) and first["method"] == "pca"
    assert np.asarray(first["xy"]).shape == (40, 2)
    pick = np.random.default_rng(3).permutation(60)[:40]
    assert first["labels"] == y[pick].tolist()
    assert maps.pca_map((x, y), 4, n=40)["labels"] != first["labels"]


def test_the_tsne_map_picks_the_points_the_pca_map_picks():
    x, y = _points()
    tsne, pca = maps.tsne_map(x, y, 3, n=40), maps.pca_map((x, y), 3, n=40)
    assert set(tsne) == set(pca) and tsne["labels"] == pca["labels"]
    assert np.asarray(tsne["xy"]).shape == (40, 2)


def test_training_takes_its_maps_from_train_not_from_the_report():
    tree = ast.parse((PACKAGE / "train" / "runner.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("cifar_ray.report")}
    assert not any("tsne_map" in p.read_text() for p in (PACKAGE / "report").glob("*.py"))
