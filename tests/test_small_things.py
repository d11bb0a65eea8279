"""What a user notices after a run: paths as they are, no lock file after a failed download."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar_ray.config import TrainConfig, absolute
from cifar_ray.errors import UserError


def test_local_paths_are_absolute_and_normalised(tmp_path):
    assert absolute(str(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")
    assert TrainConfig(out=str(tmp_path / "x/../out")).out == str(tmp_path / "out")
    assert absolute("s3://bucket/a/../b") == "s3://bucket/a/../b"  # not a local path


def test_a_failed_download_leaves_no_lock_file(tmp_path, monkeypatch):
    """A real failed download: nothing listens on the port the archive is fetched from."""
    from dataclasses import replace

    from cifar_ray.source import cifar

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    unreachable = replace(cifar.CIFAR10, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(UserError, match=r"cannot download CIFAR-10 .*; pass --data-dir"):
        cifar.download(unreachable)
    assert list((tmp_path / "keras" / "datasets").iterdir()) == []  # no lock, no partial file


def test_neighbours_names_its_positional_out_as_out():
    from cifar_ray.config import AuditConfig, ExtractConfig

    with pytest.raises(UserError, match=r"^OUT / is a filesystem root"):
        AuditConfig(out="/")  # `cifar-ray neighbours /`: there is no --out to name
    with pytest.raises(UserError, match=r"^--out / is a filesystem root"):
        ExtractConfig(out="/")


def test_a_corrupt_fingerprint_says_to_re_run_extract_with_overwrite(tmp_path):
    """`train`, `report` and `neighbours` read it too, and have no --overwrite of their own."""
    from cifar_ray.store.features import FeatureStore
    from cifar_ray.store.locations import Location

    folder = tmp_path / "features" / "toy"
    folder.mkdir(parents=True)
    (folder / "fingerprint.json").write_text("garbage{")
    store = FeatureStore(Location(str(tmp_path)), "toy")
    with pytest.raises(UserError, match=r"re-run `cifar-ray extract` with --overwrite to replace"):
        store.read_fingerprint()


@pytest.mark.parametrize("kind", ["extract", "train"])
def test_a_lease_taken_over_from_an_interrupted_run_leaves_no_leases_folder(tmp_path, kind):
    """The interrupted run's lease file (its process gone) stays in OUT/leases/; the run that
    takes it over gives it back and, before, left the folder it had not made, empty."""
    import json
    import socket
    import subprocess

    from cifar_ray.store import lease
    from cifar_ray.store.layout import Layout
    from cifar_ray.store.locations import Location

    loc = Location(str(tmp_path / "out"))
    stale = Path(Layout(loc).lease("toy", kind))
    stale.parent.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    body = {"run": "interrupted", "host": socket.gethostname(), "pid": gone.pid,
            "since_unix": 0, "expires_unix": 4_000_000_000}  # fmt: skip
    stale.write_text(json.dumps(body))
    with lease.held(loc, ["toy"], kind=kind):
        assert stale.exists()
    assert not (tmp_path / "out" / "leases").exists()
    assert (tmp_path / "out").is_dir()  # not the lease's to remove
