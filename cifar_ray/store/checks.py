"""`cifar-ray inspect`: check every feature store under OUT and find exactly what is wrong
(the command layer prints it)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from cifar_ray.errors import UserError
from cifar_ray.store import locations, quality
from cifar_ray.store.claims import read_claim
from cifar_ray.store.feature_file import COARSE, META_KEY
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import MANIFEST, Layout
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import plan


def stores(loc: Location) -> list[str]:
    """The backbones with a feature store under OUT (a manifest or a fingerprint)."""
    layout = Layout(loc)
    found = (layout.store_of(p) for p in locations.list_files(loc, layout.features_dir()))
    return sorted({name for name in found if name})


def check(store: FeatureStore) -> tuple[dict, list[str]]:
    """(counts, problems) for one backbone's store; counts["strays"] lists the files that
    are not part of the result (see `FeatureStore.strays`). A corrupt manifest or
    fingerprint is a problem of the store, reported like any other, not a crash."""
    try:
        manifest, _ = read_claim(store)
    except UserError as exc:
        return {}, [str(exc)]
    if manifest is None:
        return {}, [f"no {MANIFEST}: extraction never got past planning"]
    fid = manifest["fingerprint"]
    shards = plan(manifest["split_sizes"], manifest["shard_size"])
    problems = [f"{s.key}: {p}" for s in shards if (p := store.problem(s, fid))]
    dims = set()
    for shard in shards:
        if any(p.startswith(f"{shard.key}:") for p in problems):
            continue
        schema = pq.read_schema(store.data_path(shard), filesystem=store.loc.fs)
        dims.add(schema.field("features").type.list_size)
        meta = (schema.metadata or {}).get(META_KEY, b"")
        if fid.encode() not in meta:
            problems.append(f"{shard.key}: file metadata names another fingerprint")
        if manifest.get("superclasses") and COARSE not in schema.names:
            problems.append(f"{shard.key}: no {COARSE} column (CIFAR-100's superclass)")
    if len(dims) > 1:
        problems.append(f"feature dimensions differ between shards: {sorted(dims)}")
    failing = {p.split(":", 1)[0] for p in problems}
    published = [s for s in shards if s.key not in failing]
    records = [r for s in published if (r := store.record(s))]
    skipped = [(r.key, path, reason) for r in records for path, reason in r.bad]
    counts = {  # rows: what the store holds now (an interrupted run holds fewer than planned)
        "shards": len(shards),
        "published": len(published),
        "rows": sum(s.rows for s in published) - len(skipped),
        "planned_rows": sum(s.rows for s in shards),
        "bad": skipped,  # your own images skipped as unusable: (shard, path, reason)
        "dim": next(iter(dims), 0),
        "fingerprint": fid,
        "strays": store.strays(shards),
        "warning": quality.degenerate(manifest.get("shards") or []),
        "temporaries": _temporaries(store),
    }
    return counts, problems


def _temporaries(store: FeatureStore) -> list[str]:
    """Left by a write that was interrupted (the next extract removes them)."""
    files = locations.list_files(store.loc, store.dir)
    return [p for p in files if locations.TMP_MARK in p.rpartition("/")[2]]


@dataclass(frozen=True)
class StoreCheck:
    """One backbone's store as `inspect` found it."""

    backbone: str
    counts: dict  # shards, published, rows, planned_rows, dim, fingerprint, strays,
    # temporaries, bad (your own images skipped)
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Strays do not make a store bad: training reads only what records name."""
        return not self.problems


def inspect(out: str) -> list[StoreCheck]:
    """Every store under OUT, checked; refuses an OUT without any."""
    loc = Location(out)
    names = stores(loc)
    if not names:
        raise UserError(f"{out}: no feature stores under {Layout(loc).features_dir()}")
    return [StoreCheck(name, *check(FeatureStore(loc, name))) for name in names]
