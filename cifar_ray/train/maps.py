"""2-D maps of the test features (PCA always, t-SNE on request), computed where the features
are in memory, at training, and stored in results.json for the report to draw."""

from __future__ import annotations

import numpy as np


def pca_map(test: tuple[np.ndarray, np.ndarray], seed: int, n: int = 2000) -> dict:
    """A seeded PCA of a test subsample: results.json's "embedding_2d"."""
    from sklearn.decomposition import PCA

    x, y = test
    pick = np.random.default_rng(seed).permutation(len(y))[:n]
    coords = PCA(n_components=2, random_state=seed).fit_transform(x[pick])
    return {"method": "pca", "xy": np.round(coords, 4).tolist(), "labels": y[pick].tolist()}


def tsne_map(x: np.ndarray, y: np.ndarray, seed: int, n: int = 1000) -> dict:
    """A seeded t-SNE of a test subsample, shaped like `pca_map`: "embedding_tsne"."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pick = np.random.default_rng(seed).permutation(len(y))[:n]
    pts = np.asarray(x[pick], dtype=np.float32)
    if min(pts.shape) > 50:  # the usual PCA-to-50 first: faster, and less noise
        pts = PCA(n_components=50, random_state=seed).fit_transform(pts)
    perplexity = min(30.0, max(1.0, (len(pick) - 1) / 3))
    coords = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(pts)
    return {"method": "tsne", "xy": np.round(coords, 4).tolist(), "labels": y[pick].tolist()}
