"""Writers for CIFAR-10 in the official python format, for tests that need their own data."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
           b"dog", b"frog", b"horse", b"ship", b"truck"]  # fmt: skip


def planted_batch(n: int, seed: int) -> dict:
    """Images whose mean colour depends on the label: a signal any classifier can learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    palette = np.random.default_rng(99).integers(30, 225, (10, 3))
    images = palette[labels][:, :, None, None] + rng.normal(0, 20, (n, 3, 32, 32))
    data = np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)
    return {b"batch_label": b"synthetic", b"labels": labels.tolist(), b"data": data}


def batches(n_per_batch: int = 60, seed: int = 0) -> dict[str, bytes]:
    out = {name: pickle.dumps(planted_batch(n_per_batch, seed + i), protocol=2)
           for i, name in enumerate(NAMES)}  # fmt: skip
    out["batches.meta"] = pickle.dumps({b"label_names": CLASSES}, protocol=2)
    return out


def write_archive(path: Path, members: dict[str, bytes], prefix="cifar-10-batches-py") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


def write_long_name_bomb(path: Path, claimed: int) -> Path:
    """A gzip tar whose first header is a GNU long name claiming `claimed` bytes (it has 512)."""
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, claimed
    with gzip.open(path, "wb") as out:
        out.write(header.tobuf(format=tarfile.GNU_FORMAT) + b"a" * 512 + bytes(1024))
    return path


ROOT = Path(__file__).resolve().parents[1]
# Loading the sample peaks near 200 MB of address space; every attack asks for 4 GB or more.
ADDRESS_SPACE = 1536 << 20
LOAD_UNDER_LIMIT = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))
from cifar_ray.source import cifar
from cifar_ray.errors import UserError
try:
    ds = cifar.load(sys.argv[1], dataset=sys.argv[2])
except UserError as exc:
    print(exc)
    sys.exit(2)
print("loaded", len(ds.splits["train"]), len(ds.splits["test"]))
"""


def load_under_limit(path: Path, dataset: str = "cifar10") -> subprocess.CompletedProcess:
    """cifar.load in a process that cannot map more than ADDRESS_SPACE: exit 2 and the
    UserError line, or 0 and 'loaded'; an allocation the input asked for shows as MemoryError."""
    path_env = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "PYTHONPATH": path_env,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", LOAD_UNDER_LIMIT, str(path), dataset],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


# Hostile batches, written opcode by opcode the way an attacker would (protocol 2, as CIFAR's).
# Each asks the loader for far more memory than its few bytes could hold.

PROTO, STOP, MARK, TUPLE, REDUCE, BUILD = b"\x80\x02", b".", b"(", b"t", b"R", b"b"
EMPTY_DICT, SETITEMS, EMPTY_LIST, APPENDS, NONE = b"}", b"u", b"]", b"e", b"N"


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def op_int(value: int) -> bytes:
    """LONG1: any size, so 10**10 and 2**70 are written as they are."""
    raw = value.to_bytes((value.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def op_bytes(value: bytes) -> bytes:
    """BINSTRING, as Python 2 wrote CIFAR's keys and pixels (bytes under encoding='bytes')."""
    return b"T" + len(value).to_bytes(4, "little") + value


def op_tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def op_call(module: str, name: str, *args: bytes) -> bytes:
    return op_global(module, name) + op_tuple(*args) + REDUCE


def op_dtype(code: str = "u1") -> bytes:
    flags = 63 if code == "O" else 0  # what numpy writes: an object dtype is pickled as a list
    state = op_tuple(
        op_int(3), op_bytes(b"|"), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(flags)
    )
    return op_call("numpy", "dtype", op_bytes(code.encode()), op_int(0), op_int(1)) + state + BUILD


def op_array(
    shape: tuple[int, ...], raw: bytes = b"", made_as=(0,), dtype="u1", data=None
) -> bytes:
    """numpy's own form: _reconstruct(ndarray, made_as, 'b') then __setstate__ with the shape."""
    made = op_call(
        "numpy.core.multiarray", "_reconstruct", op_global("numpy", "ndarray"),
        op_tuple(*map(op_int, made_as)), op_bytes(b"b"),
    )  # fmt: skip
    data = op_bytes(raw) if data is None else data
    state = op_tuple(op_int(1), op_tuple(*map(op_int, shape)), op_dtype(dtype), op_int(0), data)
    return made + state + BUILD


def op_list(*items: bytes) -> bytes:
    return EMPTY_LIST + MARK + b"".join(items) + APPENDS


def op_batch(data: bytes, labels: bytes, *extra: bytes) -> bytes:
    """A whole pickle: {b'data': data, b'labels': labels, *extra key/value pairs}."""
    pairs = op_bytes(b"data") + data + op_bytes(b"labels") + labels + b"".join(extra)
    return PROTO + EMPTY_DICT + MARK + pairs + SETITEMS + STOP


