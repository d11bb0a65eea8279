"""Real faults against the installed CLI: killed actors, Ctrl-C, corrupt shards, failing shards."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from cifar_ray.source import cifar
from cifar_ray.store.locations import TMP_MARK
from tests.conftest import RUN_TAG_ENV, kill_group, run_cli, start_cli, tagged_processes
from tests.custom_backbone import SIMULATED_OOM

pytestmark = pytest.mark.ray

LIMIT, SHARD = 48, 12  # 4 shards per split
SLOW = {"CIFAR_RAY_TEST_SHARD_DELAY_S": "1.5"}


def _args(archive, out, *extra):
    return ["extract", "--local", "--data-dir", archive, "--weights", "none", "--image-size", "75",
            "--limit", str(LIMIT), "--shard-size", str(SHARD), "--out", out, *extra]  # fmt: skip


def _store(out: Path) -> Path:
    return out / "features" / "inceptionv3"


def _records(out: Path) -> list[Path]:
    folder = _store(out) / "_shards"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def _wait_for(predicate, proc, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError("timed out")


def _data_file(out: Path, key: str) -> Path:
    """The file the shard's record names (each attempt writes its own)."""
    return _store(out) / key.split("-")[0] / json.loads(_record(out, key).read_text())["file"]


def _record(out: Path, key: str) -> Path:
    return _store(out) / "_shards" / f"{key}.json"


def _last_run(out: Path) -> dict:
    return json.loads((_store(out) / "manifest.json").read_text())["last_run"]


def _assert_exactly_once(out: Path) -> None:
    for split in cifar.SPLITS:
        ids = pq.read_table(_store(out) / split, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == list(range(LIMIT)), split
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]


def _workers(proc) -> list[psutil.Process]:
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "_RayShardWorker" in " ".join(_cmdline(c))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def test_killed_actor_is_replaced_and_every_id_lands_once(tmp_path, cifar_archive):
    out = tmp_path / "out"
    proc = start_cli(*_args(cifar_archive, out), env=SLOW)
    try:
        _wait_for(lambda: _records(out) and _workers(proc), proc)
        victims = _workers(proc)
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, stderr[-3000:]
    assert _last_run(out)["actors_replaced"] >= 1
    _assert_exactly_once(out)


