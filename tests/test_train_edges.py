"""`cifar-ray train` at its edges, through the real command on a small store made without
Ray: what it leaves in the temporary folder, a loss that is NaN from the first epoch."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import plan
from tests.conftest import run_cli

SIZES = {"train": 200, "test": 50}
FID = "f1"


def _store(out: Path, *, nan: bool = False) -> None:
    """A whole 8-dim store whose features tell the classes apart (or are all NaN)."""
    store = FeatureStore(Location(str(out)), "toy")
    rng = np.random.default_rng(0)
    for shard in plan(SIZES, 100):
        labels = np.arange(shard.start, shard.stop) % 10
        feats = np.eye(10, 8, dtype=np.float32)[labels] + rng.normal(0, 0.1, (shard.rows, 8))
        feats = np.full_like(feats, np.nan) if nan else feats
        store.publish(shard, labels, feats.astype(np.float32), {"fingerprint": FID})
    store.write_fingerprint(FID, {"backbone": "toy"})
    Manifest("toy", FID, list("abcdefghij"), SIZES, None, 100).write(store)


def _train(out: Path, tmp: Path, *extra: str):
    """The real command, its temporary folder `tmp`; Ray's own files go to a short path of
    their own (its socket paths have a length limit), removed afterwards."""
    ray_tmp = tempfile.mkdtemp(prefix="crt-", dir="/tmp")
    env = {"TMPDIR": str(tmp), "RAY_TMPDIR": ray_tmp}
    try:
        return run_cli("train", "--local", "--out", out, "--backbone", "toy", "--epochs", "2",
                       "--no-baselines", "--no-pixel-baselines", *extra, env=env)  # fmt: skip
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.ray
def test_train_leaves_nothing_in_the_temporary_folder(tmp_path):
    _store(tmp_path / "out")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = _train(tmp_path / "out", tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "models" / "toy" / "head.keras").is_file()
    assert list(tmp.iterdir()) == []  # no cifar-ray-head-* (tens of MB each) left behind
