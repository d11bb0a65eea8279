"""Corrupt store and result files, written for real, through the real commands: each is one
line naming the file and how to recover (exit 2), or for `inspect` a bad store (exit 1),
never a traceback, and never a loop without end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.errors import UserError
from cifar_ray.extract import job
from cifar_ray.source import cifar
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import plan
from tests.conftest import run_cli

SIZES = {"train": 20, "test": 10}
FID = "f1"


def _store(out: Path) -> Path:
    """A whole store of 3 shards, made without Ray; returns its folder."""
    store = FeatureStore(Location(str(out)), "toy")
    for shard in plan(SIZES, 10):
        feats = np.zeros((shard.rows, 4), np.float32)
        store.publish(shard, np.arange(shard.rows) % 10, feats, {"fingerprint": FID})
    store.write_fingerprint(FID, {"backbone": "toy"})
    Manifest("toy", FID, list("abcdefghij"), SIZES, None, 10).write(store)
    return out / "features" / "toy"


def _one_line(result) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in err, err[-3000:]
    assert len(err.splitlines()) == 1, err[-3000:]
    return err


def _inspect(out: Path):
    """`inspect`: (exit code, printed text with the console's line wrapping undone)."""
    result = run_cli("inspect", out, timeout=120)
    text = " ".join((result.stdout + result.stderr).split())
    assert "Traceback" not in text, text[-3000:]
    return result.returncode, text


def test_whole_store_inspects_ok(tmp_path):
    _store(tmp_path)
    assert run_cli("inspect", tmp_path).returncode == 0


def _edit(manifest: dict, **changes) -> str:
    return json.dumps({**manifest, **changes})


@pytest.mark.parametrize(
    "body",
    ["garbage{", "[1,2]", "{}", "SHARD0", "NO_SPLITS", "HUGE", "UNKNOWN_SPLIT"],
)
def test_corrupt_manifest_makes_inspect_report_a_bad_store(tmp_path, body):
    folder = _store(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    body = {
        "SHARD0": _edit(manifest, shard_size=0),
        "NO_SPLITS": _edit(manifest, split_sizes="x"),
        "HUGE": _edit(manifest, split_sizes={"train": 10**9}, shard_size=1),
        "UNKNOWN_SPLIT": _edit(manifest, split_sizes={"valid": 5}),
    }.get(body, body)
    (folder / "manifest.json").write_text(body)
    code, text = _inspect(tmp_path)
    assert code == 1, text[-3000:]
    assert "manifest.json: corrupt" in text and "re-run `cifar-ray extract`" in text


def test_manifest_with_shard_size_zero_stops_train_in_one_line(tmp_path):
    folder = _store(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(_edit(manifest, shard_size=0))
    result = run_cli("train", "--local", "--out", tmp_path, "--backbone", "toy")
    assert result.returncode == 2
    assert "shard_size must be a positive integer" in _one_line(result)


@pytest.mark.parametrize("body", ["garbage{", "[1]", '"x"', '{"id": 5}'])
def test_corrupt_fingerprint_makes_inspect_report_a_bad_store(tmp_path, body):
    folder = _store(tmp_path)
    (folder / "fingerprint.json").write_text(body)
    code, text = _inspect(tmp_path)
    assert code == 1, text[-3000:]
    assert "fingerprint.json: corrupt" in text


def test_fingerprint_of_other_id_than_the_manifest_is_a_bad_store(tmp_path):
    folder = _store(tmp_path)
    (folder / "fingerprint.json").write_text(json.dumps({"id": "other"}))
    code, text = _inspect(tmp_path)
    assert code == 1 and "fingerprint.json: corrupt, it names other, the manifest f1" in text


OTHER_STORE = json.dumps({"id": "another-store", "backbone": "resnet50"})


@pytest.mark.parametrize("body", ["garbage{", "[]", OTHER_STORE])
def test_train_refuses_a_corrupt_or_mismatched_fingerprint_as_inspect_does(tmp_path, body):
    """Before: `train` never read fingerprint.json, and trained on such a store (exit 0)."""
    folder = _store(tmp_path)
    (folder / "fingerprint.json").write_text(body)
    result = run_cli("train", "--local", "--out", tmp_path, "--backbone", "toy")
    assert result.returncode == 2
    line = _one_line(result)
    assert "fingerprint.json: corrupt" in line and "with --overwrite to replace this store" in line
    assert not (tmp_path / "models").exists()


def test_report_refuses_a_mismatched_fingerprint_in_one_line(tmp_path):
    folder = _store(tmp_path)
    (folder / "fingerprint.json").write_text(OTHER_STORE)
    model = {"accuracy": {"train": 0.5, "val": 0.5, "test": 0.5}}
    _results_file(tmp_path).write_text(json.dumps({**GOOD, "models": {"m": model}}))
    result = run_cli("report", "--out", tmp_path)
    assert result.returncode == 2
    assert "fingerprint.json: corrupt, it names another-store" in _one_line(result)
    assert not (tmp_path / "report").exists()


def test_record_of_the_wrong_shape_is_an_invalid_shard(tmp_path):
    folder = _store(tmp_path)
    record = folder / "_shards" / "train-00001.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "file": 5}))
    store = FeatureStore(Location(str(tmp_path)), "toy")
    shard = plan(SIZES, 10)[1]
    assert store.record(shard) is None
    assert store.problem(shard, FID) == "missing"  # recomputed by the next extract
    code, text = _inspect(tmp_path)
    assert code == 1 and "train-00001: missing" in text


@pytest.fixture
def extract_cfg(tmp_path, cifar_archive) -> ExtractConfig:
    return ExtractConfig(
        out=str(tmp_path / "out"), data_dir=str(cifar_archive), weights="none",
        backbone="mobilenetv2", image_size=32, limit=20, shard_size=10,
    )  # fmt: skip


@pytest.mark.parametrize("body", ["garbage{", "[1]", '"x"'])
def test_corrupt_fingerprint_refuses_extract_in_one_line(extract_cfg, body):
    folder = Path(extract_cfg.out) / "features" / "mobilenetv2"
    folder.mkdir(parents=True)
    (folder / "fingerprint.json").write_text(body)
    result = run_cli("extract", "--local", "--out", extract_cfg.out, "--data-dir",
                     extract_cfg.data_dir, "--weights", "none", "--backbone", "mobilenetv2",
                     "--image-size", "32", "--limit", "20")  # fmt: skip
    assert result.returncode == 2
    assert "with --overwrite to replace this store" in _one_line(result)
    assert (folder / "fingerprint.json").read_text() == body  # nothing replaced


def test_overwrite_replaces_a_store_whose_fingerprint_is_corrupt(extract_cfg):
    folder = Path(extract_cfg.out) / "features" / "mobilenetv2"
    folder.mkdir(parents=True)
    (folder / "fingerprint.json").write_text("garbage{")
    dataset = cifar.load(extract_cfg.data_dir, extract_cfg.limit)
    with pytest.raises(UserError, match=r"fingerprint\.json: corrupt"):
        job.prepare(extract_cfg, dataset)
    p = job.prepare(ExtractConfig(**{**extract_cfg.__dict__, "overwrite": True}), dataset)
    assert len(p.todo) == len(p.shards) == 4  # replaced, shard by shard, once the run publishes
    assert (folder / "fingerprint.json").read_text() == "garbage{"  # planning deletes nothing


def _results_file(out: Path) -> Path:
    path = out / "models" / "toy" / "results.json"
    path.parent.mkdir(parents=True)
    return path


GOOD = {"backbone": "toy", "fingerprint": FID, "dim": 4, "classes": [], "sizes": {},
        "train_config": {}, "extraction": {}, "embedding_2d": {}}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    ["garbage", '{"backbone": "to', "[]", "{}", json.dumps({**GOOD, "models": {}}),
     json.dumps({**GOOD, "models": {"m": {"params": {}}}})],
)  # fmt: skip
def test_corrupt_results_stop_report_in_one_line(tmp_path, body):
    _results_file(tmp_path).write_text(body)
    result = run_cli("report", "--out", tmp_path)
    assert result.returncode == 2
    line = _one_line(result)
    assert "results.json: corrupt" in line and "cifar-ray train" in line
    assert not (tmp_path / "report").exists()
