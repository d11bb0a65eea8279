"""`cifar-ray train` at its edges, through the real command on a small store made without
Ray: what it leaves in the temporary folder, a loss that is NaN from the first epoch."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import plan
from tests.conftest import run_cli, signal_while_ray_starts, start_cli

SIZES = {"train": 200, "test": 50}
FID = "f1"


def _store(out: Path) -> None:
    """A whole 8-dim store whose features tell the classes apart."""
    store = FeatureStore(Location(str(out)), "toy")
    rng = np.random.default_rng(0)
    for shard in plan(SIZES, 100):
        labels = np.arange(shard.start, shard.stop) % 10
        feats = np.eye(10, 8, dtype=np.float32)[labels] + rng.normal(0, 0.1, (shard.rows, 8))
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


@pytest.mark.parametrize("rate", ["nan", "0", "-0.1", "inf"])
def test_a_learning_rate_that_cannot_train_is_one_line(tmp_path, rate):
    _store(tmp_path / "out")
    result = run_cli("train", "--local", "--out", tmp_path / "out", "--learning-rate", rate)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    assert "--learning-rate must be finite and > 0" in err
    assert not (tmp_path / "out" / "models").exists()


@pytest.mark.ray
def test_a_loss_that_is_nan_from_the_first_epoch_still_saves_a_head(tmp_path):
    """No epoch improves on a NaN loss: the first epoch's weights are the best ones kept.
    A learning rate of 1e38 overflows the weights in the first steps."""
    _store(tmp_path / "out")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = _train(tmp_path / "out", tmp, "--learning-rate", "1e38")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "models" / "toy" / "head.keras").is_file()
    results = json.loads((tmp_path / "out" / "models" / "toy" / "results.json").read_text())
    assert math.isnan(results["models"]["dense_head"]["history"]["val_loss"][0])


@pytest.mark.ray
def test_an_interrupted_train_says_what_it_keeps(tmp_path):
    """Ctrl-C in `train`: exit 130 and the training's own resume hint, not extraction's."""
    _store(tmp_path / "out")
    proc = start_cli("train", "--local", "--out", tmp_path / "out", "--backbone", "toy",
                     "--no-baselines", "--no-pixel-baselines")  # fmt: skip
    stderr = signal_while_ray_starts(proc, signal.SIGINT)
    assert proc.returncode == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last == "cifar-ray: interrupted; training checkpoints are kept, re-run to resume"


def test_a_second_train_on_a_store_is_refused_in_one_line(tmp_path):
    """A train is running on the store (its lease, renewed by this live process): a second
    is refused before Ray starts and leaves the first's lease be. No Ray runs here."""
    out = tmp_path / "out"
    _store(out)
    first = out / "leases" / "train" / "toy.json"
    first.parent.mkdir(parents=True)
    body = {"run": "first", "host": socket.gethostname(), "pid": os.getpid(),
            "since_unix": round(time.time()), "expires_unix": round(time.time() + 600)}  # fmt: skip
    first.write_text(json.dumps(body))
    result = _train(out, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "another train is running on this store" in result.stderr
    assert "checkpoints" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(first.read_text())["run"] == "first"
    assert not (out / "models" / "toy" / "head.keras").exists()
