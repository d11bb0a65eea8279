"""What the store reads back and must check before trusting: a shard's record (the commit
point of `FeatureStore.publish`), and the shape of its manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from cifar_ray.errors import UserError
from cifar_ray.store.layout import DATA_FILE, shard_key
from cifar_ray.store.shards import Shard

# The most images a split can hold (CIFAR-10 and CIFAR-100 alike): a manifest that plans
# more is corrupt, and planning its shards would not end. Your own images: IMAGES_LIMIT.
SPLIT_LIMITS = {"train": 50_000, "test": 10_000}
IMAGES_LIMIT = 1_000_000_000
CIFAR_DATASETS = ("cifar10", "cifar100")


@dataclass(frozen=True)
class ShardRecord:
    """Written last, after the data file: its presence is what makes a shard part of the result."""

    split: str
    index: int
    rows: int
    id_start: int
    id_stop: int
    sha256: str
    fingerprint: str
    node_id: str = ""
    seconds: float = 0.0  # embedding time of this shard on its actor
    worker_peak_rss_mb: int = 0  # the actor's peak resident memory so far
    file: str = ""  # the data file this record certifies; "" (older stores): part-NNNNN.parquet
    bad: list = field(default_factory=list)  # [path, reason] of each image skipped as unusable
    feature_max_abs: float = -1.0  # the largest |value| of its features; -1: not recorded
    feature_spread: float = -1.0  # the largest per-dimension std across its images; -1: idem

    @property
    def key(self) -> str:
        return shard_key(self.split, self.index)


@dataclass(frozen=True)
class Rows:
    """Which of a shard's images became rows (your own images): their ids and source paths,
    and the [path, reason] of those skipped as bad."""

    ids: list[int]
    paths: list[str]
    bad: list[tuple[str, str]]


@dataclass(frozen=True)
class Attempt:
    """One attempt's data file, written under its own name and not yet committed."""

    shard: Shard
    file: str
    sha256: str
    fingerprint: str


def parse_record(raw: bytes | None) -> ShardRecord | None:
    """A record file's bytes as a record; None when absent or not a record (an invalid shard,
    to be recomputed): undecodable, missing fields, or a field of the wrong type."""
    try:
        record = ShardRecord(**json.loads(raw)) if raw else None
    except (ValueError, TypeError):
        return None
    return record if record is None or _well_typed(record) else None


_TYPES = {"str": str, "int": int, "float": (int, float), "list": list}


def _well_typed(record: ShardRecord) -> bool:
    """Every field of the type its annotation names (JSON may hold anything)."""
    return all(
        isinstance(getattr(record, f.name), _TYPES[f.type])
        and not isinstance(getattr(record, f.name), bool)
        for f in fields(record)
    )


def corrupt(path: str, problem: str, recover: str) -> UserError:
    """The one-line error for a store or result file that cannot be used as it is."""
    return UserError(f"{path}: corrupt, {problem}; {recover}")


def manifest_problem(manifest: dict) -> str | None:
    """What makes a manifest unusable for planning (None when it is fine)."""
    sizes, shard_size = manifest.get("split_sizes"), manifest.get("shard_size")
    if not isinstance(manifest.get("fingerprint"), str):
        return 'no string "fingerprint"'
    if not isinstance(manifest.get("classes", []), list):  # older manifests may lack it
        return '"classes" is not a list'
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size <= 0:
        return f"shard_size must be a positive integer, got {shard_size!r}"
    if not isinstance(sizes, dict) or not sizes:
        return f"split_sizes must name the splits, got {sizes!r}"
    own = manifest.get("dataset", "cifar10") not in CIFAR_DATASETS
    for split, n in sizes.items():
        limit = SPLIT_LIMITS.get(split)
        if own and split in ("train", "val", "test"):
            limit = IMAGES_LIMIT
        if limit is None:
            return f"split_sizes names an unknown split {split!r}"
        if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= limit:
            return f"split_sizes[{split!r}] must be 1..{limit}, got {n!r}"
    return None


def names_own_file(record: ShardRecord, shard: Shard) -> bool:
    """A record may name only this shard's data file, never a path elsewhere."""
    match = DATA_FILE.fullmatch(record.file or shard.file_name)
    return bool(match) and int(match.group(1)) == shard.index
