"""Several backbones in one job: one store each, resume per backbone, one comparison."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.ray


def _extract(archive, out, backbones):
    return run_cli("extract", "--local", "--data-dir", archive, "--weights", "none",
                   "--image-size", "75,mobilenetv2=32", "--limit", "40", "--shard-size", "20",
                   "--backbone", backbones, "--out", out)  # fmt: skip


def _last_run(out, backbone):
    manifest = out / "features" / backbone / "manifest.json"
    return json.loads(manifest.read_text())["last_run"]


def test_two_backbones_resume_per_backbone_and_compare(tmp_path, cifar_archive):
    out = tmp_path / "out"
    first = _extract(cifar_archive, out, "inceptionv3")
    assert first.returncode == 0, first.stderr[-3000:]

    both = _extract(cifar_archive, out, "inceptionv3,mobilenetv2")
    assert both.returncode == 0, both.stderr[-3000:]
    assert (
        _last_run(out, "inceptionv3")["computed"],
        _last_run(out, "inceptionv3")["skipped"],
    ) == (0, 4)
    assert _last_run(out, "mobilenetv2")["computed"] == 4
    dims = {
        name: pq.read_schema(next((out / f"features/{name}/train").glob("part-00000-*")))
        .field("features").type.list_size
        for name in ("inceptionv3", "mobilenetv2")
    }  # fmt: skip
    assert dims == {"inceptionv3": 2048, "mobilenetv2": 1280}
    fingerprint = json.loads((out / "features/mobilenetv2/fingerprint.json").read_text())
    assert fingerprint["image_size"] == 32

    trained = run_cli("train", "--local", "--out", out, "--epochs", "1", "--no-pixel-baselines")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert run_cli("report", "--out", out).returncode == 0
    metrics = json.loads((out / "report/metrics.json").read_text())
    rows = {row["backbone"]: row for row in metrics["comparison"]}
    assert set(rows) == {"inceptionv3", "mobilenetv2"}
    assert {"dim", "images_per_s", "dense_head", "logreg"} <= set(rows["mobilenetv2"])
    assert (out / "report/comparison.png").stat().st_size > 0


def test_image_size_override_must_name_a_backbone(tmp_path, cifar_archive):
    result = run_cli("extract", "--data-dir", cifar_archive, "--weights", "none",
                     "--image-size", "resnet5=224", "--out", tmp_path / "o")  # fmt: skip
    assert result.returncode == 2 and "unknown backbone 'resnet5'" in result.stderr
    assert not (tmp_path / "o").exists()
