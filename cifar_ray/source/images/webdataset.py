"""WebDataset tar shards: `key.jpg` (or .png, .webp…) beside `key.cls` or `key.json`, as
img2dataset and webdataset write them. The driver reads the tar headers and the small
label members; an actor reads its images as byte ranges of the tar."""

from __future__ import annotations

import json
import tarfile

from cifar_ray.errors import UserError
from cifar_ray.source.images.dataset import (
    UNLABELLED,
    ImageDataset,
    Item,
    split_names_of_files,
    splits_of,
)
from cifar_ray.source.images.listing import IMAGE_EXTENSIONS, Found, dataset_name
from cifar_ray.store.locations import storage_error

LABEL_KEYS = ("label", "cls", "class")


def read(found: Found, fraction: float, seed: int) -> ImageDataset:
    tars = found.with_ext(".tar")
    split_by_file = split_names_of_files(tars, found.loc.uri)
    per_tar, values = {}, set()
    for rel, listed in tars.items():
        per_tar[rel] = _members(found, listed.path, rel)
        values |= {v for _, v in per_tar[rel] if v is not None}
    classes = _classes(values, found)
    index = {v: i for i, v in enumerate(classes)} if all(isinstance(v, str) for v in values) \
        else {i: i for i in range(len(classes))}  # fmt: skip
    groups: dict[str, tuple[list, list]] = {}
    for rel, members in per_tar.items():
        items, labels = groups.setdefault(split_by_file[rel], ([], []))
        for item, value in members:
            items.append(item)
            labels.append(UNLABELLED if value is None or not classes else index[value])
    return ImageDataset(
        dataset_name(found.loc.uri), found.loc.uri, "webdataset",
        splits_of(groups, fraction, seed), tuple(classes), tuple(tars.values()),
        {"kind": "webdataset", "test_fraction": fraction, "seed": seed},
    )  # fmt: skip


def _members(found: Found, path: str, rel: str) -> list[tuple[Item, object]]:
    """(item, label value) per sample of one tar, in the tar's order."""
    images, labels = {}, {}
    try:
        with found.loc.fs.open_input_file(path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                folder, _, base = member.name.rpartition("/")
                stem, _, ext = base.partition(".")
                key = f"{folder}/{stem}" if folder else stem
                if f".{ext.lower()}" in IMAGE_EXTENSIONS:
                    item = Item(f"{rel}/{member.name}", path, member.offset_data, size=member.size)
                    images.setdefault(key, item)
                elif ext in ("cls", "json") and member.size < 65536:
                    labels[key] = _label(tar.extractfile(member).read(), ext)
    except OSError as exc:
        raise storage_error(path, exc) from None
    except tarfile.TarError as exc:
        raise UserError(f"{path}: not a tar file ({exc})") from None
    return [(item, labels.get(key)) for key, item in images.items()]


def _label(raw: bytes, ext: str):
    text = raw.decode("utf-8", "replace").strip()
    if ext == "cls":
        return int(text) if text.lstrip("-").isdigit() else text
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    found = next((payload[k] for k in LABEL_KEYS if isinstance(payload, dict) and k in payload),
                 None)  # fmt: skip
    return found if isinstance(found, int | str) else None


def _classes(values: set, found: Found) -> list[str]:
    if not values:
        return []
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if not all(isinstance(v, int) and v >= 0 for v in values):
        raise UserError(f"--data {found.loc.uri}: labels must be class names or integers 0 and up")
    names = _names_file(found)
    n = max(values) + 1
    return names if len(names) >= n else [str(i) for i in range(n)]


def _names_file(found: Found) -> list[str]:
    """`classes.txt`: one class name a line, in label order, beside the tars."""
    listed = found.files.get("classes.txt")
    if listed is None:
        return []
    with found.loc.fs.open_input_stream(listed.path) as f:
        return [ln.strip() for ln in f.read().decode().splitlines() if ln.strip()]
