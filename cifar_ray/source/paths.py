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


def check_data_dir(data_dir: str | None) -> None:
    if data_dir is None or "://" in data_dir:  # a download, or a reader of its own
        return
    path = Path(data_dir).expanduser()
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"--data-dir {path}: no such file or directory") from None
    except OSError as exc:
        raise UserError(f"--data-dir {path}: cannot be opened ({exc.strerror})") from None
    for test, kind in SPECIAL:
        if test(mode):
            raise UserError(f"--data-dir {path} is {kind}, not a file or folder")
    try:
        if stat.S_ISDIR(mode):
            with os.scandir(path):
                pass
        else:
            with path.open("rb") as file:
                file.read(1)
    except OSError as exc:
        raise UserError(f"--data-dir {path}: cannot be opened ({exc.strerror})") from None
