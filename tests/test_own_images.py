"""Your own images without Ray: each reader's listing, splits and classes, decoding of every
colour mode and size, bad images named, and the same inputs on an S3 server (moto)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.bench.image_folder import encode
from cifar_ray.config import MAX_PIXELS, ExtractConfig
from cifar_ray.errors import StorageError, UserError
from cifar_ray.source import cifar
from cifar_ray.source.decode import BadImage, Decoder
from cifar_ray.source.images import read
from cifar_ray.source.images.dataset import Item
from cifar_ray.store import listing
from tests import image_files

PER_SPLIT = 12


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    n = PER_SPLIT
    image_files.write_folder_tree(root / "folder", n, n)
    image_files.write_folder_tree(root / "classes", n, 0, "jpeg", layout="flat")
    image_files.write_hf_parquet(root / "parquet", n, n, label="str")
    image_files.write_webdataset(root / "wds", n, n, shard_size=8)
    (root / "wds" / "classes.txt").write_text("\n".join(cifar.CLASSES))  # a names file
    names = {"folder": "folder", "jpeg-classes": "classes", "parquet": "parquet"}
    return {**{k: root / v for k, v in names.items()}, "webdataset": root / "wds"}


def _open(uri: str, **kw) -> read.ImageDataset:
    options = {"test_fraction": 0.25, "seed": 0, "image_column": "image", "label_column": "label"}
    return read.open_input(uri, **{**options, **kw})


@pytest.mark.parametrize("kind", ["folder", "parquet", "webdataset"])
def test_each_reader_lists_the_splits_labels_and_class_names(inputs, kind):
    ds = _open(str(inputs[kind]))
    expected = image_files.splits(PER_SPLIT, PER_SPLIT)
    present = sorted({cifar.CLASSES[i] for _, labels in expected.values() for i in labels})
    # Folder names and string labels are the classes found; classes.txt names all ten.
    assert ds.kind == kind
    assert ds.classes == (cifar.CLASSES if kind == "webdataset" else tuple(present))
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": PER_SPLIT, "test": PER_SPLIT}
    names = [ds.classes[i] for i in ds.splits["test"].labels]
    assert sorted(names) == sorted(cifar.CLASSES[i] for i in expected["test"][1])
    pixels, good, bad = read.shard_pixels(read.ReadSpec(ds.uri, 40, "center-crop", None, False),
                                          list(ds.splits["test"].items), Decoder())  # fmt: skip
    assert pixels.shape == (PER_SPLIT, 40, 40, 3) and good == list(range(PER_SPLIT)) and not bad


def test_class_folders_without_splits_are_split_per_class_and_seeded(inputs):
    ds = _open(str(inputs["jpeg-classes"]))
    again = _open(str(inputs["jpeg-classes"]))
    assert set(ds.splits) == {"train", "test"}
    assert [i.path for i in ds.splits["test"].items] == [i.path for i in again.splits["test"].items]
    for label in np.unique(np.concatenate([s.labels for s in ds.splits.values()])):
        n = sum(int((s.labels == label).sum()) for s in ds.splits.values())
        if n > 1:  # every class of two images or more is in both splits
            assert (ds.splits["test"].labels == label).any()
            assert (ds.splits["train"].labels == label).any()


def test_images_without_class_folders_are_unlabelled(tmp_path):
    for i, pixels in enumerate(image_files.splits(0, 3)["test"][0]):
        (tmp_path / f"{i}.png").write_bytes(encode(pixels))
    ds = _open(str(tmp_path))
    assert not ds.labelled and list(ds.splits) == ["train"]
    assert (ds.splits["train"].labels == -1).all()


def test_every_colour_mode_and_size_decodes_and_every_bad_kind_is_named(tmp_path):
    odd = image_files.write_odd_images(tmp_path / "odd")
    bad = image_files.write_bad_images(tmp_path / "bad")
    items = [Item(o.path.name, str(o.path)) for o in odd]
    items += [Item(path.name, str(path)) for path in bad]
    items.append(Item("gone.jpg", str(tmp_path / "gone.jpg")))  # removed since it was listed
    spec = read.ReadSpec(str(tmp_path), 32, "pad", MAX_PIXELS, False)
    out, good, skipped = read.shard_pixels(spec, items, Decoder())
    assert out.shape == (len(odd), 32, 32, 3) and good == list(range(len(odd)))
    reasons = dict(skipped)
    assert sorted(reasons) == sorted([*(p.name for p in bad), "gone.jpg"])
    for path, kind in bad.items():
        assert reasons[path.name].startswith(kind), (path.name, reasons[path.name])
    assert "no such file" in reasons["gone.jpg"]
    with pytest.raises(BadImage, match="--strict"):
        read.shard_pixels(read.ReadSpec(**{**spec.__dict__, "strict": True}), items, Decoder())


def test_a_listing_change_is_counted():
    old = {"a.jpg": (1, "t1"), "b.jpg": (2, "t1"), "c.jpg": (3, "t1")}
    new = [("a.jpg", 1, "t1"), ("b.jpg", 2, "t2"), ("d.jpg", 4, "t1"), ("e.jpg", 5, "t1")]
    assert listing.changes(old, new) == "2 added, 1 removed, 1 changed"


def test_a_missing_input_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file or directory"):
        _open(str(tmp_path / "nothing"))
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(UserError, match="no images"):
        _open(str(tmp_path))


@pytest.fixture(scope="module")
def s3_inputs(inputs):
    """The same inputs in a bucket of a local S3 server."""
    import boto3

    from tests.moto_s3 import moto_server

    with moto_server("photos") as env:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name="us-east-1")  # fmt: skip
        for kind in ("folder", "parquet", "webdataset"):
            for path in sorted(inputs[kind].rglob("*")):
                if path.is_file():
                    key = f"{kind}/{path.relative_to(inputs[kind])}"
                    client.upload_file(str(path), "photos", key)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.parametrize("kind", ["folder", "parquet", "webdataset"])
def test_each_reader_reads_from_s3(s3_inputs, inputs, kind):
    local, remote = _open(str(inputs[kind])), _open(f"s3://photos/{kind}")
    assert remote.classes == local.classes
    assert [i.path for i in remote.splits["test"].items] == [
        i.path for i in local.splits["test"].items
    ]
    spec = read.ReadSpec(remote.uri, 32, "squash", None, False)
    items = list(remote.splits["test"].items[:5])
    pixels, _, bad = read.shard_pixels(spec, items, Decoder())
    assert pixels.shape == (5, 32, 32, 3) and not bad


def test_a_storage_error_is_not_a_bad_image(s3_inputs):
    """An object storage refuses to give raises (the shard is retried), never "skipped"."""
    from tests.moto_s3 import set_auth

    ds = _open("s3://photos/folder")
    set_auth(s3_inputs, enforced=True)
    try:
        env = {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong"}
        saved = {k: os.environ[k] for k in env}
        os.environ.update(env)
        with pytest.raises(StorageError):
            read.read_items(ds.uri, list(ds.splits["test"].items[:1]))
    finally:
        os.environ.update(saved)
        set_auth(s3_inputs, enforced=False)


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"resize": "zoom"}, "--resize must be one of squash, center-crop, pad"),
        ({"test_fraction": 1.5}, "--test-fraction must be in (0, 1)"),
        ({"data_dir": "/x"}, "give one"),
        ({"max_pixels": 0}, "--max-pixels must be positive"),
    ],
)
def test_image_options_are_checked_before_anything_runs(fields, shown):
    with pytest.raises(UserError, match=re.escape(shown)):
        ExtractConfig(data="/photos", **fields)


def test_train_refuses_a_store_of_unlabelled_images_in_one_line(tmp_path):
    from cifar_ray.store import latents
    from cifar_ray.store.features import FeatureStore
    from cifar_ray.store.locations import Location

    loc = Location(str(tmp_path))
    manifest = {"fingerprint": "f" * 16, "classes": [], "split_sizes": {"train": 3},
                "shard_size": 8, "dataset": "photos"}  # fmt: skip
    FeatureStore(loc, "smallcnn@photos").write_json("manifest.json", manifest)
    with pytest.raises(UserError, match="unlabelled images"):
        latents.load(loc, "smallcnn@photos")


@pytest.mark.parametrize("kind", ["parquet", "webdataset"])
def test_files_without_a_split_name_beside_named_ones_are_refused_in_one_line(tmp_path, kind):
    if kind == "parquet":
        image_files.write_hf_parquet(tmp_path, 4, 0, files_per_split=1)
        (tmp_path / "train-00000-of-00001.parquet").rename(tmp_path / "extra.parquet")
        image_files.write_hf_parquet(tmp_path, 4, 0, files_per_split=1)
    else:
        image_files.write_webdataset(tmp_path, 4, 0, shard_size=4)
        (tmp_path / "train-000000.tar").rename(tmp_path / "extra.tar")
        image_files.write_webdataset(tmp_path, 4, 0, shard_size=4)
    with pytest.raises(UserError, match=r"extra\.(parquet|tar).*no split name.*rename") as err:
        _open(str(tmp_path))
    assert "\n" not in str(err.value)
