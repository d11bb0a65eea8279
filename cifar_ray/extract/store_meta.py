"""What an extraction plan tells its store beside the shards: the manifest (the plan, then
the summary) and the test preview the report's prediction grid reads (it has no data)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cifar_ray.extract import own_images
from cifar_ray.source import cifar
from cifar_ray.store import samples
from cifar_ray.store.manifest import Manifest

if TYPE_CHECKING:
    from cifar_ray.extract import job


def write_preview(p: job.ExtractionPlan, n: int = 64) -> None:
    """The first test images, for the report's prediction grid (the report has no data dir)."""
    if not isinstance(p.dataset, cifar.Dataset):
        return own_images.write_preview(p.store, p.dataset, p.cfg)
    ds, test = p.dataset, p.dataset.splits["test"].head(n)
    samples.write_preview(
        p.store.loc, test.images, test.labels, ds.classes, dataset=ds.name, coarse=test.coarse,
        superclasses=ds.superclasses, fine_to_coarse=ds.fine_to_coarse,
    )  # fmt: skip


def manifest(p: job.ExtractionPlan) -> Manifest:
    """What this plan tells the store's manifest; the store decides what it records."""
    return Manifest(
        backbone=p.backbone.name, fingerprint=p.fingerprint_id, classes=list(p.dataset.classes),
        split_sizes={k: len(v) for k, v in p.dataset.splits.items() if len(v)},
        data_dir=p.cfg.data or (str(Path(p.cfg.data_dir).resolve()) if p.cfg.data_dir else None),
        shard_size=p.cfg.shard_size, dataset=p.dataset.name,
        superclasses=list(p.dataset.superclasses), fine_to_coarse=list(p.dataset.fine_to_coarse),
    )  # fmt: skip


def write_manifest(p: job.ExtractionPlan, summary: job.ExtractionSummary | None) -> dict:
    return manifest(p).write(p.store, summary.__dict__ if summary else None)
