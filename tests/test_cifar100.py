"""CIFAR-100 as a first-class dataset: read and checked like CIFAR-10, its superclass stored
beside the class, its stores beside CIFAR-10's, its report readable at 100 classes."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cifar_ray.errors import UserError
from cifar_ray.report import groups
from cifar_ray.source import cifar
from cifar_ray.store import samples
from cifar_ray.store.locations import Location
from tests import cifar_files
from tests.conftest import run_cli

SMALL = ["--weights", "none", "--image-size", "75", "--limit", "300"]


@pytest.fixture(scope="module")
def archive_100(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("c100")
    return cifar_files.write_archive_100(folder / "cifar-100-python.tar.gz")


def _folder_100(tmp_path: Path, **replaced: bytes) -> str:
    members = {**cifar_files.batches_100(200, 100), **replaced}
    return str(cifar_files.write_folder(tmp_path / "cifar-100-python", members))


# --- the loader ----------------------------------------------------------------------------


def test_reads_fine_and_coarse_labels_and_the_names_in_meta(archive_100):
    ds = cifar.load(str(archive_100), dataset="cifar100")
    train, test = ds.splits["train"], ds.splits["test"]
    assert ds.name == "cifar100" and (len(train), len(test)) == (500, 100)
    assert train.images.shape == (500, 32, 32, 3) and train.images.dtype == np.uint8
    raw = pickle.loads(cifar_files.batches_100()["train"], encoding="bytes")
    np.testing.assert_array_equal(train.labels, raw[b"fine_labels"])
    np.testing.assert_array_equal(train.coarse, raw[b"coarse_labels"])
    assert set(train.labels.tolist()) == set(range(100))
    assert ds.classes == tuple(c.decode() for c in cifar_files.FINE_CLASSES)
    assert ds.superclasses == tuple(c.decode() for c in cifar_files.COARSE_CLASSES)
    assert ds.fine_to_coarse == tuple(cifar_files.FINE_TO_COARSE)
    assert len(ds.sha256) == 64


def test_folder_parent_and_archive_read_the_same_and_limit_cuts_coarse_too(tmp_path, archive_100):
    a = cifar.load(str(archive_100), dataset="cifar100")
    shutil.unpack_archive(archive_100, tmp_path, filter="data")
    for where in (tmp_path, tmp_path / "cifar-100-python", archive_100.parent):
        other = cifar.load(str(where), dataset="cifar100")
        assert other.sha256 == a.sha256
        np.testing.assert_array_equal(other.splits["test"].coarse, a.splits["test"].coarse)
    cut = cifar.load(str(archive_100), limit=7, dataset="cifar100")
    np.testing.assert_array_equal(cut.splits["test"].coarse, a.splits["test"].coarse[:7])
    assert cut.fine_to_coarse == a.fine_to_coarse


def test_the_two_datasets_are_not_taken_for_each_other(archive_100, synthetic_archive):
    with pytest.raises(UserError, match="not a CIFAR-100 archive"):
        cifar.load(str(synthetic_archive), dataset="cifar100")
    with pytest.raises(UserError, match="not a CIFAR-10 archive"):
        cifar.load(str(archive_100))
    with pytest.raises(UserError, match="no CIFAR-100 here"):
        cifar.load(str(synthetic_archive.parent), dataset="cifar100")


def _batch(n: int = 4, **fields) -> bytes:
    batch = {b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": [0] * n,
             b"coarse_labels": [0] * n}  # fmt: skip
    batch.update({k.encode(): v for k, v in fields.items()})
    return pickle.dumps({k: v for k, v in batch.items() if v is not None}, protocol=2)


@pytest.mark.parametrize(
    ("member", "payload", "message"),
    [
        ("train", _batch(coarse_labels=None), "no 'data' and 'fine_labels' and 'coarse_labels'"),
        ("train", _batch(fine_labels=[0, 1, 2, 100]), r"fine_labels must be in 0\.\.99"),
        ("train", _batch(coarse_labels=[0, 1, 2, 20]), r"coarse_labels must be in 0\.\.19"),
        ("test", _batch(coarse_labels=[0, 1]), "4 images but 2 coarse_labels"),
        (
            "test",
            _batch(fine_labels=[0, 0, 0, 0], coarse_labels=[1, 1, 1, 1]),
            "fine class 0 appears under more than one coarse label",
        ),
        (
            "meta",
            pickle.dumps({b"fine_label_names": [b"a"] * 99, b"coarse_label_names": [b"b"] * 20}, 2),
            "fine_label_names must list 100 names",
        ),
        (
            "meta",
            pickle.dumps({b"fine_label_names": [b"a"] * 100}, 2),
            "coarse_label_names must list 20 names",
        ),
    ],
)
def test_invalid_cifar100_files_are_user_errors(tmp_path, member, payload, message):
    with pytest.raises(UserError, match=message) as err:
        cifar.load(_folder_100(tmp_path, **{member: payload}), dataset="cifar100")
    assert member in str(err.value)


def test_a_fine_class_without_images_has_no_superclass_and_is_refused(tmp_path):
    members = {
        "train": pickle.dumps(cifar_files.planted_batch_100(50, 0, all_classes=False), 2),
        "test": pickle.dumps(cifar_files.planted_batch_100(20, 1, all_classes=False), 2),
    }
    with pytest.raises(UserError, match="has no image, so no superclass"):
        cifar.load(_folder_100(tmp_path, **members), dataset="cifar100")


def test_limits_are_per_dataset(tmp_path, monkeypatch):
    """CIFAR-100's train file is one 50,000-image batch: its limits are its own, and
    CIFAR-10's stay where they were."""
    assert (cifar.CIFAR10.max_batch_images, cifar.CIFAR100.max_batch_images) == (10_000, 50_000)
    assert cifar.CIFAR10.max_member_bytes == 64 << 20 < cifar.CIFAR100.max_member_bytes
    folder = _folder_100(tmp_path)
    monkeypatch.setitem(cifar.SOURCES, "cifar100", replace(cifar.CIFAR100, max_batch_images=150))
    with pytest.raises(UserError, match="200 images, more than the 150 of a CIFAR-100 batch"):
        cifar.load(folder, dataset="cifar100")
    monkeypatch.setitem(cifar.SOURCES, "cifar100", replace(cifar.CIFAR100, max_member_bytes=1000))
    with pytest.raises(UserError, match="too large for a CIFAR-100 batch"):
        cifar.load(folder, dataset="cifar100")
    archive = cifar_files.write_archive_100(tmp_path / "a.tar.gz")
    with pytest.raises(UserError, match="member cifar-100-python/train is too large for CIFAR-100"):
        cifar.load(str(archive), dataset="cifar100")


