"""The cluster job scripts, run as `ray submit` runs them on the head node (here with --local)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_train_job_ends_with_the_report(tmp_path, cifar_archive):
    out = tmp_path / "out"
    extract = run_cli("extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                      "--image-size", "75", "--limit", "40", "--out", out)  # fmt: skip
    assert extract.returncode == 0, extract.stderr[-2000:]

    job = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "train.py"), "--", "--local", "--out", str(out),
         "--epochs", "1", "--no-baselines", "--no-pixel-baselines"],
        capture_output=True, text=True, timeout=600, start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    report = out / "report"
    for name in ("metrics.json", "report.md", "report.html"):
        assert (report / name).stat().st_size > 0, name
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["backbones"]) == {"inceptionv3"}
    assert "dense_head" in metrics["backbones"]["inceptionv3"]["models"]
    assert "inceptionv3" in (report / "report.md").read_text()
