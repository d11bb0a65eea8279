"""CIFAR-10 and CIFAR-100 in their official python format: find them, read them without
extracting (`source.archive`), validate them. What differs between the two (file names, label
keys, size limits) is one `Source` each; the reading and checking is shared."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cifar_ray.errors import UserError
from cifar_ray.source import safe_pickle
from cifar_ray.source.archive import read_members
from cifar_ray.source.download import download
from cifar_ray.source.paths import check_data_dir

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
PIXELS = 32 * 32 * 3
MAX_BATCH_IMAGES = 10_000  # every official batch (data_batch_1..5, test_batch) has exactly this


@dataclass(frozen=True)
class Source:
    """One official dataset: where its batches are, what they hold, and the most a valid one
    can be (so a hostile file is refused before anything is allocated for it)."""

    name: str  # as --dataset spells it, and the fingerprint records it
    title: str  # as messages spell it
    archive: str
    url: str
    md5: str
    batch_dir: str
    train_batches: tuple[str, ...]
    test_batches: tuple[str, ...]
    label_key: str  # the batch key of the labels models are trained on
    n_classes: int
    max_batch_images: int
    max_member_bytes: int
    max_archive_bytes: int
    coarse_key: str = ""  # CIFAR-100's 20 superclasses, stored beside the fine label
    n_coarse: int = 0
    meta: str = ""  # CIFAR-100's class names; CIFAR-10's are fixed (CLASSES)

    @property
    def batches(self) -> tuple[str, ...]:
        return self.train_batches + self.test_batches


CIFAR10 = Source(
    "cifar10", "CIFAR-10", "cifar-10-python.tar.gz", URL, ARCHIVE_MD5, BATCH_DIR,
    TRAIN_BATCHES, TEST_BATCHES, "labels", len(CLASSES), MAX_BATCH_IMAGES, MAX_MEMBER_BYTES,
    MAX_ARCHIVE_BYTES,
)  # fmt: skip
# CIFAR-100's train file is one batch of 50,000 images (~155 MB) and the archive unpacks to
# ~185 MB in 5 entries; its limits are its own, CIFAR-10's stay as they were.
CIFAR100 = Source(
    "cifar100", "CIFAR-100", "cifar-100-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", ("train",), ("test",),
    "fine_labels", 100, 50_000, 192 * 1024 * 1024, 512 * 1024 * 1024,
    coarse_key="coarse_labels", n_coarse=20, meta="meta",
)  # fmt: skip
SOURCES = {s.name: s for s in (CIFAR10, CIFAR100)}
MAX_META_BYTES = 64 * 1024  # CIFAR-100's meta is ~1.5 KB: 120 short names


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8, channels last
    labels: np.ndarray  # (N,) int64 in 0..classes-1 (CIFAR-100: the fine label)
    coarse: np.ndarray | None = None  # (N,) int64 superclass, CIFAR-100 only

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Split:
        """The first n images, with their labels."""
        coarse = None if self.coarse is None else self.coarse[:n]
        return Split(self.images[:n], self.labels[:n], coarse)


@dataclass(frozen=True)
class Dataset:
    name: str
    splits: dict[str, Split]
    classes: tuple[str, ...]
    sha256: str  # of the batch bytes as read: identifies the data in the fingerprint
    superclasses: tuple[str, ...] = ()  # CIFAR-100's coarse label names
    fine_to_coarse: tuple[int, ...] = ()  # class index -> superclass index, from the data

    def limited(self, limit: int | None) -> Dataset:
        if limit is None:
            return self
        return replace(self, splits={k: s.head(limit) for k, s in self.splits.items()})


def source(name: str) -> Source:
    if name not in SOURCES:
        raise UserError(f"--dataset {name!r}: expected one of {', '.join(SOURCES)}")
    return SOURCES[name]


def load(data_dir: str | None, limit: int | None = None, dataset: str = "cifar10") -> Dataset:
    """Read CIFAR-10 or CIFAR-100 from a folder, its parent, the archive, or Keras' cache."""
    src = source(dataset)
    reader, where = _open_source(data_dir, src)
    digest = hashlib.sha256()
    splits = {}
    for split, names in (("train", src.train_batches), ("test", src.test_batches)):
        parts = []
        for name in names:
            raw = reader(name)
            digest.update(raw)
            parts.append(_parse_batch(raw, f"{where}/{name}", src))
        splits[split] = Split(
            images=np.concatenate([p[0] for p in parts]),
            labels=np.concatenate([p[1] for p in parts]),
            coarse=np.concatenate([p[2] for p in parts]) if src.coarse_key else None,
        )
    if not src.meta:
        return Dataset(src.name, splits, CLASSES, digest.hexdigest()).limited(limit)
    fine, coarse = _meta_names(reader(src.meta), f"{where}/{src.meta}", src)
    mapping = _fine_to_coarse(splits, src, where)
    return Dataset(src.name, splits, fine, digest.hexdigest(), coarse, mapping).limited(limit)


def _meta_names(raw: bytes, where: str, src: Source) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CIFAR-100's `meta`: 100 fine and 20 coarse class names, as text."""
    meta = _batch_dict(safe_pickle.loads(raw, where), where)
    names = []
    for key, n in (("fine_label_names", src.n_classes), ("coarse_label_names", src.n_coarse)):
        values = meta.get(key)
        if not isinstance(values, list) or len(values) != n:
            raise UserError(f"{where}: not CIFAR-100's meta ({key} must list {n} names)")
        text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        if not all(isinstance(t, str) and 0 < len(t) <= 64 for t in text):
            raise UserError(f"{where}: {key} must be names of 1 to 64 characters")
        names.append(tuple(text))
    return names[0], names[1]


