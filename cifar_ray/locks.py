"""A per-node file lock, so concurrent processes download a file once."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def keras_home() -> Path:
    """Where Keras caches downloads (its KERAS_HOME rule); our locks live beside them."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
