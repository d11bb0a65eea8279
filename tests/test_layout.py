"""OUT's layout is spelled in one module, and it is the layout the README documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from cifar_ray.store import samples
from cifar_ray.store.checks import stores
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import Shard

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_path_is_the_one_the_readme_documents(tmp_path):
    out = Layout(Location(str(tmp_path)))
    root = str(tmp_path.resolve())
    expected = {
        out.store_dir("vgg16"): f"{root}/features/vgg16",
        out.data_file("vgg16", "train", "part-00003-ab12.parquet"):
            f"{root}/features/vgg16/train/part-00003-ab12.parquet",
        out.record("vgg16", "test-00007"): f"{root}/features/vgg16/_shards/test-00007.json",
        out.manifest("vgg16"): f"{root}/features/vgg16/manifest.json",
        out.fingerprint("vgg16"): f"{root}/features/vgg16/fingerprint.json",
        out.head("vgg16"): f"{root}/models/vgg16/head.keras",
        out.head_state("vgg16"): f"{root}/models/vgg16/state.json",
        out.results("vgg16"): f"{root}/models/vgg16/results.json",
        out.train_runs(): f"{root}/train-runs",
        out.train_runs_storage(): f"{root}/train-runs",
        out.train_run("head-vgg16-0123"): f"{root}/train-runs/head-vgg16-0123",
        out.preview(): f"{root}/samples/test-preview.npz",
        out.report_dir(): f"{root}/report",
        out.report_file("report.html"): f"{root}/report/report.html",
    }  # fmt: skip
    assert list(expected) == list(expected.values())
    section = README.read_text().split("## Output layout", 1)[1].split("##", 1)[0]
    documented = set(re.findall(r"^OUT/(\S+)", section, re.M))
    for prefix in ("features/<backbone>/<split>/part-", "features/<backbone>/_shards/<split>-"):
        assert any(path.startswith(prefix) for path in documented), prefix
    assert {
        "features/<backbone>/manifest.json",
        "features/<backbone>/fingerprint.json",
        "models/<backbone>/head.keras",
        "report/",
    } <= documented


def test_the_store_writes_exactly_where_the_layout_says(tmp_path):
    """Publishing, the manifest, the fingerprint and the preview land on the layout's paths,
    and nothing else appears under OUT."""
    loc = Location(str(tmp_path))
    out, store = Layout(loc), FeatureStore(loc, "toy")
    shards = [Shard("train", 0, 0, 4), Shard("test", 0, 0, 2)]
    records = [
        store.publish(s, np.zeros(s.rows, np.int64), np.ones((s.rows, 3), np.float32),
                      {"fingerprint": "fp"})
        for s in shards
    ]  # fmt: skip
    store.write_fingerprint("fp", {"image_size": 75})
    manifest = Manifest("toy", "fp", ["a", "b"], {"train": 4, "test": 2}, None, 4)
    manifest.write(store, {"images": 6, "seconds": 1.0, "images_per_s": 6.0,
                           "steady_images_per_s": 6.0, "first_shard_s": 0.5})  # fmt: skip
    samples.write_preview(loc, np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]), ["a", "b"])
    written = {str(p) for p in tmp_path.resolve().rglob("*") if p.is_file()}
    assert written == {
        out.manifest("toy"), out.fingerprint("toy"), out.preview(),
        *(out.record("toy", s.key) for s in shards),
        *(out.data_file("toy", s.split, r.file) for s, r in zip(shards, records, strict=True)),
    }  # fmt: skip
    assert all(re.fullmatch(r"part-00000-[0-9a-f]{16}\.parquet", r.file) for r in records)
    on_disk = json.loads(Path(out.manifest("toy")).read_text())
    assert on_disk["complete"] and len(on_disk["shards"]) == 2
    assert on_disk["throughput"]["images"] == 6 and on_disk["classes"] == ["a", "b"]
    assert store.read_fingerprint() == {"id": "fp", "image_size": 75}
    assert samples.read_preview(loc)["labels"].tolist() == [0, 1]
    assert stores(loc) == ["toy"]


def test_a_run_that_embeds_nothing_keeps_the_last_throughput(tmp_path):
    store = FeatureStore(Location(str(tmp_path)), "toy")
    manifest = Manifest("toy", "fp", ["a"], {"train": 2}, "/data", 2)
    speed = {"images": 2, "seconds": 1.0, "images_per_s": 2.0, "steady_images_per_s": 2.0,
             "first_shard_s": 0.1, "actors_replaced": 0}  # fmt: skip
    manifest.write(store, {**speed, "computed": 1})
    again = manifest.write(store, {"images": 0, "computed": 0})
    assert again["throughput"] == speed and again["last_run"] == {"images": 0, "computed": 0}
    assert not again["complete"] and again["data_dir"] == "/data"
