"""No batch pickle can make the loader allocate what CIFAR never needs, or crash it.

Each hostile batch below is a few bytes that ask for gigabytes (or a real batch one image too
large): the loader must refuse it with one UserError line, and must do so inside a memory
limit far below what the attack asks for, so nothing was allocated first."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.errors import UserError
from cifar_ray.source import cifar, safe_pickle
from tests import cifar_files
from tests.conftest import run_cli


def _folder_with(tmp_path: Path, name: str) -> Path:
    """Small synthetic CIFAR whose first batch read (data_batch_1) is the hostile one."""
    members = cifar_files.batches(n_per_batch=4)
    members["data_batch_1"] = cifar_files.hostile_batch(name)
    return cifar_files.write_folder(tmp_path / "hostile", members)


@pytest.mark.parametrize("name", sorted(cifar_files.HOSTILE))
def test_hostile_batch_is_a_user_error(tmp_path, name):
    with pytest.raises(UserError, match=re.escape(cifar_files.HOSTILE[name])) as err:
        cifar.load(str(_folder_with(tmp_path, name)))
    assert "data_batch_1" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(cifar_files.HOSTILE))
def test_hostile_batch_is_refused_within_bounded_memory(tmp_path, name):
    done = cifar_files.load_under_limit(_folder_with(tmp_path, name))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and cifar_files.HOSTILE[name] in lines[0], done.stdout
    assert "MemoryError" not in done.stdout and done.stderr == ""


def test_real_data_loads_under_the_same_limit(cifar_archive, synthetic_archive):
    """The limit is no trick: genuine CIFAR loads fine inside it."""
    for archive in {cifar_archive, synthetic_archive}:
        done = cifar_files.load_under_limit(archive)
        assert done.returncode == 0 and done.stdout.startswith("loaded"), done.stderr


def test_full_size_batch_loads_under_the_same_limit(tmp_path):
    """The 10,000-image cap admits an official-size batch: exactly 10,000 images load."""
    members = cifar_files.batches(n_per_batch=4)
    data = np.random.default_rng(0).integers(0, 256, (10_000, 3072), dtype=np.uint8)
    members["test_batch"] = pickle.dumps({b"data": data, b"labels": [9] * 10_000}, protocol=2)
    done = cifar_files.load_under_limit(cifar_files.write_folder(tmp_path / "full", members))
    assert done.returncode == 0 and done.stdout.split() == ["loaded", "20", "10000"], done.stderr


def test_hostile_batch_in_an_archive(tmp_path):
    members = cifar_files.batches(n_per_batch=4)
    members["test_batch"] = cifar_files.hostile_batch("reconstruct_shape")
    archive = cifar_files.write_archive(tmp_path / "cifar-10-python.tar.gz", members)
    done = cifar_files.load_under_limit(archive)
    assert done.returncode == 2 and "test_batch: not a CIFAR batch" in done.stdout, done.stderr


@pytest.mark.parametrize("name", ["bytes_call", "label_2_70"])
def test_cli_refuses_hostile_batch_before_ray_starts(tmp_path, name):
    out = tmp_path / "out"
    done = run_cli(
        "extract", "--data-dir", _folder_with(tmp_path, name), "--out", out,
        "--weights", "none", "--image-size", "75", "--limit", "4", "--local", timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and cifar_files.HOSTILE[name] in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "Ray" not in done.stdout + done.stderr


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("dtype", ["u1", "<i8", ">i8", "<u4", "f4", ">f8", "?"])
def test_number_arrays_and_scalars_load_as_pickle_loads_them(protocol, dtype):
    """What numpy writes for any number array or scalar loads as the unrestricted pickle does."""
    values = np.arange(24).reshape(2, 3, 4).astype(dtype)
    original = {b"a": values, b"f": np.asfortranarray(values), b"s": values.flat[5], b"t": b"x"}
    raw = pickle.dumps(original, protocol=protocol)
    back, trusted = safe_pickle.loads(raw, "p"), pickle.loads(raw, encoding="bytes")
    for key in (b"a", b"f"):
        assert back[key].dtype == trusted[key].dtype and back[key].tobytes("A") == trusted[
            key
        ].tobytes("A")
        assert back[key].flags.f_contiguous == trusted[key].flags.f_contiguous
        np.testing.assert_array_equal(back[key], values)
    assert back[b"s"] == values.flat[5] and back[b"s"].dtype == trusted[b"s"].dtype
    assert back[b"t"] == b"x"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (np.array(["ab"]), "dtype"),
        (np.zeros(2, dtype=[("x", "u1")]), "dtype"),
        (np.array([1], dtype="M8[s]"), "dtype"),
        ({1, 2}, r"refused to load (__builtin__|builtins)\.set"),
        (bytearray(b"xy"), r"refused to load (__builtin__|builtins)\.bytearray"),
    ],
)
def test_other_numpy_and_builtin_objects_are_refused(obj, message):
    with pytest.raises(UserError, match=message):
        safe_pickle.loads(pickle.dumps(obj, protocol=2), "p")
