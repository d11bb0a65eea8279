"""OUT/features/<store>/listing.parquet: the input files a store of your own images was made
from (path, size, version), written when the store is claimed. A later run whose listing
differs is told how many files were added, removed and changed (the fingerprint holds only
the listing's hash)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray.store import locations
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import LISTING

COLUMNS = ("path", "size", "version")


def write(store: FeatureStore, rows: list[tuple[str, int, str]]) -> None:
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    locations.put_atomic(store.loc, f"{store.dir}/{LISTING}", sink.getvalue())


def read(store: FeatureStore) -> dict[str, tuple[int, str]] | None:
    """path -> (size, version); None when the store has no listing (or an unreadable one)."""
    raw = locations.get_bytes(store.loc, f"{store.dir}/{LISTING}")
    if raw is None:
        return None
    try:
        table = pq.read_table(io.BytesIO(raw)).to_pydict()
    except Exception:
        return None
    return {p: (s, v) for p, s, v in zip(*(table[c] for c in COLUMNS), strict=True)}


def changes(old: dict[str, tuple[int, str]], new: list[tuple[str, int, str]]) -> str:
    """`3 added, 1 removed, 2 changed`: how the input moved since the store was made."""
    now = {p: (s, v) for p, s, v in new}
    added = len(now.keys() - old.keys())
    removed = len(old.keys() - now.keys())
    changed = sum(1 for p in now.keys() & old.keys() if now[p] != old[p])
    return f"{added} added, {removed} removed, {changed} changed"
