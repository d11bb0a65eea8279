"""Parquet files of encoded images, as Hugging Face datasets and img2dataset publish them:
an image column (`struct<bytes, path>` or binary) and a label column (int or string). The
driver reads footers and the label column only; actors read their row groups' images."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray.errors import UserError
from cifar_ray.source.images.dataset import (
    UNLABELLED,
    ImageDataset,
    Item,
    split_names_of_files,
    splits_of,
)
from cifar_ray.source.images.listing import Found, dataset_name
from cifar_ray.store.locations import storage_error


def read(found: Found, image_column: str, label_column: str, fraction: float,
         seed: int) -> ImageDataset:  # fmt: skip
    files = found.with_ext(".parquet")
    split_by_file = split_names_of_files(files, found.loc.uri)
    groups: dict[str, tuple[list, list]] = {}
    raw_labels, names = {}, None
    for rel, listed in files.items():
        meta, labels, names = _footer_and_labels(found, listed.path, image_column, label_column)
        raw_labels[rel] = labels
        split = split_by_file[rel]
        items, _ = groups.setdefault(split, ([], []))
        row = 0
        for group in range(meta.num_row_groups):
            for i in range(meta.row_group(group).num_rows):
                items.append(Item(f"{rel}#{row}", listed.path, offset=group, row=i))
                row += 1
    classes, index = _classes(raw_labels, names)
    for rel in files:
        groups[split_by_file[rel]][1].extend(
            UNLABELLED if v is None else index[v] for v in raw_labels[rel]
        )
    settings = {"kind": "parquet", "image_column": image_column, "label_column": label_column,
                "test_fraction": fraction, "seed": seed}  # fmt: skip
    return ImageDataset(
        dataset_name(found.loc.uri), found.loc.uri, "parquet",
        splits_of(groups, fraction, seed), classes, tuple(files.values()), settings,
    )  # fmt: skip


def _footer_and_labels(found: Found, path: str, image_column: str, label_column: str):
    """(footer, labels or Nones, class names the schema declares or None)."""
    try:
        pfile = pq.ParquetFile(found.loc.fs.open_input_file(path))
    except OSError as exc:
        raise storage_error(path, exc) from None
    except pa.ArrowInvalid as exc:
        raise UserError(f"{path}: not a Parquet file ({exc})") from None
    schema = pfile.schema_arrow
    if image_column not in schema.names:
        raise UserError(f"{path}: no column {image_column!r} (columns: "
                        f"{', '.join(schema.names)}); use --image-column")  # fmt: skip
    if label_column not in schema.names:
        return pfile.metadata, [None] * pfile.metadata.num_rows, None
    labels = pfile.read(columns=[label_column]).column(0).to_pylist()
    return pfile.metadata, labels, _declared_names(schema, label_column)


def _declared_names(schema: pa.Schema, column: str) -> list[str] | None:
    """Hugging Face's ClassLabel names, kept in the schema's metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        feature = json.loads(raw)["info"]["features"][column]
        return [str(n) for n in feature["names"]]
    except (TypeError, KeyError, ValueError):
        return None


def _classes(raw: dict[str, list], names: list[str] | None):
    values = {v for labels in raw.values() for v in labels if v is not None}
    if not values:
        return (), {}
    if all(isinstance(v, str) for v in values):
        classes = sorted(values)
        return tuple(classes), {c: i for i, c in enumerate(classes)}
    if not all(isinstance(v, int) and v >= 0 for v in values):
        raise UserError("the label column must hold class names or integers 0 and up")
    n = max(values) + 1
    classes = names if names and len(names) >= n else [str(i) for i in range(n)]
    return tuple(classes), {i: i for i in range(len(classes))}