def test_sigint_stops_cleanly_and_rerun_resumes(tmp_path, cifar_archive):
    out = tmp_path / "out"
    proc = start_cli(*_args(cifar_archive, out), env=SLOW)
    try:
        _wait_for(lambda: len(_records(out)) >= 1, proc)
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "Ray left running"

    done = {p.stem: p for p in _records(out)}
    assert 1 <= len(done) < 8
    stamps = {k: _data_file(out, k).stat() for k in done}
    again = run_cli(*_args(cifar_archive, out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _last_run(out)["skipped"] == len(done)
    for key, before in stamps.items():
        after = _data_file(out, key).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), key
    _assert_exactly_once(out)
    _assert_equals_direct_embedding(out, cifar_archive)


def _assert_equals_direct_embedding(out: Path, archive: Path) -> None:
    """The resumed store holds what one uninterrupted single-process run computes."""
    from cifar_ray.embed.embedder import Embedder, EmbedderSpec

    data = cifar.load(str(archive), limit=LIMIT)
    direct = Embedder(EmbedderSpec("inceptionv3", 75, "none", seed=0))
    for split in cifar.SPLITS:
        table = pq.read_table(_store(out) / split).sort_by("id")
        got = np.stack(table.column("features").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(got, direct(data.splits[split].images), atol=1e-4)


def test_failing_shard_is_named_others_finish_and_rerun_picks_it_up(tmp_path, cifar_archive):
    out = tmp_path / "out"
    failing = run_cli(*_args(cifar_archive, out, "--max-retries", "1"),
                      env={"CIFAR_RAY_TEST_FAIL_SHARDS": "train-00001"})  # fmt: skip
    assert failing.returncode == 1, failing.stderr[-3000:]
    assert "train-00001" in failing.stderr and "injected failure" in failing.stderr
    assert [p.stem for p in _records(out)] == [
        "test-00000", "test-00001", "test-00002", "test-00003",
        "train-00000", "train-00002", "train-00003",
    ]  # fmt: skip

    refused = run_cli("train", "--out", out)
    assert refused.returncode == 2
    assert "incomplete feature store" in refused.stderr and "train-00001" in refused.stderr

    again = run_cli(*_args(cifar_archive, out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (_last_run(out)["computed"], _last_run(out)["skipped"]) == (1, 7)
    _assert_exactly_once(out)


def test_truncated_shard_is_reported_then_only_it_is_recomputed(tmp_path, cifar_archive):
    out = tmp_path / "out"
    first = run_cli(*_args(cifar_archive, out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert run_cli("inspect", out).returncode == 0

    victim = _data_file(out, "test-00002")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    report = run_cli("inspect", out)
    assert report.returncode == 1 and "test-00002" in report.stderr

    again = run_cli(*_args(cifar_archive, out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (_last_run(out)["computed"], _last_run(out)["skipped"]) == (1, 7)
    assert run_cli("inspect", out).returncode == 0
    _assert_exactly_once(out)

    other = run_cli(*_args(cifar_archive, out)[:-2], "--out", out, "--image-size", "80")
    assert other.returncode == 2
    assert "made differently (image_size)" in other.stderr


def test_sigterm_stops_ray_and_says_so(tmp_path, cifar_archive):
    out = tmp_path / "out"
    proc = start_cli(*_args(cifar_archive, out), env=SLOW)
    try:
        _wait_for(lambda: _workers(proc), proc)
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 143 and "terminated" in stderr, stderr[-2000:]
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "Ray left running"


@pytest.mark.parametrize(
    ("factory", "shown", "more"),
    [
        ("fails_in_actor", f"InvalidArgumentError: assertion failed: [{SIMULATED_OOM}]", []),
        ("dies_in_actor", "no actor could start: its process died: ", []),
        # placed, never ready: it used to run for ever saying it waited for the cluster
        ("blocks_in_actor", "s after it was placed (bound 5 s): stuck while starting (node ",
         ["--start-timeout", "5"]),
    ],
)  # fmt: skip
def test_an_actor_that_cannot_start_ends_the_job(tmp_path, cifar_archive, factory, shown, more):
    """Before: the failed actor was taken for a node that went away and restarted every 5 s,
    silently, for ever. Now: exit 1 naming every shard and the actor's error, nothing left."""
    out, tag = tmp_path / "out", uuid.uuid4().hex
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
            "--backbone", f"tests.custom_backbone:{factory}", "--image-size", "32",
            "--limit", "24", "--shard-size", "12", "--out", out, *more]  # fmt: skip
    proc = start_cli(*args, env={RUN_TAG_ENV: tag})
    try:
        _, stderr = proc.communicate(timeout=400)  # the bound: it used to run for ever
        _, left = psutil.wait_procs(tagged_processes(tag), timeout=30)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, stderr[-3000:]
    assert shown in stderr and "Traceback" not in stderr and "second line" not in stderr, stderr
    for key in ("train-00000", "train-00001", "test-00000", "test-00001"):
        assert f"{factory}/{key}: no actor could start: " in stderr, stderr
    assert "(node " in stderr
    assert not left, f"processes of the run still alive: {[p.cmdline() for p in left]}"


def test_a_user_error_in_an_actor_is_one_line_and_exit_2(tmp_path, cifar_archive):
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
            "--backbone", "tests.custom_backbone:raises_in_actor", "--image-size", "32",
            "--limit", "12", "--shard-size", "12", "--out", tmp_path / "out"]  # fmt: skip
    result = run_cli(*args, timeout=400)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("cifar-ray: error:")]
    assert errors == [
        "cifar-ray: error: backbone factory tests.custom_backbone:raises_in_actor failed: "
        "ValueError: these weights do not fit this node's model (simulated)"
    ], result.stderr
    assert "Traceback" not in result.stderr
