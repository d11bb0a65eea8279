"""The shard watchdog against real stuck actors: one blocked inside the model's call, one
whose process is stopped (SIGSTOP). Ray notices neither (a stopped actor after 420 s)."""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from cifar_ray.store.locations import TMP_MARK
from tests.conftest import RUN_TAG_ENV, kill_group, run_cli, start_cli, tagged_processes
from tests.custom_backbone import HANG_ENV

pytestmark = pytest.mark.ray

LIMIT, SHARD = 36, 6  # 6 shards per split


def _workers(tag: str) -> list[psutil.Process]:
    found = []
    for p in tagged_processes(tag):
        with contextlib.suppress(psutil.Error):
            if "_RayShardWorker" in " ".join(p.cmdline()):
                found.append(p)
    return found


def _wait_for(predicate, proc, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_blocked_and_a_stopped_actor_are_killed_and_every_row_lands_once(tmp_path, cifar_archive):
    """First actor: blocks in the model's call on its first shard. Its replacement: stopped
    with SIGSTOP while it holds shards. Each is named in one line, killed and replaced; the
    job ends with exit 0 and every row once."""
    out, hang, tag = tmp_path / "out", tmp_path / "hang", uuid.uuid4().hex
    hang.mkdir()
    (hang / "armed").touch()
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
            "--backbone", "tests.custom_backbone:hangs_once", "--image-size", "32",
            "--limit", str(LIMIT), "--shard-size", str(SHARD), "--shard-timeout", "8",
            "--out", out]  # fmt: skip
    env = {HANG_ENV: str(hang), RUN_TAG_ENV: tag, "CIFAR_RAY_TEST_SHARD_DELAY_S": "0.7"}
    proc = start_cli(*args, env=env)
    stopped = None
    records = out / "features" / "hangs_once" / "_shards"
    try:
        hung = _wait_for(lambda: list(hang.glob("hung-*")), proc)[0]
        hung_pid = int(hung.name.split("-")[1])
        second = run_cli(*args)  # meanwhile, a second run on the same store (issue 20, item 8)
        busy = lambda: [  # noqa: E731
            w for w in _workers(tag) if w.pid != hung_pid and records.exists()
            and list(records.glob("*.json"))
        ]  # fmt: skip
        stopped = _wait_for(busy, proc)[0]
        stopped.send_signal(signal.SIGSTOP)
        _, stderr = proc.communicate(timeout=300)
        _, left = psutil.wait_procs(tagged_processes(tag), timeout=30)
    finally:
        kill_group(proc)
        if stopped is not None:
            with contextlib.suppress(psutil.Error):
                stopped.send_signal(signal.SIGCONT)
                stopped.kill()
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().startswith("cifar-ray: error: another extract is running on")
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "Unhandled error" not in stderr
    stuck = [ln for ln in stderr.splitlines() if "(stuck: no progress for" in ln]
    assert len(stuck) >= 2, stderr[-3000:]
    assert all("(bound 8 s); its actor was killed and replaced" in ln for ln in stuck), stuck
    assert all("on node " in ln and "retrying shard " in ln for ln in stuck), stuck
    assert not psutil.pid_exists(hung_pid) and not psutil.pid_exists(stopped.pid)
    assert not left, f"processes of the run still alive: {[p.cmdline() for p in left]}"
    store = out / "features" / "hangs_once"
    last_run = json.loads((store / "manifest.json").read_text())["last_run"]
    assert last_run["actors_replaced"] >= 2 and not last_run["failed"]
    for split in ("train", "test"):
        ids = pq.read_table(store / split, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == list(range(LIMIT)), split
    assert not [p for p in Path(out).rglob("*") if TMP_MARK in p.name]
