"""The installed `cifar-ray` command as a user runs it: help, the whole job, bad input."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from tests import cifar_files
from tests.conftest import run_cli, tree_files


def test_help_lists_subcommands():
    top = run_cli("--help")
    assert top.returncode == 0
    for name in ("run", "extract", "train", "report", "inspect", "backbones", "neighbours"):
        assert name in top.stdout
    sub = run_cli("run", "--help")
    assert sub.returncode == 0 and "--image-size" in sub.stdout


@pytest.mark.ray
def test_run_local_end_to_end(tmp_path, cifar_archive):
    """Relative paths, as a user types them: Ray's workers run in other directories."""
    out = tmp_path / "out"
    result = run_cli(
        "run", "--local", "--data-dir", cifar_archive, "--weights", "none", "--image-size", "75",
        "--limit", "120", "--shard-size", "50", "--epochs", "2", "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "Failed to query" not in result.stderr

    table = pq.read_table(out / "features/inceptionv3/train")
    assert table.num_rows == 120 and sorted(table.column("id").to_pylist()) == list(range(120))
    assert table.schema.field("features").type.list_size == 2048

    manifest = json.loads((out / "features/inceptionv3/manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 6

    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    models = metrics["backbones"]["inceptionv3"]["models"]
    assert {"dense_head", "logreg", "linear_svm", "knn_cosine", "pixel_mlp", "pixel_cnn"} <= set(
        models
    )
    assert len(models["dense_head"]["history"]["loss"]) == 2
    for name in ("report.md", "report.html", "inceptionv3-confusion.png",
                 "inceptionv3-predictions.png"):  # fmt: skip
        assert (report / name).stat().st_size > 0
    _assert_saved_head_reproduces_test_accuracy(out, models["dense_head"]["accuracy"]["test"])
    # The audit (issue 23): beside the store, in metrics.json, the comparison and the report.
    audit = json.loads((out / "index/inceptionv3/audit.json").read_text())
    assert audit["exact_duplicates"] == "pixel hash"
    assert audit["sizes"] == {"train": 120, "test": 120}
    assert (out / "index/inceptionv3/train.faiss").stat().st_size > 0
    assert metrics["audit"]["inceptionv3"]["threshold"] == audit["threshold"]
    assert "dense_head (clean)" in metrics["comparison"][0]
    assert '<section id="audit">' in (report / "report.html").read_text()


def _assert_saved_head_reproduces_test_accuracy(out, reported: float) -> None:
    import keras
    import numpy as np

    from cifar_ray.store import latents
    from cifar_ray.store.locations import Location

    lat = latents.load(Location(str(out)), "inceptionv3")
    model = keras.models.load_model(out / "models/inceptionv3/head.keras")
    predicted = np.argmax(model.predict(lat.features("test"), verbose=0), axis=1)
    assert float(np.mean(predicted == lat.y["test"])) == reported


def _bad_input_cases(tmp_path, archive):
    members = cifar_files.batches(n_per_batch=4)
    members["test_batch"] = members["test_batch"][:100]
    corrupt = cifar_files.write_archive(tmp_path / "corrupt.tar.gz", members)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:4000])
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    not_weights = tmp_path / "weights.h5"
    not_weights.write_bytes(b"not hdf5")
    return {
        "missing data path": (["--data-dir", tmp_path / "nope"], "no such file"),
        "data path a FIFO": (["--data-dir", fifo], "is a FIFO (named pipe), not a file or folder"),
        "truncated archive": (["--data-dir", truncated], "truncated or corrupt archive"),
        "corrupt pickle": (["--data-dir", corrupt], "test_batch: corrupt pickle"),
        "limit zero": (["--limit", "0"], "--limit must be a positive"),
        "limit negative": (["--limit", "-3"], "--limit must be a positive"),
        "unknown backbone": (["--backbone", "resnet9000"], "unknown backbone 'resnet9000'"),
        "bad custom backbone": (["--backbone", "tests.custom_backbone:no_pooling"], "no_pooling"),
        "image size below minimum": (["--image-size", "60"], "below inceptionv3's minimum"),
        "weights file missing": (["--weights", tmp_path / "x.h5"], "no such file"),
        "weights file bad": (["--weights", not_weights], "does not fit inceptionv3"),
        "unwritable out": (["--out", a_file / "sub"], "cannot write there"),
    }


def test_bad_input_one_line_exit_2_nothing_written(tmp_path, synthetic_archive):
    for case, (args, message) in _bad_input_cases(tmp_path, synthetic_archive).items():
        out = tmp_path / f"out-{case.replace(' ', '-')}"
        argv = ["extract", "--local", "--data-dir", synthetic_archive, "--weights", "none",
                "--image-size", "75", "--out", out, *args]  # fmt: skip
        result = run_cli(*argv)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.returncode == 2, (case, result.stderr[-2000:])
        assert len(lines) == 1 and message in lines[0], (case, result.stderr)
        assert tree_files(out) == set(), case
