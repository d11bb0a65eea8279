"""A re-run trains nothing that is up to date (as extraction skips finished shards); raw-pixel
models are trained once per dataset and split; features are checked before they are published,
and degenerate ones are flagged wherever a store is shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cifar_ray.config import TrainConfig, as_dict
from cifar_ray.report.sections import _accuracy_blocks
from cifar_ray.store import quality
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import plan
from cifar_ray.train import reuse, runner
from cifar_ray.train.results import PIXEL_KIND
from tests.conftest import run_cli

SMALL = "tests.custom_backbone:small_cnn"
# `run` starts Ray for extraction and training, then reads while the actors start.
PHASES = ["starting Ray on this machine", "reading cifar10 from", "starting 1 embedder actor",
          "first actor ready after"]  # fmt: skip


def _run(archive, out, *lead):
    return run_cli(*lead, "run", "--local", "--data-dir", archive, "--weights", "none",
                   "--backbone", SMALL, "--image-size", "32", "--limit", "40", "--epochs", "1",
                   "--no-pixel-baselines", "--actors", "1", "--out", out)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cifar_archive) -> dict:
    out = tmp_path_factory.mktemp("rerun") / "out"
    first = _run(cifar_archive, out, "-v")
    assert first.returncode == 0, first.stderr[-3000:]
    results = out / "models/smallcnn/results.json"
    before = results.read_bytes()
    again = _run(cifar_archive, out)
    assert again.returncode == 0, again.stderr[-3000:]
    return {"out": out, "first": first, "again": again, "same": results.read_bytes() == before}


@pytest.mark.ray
def test_start_up_phases_are_said_in_order(runs):
    lines = runs["first"].stderr.splitlines()
    at = [next(i for i, ln in enumerate(lines) if phase in ln) for phase in PHASES]
    assert at == sorted(at), [lines[i] for i in at]
    assert "img/s whole job" in runs["first"].stdout  # the summary names its rate


@pytest.mark.ray
def test_a_second_run_trains_nothing_and_keeps_the_results(runs):
    again = runs["again"]
    assert "4 of 4 models already trained, skipped" in again.stderr, again.stderr[-2000:]
    assert runs["same"]
    assert "report:" in again.stdout  # the report is still written
    assert not (runs["out"] / "train-runs").exists()  # no empty folder left behind


@pytest.mark.ray
def test_report_shows_settings_as_text_and_the_replaced_actor_count(runs):
    run = (runs["out"] / "report/report.md").read_text().split("## Run", 1)[1]
    assert "| extraction actors_replaced | 0 |" in run
    assert '{"' not in run and "/../" not in run


@pytest.mark.ray
def test_nan_features_fail_the_shard_and_constant_ones_are_flagged(tmp_path, cifar_archive):
    out = tmp_path / "out"
    both = "tests.custom_backbone:nan_features,tests.custom_backbone:constant_features"
    result = run_cli("extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                     "--backbone", both, "--image-size", "32", "--limit", "12", "--shard-size",
                     "12", "--actors", "1", "--max-retries", "0", "--out", out)  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "nan_features: 192 of 192 feature values of test-00000 are NaN or Inf" in result.stderr
    assert not list((out / "features/nan_features").rglob("*.parquet"))
    flagged = "degenerate features: the same for every image"
    assert f"warning: constant_features {flagged}" in result.stderr, result.stderr[-2000:]
    stores = {s["backbone"]: s for s in json.loads(run_cli("inspect", out, "--json").stdout)}
    assert stores["constant_features"]["warning"].startswith(flagged)


def test_degenerate_is_judged_on_every_shard():
    flat = quality.shard_stats(np.ones((8, 4), np.float32))
    tiny = quality.shard_stats(np.full((8, 4), 4e-11, np.float32) * np.arange(4))
    fine = quality.shard_stats(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    assert "same for every image" in quality.degenerate([flat, flat])
    assert "all near zero (largest |value| 1.2e-10)" in quality.degenerate([tiny])
    assert quality.degenerate([flat, fine]) is None and quality.degenerate([{}]) is None
    assert quality.non_finite(np.array([1.0, np.nan, np.inf, -np.inf])) == 3


def _store(out, name: str) -> None:
    """A complete 20 + 10 image store whose features differ per image."""
    store = FeatureStore(Location(str(out)), name)
    sizes = {"train": 20, "test": 10}
    for shard in plan(sizes, 10):
        feats = np.random.default_rng(shard.start).normal(size=(10, 4)).astype(np.float32)
        store.publish(shard, np.arange(shard.start, shard.stop) % 2, feats, {"fingerprint": name})
    Manifest(name, name, ["a", "b"], sizes, None, 10).write(store)


def test_pixel_models_of_a_dataset_are_reused_and_up_to_date_stores_kept(tmp_path):
    cfg = TrainConfig(out=str(tmp_path), data_dir=str(tmp_path / "no-archive-needed"))
    for name in ("one", "two"):
        _store(tmp_path, name)
    pixel = {
        "kind": PIXEL_KIND,
        "accuracy": {"train": 1, "val": 1, "test": 0.5},
        "test_predictions": [0] * 10,
    }
    done = {"fingerprint": "one", "train_config": as_dict(cfg), "dataset": "cifar10",
            "split_sizes": {"train": 20, "test": 10},
            "models": {n: {"accuracy": {}, "test_predictions": [0] * 10}
                       for n in ("dense_head", "logreg", "linear_svm", "knn_cosine")}
            | {"pixel_mlp": pixel, "pixel_cnn": pixel}}  # fmt: skip
    path = tmp_path / Layout(Location(str(tmp_path))).results("one")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(done))
    older = {**done, "models": {n: {k: v for k, v in m.items() if k != "test_predictions"}
                                for n, m in done["models"].items()}}  # fmt: skip
    assert not reuse.up_to_date(older, {"complete": True, "fingerprint": "one"}, cfg)
    prepared = runner.prepare(cfg)
    assert set(prepared.kept) == {"one"} and set(prepared.loaded) == {"two"}
    assert prepared.pixels == {}  # nothing to read: the pixel models exist for this split
    assert list(prepared.pixel_models.values()) == [{"pixel_mlp": pixel, "pixel_cnn": pixel}]
    again = runner.prepare(TrainConfig(out=str(tmp_path), retrain=True, pixel_baselines=False))
    assert not again.kept and set(again.loaded) == {"one", "two"}


def test_the_report_carries_the_warning_and_the_chosen_values():
    scores = {"train": 1, "val": 1, "test": 1}
    logreg = {"C": 1000.0, "val_scores": {"1000.0": 1}}
    res = {"backbone": "b", "classes": ["a", "b"], "sizes": {"train": 1},
           "feature_warning": "degenerate features: all near zero (largest |value| 4e-11)",
           "models": {"dense_head": {"kind": "x", "accuracy": scores, "test": {},
                                     "params": {"best_epoch": 3, "run_key": "abc"}},
                      "logreg": {"kind": "baseline", "accuracy": scores, "test": {},
                                 "params": logreg}}}  # fmt: skip
    blocks = _accuracy_blocks("b", res, {})
    assert blocks[0] == ("p", "Warning: degenerate features: all near zero (largest |value| "
                              "4e-11).")  # fmt: skip
    [(_, header, rows)] = [b for b in blocks if b[0] == "table"]
    assert header[-1] == "chosen on validation"
    assert {row[0]: row[-1] for row in rows} == {"dense_head": "best_epoch 3", "logreg": "C 1000"}
