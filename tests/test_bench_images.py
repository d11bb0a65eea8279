"""The whole-job bench on image files: the JPEG tree it writes, and its bare script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cifar_ray.bench import image_folder
from cifar_ray.bench.whole_job import BARE_IMAGES_SCRIPT, REPO
from cifar_ray.config import ExtractConfig
from tests import image_files
from tests.conftest import run_cli


def test_the_bench_writes_mirrored_jpegs_of_its_size_one_in_six_for_test(tmp_path):
    data = image_files.sample().limited(4)  # 8 photos, cycled to 20
    written = image_folder.write_bench_jpegs(tmp_path, data, 20)
    assert written.splits == ["train"] * 17 + ["test"] * 3
    sizes = {Image.open(p).size for p in written.files}
    assert sizes == {(image_folder.BENCH_SIZE,) * 2}
    assert len({p.read_bytes() for p in written.files}) == 16  # each photo, and its mirror
    labels = np.concatenate([s.labels for s in data.splits.values()])
    assert written.labels == [int(labels[i % 8]) for i in range(20)]


def test_the_bare_script_embeds_every_readable_file_with_its_path(tmp_path):
    root = tmp_path / "images"
    written = image_folder.write_bench_jpegs(root, image_files.sample().limited(20), 40)
    (root / "train" / "cat" / "zz-empty.jpg").write_bytes(b"")  # skipped, as extract does
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = [str(tmp_path / "out"), "tests.custom_backbone:small_cnn", "32", "0", "16",
            "float32", "0", str(root), "center-crop"]  # fmt: skip
    done = subprocess.run([sys.executable, str(BARE_IMAGES_SCRIPT), *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stamps = json.loads(done.stdout.strip().splitlines()[-1])
    assert stamps["images"] == 40 and stamps["files"] == 3
    table = pq.read_table(tmp_path / "out").sort_by("id")
    paths = [str(root / name) for name in written.names]
    by_path = dict(zip(paths, written.labels, strict=True))
    assert sorted(table["path"].to_pylist()) == sorted(paths)
    assert [by_path[p] for p in table["path"].to_pylist()] == table["label"].to_pylist()
    assert np.isfinite(np.stack(table["features"].to_numpy(zero_copy_only=False))).all()


def test_image_files_without_whole_job_is_refused_in_one_line(cifar_archive):
    result = run_cli("bench", "--data-dir", cifar_archive, "--image-files")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "--whole-job" in lines[0], lines
    assert Path(BARE_IMAGES_SCRIPT).is_file()


@pytest.mark.skipif(
    "data" not in ExtractConfig.__dataclass_fields__, reason="needs extract --data (issue 22)"
)
def test_whole_job_on_image_files_times_extract_data_against_the_bare_script(cifar_archive):
    result = run_cli("bench", "--whole-job", "--image-files", "--data-dir", cifar_archive,
                     "--backbone", "tests.custom_backbone:small_cnn", "--image-size", "32",
                     "--images", "60", "--shard-size", "32", "--rounds", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["mode"] == "whole_job" and line["images"] == 60 and line["resize"] == "center-crop"
    assert line["input"] == "image folder, JPEG 256x256" and line["input_mb"] > 0
    assert line["ratio"] == pytest.approx(line["bare_s"] / line["pipeline_s"], rel=0.01)
    assert 0 < line["first_shard_s"] < line["pipeline_s"]
    assert 0 < line["bare_first_batch_s"] <= line["bare_first_file_s"] < line["bare_s"]
    assert line["peak_pss_mb"] > 100 and line["bare_peak_pss_mb"] > 100
