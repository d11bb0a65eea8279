"""The data source: every accepted layout reads the same images; every bad input is refused."""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import replace

import numpy as np
import pytest

from cifar_ray.errors import UserError
from cifar_ray.source import cifar
from cifar_ray.source.archive import MAX_ARCHIVE_ENTRIES
from tests import cifar_files


def test_reads_archive_with_official_layout(cifar_archive):
    ds = cifar.load(str(cifar_archive))
    train, test = ds.splits["train"], ds.splits["test"]
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert len(train) == 5 * len(test) or len(test) == 1000
    assert set(np.unique(train.labels)) <= set(range(10))
    assert len(ds.sha256) == 64


def test_archive_folder_and_parent_give_identical_data(tmp_path, synthetic_archive):
    with tarfile.open(synthetic_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    a = cifar.load(str(synthetic_archive))
    b = cifar.load(str(tmp_path / "cifar-10-batches-py"))
    c = cifar.load(str(tmp_path))
    for other in (b, c):
        assert other.sha256 == a.sha256
        np.testing.assert_array_equal(other.splits["train"].images, a.splits["train"].images)


def test_channels_are_unpacked_rgb_planes(tmp_path):
    members = cifar_files.batches(n_per_batch=3)
    batch = pickle.loads(members["test_batch"], encoding="bytes")
    ds = cifar.load(str(cifar_files.write_folder(tmp_path / "d", members)))
    first = batch[b"data"][0]
    np.testing.assert_array_equal(
        ds.splits["test"].images[0, 5, 7], first[[5 * 32 + 7, 1024 + 5 * 32 + 7, 2048 + 5 * 32 + 7]]
    )


def test_limit_keeps_first_images_in_source_order(synthetic_archive):
    full, cut = cifar.load(str(synthetic_archive)), cifar.load(str(synthetic_archive), limit=7)
    for split in cifar.SPLITS:
        assert len(cut.splits[split]) == 7
        np.testing.assert_array_equal(cut.splits[split].labels, full.splits[split].labels[:7])


def _bad(tmp_path, name: str, payload) -> str:
    members = cifar_files.batches(n_per_batch=4)
    members[name] = payload if isinstance(payload, bytes) else pickle.dumps(payload, protocol=2)
    return str(cifar_files.write_folder(tmp_path / "bad", members))


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, "shape"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "uint8"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]}, "labels must be in"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]}, "4 images but 2 labels"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1.5, 2, 3]}, "not integers"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2**64, 3]}, "must be in"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [[0, 1], [2, 3]]}, "4 images but"),
        ({b"labels": [0]}, "no 'data'"),
        ([1, 2, 3], "not a CIFAR batch"),
    ],
)
def test_invalid_batches_are_user_errors(tmp_path, batch, message):
    with pytest.raises(UserError, match=message) as err:
        cifar.load(_bad(tmp_path, "data_batch_3", batch))
    assert "data_batch_3" in str(err.value)


def test_labels_as_a_big_endian_array_and_str_keys_load(tmp_path):
    """Batches re-pickled by other tools (str keys, numpy labels of any byte order) still load."""
    labels = np.array([3, 1, 4, 1], dtype=">i8")
    batch = {"data": np.full((4, 3072), 7, np.uint8), "labels": labels}
    ds = cifar.load(_bad(tmp_path, "test_batch", pickle.dumps(batch, protocol=4)))
    np.testing.assert_array_equal(ds.splits["test"].labels, [3, 1, 4, 1])
    assert ds.splits["test"].labels.dtype == np.int64 and (ds.splits["test"].images == 7).all()
    assert len(ds.splits["train"]) == 20


def test_corrupt_pickle(tmp_path):
    good = cifar_files.batches(n_per_batch=4)["data_batch_2"]
    with pytest.raises(UserError, match="data_batch_2: corrupt pickle"):
        cifar.load(_bad(tmp_path, "data_batch_2", good[: len(good) // 2]))


def test_missing_batch(tmp_path):
    members = cifar_files.batches(n_per_batch=4)
    del members["data_batch_4"]
    with pytest.raises(UserError, match="data_batch_4: missing"):
        cifar.load(str(cifar_files.write_folder(tmp_path / "d", members)))


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        cifar.load(str(tmp_path / "nope"))


def test_truncated_archive(tmp_path, synthetic_archive):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(synthetic_archive.read_bytes()[:5000])
    with pytest.raises(UserError, match="truncated or corrupt archive"):
        cifar.load(str(cut))


def test_archive_that_is_not_cifar(tmp_path):
    other = cifar_files.write_archive(tmp_path / "x.tar.gz", {"hello.txt": b"hi"}, prefix="p")
    with pytest.raises(UserError, match="not a CIFAR-10 archive"):
        cifar.load(str(other))


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    archive = cifar_files.batches(n_per_batch=4)
    archive["data_batch_1"] = pickle.dumps({b"data": _RunsShell(marker), b"labels": []}, 2)
    path = cifar_files.write_archive(tmp_path / "evil.tar.gz", archive)
    with pytest.raises(UserError, match=r"refused to load (posix|os)\.system"):
        cifar.load(str(path))
    assert not marker.exists()


def test_hostile_member_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setitem(cifar.SOURCES, "cifar10", replace(cifar.CIFAR10, max_member_bytes=100))
    with pytest.raises(UserError, match="too large"):
        cifar.load(str(cifar_files.write_archive(tmp_path / "a.tar.gz", cifar_files.batches(4))))


def test_archive_header_claiming_gigabytes_is_refused_within_bounded_memory(tmp_path):
    """tarfile allocates what a long-name header declares: 8 GB from a 2 KB archive."""
    bomb = cifar_files.write_long_name_bomb(tmp_path / "bomb.tar.gz", claimed=8 << 30)
    done = cifar_files.load_under_limit(bomb)
    assert done.returncode == 2 and done.stderr == "", done.stderr
    assert "not a CIFAR-10 archive (an entry claims 8589934592 bytes" in done.stdout


def test_archive_with_too_many_entries_is_refused(tmp_path):
    members = cifar_files.batches(n_per_batch=4)
    members.update({f"junk_{i}": b"" for i in range(MAX_ARCHIVE_ENTRIES)})
    archive = cifar_files.write_archive(tmp_path / "many.tar.gz", members)
    with pytest.raises(UserError, match=f"more than {MAX_ARCHIVE_ENTRIES} entries"):
        cifar.load(str(archive))


def test_archive_that_unpacks_too_far_is_refused(tmp_path, monkeypatch):
    members = cifar_files.batches(n_per_batch=4)  # 74 KB unpacked
    archive = cifar_files.write_archive(tmp_path / "big.tar.gz", members)
    limited = replace(cifar.CIFAR10, max_archive_bytes=30_000)  # each dataset has its own
    monkeypatch.setitem(cifar.SOURCES, "cifar10", limited)
    with pytest.raises(UserError, match="unpacks to more than 30000 bytes"):
        cifar.load(str(archive))


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_plain_bz2_and_xz_archives_read_the_same(tmp_path, synthetic_archive, mode):
    members = cifar_files.batches()
    archive = tmp_path / "cifar.tar"
    with tarfile.open(archive, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    other, gz = cifar.load(str(archive)), cifar.load(str(synthetic_archive))
    assert other.sha256 == gz.sha256
    np.testing.assert_array_equal(other.splits["train"].images, gz.splits["train"].images)
