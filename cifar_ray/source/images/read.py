"""The two ends of an image input: `open_input` on the driver (list, then read what the input
is into an ImageDataset: no image bytes) and `read_items` in an actor (one shard's bytes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from cifar_ray.source.decode import BadImage, Decoder
from cifar_ray.source.images import folder, parquet_files, webdataset
from cifar_ray.source.images.dataset import ImageDataset, Item
from cifar_ray.source.images.listing import list_input
from cifar_ray.store.locations import Location, storage_error


def open_input(uri: str, *, test_fraction: float, seed: int, image_column: str,
               label_column: str) -> ImageDataset:  # fmt: skip
    found = list_input(uri)
    kind = found.kind
    if kind == "parquet":
        return parquet_files.read(found, image_column, label_column, test_fraction, seed)
    if kind == "webdataset":
        return webdataset.read(found, test_fraction, seed)
    return folder.read(found, test_fraction, seed)


class Missing(Exception):
    """An input listed at planning that is gone now: a bad image, not a storage failure."""


def read_items(uri: str, items: list[Item], image_column: str = "image") -> list[bytes | Missing]:
    """Each item's encoded bytes, in order. A storage error raises StorageError (the shard
    is retried like any failure); a file deleted since the listing is `Missing`."""
    fs = Location(uri).fs
    out: list[bytes | Missing] = []
    groups: dict[tuple[str, int], list] = {}  # one read per Parquet row group
    for item in items:
        try:
            if item.row >= 0:
                key = (item.file, item.offset)
                if key not in groups:
                    groups[key] = _row_group(fs, item.file, item.offset, image_column)
                out.append(groups[key][item.row])
            elif item.offset >= 0:
                with fs.open_input_file(item.file) as f:
                    out.append(f.read_at(item.size, item.offset))
            else:
                with fs.open_input_stream(item.file) as f:
                    out.append(f.read())
        except FileNotFoundError:
            out.append(Missing("cannot be read: no such file (removed since it was listed)"))
        except OSError as exc:
            raise storage_error(item.file, exc) from None
    return out


def _row_group(fs, file: str, group: int, column: str) -> list[bytes]:
    with fs.open_input_file(file) as f:
        values = pq.ParquetFile(f).read_row_group(group, columns=[column]).column(0)
    return [_bytes_of(v) for v in values.to_pylist()]


def _bytes_of(value) -> bytes:
    """`struct<bytes, path>` (Hugging Face's Image feature) or plain binary."""
    if isinstance(value, dict):
        value = value.get("bytes")
    return value or b""


@dataclass(frozen=True)
class ReadSpec:
    """How an actor turns a shard's items into pixels: one per plan, small and picklable."""

    uri: str
    size: int
    resize: str
    max_pixels: int | None
    strict: bool
    image_column: str = "image"


def shard_pixels(spec: ReadSpec, items: list[Item], decoder: Decoder):
    """(pixels of the good images, their indices in `items`, [path, reason] of the bad ones).
    With `spec.strict` a bad image raises BadImage: the shard fails, naming it."""
    blobs = read_items(spec.uri, items, spec.image_column)
    todo = [i for i, b in enumerate(blobs) if not isinstance(b, Missing)]
    decoded = dict(zip(todo, decoder.decode([blobs[i] for i in todo], spec.size, spec.resize,
                                            spec.max_pixels), strict=True))  # fmt: skip
    good, bad = [], []
    for i, item in enumerate(items):
        outcome = decoded.get(i, blobs[i])
        if isinstance(outcome, Exception):
            if spec.strict:
                raise BadImage(f"{item.path}: {outcome} (--strict)")
            bad.append((item.path, str(outcome)))
        else:
            good.append(i)
    pixels = np.stack([decoded[i] for i in good]) if good else None
    return pixels, good, bad