def test_hostile_inputs_are_refused_before_memory_is_spent(tmp_path):
    """Run under a 1.5 GB address-space limit: each asks for 4 GB or more."""
    bomb = cifar_files.write_long_name_bomb(tmp_path / "bomb.tar.gz", claimed=8 << 30)
    done = cifar_files.load_under_limit(bomb, "cifar100")
    assert done.returncode == 2 and done.stderr == "", done.stderr
    assert "not a CIFAR-100 archive (an entry claims 8589934592 bytes" in done.stdout
    hostile = cifar_files.hostile_batch("setstate_shape")
    done = cifar_files.load_under_limit(Path(_folder_100(tmp_path, train=hostile)), "cifar100")
    assert done.returncode == 2 and done.stderr == "", done.stderr
    assert "needs 4608000000 bytes, the pickle holds 12288" in done.stdout


def test_cli_refuses_a_bad_dataset_in_one_line_before_ray(tmp_path, synthetic_archive):
    for args, message in (
        (["--dataset", "cifar1000"], "--dataset must be one of cifar10, cifar100"),
        (["--dataset", "cifar100", "--data-dir", str(synthetic_archive)], "CIFAR-100 archive"),
    ):
        done = run_cli("extract", "--local", "--out", str(tmp_path / "o"), *args, *SMALL)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
        assert not (tmp_path / "o").exists()


# --- superclass arithmetic for the report ---------------------------------------------------


def test_superclass_figures_are_sums_of_the_class_matrix():
    # 4 classes in 2 superclasses: {0, 1} -> 0, {2, 3} -> 1
    m = [[5, 3, 0, 2], [1, 6, 0, 0], [0, 0, 4, 4], [0, 1, 0, 9]]
    mapping = [0, 0, 1, 1]
    assert groups.superclass_confusion(m, mapping, 2).tolist() == [[15, 2], [1, 17]]
    assert groups.per_superclass(m, mapping, 2) == [11 / 17, 13 / 18]
    assert groups.superclass_accuracy(m, mapping, 2) == 32 / 35
    assert groups.confused_pairs(m, top=3) == [(2, 3, 4, 0.5), (0, 1, 3, 0.3), (0, 3, 2, 0.2)]


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_100(tmp_path_factory, archive_100) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out100")
    done = run_cli(
        "run", "--local", "--dataset", "cifar100", "--data-dir", str(archive_100), *SMALL,
        "--epochs", "1", "--no-pixel-baselines", "--out", str(out),
    )  # fmt: skip
    return out, done


