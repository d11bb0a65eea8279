"""What a stat and an open can tell about `--data-dir`, in milliseconds, before Ray starts:
it exists, it is a regular file or a folder (a FIFO or a device is named as such; reading one
would block or never end), and it can be opened. What only reading it can tell (not an
archive, a truncated or oversized one, a batch of the wrong shape) comes when it is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cifar_ray.errors import UserError

SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_data_dir(data_dir: str | None, inside: tuple[str, ...] = ()) -> None:
    """`inside`: what a folder may hold (the archive, the batches); each that is there is checked
    too, as the folder resolves to it (a FIFO named like the archive would block the reader)."""
    if data_dir is None or "://" in data_dir:  # a download, or a reader of its own
        return
    path = Path(data_dir).expanduser()
    _check(path, "--data-dir ")
    if path.is_dir():
        for name in inside:
            if os.path.lexists(path / name):
                _check(path / name, "")


def _check(path: Path, flag: str) -> None:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"{flag}{path}: no such file or directory") from None
    except OSError as exc:
        raise UserError(f"{flag}{path}: cannot be opened ({exc.strerror})") from None
    for test, kind in SPECIAL:
        if test(mode):
            raise UserError(f"{flag}{path} is {kind}, not a file or folder")
    try:
        if stat.S_ISDIR(mode):
            with os.scandir(path):
                pass
        else:
            with path.open("rb") as file:
                file.read(1)
    except OSError as exc:
        raise UserError(f"{flag}{path}: cannot be opened ({exc.strerror})") from None
