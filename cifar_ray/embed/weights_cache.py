"""Weights from object storage, staged once per node: a locked, checksum-verified local copy.

Offline clusters keep the backbone's weights file in their bucket (`--weights s3://...`);
every actor on a node shares one download, a partial download is never taken as a file, and a
copy is re-validated against the object (size, ETag, mtime) each time it is resolved.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from cifar_ray.errors import UserError
from cifar_ray.locks import file_lock


def is_remote(weights: str) -> bool:
    return "://" in weights and not weights.startswith("file://")


def cache_root() -> Path:
    return Path(os.environ.get("CIFAR_RAY_CACHE", "~/.cache/cifar-ray")).expanduser() / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(weights: str) -> str:
    """A local path for `weights`: remote files are copied into this node's cache first.

    A cached copy is used only while it still hashes to what was downloaded and the object it
    came from is unchanged (size, ETag and modification time as the store reports them now):
    an object replaced in the bucket is downloaded again, never served from an old copy."""
    if not is_remote(weights):
        return weights
    folder = cache_root() / hashlib.sha256(weights.encode()).hexdigest()[:16]
    target = folder / weights.rstrip("/").rsplit("/", 1)[-1]
    record = target.with_name(target.name + ".source.json")
    with file_lock(folder / ".lock"):
        source = source_version(weights)
        cached = _cached(target, record)
        if cached and cached.get("source") == source and cached.get("sha256") == sha256_of(target):
            return str(target)
        record.unlink(missing_ok=True)  # no record: never trusted until the new copy is whole
        _download(weights, target, source)
        record.write_text(json.dumps({"sha256": sha256_of(target), "source": source}))
    return str(target)


def source_version(uri: str) -> dict:
    """The object as the store describes it now. S3 gives ETag (via pyarrow's stream metadata:
    one HEAD request); other stores may give only size and modification time."""
    loc, path = _located(uri)
    try:
        info = loc.fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            raise UserError(f"--weights {uri}: cannot download (no such object)")
        with loc.fs.open_input_file(path) as handle:
            meta = handle.metadata() or {}
    except (OSError, FileNotFoundError) as exc:
        raise UserError(f"--weights {uri}: cannot download ({exc})") from None
    etag = meta.get(b"ETag", meta.get("ETag"))
    return {
        "size": info.size,
        "mtime": info.mtime.isoformat() if info.mtime else None,
        "etag": etag.decode() if isinstance(etag, bytes) else etag,
    }


def _cached(target: Path, record: Path) -> dict | None:
    try:
        return json.loads(record.read_text()) if target.is_file() else None
    except (OSError, ValueError):
        return None


def _located(uri: str):
    from cifar_ray.store.locations import Location

    parent, _, name = uri.rstrip("/").rpartition("/")
    loc = Location(parent)
    return loc, loc.path(name)


def _download(uri: str, target: Path, source: dict) -> None:
    """Into a temporary name, then renamed: a killed download leaves no file behind. The object
    must be the same after the copy as before it, or the bytes may come from two versions."""
    loc, path = _located(uri)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with loc.fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        if source_version(uri) != source:
            raise UserError(f"--weights {uri}: the object changed while it was downloaded; "
                            "run again once it is in place")  # fmt: skip
        os.replace(tmp, target)
    except (OSError, FileNotFoundError) as exc:
        raise UserError(f"--weights {uri}: cannot download ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
