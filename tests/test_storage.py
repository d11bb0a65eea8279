"""Only "not found" means absent: any other storage failure stops the command (exit 1, one
line) before anything is replaced. Faults are real: a directory where a file should be, and
a moto S3 server with IAM enforced that denies the read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cifar_ray.errors import StorageError
from cifar_ray.store import locations
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import plan
from tests.conftest import run_cli
from tests.moto_s3 import moto_server, objects, set_auth, user_denied

SHARD = 10


def _args(archive, out) -> list:
    return ["extract", "--local", "--data-dir", archive, "--weights", "none",
            "--image-size", "75", "--limit", "20", "--shard-size", str(SHARD),
            "--out", out]  # fmt: skip


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _made_differently(store: FeatureStore) -> None:
    """A store another configuration made: a run that cannot see it would replace it."""
    for shard in plan({"train": 20, "test": 20}, SHARD):
        store.publish(shard, np.zeros(shard.rows, np.int64), np.ones((shard.rows, 4), np.float32),
                      {"fingerprint": "other", "backbone": "inceptionv3"})  # fmt: skip


def test_only_not_found_means_absent(tmp_path):
    loc = Location(str(tmp_path))
    assert locations.get_bytes(loc, str(tmp_path / "nothing.json")) is None
    (tmp_path / "fingerprint.json").mkdir()  # a read that fails for another reason
    with pytest.raises(StorageError, match=r"fingerprint\.json") as caught:
        locations.get_bytes(loc, str(tmp_path / "fingerprint.json"))
    assert "\n" not in str(caught.value)


def test_unreadable_fingerprint_stops_before_anything_is_replaced(tmp_path, cifar_archive):
    """A read that fails for a reason other than "not found" (here: a directory where the
    file should be) must not be taken for "no store here"."""
    out = tmp_path / "out"
    store = FeatureStore(Location(str(out)), "inceptionv3")
    _made_differently(store)
    (out / "features/inceptionv3/fingerprint.json").mkdir()
    before = _tree(out)

    result = run_cli(*_args(cifar_archive, out))
    assert result.returncode == 1, result.stderr[-3000:]
    line = result.stderr.strip()
    assert line.startswith("cifar-ray: error: cannot read ") and "fingerprint.json" in line
    assert len(line.splitlines()) == 1
    assert _tree(out) == before


def test_denied_read_on_s3_stops_before_anything_is_replaced(cifar_archive, monkeypatch):
    """A real moto server with IAM enforced: this user may write but not read the store's
    fingerprint.json, as a too-narrow bucket policy would do."""
    with moto_server() as env:
        loc = Location("s3://feats/run")
        for key, value in env.items():  # the store is made with the admin keys
            monkeypatch.setenv(key, value)
        store = FeatureStore(loc, "inceptionv3")
        _made_differently(store)
        store.write_json("fingerprint.json", {"id": "other", "image_size": 80})
        before = objects(env)
        denied = user_denied(
            env, ["s3:GetObject"], "arn:aws:s3:::feats/run/features/inceptionv3/fingerprint.json"
        )
        set_auth(env, enforced=True)
        try:
            result = run_cli(*_args(cifar_archive, "s3://feats/run"), env=denied)
        finally:
            set_auth(env, enforced=False)
        assert result.returncode == 1, result.stderr[-3000:]
        line = result.stderr.strip()
        assert line.startswith("cifar-ray: error: cannot read feats/run/features/inceptionv3/")
        assert len(line.splitlines()) == 1 and "fingerprint.json" in line
        # The run's lease came and went: pyarrow keeps an empty folder marker where it deleted
        # the last object (`leases/`, no lease in it); nothing the store held was touched.
        after = objects(env)
        assert after.pop("run/leases/", b"") == b""
        assert after == before
