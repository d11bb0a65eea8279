"""Storage faults for real: a disk that fills mid-run (a small tmpfs) and a read-only OUT (a
read-only bind mount). Each ends in one line, exit 1 (or 2 where checked up front), no
traceback, no temporary left, every committed row intact. Mounting needs root: skipped,
with the reason, where the test cannot mount."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cifar_ray.store.locations import TMP_MARK
from tests.conftest import RUN_TAG_ENV, kill_group, run_cli, start_cli

LIMIT, SHARD = 48, 12
STORE = "smallcnn"  # tests.custom_backbone:small_cnn's store


@contextlib.contextmanager
def _mounted(target: Path, *how: list[str]):
    target.mkdir(parents=True, exist_ok=True)
    for args in how:
        done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
            pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()[:200]}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _committed_ids(store: Path) -> dict[str, list[int]]:
    """Each split's ids, read only through the records (what readers trust)."""
    ids: dict[str, list[int]] = {"train": [], "test": []}
    for record in sorted((store / "_shards").glob("*.json")):
        body = json.loads(record.read_text())
        table = pq.read_table(store / body["split"] / body["file"], columns=["id"])
        ids[body["split"]] += table.column("id").to_pylist()
    return ids


@pytest.mark.ray
def test_a_disk_that_fills_mid_run_ends_in_one_line_and_a_summary(tmp_path, cifar_archive):
    """Before: 102 retry warnings, a 59-line traceback from write_manifest, no summary, and a
    manifest temporary left behind."""
    with _mounted(tmp_path / "disk", ["-t", "tmpfs", "-o", "size=8m", "tmpfs"]) as disk:
        out = disk / "out"
        args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                "--backbone", "tests.custom_backbone:small_cnn", "--image-size", "32",
                "--limit", str(LIMIT), "--shard-size", str(SHARD), "--out", out]  # fmt: skip
        env = {RUN_TAG_ENV: uuid.uuid4().hex, "CIFAR_RAY_TEST_SHARD_DELAY_S": "1.0"}
        proc = start_cli(*args, env=env)
        records = out / "features" / STORE / "_shards"
        try:
            while not (records.exists() and list(records.glob("*.json"))):
                assert proc.poll() is None, proc.stderr.read()[-3000:]
                subprocess.run(["sleep", "0.1"])
            _fill(disk)
            _, stderr = proc.communicate(timeout=300)
        finally:
            kill_group(proc)
        assert proc.returncode == 1, stderr[-3000:]
        assert "Traceback" not in stderr and "Unhandled error" not in stderr, stderr[-3000:]
        errors = [ln for ln in stderr.splitlines() if ln.startswith("cifar-ray: error:")]
        assert len(errors) == 1 and errors[0].endswith(": No space left on device"), stderr
        assert f"cannot write {out}/features/{STORE}/" in errors[0]
        assert "not published" in stderr and "retrying shard" not in stderr
        assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
        ids = _committed_ids(out / "features" / STORE)
        assert ids["train"] or ids["test"]
        for split_ids in ids.values():  # what was committed is whole, each row once
            assert len(split_ids) == len(set(split_ids)) and len(split_ids) % SHARD == 0


def _read_only(source: Path, target: Path):
    return _mounted(target, ["--bind", str(source)], ["-o", "remount,ro,bind"])


def test_train_on_a_read_only_out_is_refused_before_ray_train(tmp_path):
    """Before: 46 s of work, then an 89-line traceback from Ray Train's controller."""
    from tests.test_corrupt_files import _store

    _store(tmp_path / "src")
    with _read_only(tmp_path / "src", tmp_path / "ro") as out:
        result = run_cli("train", "--local", "--out", out, "--backbone", "toy")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines == [f"cifar-ray: error: --out {out}: cannot write there (Read-only file system)"]


def test_report_on_a_read_only_out_is_one_line_and_exit_1(tmp_path):
    from tests.test_corrupt_files import GOOD, _results_file, _store

    _store(tmp_path / "src")
    model = {"accuracy": {"train": 0.5, "val": 0.5, "test": 0.5}}
    _results_file(tmp_path / "src").write_text(json.dumps({**GOOD, "models": {"m": model}}))
    with _read_only(tmp_path / "src", tmp_path / "ro") as out:
        result = run_cli("report", "--out", out)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"cifar-ray: error: cannot write {out}/report/metrics.json: Read-only file system"
    ]


def test_a_refused_write_under_ray_train_is_the_same_one_line():
    """Ray Train wraps a worker's OSError in its own error (a chain, or only its text)."""
    from cifar_ray.train.ray_train import _refused_write

    try:
        try:
            raise OSError(errno.ENOSPC, "write failed")
        except OSError as inner:
            raise RuntimeError("Training failed") from inner
    except RuntimeError as exc:
        chained = _refused_write(exc, "/out/train-runs/head-x")
    assert str(chained) == "cannot write under /out/train-runs/head-x: No space left on device"
    text = RuntimeError("TrainingFailedError: ... OSError: [Errno 30] Read-only file system: ...")
    assert str(_refused_write(text, "/o")) == "cannot write under /o: Read-only file system"
    assert _refused_write(RuntimeError("loss is NaN"), "/o") is None


def test_a_delete_on_a_read_only_store_is_one_line_naming_the_path(tmp_path):
    """Cleanup (temporaries, strays, old checkpoints) on a store that went read-only."""
    from cifar_ray.errors import StorageRefused
    from cifar_ray.store import locations
    from cifar_ray.store.locations import Location

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f".x{TMP_MARK}1").write_bytes(b"")
    refused = pytest.raises(StorageRefused)
    with _read_only(tmp_path / "src", tmp_path / "ro") as ro, refused as caught:
        locations.remove_temporaries(Location(str(ro)), str(ro))
    assert str(caught.value) == f"cannot delete {ro}/.x{TMP_MARK}1: Read-only file system"