HOSTILE = {  # name -> what the refusal says
    "bytes_call": "refused to load builtins.bytes",
    "ndarray_call": "refused to call numpy.ndarray",
    "reconstruct_shape": "_reconstruct with shape",
    "setstate_shape": "needs 4608000000 bytes, the pickle holds 12288",
    "object_array": "dtype b'O'",
    "memo_index": "memo index",
    "declared_length": "expected 10000000000 bytes in a bytes8, but only 2 remain",
    "over_count": "10001 images, more than the 10000 of a CIFAR-10 batch",
    "label_2_70": "labels must be in 0..9",
    "key_not_utf8": r"key b'\xff\xfe' is not text",
}


def hostile_batch(name: str) -> bytes:
    """A batch pickle that asks for far more than its bytes hold; all but over_count are tiny."""
    labels, pixels = op_list(*[op_int(0)] * 4), bytes(4 * 3072)
    if name == "bytes_call":  # 30 bytes: bytes(10**10)
        return PROTO + op_call("builtins", "bytes", op_int(10**10)) + STOP
    if name == "ndarray_call":  # ndarray(shape, 'B'): untouched zero pages pass every check
        data = op_call(
            "numpy", "ndarray", op_tuple(op_int(3_000_000), op_int(3072)), op_bytes(b"B")
        )
        return op_batch(
            data, op_call("numpy", "ndarray", op_tuple(op_int(3_000_000)), op_bytes(b"B"))
        )
    if name == "reconstruct_shape":  # 1.5 M zero images, made by _reconstruct itself
        big = (1_500_000, 3072)
        return op_batch(op_array(big, made_as=big), op_array(big[:1], made_as=big[:1]))
    if name == "setstate_shape":  # __setstate__ claims 1.5 M images over 4 images' bytes
        return op_batch(op_array((1_500_000, 3072), pixels), labels)
    if name == "object_array":  # an object array of 10**9 slots, filled from an empty list
        return op_batch(op_array((4, 3072), pixels), op_array((10**9,), dtype="O", data=EMPTY_LIST))
    if name == "memo_index":  # the unpickler grows its memo to any index it is given
        return PROTO + EMPTY_DICT + b"r" + (2**32 - 2).to_bytes(4, "little") + STOP
    if name == "declared_length":  # BINBYTES8 declares 10 GB; the unpickler allocates it first
        return PROTO + b"\x8e" + (10**10).to_bytes(8, "little") + b"x" + STOP
    if name == "over_count":  # a real, well-formed batch one image larger than CIFAR's
        return pickle.dumps(
            {b"data": np.zeros((10_001, 3072), np.uint8), b"labels": [0] * 10_001}, 2
        )
    if name == "label_2_70":
        return op_batch(op_array((4, 3072), pixels), op_list(*[op_int(2**70)] * 4))
    if name == "key_not_utf8":
        return op_batch(op_array((4, 3072), pixels), labels, op_bytes(b"\xff\xfe"), op_int(1))
    raise KeyError(name)


# --- CIFAR-100 -----------------------------------------------------------------------------

FINE_CLASSES = [f"fine{i:02d}".encode() for i in range(100)]
COARSE_CLASSES = [f"super{i:02d}".encode() for i in range(20)]
FINE_TO_COARSE = [i % 20 for i in range(100)]  # a fixed mapping, as in the official data


def planted_batch_100(n: int, seed: int, all_classes: bool = True) -> dict:
    """CIFAR-100's batch dict: `fine_labels` (every class once first, when `all_classes`),
    `coarse_labels` by the fixed mapping, pixels whose colour depends on the superclass."""
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 100, n)
    if all_classes:
        fine[: min(n, 100)] = np.arange(min(n, 100))
    coarse = np.asarray(FINE_TO_COARSE)[fine]
    palette = np.random.default_rng(98).integers(30, 225, (100, 3))
    images = palette[fine][:, :, None, None] + rng.normal(0, 20, (n, 3, 32, 32))
    data = np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)
    return {
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
        b"batch_label": b"synthetic",
        b"fine_labels": fine.tolist(),
        b"coarse_labels": coarse.tolist(),
        b"data": data,
    }


def batches_100(n_train: int = 500, n_test: int = 100, seed: int = 0) -> dict[str, bytes]:
    """CIFAR-100's three members, pickled with protocol 2 and bytes keys like the official."""
    meta = {b"fine_label_names": FINE_CLASSES, b"coarse_label_names": COARSE_CLASSES}
    return {
        "train": pickle.dumps(planted_batch_100(n_train, seed), protocol=2),
        "test": pickle.dumps(planted_batch_100(n_test, seed + 1), protocol=2),
        "meta": pickle.dumps(meta, protocol=2),
    }


def write_archive_100(path: Path, members: dict[str, bytes] | None = None) -> Path:
    """`cifar-100-python.tar.gz` with the official folder name."""
    return write_archive(path, members or batches_100(), prefix="cifar-100-python")
