"""A dataset's tar archive read into memory, bounded: nothing is extracted, and no read goes
past what the dataset could hold, so a hostile archive is refused rather than unpacked."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from cifar_ray.errors import UserError

MAX_ARCHIVE_ENTRIES = 1000
MAX_HEADER_READ = 64 * 1024  # any read outside a batch's data: headers, long names, pax records


def read_members(
    archive: Path, limits: Mapping[str, int], max_bytes: int, title: str
) -> dict[str, bytes]:
    """The members of a tar (plain, gz, bz2 or xz) that `limits` names, by base name, reading
    at most what the dataset could hold: each member's limit, and `max_bytes` unpacked in all.
    `title` names the dataset in errors."""
    members: dict[str, bytes] = {}
    try:
        with (
            _BoundedStream(_decompressed(archive), max_bytes) as stream,
            tarfile.open(fileobj=stream, mode="r:") as tar,
        ):
            for count, info in enumerate(tar, start=1):
                if count > MAX_ARCHIVE_ENTRIES:
                    raise _TooLarge(f"more than {MAX_ARCHIVE_ENTRIES} entries")
                name = info.name.rsplit("/", 1)[-1]
                if not info.isfile() or name not in limits:
                    continue
                if info.size > limits[name]:
                    raise UserError(f"{archive}: member {info.name} is too large for {title}")
                with stream.allowing(info.size):
                    handle = tar.extractfile(info)
                    members[name] = handle.read() if handle else b""
    except _TooLarge as exc:
        raise UserError(f"{archive}: not a {title} archive ({exc})") from None
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
    size unless it is a batch whose size was checked, and nothing past `max_bytes`, the most
    the dataset's archive unpacks to.
    """

    def __init__(self, raw: BinaryIO, max_bytes: int) -> None:
        self._raw = raw
        self._max_read = MAX_HEADER_READ
        self._max_bytes = max_bytes

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

    def _check(self, end: int) -> None:
        if end > self._max_bytes:
            raise _TooLarge(f"it unpacks to more than {self._max_bytes} bytes")
