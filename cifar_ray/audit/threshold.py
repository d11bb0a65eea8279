"""The near-duplicate threshold, chosen from the data: the widest gap in the distribution of
each test image's nearest-neighbour similarity, above a floor.

Near-duplicates (the same photo, re-encoded, shifted, rescaled) sit in a thin cluster just
under 1.0, apart from the bulk of ordinary nearest neighbours (Barz and Denzler, 2020): the
widest empty stretch between two consecutive sorted similarities above the floor is where
that cluster ends. When nothing above the floor stands apart (no gap at least `min_gap` wide),
the fallback threshold is used and the record says so.

Duplicates are a minority (Barz and Denzler: 3.3% of CIFAR-10's test images, 10% of
CIFAR-100's): a gap, or the fallback, above which most images would sit is no duplicate
cluster but a store whose features barely differ (random weights put every nearest neighbour
at 0.985..1.0). Then no threshold is chosen ("none": only identical features count as near)
and the record says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_GAP = 0.005  # narrower gaps are the ordinary spacing of a dense distribution
MAX_SHARE = 0.5  # of the queries a threshold may call duplicates
NONE = 1.0  # the threshold when the data shows no duplicate cluster: identical features only
NO_CLUSTER = (
    "most nearest neighbours are as similar as any threshold would call duplicates, so the "
    "features barely tell images apart (random weights?); only identical features count as near"
)


@dataclass(frozen=True)
class Threshold:
    value: float
    chosen: str  # "given" (--duplicate-threshold), "gap" (from the data), "fallback", "none"
    gap_low: float | None = None  # the similarities either side of the gap
    gap_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def choose(nn_sims: np.ndarray, floor: float, fallback: float, given: float | None = None,
           min_gap: float = MIN_GAP) -> Threshold:  # fmt: skip
    """`nn_sims`: every query's similarity to its nearest neighbour (any order)."""
    if given is not None:
        return Threshold(float(given), "given")
    finite = np.asarray(nn_sims, dtype=np.float64)[np.isfinite(nn_sims)]
    top = np.sort(finite[finite >= floor])
    most = MAX_SHARE * len(finite)
    # The gap below the lowest value above the floor counts too: a cluster alone above it.
    edges = np.concatenate([[floor], top])
    gaps = np.diff(edges)
    gaps[: max(0, len(top) - int(most))] = 0.0  # above these gaps sit most of the queries
    if len(gaps) and gaps.max() >= min_gap:
        widest = int(np.argmax(gaps))
        low, high = float(edges[widest]), float(edges[widest + 1])
        return Threshold(round((low + high) / 2, 6), "gap", low, high)
    if (finite >= fallback).sum() > most:
        return Threshold(NONE, "none")
    return Threshold(float(fallback), "fallback")
