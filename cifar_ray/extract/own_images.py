"""What extraction does differently for your own images (`--data`): read the listing, add
the decode settings and class names to the fingerprint, keep the listing beside the store,
refuse a changed input in one line, and write the report's preview from the source."""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import version

import numpy as np

from cifar_ray.config import ExtractConfig
from cifar_ray.errors import UserError
from cifar_ray.source import cifar
from cifar_ray.source.decode import Decoder
from cifar_ray.source.images import read
from cifar_ray.source.images.dataset import ImageDataset
from cifar_ray.source.images.listing import dataset_name
from cifar_ray.store import listing, samples
from cifar_ray.store.features import FeatureStore

PREVIEW_SIZE = 64  # thumbnails: what the report's prediction grid shows
PREVIEW_IMAGES = 64
Dataset = cifar.Dataset | ImageDataset


def dataset_key(cfg: ExtractConfig) -> str:
    """The dataset's name, as its store is named: known before the input is listed."""
    return dataset_name(cfg.data) if cfg.data else cfg.dataset


def load(cfg: ExtractConfig) -> Dataset:
    """CIFAR as always, or your own images' listing (no image is read here)."""
    if not cfg.data:
        return cifar.load(cfg.data_dir, cfg.limit, cfg.dataset)
    return read.open_input(
        cfg.data, test_fraction=cfg.test_fraction, seed=cfg.seed,
        image_column=cfg.image_column, label_column=cfg.label_column,
    ).limited(cfg.limit)  # fmt: skip


def read_spec(cfg: ExtractConfig, size: int) -> read.ReadSpec:
    return read.ReadSpec(cfg.data, size, cfg.resize_mode, cfg.max_pixels, cfg.strict,
                         cfg.image_column)  # fmt: skip


def fingerprint_fields(cfg: ExtractConfig, dataset: Dataset) -> dict:
    """The fingerprint's extra fields for your own images (none for CIFAR)."""
    if not isinstance(dataset, ImageDataset):
        return {}
    images = {"read": dataset.settings, "classes": list(dataset.classes),
              "max_pixels": cfg.max_pixels, "decoder": f"pillow {version('pillow')}"}  # fmt: skip
    return {"resize": cfg.resize_mode, "images": images}


def rows(dataset: ImageDataset) -> list[tuple[str, int, str]]:
    return [(one.path, one.size, one.version) for one in dataset.listing]


def check_listing(store: FeatureStore, existing: dict, fields: dict, dataset: Dataset) -> None:
    """A store of these settings made from another listing: refused, saying how it moved."""
    if not isinstance(dataset, ImageDataset):
        return
    same = {k for k in fields if k not in ("dataset_sha256", "split_sizes")}
    if any(existing.get(k) != fields[k] for k in same):
        return  # made differently: the general refusal names the fields
    old = listing.read(store)
    moved = listing.changes(old, rows(dataset)) if old is not None else "files changed"
    raise UserError(f"{store.dir} was made from other input files ({moved} in {dataset.uri} "
                    "since); use --overwrite to replace it or another --out")  # fmt: skip


def claim(store: FeatureStore, dataset: Dataset) -> None:
    if isinstance(dataset, ImageDataset):
        listing.write(store, rows(dataset))


def write_preview(store: FeatureStore, dataset: ImageDataset, cfg: ExtractConfig) -> None:
    """The first usable test images, read from the source a few at a time, in the order the
    test rows are stored (bad ones skipped as in the shards)."""
    test = dataset.splits.get("test")
    if test is None or not dataset.labelled:
        return
    spec = replace(read_spec(cfg, PREVIEW_SIZE), strict=False)
    decoder, images, labels = Decoder(), [], []
    for start in range(0, len(test), 16):
        pixels, good, _ = read.shard_pixels(spec, list(test.items[start : start + 16]), decoder)
        if pixels is not None:
            images.append(pixels)
            labels.append(test.labels[start : start + 16][good])
        if sum(map(len, images)) >= PREVIEW_IMAGES:
            break
    if images:
        samples.write_preview(store.loc, np.concatenate(images)[:PREVIEW_IMAGES],
                              np.concatenate(labels)[:PREVIEW_IMAGES], dataset.classes,
                              dataset=dataset.name)  # fmt: skip


def shard_items(p) -> object | None:
    """What Ray sends each actor for an image input: descriptors, never pixels."""
    if not isinstance(p.dataset, ImageDataset):
        return None
    from cifar_ray.extract.inputs import ShardItems  # Ray: only when there is work

    return ShardItems(p.dataset, read_spec(p.cfg, p.spec.image_size))
