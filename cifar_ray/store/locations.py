"""Local paths and object-store URIs behind one small interface, with atomic publishing."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow.fs as pafs

from cifar_ray.errors import StorageError, StorageRefused, UserError, first_line

TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Location:
    """Where outputs live: `uri` is what the user gave; `fs` and `root` are pyarrow's view."""

    uri: str

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri or self.uri.startswith("file://")

    @property
    def fs(self) -> pafs.FileSystem:
        return self._resolved[0]

    @property
    def root(self) -> str:
        return self._resolved[1]

    def check(self) -> Location:
        """A URI that names nothing (`s3://`, `file://`) is refused here, in one line, without
        asking storage anything: call it before starting anything slow (Ray)."""
        if self.is_local:
            if not self.uri.removeprefix("file://").strip():  # would mean the current folder
                raise UserError(f"--out {self.uri!r}: no path; give a folder")
            return self
        scheme, _, rest = self.uri.partition("://")
        if not rest.strip("/"):  # pyarrow's answer is a traceback about a leading separator
            raise UserError(f"--out {self.uri}: no bucket or root; give {scheme}://BUCKET/PATH")
        return self

    @cached_property
    def _resolved(self) -> tuple[pafs.FileSystem, str]:
        self.check()
        if self.is_local:
            path = self.uri.removeprefix("file://")
            return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())
        try:
            fs, root = pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError or ValueError here
            raise UserError(f"--out {self.uri}: {exc}") from None
        if isinstance(fs, pafs.S3FileSystem) and os.environ.get("AWS_ENDPOINT_URL"):
            fs = _s3_with_endpoint(os.environ["AWS_ENDPOINT_URL"])
        return fs, root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])


def _s3_with_endpoint(endpoint: str) -> pafs.S3FileSystem:
    scheme, _, host = endpoint.partition("://")
    return pafs.S3FileSystem(
        endpoint_override=host or scheme,
        scheme=scheme if host else "https",
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        allow_bucket_creation=True,
    )


def put_atomic(loc: Location, path: str, data: bytes) -> None:
    """Write under a temporary name, then rename: a reader never sees a partial file, and an
    interrupted write never replaces a good one (pyarrow completes an object-store upload on
    close whatever happened, so an upload straight to `path` could publish nothing there).
    On object stores the rename is a copy: see `put_new` for files no reader trusts by name."""
    fs = loc.fs
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.{name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    try:
        fs.create_dir(parent, recursive=True)
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    except OSError as exc:  # a full disk must not leave its temporary behind
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise write_error(path, exc) from None


def put_new(loc: Location, path: str, data: bytes) -> None:
    """A file under a name nothing else uses, which readers trust only once a record certifies
    its bytes (a shard attempt's data). On an object store it is uploaded once, in place: the
    temporary and the copy would send the bytes twice, and an interrupted upload there is only
    a stray that no record names. On disk it is `put_atomic`."""
    if loc.is_local:
        put_atomic(loc, path, data)
        return
    try:
        with loc.fs.open_output_stream(path) as out:
            out.write(data)
    except OSError as exc:
        raise write_error(path, exc) from None


# What no retry changes: the disk or quota is full, the filesystem is read-only, access denied.
REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def write_error(path: str, exc: OSError, verb: str = "write") -> StorageError:
    """One line: the path and what storage said; StorageRefused where a retry cannot help."""
    reason = os.strerror(exc.errno) if exc.errno else first_line(exc, 300, typed=False)
    kind = StorageRefused if exc.errno in REFUSED else StorageError
    return kind(f"cannot {verb} {path}: {reason}")


def get_bytes(loc: Location, path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist. Only "not found" means absent: a
    denied, throttled or timed-out read taken for "no file" would let a run replace a store
    it could not see, so any other failure raises StorageError."""
    try:
        with loc.fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        # pyarrow reports a missing S3 key as a plain OSError on some versions: ask again,
        # in a way whose answer is a type, not a message.
        if _info(loc, path).type == pafs.FileType.NotFound:
            return None
        raise storage_error(path, exc) from None


def _info(loc: Location, path: str) -> pafs.FileInfo:
    try:
        return loc.fs.get_file_info(path)
    except OSError as exc:
        raise storage_error(path, exc) from None


def storage_error(path: str, exc: BaseException) -> StorageError:
    """One line: the path and what storage said."""
    reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    reason = " ".join(reason.split())[:300]
    return StorageError(f"cannot read {path}: {reason}")


def list_files(loc: Location, folder: str) -> list[str]:
    selector = pafs.FileSelector(folder, allow_not_found=True, recursive=True)
    try:
        infos = loc.fs.get_file_info(selector)
    except OSError as exc:
        raise storage_error(folder, exc) from None
    return [i.path for i in infos if i.type == pafs.FileType.File]


def delete_file(loc: Location, path: str) -> None:
    """Delete one file; one already gone is fine (another cleanup got there first). A store
    that refuses (read-only, denied) is one line naming the path, as for a write."""
    try:
        loc.fs.delete_file(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise write_error(path, exc, "delete") from None


def remove_temporaries(loc: Location, folder: str) -> int:
    """Temporaries left by a killed run are never results: delete them."""
    stale = [p for p in list_files(loc, folder) if TMP_MARK in p.rpartition("/")[2]]
    for path in stale:
        delete_file(loc, path)
    return len(stale)


def delete_dir(loc: Location, folder: str) -> None:
    if loc.fs.get_file_info(folder).type != pafs.FileType.NotFound:
        try:
            loc.fs.delete_dir(folder)
        except OSError as exc:
            raise write_error(folder, exc, "delete") from None


def check_writable(loc: Location, folder: str, need_bytes: int) -> None:
    """Fail before any work if outputs cannot be written or would not fit."""
    try:
        put_atomic(loc, f"{folder}/.write-probe", b"ok")
        loc.fs.delete_file(f"{folder}/.write-probe")
    except StorageError as exc:  # "cannot write <probe>: <reason>"
        reason = str(exc).rpartition(": ")[2]
        raise UserError(f"--out {loc.uri}: cannot write there ({reason})") from None
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc, typed=False)
        raise UserError(f"--out {loc.uri}: cannot write there ({reason})") from None
    if loc.is_local:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise UserError(
                f"--out {loc.uri}: {free / 1e6:.0f} MB free, the features need "
                f"about {need_bytes / 1e6:.0f} MB"
            )
