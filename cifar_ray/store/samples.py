"""OUT/samples/test-preview.npz: the first test images, written at extraction for the report's
prediction grid (the report has no data directory to read them from)."""

from __future__ import annotations

import io

import numpy as np

from cifar_ray.store import locations
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location


def write_preview(loc: Location, images: np.ndarray, labels: np.ndarray, classes) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels, classes=np.array(classes))
    locations.put_atomic(loc, Layout(loc).preview(), buffer.getvalue())


def read_preview(loc: Location) -> dict | None:
    """{"images", "labels", "classes"} arrays, or None when no extraction wrote a preview."""
    raw = locations.get_bytes(loc, Layout(loc).preview())
    if raw is None:
        return None
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
