"""OUT/samples/test-preview.npz (one per dataset, see layout.py): the first test images, written
at extraction for the report's prediction grid (the report has no data directory to read them
from). A CIFAR-100 preview also carries the superclass of each image and the superclass names
and mapping, so the report can frame and colour by superclass."""

from __future__ import annotations

import io

import numpy as np

from cifar_ray.store import locations
from cifar_ray.store.layout import DEFAULT_DATASET, Layout
from cifar_ray.store.locations import Location


def write_preview(
    loc: Location, images: np.ndarray, labels: np.ndarray, classes, *,
    dataset: str = DEFAULT_DATASET, coarse: np.ndarray | None = None, superclasses=(),
    fine_to_coarse=(),
) -> None:  # fmt: skip
    arrays = {"images": images, "labels": labels, "classes": np.array(classes)}
    if coarse is not None:
        arrays.update(coarse=coarse, superclasses=np.array(superclasses),
                      fine_to_coarse=np.asarray(fine_to_coarse, dtype=np.int64))  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    locations.put_atomic(loc, Layout(loc).preview(dataset), buffer.getvalue())


def read_preview(loc: Location, dataset: str = DEFAULT_DATASET) -> dict | None:
    """{"images", "labels", "classes"} arrays (and for CIFAR-100 "coarse", "superclasses",
    "fine_to_coarse"), or None when no extraction wrote a preview for this dataset."""
    raw = locations.get_bytes(loc, Layout(loc).preview(dataset))
    if raw is None:
        return None
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
