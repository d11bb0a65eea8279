"""Features that carry no information: all (near) zero, or the same for every image (a
backbone with random weights whose activations vanish, a factory that ignores its input).
Each shard's record keeps two numbers; the store is judged on all of them, never read again."""

from __future__ import annotations

import numpy as np

NEAR_ZERO = 1e-6  # a largest |value| below this: no signal left in float32 features
FLAT = 1e-6  # a spread across images below this share of the largest value: one point


def shard_stats(features: np.ndarray) -> dict[str, float]:
    """What a shard's record keeps of its features (finite features only)."""
    if features.size == 0:
        return {}
    return {"feature_max_abs": float(np.abs(features).max()),
            "feature_spread": float(features.std(axis=0).max())}  # fmt: skip


def degenerate(shards: list[dict]) -> str | None:
    """Why a store's features are degenerate, from its shard records; None when they are not
    (or the records predate the numbers)."""
    known = [s for s in shards if s.get("feature_max_abs", -1.0) >= 0]
    if not known:
        return None
    top = max(s["feature_max_abs"] for s in known)
    spread = max(s["feature_spread"] for s in known)
    if top < NEAR_ZERO:
        return f"degenerate features: all near zero (largest |value| {top:.2g})"
    if spread <= FLAT * top:
        return f"degenerate features: the same for every image (spread {spread:.2g})"
    return None


def non_finite(features: np.ndarray) -> int:
    """How many values are NaN or Inf (a float16 overflow, a broken factory)."""
    return int(features.size - np.count_nonzero(np.isfinite(features)))
