"""Your own images through the installed CLI, end to end on tiny inputs written from the real
CIFAR-10 sample: an image folder (with every bad kind) run, trained and reported; a changed
input refused; a Parquet input on S3 whose actor is killed; a WebDataset re-run. Each result
is checked by reading the split folders as a Parquet dataset."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from cifar_ray.bench.image_folder import encode
from cifar_ray.source import cifar
from tests import image_files
from tests.conftest import kill_group, run_cli, start_cli, tree_files
from tests.test_faults import SLOW, _wait_for, _workers

pytestmark = pytest.mark.ray

PER_SPLIT, SHARD = 24, 8
TINY = ["--backbone", "tests.custom_backbone:small_cnn", "--weights", "none", "--image-size",
        "32", "--shard-size", str(SHARD)]  # fmt: skip


def _rows(folder, filesystem=None) -> dict[str, list]:
    table = pads.dataset(folder, format="parquet", filesystem=filesystem).to_table(
        columns=["id", "path", "label"]
    )
    return table.to_pydict()


def _store(out: Path, name: str) -> Path:
    return out / "features" / f"smallcnn@{name}"


def test_an_image_folder_runs_end_to_end_with_bad_images_named(tmp_path):
    photos = tmp_path / "photos"
    image_files.write_folder_tree(photos, PER_SPLIT, PER_SPLIT, "jpeg")
    bad = [path.name for path in image_files.write_bad_images(photos / "test" / "cat")]
    odd = image_files.write_odd_images(photos / "train" / "dog")
    out = tmp_path / "out"
    args = ["--local", "--data", photos, "--out", out, *TINY]
    done = run_cli("run", *args, "--epochs", "1", "--no-baselines", "--no-pixel-baselines")
    assert done.returncode == 0, done.stderr[-3000:]
    store = _store(out, "photos")
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["complete"] and manifest["bad_images"] == len(bad)
    test_rows, train_rows = _rows(store / "test"), _rows(store / "train")
    assert sorted(test_rows["id"]) == sorted(set(test_rows["id"]))  # each image once
    assert len(test_rows["id"]) == PER_SPLIT and len(train_rows["id"]) == PER_SPLIT + len(odd)
    assert not {f"test/cat/{b}" for b in bad} & set(test_rows["path"])
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    classes = next(iter(metrics["backbones"].values()))["classes"]
    assert set(classes) <= set(cifar.CLASSES) and "cat" in classes
    assert (out / "report" / "smallcnn@photos-predictions.png").stat().st_size > 10_000
    shown = run_cli("inspect", out)
    assert all(name in shown.stderr for name in bad), shown.stderr[-2000:]
    assert f"{len(bad)} bad images skipped" in " ".join(shown.stdout.split())

    pixels = image_files.sample().splits["test"].images[0]
    (photos / "test" / "cat" / "new.jpg").write_bytes(encode(pixels, "jpeg"))
    refused = run_cli("extract", *args)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "1 added, 0 removed, 0 changed" in refused.stderr
    replaced = run_cli("extract", *args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "test/cat/new.jpg" in _rows(store / "test")["path"]


def test_killed_actor_on_parquet_in_s3_gives_every_image_once(tmp_path):
    import boto3
    import pyarrow.fs as pafs

    from tests.moto_s3 import moto_server

    local = tmp_path / "hf"
    image_files.write_hf_parquet(local, PER_SPLIT, PER_SPLIT)
    with moto_server("photos") as env:
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        for path in local.iterdir():
            s3.upload_file(str(path), "photos", f"hf/{path.name}")
        out = "s3://photos/out"
        proc = start_cli("extract", "--local", "--data", "s3://photos/hf", "--out", out, *TINY,
                         env={**env, "CIFAR_RAY_TEST_SHARD_DELAY_S": "1.5"})  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            prefix = "out/features/smallcnn@hf/_shards/"
            while (
                time.monotonic() < deadline
                and proc.poll() is None
                and not (s3.list_objects_v2(Bucket="photos", Prefix=prefix)["KeyCount"])
            ):  # a shard published: the actors are working on the next ones
                time.sleep(0.2)
            for victim in _workers(proc):
                victim.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate(timeout=300)
        finally:
            kill_group(proc)
        assert proc.returncode == 0, stderr[-3000:]
        fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key="testing",
                               secret_key="testing", region="us-east-1")  # fmt: skip
        with fs.open_input_stream("photos/out/features/smallcnn@hf/manifest.json") as f:
            last = json.loads(f.read())["last_run"]
            assert last["actors_replaced"] >= 1, last
        for split in ("train", "test"):
            rows = _rows(f"photos/out/features/smallcnn@hf/{split}", fs)
            assert sorted(rows["id"]) == list(range(PER_SPLIT)), split
            assert len(set(rows["path"])) == PER_SPLIT


def test_a_webdataset_rerun_skips_every_shard_and_keeps_every_image_once(tmp_path):
    wds = tmp_path / "wds"
    image_files.write_webdataset(wds, PER_SPLIT, PER_SPLIT, shard_size=16)
    data = image_files.splits(PER_SPLIT, PER_SPLIT)
    out = tmp_path / "out"
    args = ["extract", "--local", "--data", wds, "--out", out, *TINY, "--resize", "squash"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads((_store(out, "wds") / "manifest.json").read_text())
    assert manifest["last_run"]["skipped"] == manifest["last_run"]["shards"]
    for split, (_, labels) in data.items():
        rows = _rows(_store(out, "wds") / split)
        assert sorted(rows["id"]) == list(range(PER_SPLIT))
        by_id = dict(zip(rows["id"], rows["label"], strict=True))
        assert [by_id[i] for i in range(PER_SPLIT)] == list(labels)


def test_sigint_and_resume_on_an_image_folder_give_every_readable_image_once(tmp_path):
    """Issue 22: Ctrl-C once a shard is published (exit 130), then a re-run to the end: each
    split folder, read as a Parquet dataset, holds every readable image once, no bad one."""
    photos = tmp_path / "photos"
    image_files.write_folder_tree(photos, 16, 16, "png")
    bad = {
        str(p.relative_to(photos)) for p in image_files.write_bad_images(photos / "test" / "cat")
    }
    readable = {rel for rel in tree_files(photos) if (photos / rel).is_file()} - bad
    out = tmp_path / "out"
    args = ["extract", "--local", "--data", photos, "--out", out, *TINY]
    records = _store(out, "photos") / "_shards"
    proc = start_cli(*args, env=SLOW)
    try:
        _wait_for(lambda: records.is_dir() and any(records.glob("*.json")), proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 130, stderr[-3000:]
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already done, skipped" in again.stderr  # it resumed: the published shards kept
    for split in ("train", "test"):
        paths = _rows(_store(out, "photos") / split)["path"]
        assert sorted(paths) == sorted(r for r in readable if r.startswith(f"{split}/"))
