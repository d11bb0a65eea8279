"""The benchmark's smoke run (numbers are measured on purpose, never asserted as speeds) and
the memory check: an actor's peak RSS does not grow with the number of images."""

from __future__ import annotations

import json

import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.extract import job
from tests.conftest import run_cli

pytestmark = pytest.mark.ray


def test_bench_prints_one_sane_json_line(cifar_archive):
    result = run_cli("bench", "--data-dir", cifar_archive, "--image-size", "75", "--images", "96",
                     "--batch-size", "16", "--shard-size", "32",
                     "--precision", "mixed_bfloat16", "--xla")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["baseline_images_per_s"] > 0 and line["pipeline_images_per_s"] > 0
    rounds = line["pipeline_rounds_images_per_s"]  # two by default: each side's best counts
    assert len(rounds) == 2 and line["pipeline_images_per_s"] == max(rounds)
    assert line["ratio"] == pytest.approx(
        line["pipeline_images_per_s"] / line["baseline_images_per_s"], rel=0.01
    )
    assert 0 < line["first_shard_s"] < 600 and line["peak_pss_mb"] > 100
    assert 0.999 < line["cosine_vs_float32_min"] <= 1.0  # bf16 + XLA against the float32 model


def _actor_peak_rss(ray_local, tmp_path, archive, limit: int) -> float:
    cfg = ExtractConfig(out=str(tmp_path / str(limit)), data_dir=str(archive), weights="none",
                        image_size=75, limit=limit, shard_size=32, batch_size=16)  # fmt: skip
    summary = job.execute(job.prepare(cfg))
    assert summary.computed == 2 * limit // 32
    records = (tmp_path / str(limit)).rglob("_shards/*.json")
    return max(json.loads(p.read_text())["worker_peak_rss_mb"] for p in records)


def test_actor_memory_is_flat_in_dataset_size(ray_local, tmp_path, cifar_archive):
    small = _actor_peak_rss(ray_local, tmp_path, cifar_archive, 64)
    large = _actor_peak_rss(ray_local, tmp_path, cifar_archive, 256)
    assert large < small * 1.10, (small, large)


def test_bench_refuses_zero_rounds_in_one_line(cifar_archive):
    result = run_cli("bench", "--data-dir", cifar_archive, "--rounds", "0")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "--rounds" in lines[0], result.stderr
    assert result.stdout.strip() == ""


def test_whole_job_bench_times_the_command_against_the_bare_script(cifar_archive):
    result = run_cli("bench", "--whole-job", "--data-dir", cifar_archive,
                     "--backbone", "tests.custom_backbone:small_cnn", "--image-size", "32",
                     "--images", "96", "--shard-size", "32", "--rounds", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["mode"] == "whole_job" and line["images"] == 96
    assert line["ratio"] == pytest.approx(line["bare_s"] / line["pipeline_s"], rel=0.01)
    assert len(line["pipeline_rounds_s"]) == len(line["bare_rounds_s"]) == 1
    assert 0 < line["first_shard_s"] < line["pipeline_s"]
    assert 0 < line["bare_first_batch_s"] <= line["bare_first_file_s"] < line["bare_s"]
    assert line["peak_pss_mb"] > 100 and line["bare_peak_pss_mb"] > 100
    # memory from a round of its own: sampling it would slow the timed rounds
    assert line["memory_round_s"]["bare"] > 0 and line["memory_round_s"]["pipeline"] > 0
    assert line["steady_images_per_s"] > 0


@pytest.mark.parametrize(
    ("sizes", "images", "expected"),
    [
        ({"train": 5000, "test": 1000}, 3000, (2000, 3000)),
        ({"train": 5000, "test": 1000}, 6000, (None, 6000)),
        ({"train": 5000, "test": 1000}, 99999, (None, 6000)),
        ({"train": 60, "test": 60}, 96, (48, 96)),
        ({"train": 60, "test": 60}, 97, (48, 96)),
    ],
)
def test_whole_job_images_become_the_per_split_limit_extract_takes(sizes, images, expected):
    from cifar_ray.bench.whole_job import per_split_limit

    assert per_split_limit(sizes, images) == expected
