"""List an input (a local folder or an object-store prefix, through pyarrow.fs) and decide
what it is: Parquet files, WebDataset tars, or a tree of image files."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from cifar_ray.errors import UserError
from cifar_ray.source.images.dataset import Listed
from cifar_ray.store.locations import Location, storage_error

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
NAME = re.compile(r"[^a-z0-9_.-]+")


@dataclass(frozen=True)
class Found:
    """Every file under the input: storage path -> what the fingerprint covers."""

    loc: Location
    files: dict[str, Listed]  # rel path -> listing entry (its path is the storage path)

    def with_ext(self, *exts: str) -> dict[str, Listed]:
        return {rel: one for rel, one in self.files.items() if rel.lower().endswith(exts)}

    @property
    def kind(self) -> str:
        if self.with_ext(".parquet"):
            return "parquet"
        if self.with_ext(".tar"):
            return "webdataset"
        if self.with_ext(*IMAGE_EXTENSIONS):
            return "folder"
        raise UserError(f"--data {self.loc.uri}: no images, .parquet or .tar files there")


def list_input(uri: str) -> Found:
    """Every file under `uri`, hidden ones (`.x`, `_x`) left out. A storage error is never
    "empty": it raises StorageError; a path that is not there is a one-line UserError."""
    loc = Location(uri).check()
    root = loc.root.rstrip("/")
    try:
        info = loc.fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise UserError(f"--data {uri}: no such file or directory")
        if info.type == pafs.FileType.File:
            infos, root = [info], root.rpartition("/")[0]
        else:
            infos = loc.fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise storage_error(root, exc) from None
    files = {}
    for one in infos:
        rel = one.path[len(root) + 1 :]
        if one.type != pafs.FileType.File or any(p[:1] in "._" for p in rel.split("/")):
            continue
        version = str(one.mtime_ns) if one.mtime_ns is not None else ""
        files[rel] = Listed(one.path, int(one.size or 0), version)
    return Found(loc, dict(sorted(files.items())))


def dataset_name(uri: str) -> str:
    """The store's `@name`: the input's last path component, in safe characters."""
    last = uri.rstrip("/").rsplit("/", 1)[-1] or "images"
    name = NAME.sub("-", last.lower()).strip("-.") or "images"
    return f"{name}-images" if name in ("cifar10", "cifar100") else name