def _fine_to_coarse(splits: dict[str, Split], src: Source, where: str) -> tuple[int, ...]:
    """Each fine class belongs to one superclass: read from the data, and checked, since the
    report's superclass figures depend on it."""
    fine = np.concatenate([s.labels for s in splits.values()])
    coarse = np.concatenate([s.coarse for s in splits.values()])
    mapping = np.full(src.n_classes, -1, dtype=np.int64)
    mapping[fine] = coarse
    if np.any(mapping[fine] != coarse):
        bad = int(fine[np.argmax(mapping[fine] != coarse)])
        raise UserError(f"{where}: fine class {bad} appears under more than one coarse label")
    if np.any(mapping < 0):
        missing = int(np.argmax(mapping < 0))
        raise UserError(f"{where}: fine class {missing} has no image, so no superclass")
    return tuple(int(v) for v in mapping)


def check_source(data_dir: str | None, src: Source = CIFAR10) -> None:
    """Missing, a FIFO or device, unreadable: named, not read; in a folder, what it holds of
    `src` too (its archive, its first batches)."""
    firsts = (src.train_batches[0], src.test_batches[0])
    inside = (*firsts, *(f"{src.batch_dir}/{name}" for name in firsts), src.archive)
    check_data_dir(data_dir, inside)


def _open_source(data_dir: str | None, src: Source = CIFAR10) -> tuple[Callable[[str], bytes], str]:
    check_source(data_dir, src)
    path = download(src) if data_dir is None else Path(data_dir).expanduser()
    if path.is_file():
        return _archive_reader(path, src), str(path)
    for folder in (path, path / src.batch_dir):
        if (folder / src.train_batches[0]).is_file() or (folder / src.test_batches[0]).is_file():
            return _folder_reader(folder, src), str(folder)
    archive = path / src.archive
    if archive.is_file():
        return _archive_reader(archive, src), str(archive)
    raise UserError(f"{path}: no {src.title} here (expected {src.batch_dir}/ or {src.archive})")


def _folder_reader(folder: Path, src: Source = CIFAR10) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        file = folder / name
        if not file.is_file():
            raise UserError(f"{file}: missing {src.title} batch")
        if file.stat().st_size > _member_limit(src, name):
            raise UserError(f"{file}: too large for a {src.title} batch")
        try:
            return file.read_bytes()
        except OSError as exc:
            raise UserError(f"{file}: cannot read ({exc.strerror})") from None

    return read


def _member_limit(src: Source, name: str) -> int:
    return MAX_META_BYTES if name == src.meta else src.max_member_bytes


def _archive_reader(archive: Path, src: Source = CIFAR10) -> Callable[[str], bytes]:
    """Members are read into memory by name; nothing is extracted, so no path can escape."""
    names = src.batches + ((src.meta,) if src.meta else ())
    limits = {name: _member_limit(src, name) for name in names}
    members = read_members(archive, limits, src.max_archive_bytes, src.title)

    def read(name: str) -> bytes:
        if name not in members:
            raise UserError(f"{archive}: not a {src.title} archive (no {src.batch_dir}/{name})")
        return members[name]

    return read


def _parse_batch(
    raw: bytes, source: str, src: Source = CIFAR10
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(images, labels, coarse labels or None) of one batch, every field checked."""
    batch = _batch_dict(safe_pickle.loads(raw, source), source)
    keys = ("data", src.label_key, *((src.coarse_key,) if src.coarse_key else ()))
    if any(k not in batch for k in keys):
        shown = " and ".join(f"'{k}'" for k in keys)
        raise UserError(f"{source}: not a {src.title} batch (no {shown})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = getattr(data, "dtype", type(data).__name__)
        raise UserError(f"{source}: data must be a uint8 array, got {kind}")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise UserError(f"{source}: data must have shape (N, {PIXELS}), got {data.shape}")
    if len(data) > src.max_batch_images:
        raise UserError(
            f"{source}: {len(data)} images, more than the {src.max_batch_images} of a "
            f"{src.title} batch"
        )
    labels = _labels(batch[src.label_key], len(data), source, src.n_classes, src.label_key)
    coarse = None
    if src.coarse_key:
        coarse = _labels(batch[src.coarse_key], len(data), source, src.n_coarse, src.coarse_key)
    images = np.asarray(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels, coarse


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


def _labels(
    labels: object, n: int, source: str, n_classes: int = len(CLASSES), what: str = "labels"
) -> np.ndarray:
    """int64 labels in 0..n_classes-1, one per image; anything else (floats, 2**70) is refused."""
    try:
        values = np.asarray(labels)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{source}: {what} are not integers") from None
    if values.shape != (n,):
        raise UserError(f"{source}: {n} images but {values.size} {what}")
    if values.dtype.kind not in "iuO":
        raise UserError(f"{source}: {what} are not integers ({values.dtype})")
    if values.dtype.kind == "O" and not all(type(v) is int for v in values):
        raise UserError(f"{source}: {what} are not integers")
    if n and (values.min() < 0 or values.max() >= n_classes):
        raise UserError(f"{source}: {what} must be in 0..{n_classes - 1}")
    return values.astype(np.int64)
