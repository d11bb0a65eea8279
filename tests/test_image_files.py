"""The test-input writers write what they say they wrote, from the real CIFAR sample."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cifar_ray.source.decode import decode_image
from tests import image_files


def pixels(split: str, i: int) -> np.ndarray:
    return image_files.sample().splits[split].images[i]


def test_folder_tree_split_png_is_lossless_and_labelled_by_folder(tmp_path):
    written = image_files.write_folder_tree(tmp_path, 12, 5)
    assert len(written.names) == len(written.files) == 17
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == sorted(
        written.names
    )
    for name, split, label in zip(written.names, written.splits, written.labels, strict=True):
        top, cls, file = name.split("/")
        assert top == split and cls == written.classes[label]
        i = int(file.removesuffix(".png"))
        assert np.array_equal(decode_image((tmp_path / name).read_bytes(), 32), pixels(split, i))


def test_folder_tree_flat_jpeg_upscaled(tmp_path):
    written = image_files.write_folder_tree(tmp_path, 6, 2, fmt="jpeg", layout="flat", size=64)
    assert {p.parent.name for p in written.files} <= set(written.classes)
    assert all(p.suffix == ".jpg" and p.parent.parent == tmp_path for p in written.files)
    assert written.splits == ["train"] * 6 + ["test"] * 2
    assert Image.open(written.files[0]).size == (64, 64)


def test_hf_parquet_with_int_and_string_labels(tmp_path):
    for label, kind in (("int", pa.int64()), ("str", pa.string())):
        root = tmp_path / label
        written = image_files.write_hf_parquet(root, 7, 4, label=label)
        assert sorted(p.name for p in root.iterdir()) == [
            "test-00000-of-00002.parquet", "test-00001-of-00002.parquet",
            "train-00000-of-00002.parquet", "train-00001-of-00002.parquet",
        ]  # fmt: skip
        tables = [pq.read_table(p) for p in written.files]
        assert all(t.schema.field("image").type == image_files.IMAGE_STRUCT for t in tables)
        assert all(t.schema.field("label").type == kind for t in tables)
        rows = pa.concat_tables(tables).to_pylist()
        assert [r["image"]["path"] for r in rows] == written.names
        names = [written.classes[y] for y in written.labels]
        assert [r["label"] for r in rows] == (names if label == "str" else written.labels)
        first = decode_image(rows[0]["image"]["bytes"], 32)
        assert np.array_equal(first, pixels("train", 0))


def test_webdataset_shards_pair_each_jpeg_with_its_label(tmp_path):
    for label in ("cls", "json"):
        written = image_files.write_webdataset(tmp_path / label, 10, 3, shard_size=4, label=label)
        assert [p.name for p in written.files] == [
            *(f"train-{i:06d}.tar" for i in range(3)),
            "test-000000.tar",
        ]
        members = {}
        for shard in written.files:
            with tarfile.open(shard) as tar:
                members.update({m.name: tar.extractfile(m).read() for m in tar})
        assert len(members) == 2 * 13
        for key, y in zip(written.names, written.labels, strict=True):
            assert decode_image(members[f"{key}.jpg"], 32).shape == (32, 32, 3)
            side = members[f"{key}.{label}"]
            assert (json.loads(side)["label"] if label == "json" else int(side)) == y