def test_run_on_cifar100_stores_coarse_labels_and_reports_superclasses(run_100, archive_100):
    out, done = run_100
    assert done.returncode == 0, done.stderr[-3000:]
    store = out / "features" / "inceptionv3@cifar100"
    assert not (out / "features" / "inceptionv3").exists()  # never mixed with CIFAR-10's
    source = cifar.load(str(archive_100), limit=300, dataset="cifar100")
    for split, n in (("train", 300), ("test", 100)):
        table = pq.read_table(store / split)
        assert table.column_names == ["id", "label", "coarse_label", "features"]
        order = np.argsort(table.column("id").to_numpy())
        assert len(order) == n
        np.testing.assert_array_equal(table.column("label").to_numpy()[order],
                                      source.splits[split].labels)  # fmt: skip
        np.testing.assert_array_equal(table.column("coarse_label").to_numpy()[order],
                                      source.splits[split].coarse)  # fmt: skip
    fingerprint = json.loads((store / "fingerprint.json").read_text())
    assert fingerprint["dataset"] == "cifar100" and fingerprint["dataset_sha256"] == source.sha256
    results = json.loads((out / "models" / "inceptionv3@cifar100" / "results.json").read_text())
    assert len(results["classes"]) == 100 and results["dataset"] == "cifar100"
    assert len(results["models"]["dense_head"]["test"]["confusion"]) == 100
    assert results["fine_to_coarse"] == list(source.fine_to_coarse)
    preview = samples.read_preview(Location(str(out)), "cifar100")
    np.testing.assert_array_equal(preview["coarse"], source.splits["test"].coarse[:64])
    assert preview["superclasses"].tolist() == list(source.superclasses)
    assert samples.read_preview(Location(str(out))) is None  # CIFAR-10's preview is its own
    markdown = (out / "report" / "report.md").read_text()
    assert "20 superclasses: each prediction is mapped to its superclass" in markdown
    assert "### inceptionv3@cifar100: most-confused class pairs" in markdown
    assert "| true class | predicted class | test images | share of true class |" in markdown
    assert "| superclass | dense_head | logreg |" in markdown
    assert "coloured by their superclass" in markdown
    html = (out / "report" / "report.html").read_text()
    assert "most-confused class pairs" in html and "superclass acc" in html


def test_cifar10_and_cifar100_stores_live_side_by_side(
    tmp_path, run_100, archive_100, cifar_archive
):
    """A CIFAR-10 extraction next to the CIFAR-100 store: each resumes on its own, training
    and the report cover both, and the comparison names the dataset of each row."""
    first, done = run_100
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = {p: p.read_bytes() for p in (out / "features").rglob("*") if p.is_file()}
    done = run_cli("extract", "--local", "--data-dir", str(cifar_archive), *SMALL, "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in (out / "features").iterdir()} == {"inceptionv3", "inceptionv3@cifar100"}
    assert pq.read_schema(next((out / "features" / "inceptionv3" / "test").glob("*.parquet"))
                          ).names == ["id", "label", "features"]  # fmt: skip
    assert all(p.read_bytes() == body for p, body in before.items())  # CIFAR-100's untouched
    again = run_cli("extract", "--dataset", "cifar100", "--data-dir", archive_100, *SMALL,
                    "--out", out)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads((out / "features" / "inceptionv3@cifar100" / "manifest.json").read_text())
    assert (manifest["last_run"]["computed"], manifest["last_run"]["skipped"]) == (0, 2)
    done = run_cli("train", "--local", "--backbone", "inceptionv3", "--epochs", "1",
                   "--no-baselines", "--no-pixel-baselines", "--report", "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    rows = {(r["dataset"], r["backbone"]) for r in metrics["comparison"]}
    assert rows == {("cifar10", "inceptionv3"), ("cifar100", "inceptionv3")}
    assert metrics["backbones"]["inceptionv3"]["dataset"] == "cifar10"
    markdown = (out / "report" / "report.md").read_text()
    assert "| dataset | backbone | feature dim |" in markdown
    assert (out / "report" / "inceptionv3-predictions.png").exists()  # CIFAR-10's own preview
    assert (out / "report" / "inceptionv3@cifar100-predictions.png").exists()
    inspected = run_cli("inspect", out)
    assert inspected.returncode == 0, inspected.stdout
    assert "inceptionv3@cifar100" in inspected.stdout + inspected.stderr  # the table: stdout
