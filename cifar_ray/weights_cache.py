"""Weights from object storage, staged once per node: a locked, checksum-verified local copy.

Offline clusters keep the backbone's weights file in their bucket (`--weights s3://...`);
every actor on a node shares one download, and a partial download is never taken as a file.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

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
    """A local path for `weights`: remote files are copied into this node's cache first."""
    if not is_remote(weights):
        return weights
    folder = cache_root() / hashlib.sha256(weights.encode()).hexdigest()[:16]
    target = folder / weights.rstrip("/").rsplit("/", 1)[-1]
    recorded = target.with_name(target.name + ".sha256")
    with file_lock(folder / ".lock"):
        if target.is_file() and recorded.is_file() and sha256_of(target) == recorded.read_text():
            return str(target)
        _download(weights, target)
        recorded.write_text(sha256_of(target))
    return str(target)


def _download(uri: str, target: Path) -> None:
    """Into a temporary name, then renamed: a killed download leaves no file behind."""
    from cifar_ray.storage import Location

    parent, _, name = uri.rstrip("/").rpartition("/")
    loc = Location(parent)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with loc.fs.open_input_stream(loc.path(name)) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        os.replace(tmp, target)
    except (OSError, FileNotFoundError) as exc:
        raise UserError(f"--weights {uri}: cannot download ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
