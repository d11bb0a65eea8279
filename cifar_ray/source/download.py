"""The official CIFAR archives through Keras' cache: downloaded once per machine, under a lock,
checked against their md5; a failed download leaves no lock behind."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cifar_ray.errors import UserError, first_line

if TYPE_CHECKING:
    from cifar_ray.source.cifar import Source


def download(src: Source) -> Path:
    """The official archive through Keras' cache, downloaded once per machine."""
    from cifar_ray.embed.tfsetup import configure_tensorflow
    from cifar_ray.locks import file_lock, keras_home

    configure_tensorflow()
    import keras

    with file_lock(lock := keras_home() / "datasets" / src.archive.replace(".tar.gz", ".lock")):
        try:
            path = keras.utils.get_file(
                src.archive, origin=src.url, file_hash=src.md5, cache_subdir="datasets",
            )  # fmt: skip
        except Exception as exc:  # get_file (no lock of its own) raises a bare Exception
            lock.unlink(missing_ok=True)  # nothing was cached: leave nothing behind
            why = f"cannot download {src.title} ({first_line(exc, 160, typed=False)})"
            raise UserError(f"{why}; pass --data-dir") from None
    return Path(path)
