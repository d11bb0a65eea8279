"""CIFAR-10 in its official python format: find it, read it without extracting, validate it."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cifar_ray.errors import UserError, first_line
from cifar_ray.source import safe_pickle

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SPLITS = ("train", "test")
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # an official batch is ~31 MB; cap hostile archives
# The official archive unpacks to ~185 MB in 9 entries; a bigger stream is not CIFAR-10.
MAX_ARCHIVE_BYTES = 8 * MAX_MEMBER_BYTES
MAX_ARCHIVE_ENTRIES = 1000
MAX_HEADER_READ = 64 * 1024  # any read outside a batch's data: headers, long names, pax records
PIXELS = 32 * 32 * 3
MAX_BATCH_IMAGES = 10_000  # every official batch (data_batch_1..5, test_batch) has exactly this


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8, channels last
    labels: np.ndarray  # (N,) int64 in 0..9

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    splits: dict[str, Split]
    classes: tuple[str, ...]
    sha256: str  # of the batch bytes as read: identifies the data in the fingerprint

    def limited(self, limit: int | None) -> Dataset:
        if limit is None:
            return self
        cut = {k: Split(s.images[:limit], s.labels[:limit]) for k, s in self.splits.items()}
        return Dataset(self.name, cut, self.classes, self.sha256)


def load(data_dir: str | None, limit: int | None = None) -> Dataset:
    """Read CIFAR-10 from a folder, its parent, the archive, or Keras' download cache."""
    reader, where = _open_source(data_dir)
    digest = hashlib.sha256()
    splits = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
        parts = []
        for name in names:
            raw = reader(name)
            digest.update(raw)
            parts.append(_parse_batch(raw, f"{where}/{name}"))
        splits[split] = Split(
            images=np.concatenate([p[0] for p in parts]),
            labels=np.concatenate([p[1] for p in parts]),
        )
    return Dataset("cifar10", splits, CLASSES, digest.hexdigest()).limited(limit)


def download() -> Path:
    """The official archive through Keras' cache, downloaded once per machine."""
    from cifar_ray.embed.tfsetup import configure_tensorflow
    from cifar_ray.locks import file_lock, keras_home

    configure_tensorflow()
    import keras

    with file_lock(keras_home() / "datasets" / "cifar-10-python.lock"):  # get_file has no lock
        try:
            path = keras.utils.get_file(
                "cifar-10-python.tar.gz", origin=URL, file_hash=ARCHIVE_MD5,
                cache_subdir="datasets",
            )  # fmt: skip
        except Exception as exc:  # get_file raises a bare Exception when it cannot download
            reason = first_line(exc, 160, typed=False)
            raise UserError(f"cannot download CIFAR-10 ({reason}); pass --data-dir") from None
    return Path(path)


def _open_source(data_dir: str | None) -> tuple[Callable[[str], bytes], str]:
    path = download() if data_dir is None else Path(data_dir).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_file():
        return _archive_reader(path), str(path)
    for folder in (path, path / BATCH_DIR):
        if (folder / "data_batch_1").exists() or (folder / "test_batch").exists():
            return _folder_reader(folder), str(folder)
    archive = path / "cifar-10-python.tar.gz"
    if archive.is_file():
        return _archive_reader(archive), str(archive)
    raise UserError(f"{path}: no CIFAR-10 here (expected {BATCH_DIR}/ or cifar-10-python.tar.gz)")


