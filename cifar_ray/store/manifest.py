"""A feature store's manifest: its plan, the shards published under its fingerprint, and the
throughput of the last run that embedded anything. The store owns its schema; extraction
passes what it knows (the plan, the run's summary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cifar_ray.errors import UserError
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import MANIFEST
from cifar_ray.store.shards import plan

THROUGHPUT_KEYS = ("images", "seconds", "images_per_s", "steady_images_per_s", "first_shard_s",
                   "actors_replaced")  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    """The plan part of `manifest.json`: what `inspect` and `train` need to name every shard."""

    backbone: str
    fingerprint: str
    classes: list[str]
    split_sizes: dict[str, int]
    data_dir: str | None  # the extraction's source, for raw-pixel baselines
    shard_size: int
    dataset: str = "cifar10"  # the source's name (also in the fingerprint)
    superclasses: list[str] = field(default_factory=list)  # CIFAR-100's 20 coarse names
    fine_to_coarse: list[int] = field(default_factory=list)  # class -> superclass index

    def write(self, store: FeatureStore, last_run: dict | None = None) -> dict:
        """Record which shards are published under this fingerprint. `last_run` is the run's
        summary (None while planning); a run that embedded nothing keeps the old throughput."""
        shards = plan(self.split_sizes, self.shard_size)
        records = [store.record(s) for s in shards]
        published = [asdict(r) for r in records if r and r.fingerprint == self.fingerprint]
        payload = {
            **asdict(self),
            "complete": len(published) == len(shards),
            "shards": published,
            "bad_images": sum(len(r["bad"]) for r in published),
            "last_run": last_run or {},
            "throughput": _throughput(store, last_run),
        }
        store.write_json(MANIFEST, payload)
        return payload


def _throughput(store: FeatureStore, last_run: dict | None) -> dict:
    """The last run that embedded anything: a resumed run with nothing to do keeps it."""
    if last_run and last_run.get("images"):
        return {k: last_run.get(k) for k in THROUGHPUT_KEYS}
    try:
        previous = store.read_manifest() or {}
    except UserError:  # a corrupt manifest is what this write replaces
        return {}
    return previous.get("throughput", {})
