"""SIGTERM whenever it lands, also while ray.init is still starting Ray: exit 143, the
message, and nothing of the run left behind."""

from __future__ import annotations

import signal
import uuid

import psutil
import pytest

from tests.conftest import (
    RUN_TAG_ENV,
    signal_while_ray_starts,
    start_cli,
    tagged_processes,
)

pytestmark = pytest.mark.ray


def test_sigterm_while_ray_starts_exits_143_and_leaves_nothing(tmp_path, cifar_archive):
    tag = uuid.uuid4().hex
    proc = start_cli("extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                     "--image-size", "75", "--limit", "40", "--out", tmp_path / "out",
                     env={RUN_TAG_ENV: tag})  # fmt: skip
    stderr = signal_while_ray_starts(proc, signal.SIGTERM)
    assert proc.returncode == 143, stderr[-2000:]
    assert "terminated" in stderr and "Traceback" not in stderr, stderr[-2000:]
    _, alive = psutil.wait_procs(tagged_processes(tag), timeout=60)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "Ray left running"
