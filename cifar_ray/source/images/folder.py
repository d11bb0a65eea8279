"""A tree of image files: `ROOT/{train,val,test}/<class>/…`, `ROOT/<class>/…` (split by
--test-fraction) or images with no class folders (unlabelled)."""

from __future__ import annotations

from cifar_ray.source.images.dataset import (
    UNLABELLED,
    ImageDataset,
    Item,
    split_name,
    splits_of,
)
from cifar_ray.source.images.listing import IMAGE_EXTENSIONS, Found, dataset_name


def read(found: Found, fraction: float, seed: int) -> ImageDataset:
    images = found.with_ext(*IMAGE_EXTENSIONS)
    by_split = {rel: split_name(rel) for rel in images}
    named = any(by_split.values())
    # The class is the folder right under the split (or under ROOT); none: unlabelled.
    classes_of = {rel: _class_of(rel, named) for rel in images}
    labelled = all(classes_of.values())
    classes = sorted({c for c in classes_of.values() if c}) if labelled else []
    index = {name: i for i, name in enumerate(classes)}
    groups: dict[str, tuple[list, list]] = {}
    for rel, listed in images.items():
        split = by_split[rel] if named else ""
        if named and not split:
            continue  # beside the split folders (a README, a stray image): not data
        items, labels = groups.setdefault(split, ([], []))
        items.append(Item(rel, listed.path, size=listed.size))
        labels.append(index[classes_of[rel]] if labelled else UNLABELLED)
    return ImageDataset(
        dataset_name(found.loc.uri), found.loc.uri, "folder",
        splits_of(groups, fraction, seed), tuple(classes), tuple(images.values()),
        {"kind": "folder", "test_fraction": fraction, "seed": seed},
    )  # fmt: skip


def _class_of(rel: str, named: bool) -> str:
    parts = rel.split("/")
    depth = 2 if named else 1
    return parts[depth - 1] if len(parts) > depth else ""