def _folder_reader(folder: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        file = folder / name
        if not file.is_file():
            raise UserError(f"{file}: missing CIFAR-10 batch")
        if file.stat().st_size > MAX_MEMBER_BYTES:
            raise UserError(f"{file}: too large for a CIFAR-10 batch")
        try:
            return file.read_bytes()
        except OSError as exc:
            raise UserError(f"{file}: cannot read ({exc.strerror})") from None

    return read


def _archive_reader(archive: Path) -> Callable[[str], bytes]:
    """Members are read into memory by name; nothing is extracted, so no path can escape."""
    members = _read_archive(archive)

    def read(name: str) -> bytes:
        if name not in members:
            raise UserError(f"{archive}: not a CIFAR-10 archive (no {BATCH_DIR}/{name})")
        return members[name]

    return read


def _read_archive(archive: Path) -> dict[str, bytes]:
    """The batches of a tar (plain, gz, bz2 or xz), reading at most what CIFAR-10 could hold."""
    wanted = set(TRAIN_BATCHES + TEST_BATCHES)
    members: dict[str, bytes] = {}
    try:
        with (
            _BoundedStream(_decompressed(archive)) as stream,
            tarfile.open(fileobj=stream, mode="r:") as tar,
        ):
            for count, info in enumerate(tar, start=1):
                if count > MAX_ARCHIVE_ENTRIES:
                    raise _TooLarge(f"more than {MAX_ARCHIVE_ENTRIES} entries")
                name = info.name.rsplit("/", 1)[-1]
                if not info.isfile() or name not in wanted:
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise UserError(f"{archive}: member {info.name} is too large for CIFAR-10")
                with stream.allowing(info.size):
                    handle = tar.extractfile(info)
                    members[name] = handle.read() if handle else b""
    except _TooLarge as exc:
        raise UserError(f"{archive}: not a CIFAR-10 archive ({exc})") from None
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError) as exc:
        raise UserError(f"{archive}: truncated or corrupt archive ({exc})") from None
    return members


def _decompressed(archive: Path) -> BinaryIO:
    with archive.open("rb") as head:
        magic = head.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(archive, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(archive, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(archive, "rb")
    return archive.open("rb")


class _TooLarge(Exception):
    pass


class _BoundedStream:
    """The unpacked tar stream as tarfile reads it, refusing reads CIFAR-10 never needs.

    tarfile allocates whatever a header declares (a GNU long name or pax record of 8 GB is
    one 512-byte header) and a gzip bomb supplies it; so no read may exceed a small header
    size unless it is a batch whose size was checked, and nothing past MAX_ARCHIVE_BYTES.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._max_read = MAX_HEADER_READ

    def __enter__(self) -> _BoundedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    @contextlib.contextmanager
    def allowing(self, size: int) -> Iterator[None]:
        self._max_read = max(size, MAX_HEADER_READ)
        try:
            yield
        finally:
            self._max_read = MAX_HEADER_READ

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > self._max_read:
            raise _TooLarge(f"an entry claims {size} bytes at offset {self.tell()}")
        self._check(self.tell() + size)
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._check(offset)
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    @staticmethod
    def _check(end: int) -> None:
        if end > MAX_ARCHIVE_BYTES:
            raise _TooLarge(f"it unpacks to more than {MAX_ARCHIVE_BYTES} bytes")


def _parse_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _batch_dict(safe_pickle.loads(raw, source), source)
    if "data" not in batch or "labels" not in batch:
        raise UserError(f"{source}: not a CIFAR batch (no 'data' and 'labels')")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = getattr(data, "dtype", type(data).__name__)
        raise UserError(f"{source}: data must be a uint8 array, got {kind}")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise UserError(f"{source}: data must have shape (N, {PIXELS}), got {data.shape}")
    if len(data) > MAX_BATCH_IMAGES:
        raise UserError(
            f"{source}: {len(data)} images, more than the {MAX_BATCH_IMAGES} of a CIFAR-10 batch"
        )
    labels = _labels(batch["labels"], len(data), source)
    images = np.asarray(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _batch_dict(batch: object, source: str) -> dict:
    """Keys as text: Python 2 wrote them as bytes, and only ASCII ones can be CIFAR's."""
    if not isinstance(batch, dict):
        raise UserError(f"{source}: not a CIFAR batch (a {type(batch).__name__}, not a dict)")
    out = {}
    for key, value in batch.items():
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(
                    f"{source}: not a CIFAR batch (key {key[:20]!r} is not text)"
                ) from None
        out[key] = value
    return out


def _labels(labels: object, n: int, source: str) -> np.ndarray:
    """int64 labels in 0..9, one per image; anything else (floats, 2**70) is refused."""
    try:
        values = np.asarray(labels)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{source}: labels are not integers") from None
    if values.shape != (n,):
        raise UserError(f"{source}: {n} images but {values.size} labels")
    if values.dtype.kind not in "iuO":
        raise UserError(f"{source}: labels are not integers ({values.dtype})")
    if values.dtype.kind == "O" and not all(type(v) is int for v in values):
        raise UserError(f"{source}: labels are not integers")
    if n and (values.min() < 0 or values.max() >= len(CLASSES)):
        raise UserError(f"{source}: labels must be in 0..{len(CLASSES) - 1}")
    return values.astype(np.int64)
