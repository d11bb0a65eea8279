"""The feature store's edges through the CLI: a different --limit, a race of two attempts
then a rerun, and stores written before the commit protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.errors import UserError
from cifar_ray.extract import job
from cifar_ray.source import cifar
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import plan
from tests.conftest import run_cli

SHARD = 10


def _args(archive, out, limit: int, *extra) -> list:
    return ["extract", "--local", "--data-dir", archive, "--weights", "none",
            "--image-size", "75", "--limit", str(limit), "--shard-size", str(SHARD),
            "--out", out, *extra]  # fmt: skip


def _ids(out: Path, split: str) -> list[int]:
    """The split folder read as a Parquet dataset, as pandas, DuckDB or Ray Data read it."""
    folder = out / "features" / "inceptionv3" / split
    return sorted(ds.dataset(folder, format="parquet").to_table(["id"]).column("id").to_pylist())


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.ray
def test_other_limit_is_refused_and_overwrite_leaves_exactly_the_current_rows(
    tmp_path, cifar_archive
):
    out = tmp_path / "out"
    first = run_cli(*_args(cifar_archive, out, 40))
    assert first.returncode == 0, first.stderr[-3000:]
    before = _tree(out)

    smaller = run_cli(*_args(cifar_archive, out, 20))
    assert smaller.returncode == 2, smaller.stderr[-3000:]
    assert smaller.stderr.strip().splitlines() == [smaller.stderr.strip()]  # one line
    assert "made differently (split_sizes)" in smaller.stderr
    assert _tree(out) == before  # nothing changed

    replaced = run_cli(*_args(cifar_archive, out, 20, "--overwrite"))
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    for split in cifar.SPLITS:
        assert _ids(out, split) == list(range(20))
    assert run_cli("inspect", out).returncode == 0


@pytest.mark.ray
def test_a_race_then_a_rerun_leaves_exactly_the_result_rows(tmp_path, cifar_archive):
    out = tmp_path / "out"
    first = run_cli(*_args(cifar_archive, out, 20))
    assert first.returncode == 0, first.stderr[-3000:]

    # Two more attempts at train-00001 interleave (A.data, B.data, B.commit, A.commit), as a
    # retry does while the first attempt still runs, with other bytes; a third never commits.
    store = FeatureStore(Location(str(out)), "inceptionv3")
    shard = plan({"train": 20}, SHARD)[1]
    meta = json.loads((out / "features/inceptionv3/manifest.json").read_text())
    metadata = {"fingerprint": meta["fingerprint"], "backbone": "inceptionv3"}
    labels = cifar.load(str(cifar_archive), 20).splits["train"].labels[10:20]
    a, b, c = (store.write_data(shard, labels, np.full((10, 2048), v, np.float32), metadata)
               for v in (1.0, 2.0, 3.0))  # fmt: skip
    store.commit(b)
    store.commit(a)
    assert store.problem(shard, meta["fingerprint"]) is None
    assert len(_ids(out, "train")) == 50  # a dataset reader now sees 3 strays: 20 + 3 x 10
    report = run_cli("inspect", out)
    assert report.returncode == 0 and "stray" in report.stderr

    again = run_cli(*_args(cifar_archive, out, 20))
    assert again.returncode == 0, again.stderr[-3000:]
    for split in cifar.SPLITS:
        assert _ids(out, split) == list(range(20))
    train = sorted(p.name for p in (out / "features/inceptionv3/train").iterdir())
    assert train == sorted([a.file, store.record(plan({"train": 20}, SHARD)[0]).file])
    assert c.file not in train
    report = run_cli("inspect", out)
    assert report.returncode == 0 and "stray" not in report.stderr


def test_store_made_before_split_sizes_were_fingerprinted_still_resumes(tmp_path, cifar_archive):
    """Old layout: fingerprint without split_sizes, records without a file name, data at the
    fixed name. It resumes under its own fingerprint; another --limit is still refused."""
    cfg = ExtractConfig(out=str(tmp_path), data_dir=str(cifar_archive), weights="none",
                        image_size=75, limit=20, shard_size=SHARD)  # fmt: skip
    p = job.prepare(cfg)
    old_fields = {k: v for k, v in p.fingerprint.items() if k != "split_sizes"}
    old_id = job.fingerprint.fingerprint_id(old_fields)
    store = p.store
    for shard in p.shards:
        x = np.zeros((shard.rows, 4), np.float32)
        record = store.publish(shard, np.zeros(shard.rows, np.int64), x, {**p.metadata,
                               "fingerprint": old_id})  # fmt: skip
        folder = tmp_path / "features/inceptionv3" / shard.split
        (folder / record.file).rename(folder / shard.file_name)
        path = Path(store.record_path(shard))
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if k != "file"}))  # fmt: skip
    store.write_json("fingerprint.json", {"id": old_id, **old_fields})
    store.write_json("manifest.json", {"fingerprint": old_id, "shard_size": SHARD,
                                       "split_sizes": {"train": 20, "test": 20}})  # fmt: skip
    before = _tree(tmp_path)

    again = job.prepare(cfg)
    assert again.todo == [] and again.fingerprint_id == old_id
    assert _tree(tmp_path) == before
    with pytest.raises(UserError, match="split_sizes"):
        job.prepare(ExtractConfig(**{**cfg.__dict__, "limit": 10}))


@pytest.mark.ray
def test_overwrite_replaces_nothing_until_every_backbone_is_checked(tmp_path, cifar_archive):
    """--overwrite on two backbones whose second cannot be read: the first store stays as it
    was, byte for byte (it used to be deleted before the second was even looked at)."""
    out = tmp_path / "out"
    first = run_cli(*_args(cifar_archive, out, 20))
    assert first.returncode == 0, first.stderr[-3000:]
    before = _tree(out)
    (out / "features/mobilenetv2/fingerprint.json").mkdir(parents=True)  # unreadable store

    both = run_cli(*_args(cifar_archive, out, 20, "--overwrite", "--seed", "1",
                          "--backbone", "inceptionv3,mobilenetv2"))  # fmt: skip
    assert both.returncode == 1, both.stderr[-3000:]
    assert "fingerprint.json" in both.stderr and "Traceback" not in both.stderr
    assert {k: v for k, v in _tree(out).items() if "mobilenetv2" not in k} == before
