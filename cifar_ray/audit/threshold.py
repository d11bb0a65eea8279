"""The near-duplicate threshold, chosen from the data: the widest gap in the distribution of
each test image's nearest-neighbour similarity, above a floor.

Near-duplicates (the same photo, re-encoded, shifted, rescaled) sit in a thin cluster just
under 1.0, apart from the bulk of ordinary nearest neighbours (Barz and Denzler, 2020): the
widest empty stretch between two consecutive sorted similarities above the floor is where
that cluster ends. When nothing above the floor stands apart (no gap at least `min_gap` wide),
the fallback threshold is used and the record says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_GAP = 0.005  # narrower gaps are the ordinary spacing of a dense distribution


@dataclass(frozen=True)
class Threshold:
    value: float
    chosen: str  # "given" (--duplicate-threshold), "gap" (from the data) or "fallback"
    gap_low: float | None = None  # the similarities either side of the gap
    gap_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def choose(nn_sims: np.ndarray, floor: float, fallback: float, given: float | None = None,
           min_gap: float = MIN_GAP) -> Threshold:  # fmt: skip
    """`nn_sims`: every query's similarity to its nearest neighbour (any order)."""
    if given is not None:
        return Threshold(float(given), "given")
    top = np.sort(np.asarray(nn_sims, dtype=np.float64)[np.isfinite(nn_sims)])
    top = top[top >= floor]
    # The gap below the lowest value above the floor counts too: a cluster alone above it.
    edges = np.concatenate([[floor], top])
    if len(edges) < 2:
        return Threshold(float(fallback), "fallback")
    gaps = np.diff(edges)
    widest = int(np.argmax(gaps))
    if gaps[widest] < min_gap:
        return Threshold(float(fallback), "fallback")
    low, high = float(edges[widest]), float(edges[widest + 1])
    return Threshold(round((low + high) / 2, 6), "gap", low, high)
