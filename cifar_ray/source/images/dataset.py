"""The one interface every image input answers with: what to read (items, in a fixed order
per split), their labels and class names, and the listing the fingerprint covers. No image
bytes: an actor reads its own shard's items (`read.py`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from cifar_ray.errors import UserError

UNLABELLED = -1
SPLIT_NAMES = ("train", "val", "test")  # in the order they are planned


@dataclass(frozen=True)
class Item:
    """Where one image's bytes are. `file` is a storage path (pyarrow.fs); a tar member is
    the byte range [offset, offset+size) of it, a Parquet row is row `row` of row group
    `offset`; a plain file has offset -1 and is read whole."""

    path: str  # what users see, and the `path` column of each feature row
    file: str
    offset: int = -1
    row: int = -1
    size: int = -1


@dataclass(frozen=True)
class ImageSplit:
    items: tuple[Item, ...]
    labels: np.ndarray  # int64, UNLABELLED (-1) for images without a class
    coarse: None = None  # CIFAR-100's superclasses: never here

    def __len__(self) -> int:
        return len(self.items)

    def head(self, n: int) -> ImageSplit:
        return ImageSplit(self.items[:n], self.labels[:n])


@dataclass(frozen=True)
class Listed:
    """One input file as listed: the fingerprint's unit of change."""

    path: str
    size: int
    version: str  # modification time in ns (or an ETag where storage gives one)


@dataclass(frozen=True)
class ImageDataset:
    name: str  # the store's `@<name>` (layout.store_name)
    uri: str  # the input as the user gave it: actors open it themselves
    kind: str  # folder, parquet or webdataset
    splits: dict[str, ImageSplit]
    classes: tuple[str, ...]
    listing: tuple[Listed, ...]
    settings: dict = field(default_factory=dict)  # how it was read: in the fingerprint
    superclasses: tuple[str, ...] = ()
    fine_to_coarse: tuple[int, ...] = ()

    @property
    def labelled(self) -> bool:
        return bool(self.classes)

    @property
    def sha256(self) -> str:
        """Of the listing (each file's path, size and version) and how it was read."""
        digest = hashlib.sha256(repr(sorted(self.settings.items())).encode())
        for one in self.listing:
            digest.update(f"{one.path}\0{one.size}\0{one.version}\n".encode())
        return digest.hexdigest()

    def limited(self, limit: int | None) -> ImageDataset:
        if limit is None:
            return self
        return replace(self, splits={k: s.head(limit) for k, s in self.splits.items()})


def stratified(items: list[Item], labels: list[int], fraction: float,
               seed: int) -> dict[str, ImageSplit]:  # fmt: skip
    """train/test from one labelled pool: `fraction` of each class to test, seeded, so a
    re-run splits the same way; each split keeps the listing's order."""
    labels_ = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(items), dtype=bool)
    for label in np.unique(labels_):
        members = np.flatnonzero(labels_ == label)
        n = round(len(members) * fraction)
        if len(members) > 1:
            n = min(max(n, 1), len(members) - 1)  # both splits see every class of 2+
        test[rng.choice(members, size=n, replace=False)] = True
    return {"train": split_of(items, labels_, ~test), "test": split_of(items, labels_, test)}


def split_of(items: list[Item], labels: np.ndarray, keep: np.ndarray) -> ImageSplit:
    chosen = np.flatnonzero(keep)
    return ImageSplit(tuple(items[i] for i in chosen), labels[chosen])


def splits_of(groups: dict[str, tuple[list[Item], list[int]]], fraction: float,
              seed: int) -> dict[str, ImageSplit]:  # fmt: skip
    """Named splits as found, or (only one unnamed pool) a stratified train/test split;
    unlabelled images stay in one "train" split (extract works, train refuses)."""
    if set(groups) == {""}:
        items, labels = groups[""]
        if labels and min(labels) == UNLABELLED:
            return {"train": ImageSplit(tuple(items), np.asarray(labels, dtype=np.int64))}
        return stratified(items, labels, fraction, seed)
    return {name: ImageSplit(tuple(groups[name][0]), np.asarray(groups[name][1], np.int64))
            for name in SPLIT_NAMES if name in groups}  # fmt: skip


ALIASES = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}


def split_name(rel: str, by_file_name: bool = False) -> str:
    """The split a file's relative path names by its first folder or (`by_file_name`, for
    Parquet and tar shards) its name's prefix, as in `train-00000-of-00004.parquet`; ""
    when it names none."""
    words = [rel.split("/", 1)[0].lower()] if "/" in rel else []
    if by_file_name:
        words.append(rel.rsplit("/", 1)[-1].lower())
    for word in words:
        for name, aliases in ALIASES.items():
            if any(word == a or word.startswith((f"{a}-", f"{a}_", f"{a}.")) for a in aliases):
                return name
    return ""


def split_names_of_files(rels, uri: str) -> dict[str, str]:
    """Each Parquet or tar file's split, by its name. All named or none named: a file
    without a split name beside named ones would belong to no split and be dropped unseen."""
    names = {rel: split_name(rel, by_file_name=True) for rel in rels}
    unnamed = [rel for rel, name in names.items() if not name]
    if unnamed and len(unnamed) < len(names):
        raise UserError(
            f"--data {uri}: {unnamed[0]} has no split name (train-, val-, test-) but "
            f"{next(r for r, n in names.items() if n)} has; rename it, or name no file "
            "by its split so that --test-fraction makes a seeded train/test split"
        )
    return names
