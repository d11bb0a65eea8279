"""Writers of image inputs for tests, from the real CIFAR-10 sample (the synthetic batches of
tests/cifar_files.py where ../shared is absent): image folder trees, Hugging Face-style
Parquet, WebDataset tars, images of every size and colour mode, and one of each bad kind.
Each returns what it wrote, so tests can assert on it."""

from __future__ import annotations

import functools
import io
import json
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cifar_ray.bench import image_folder
from cifar_ray.bench.image_folder import Written, encode
from cifar_ray.source import cifar
from tests import cifar_files
from tests.conftest import SAMPLE_ARCHIVE


@functools.lru_cache(maxsize=1)
def sample() -> cifar.Dataset:
    """The real CIFAR-10 sample, read once per process; else 360 synthetic images."""
    if SAMPLE_ARCHIVE.exists():
        return cifar.load(str(SAMPLE_ARCHIVE.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        return cifar.load(str(cifar_files.write_archive(archive, cifar_files.batches())))


def splits(n_train: int, n_test: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The first n images and labels of each split (fewer where the data has fewer)."""
    data = sample()
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        if n:
            part = data.splits[split].head(n)
            out[split] = (part.images, part.labels)
    return out


def write_folder_tree(
    root: Path,
    n_train: int,
    n_test: int,
    fmt: str = "png",
    layout: str = "split",
    size: int | None = None,
) -> Written:
    """ROOT/train/<class>/*.png and ROOT/test/<class>/... ("split"), or ROOT/<class>/...
    ("flat"); `size` upscales the 32x32 pixels."""
    parts = splits(n_train, n_test)
    return image_folder.write_folder_tree(root, parts, sample().classes, fmt, layout, size)


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def write_hf_parquet(
    root: Path, n_train: int, n_test: int, label: str = "int", files_per_split: int = 2
) -> Written:
    """ROOT/<split>-0000i-of-0000n.parquet as Hugging Face publishes datasets: `image` a
    struct<bytes, path> of PNG bytes, `label` the class index ("int") or its name ("str")."""
    root, classes = Path(root), sample().classes
    root.mkdir(parents=True, exist_ok=True)
    written = Written(classes)
    for split, (images, labels) in splits(n_train, n_test).items():
        chunks = np.array_split(np.arange(len(labels)), files_per_split)
        for k, rows in enumerate(chunks):
            paths = [f"{split}/{i:06d}.png" for i in rows]
            cells = [
                {"bytes": encode(images[i]), "path": p} for i, p in zip(rows, paths, strict=True)
            ]
            values = [classes[labels[i]] for i in rows] if label == "str" else labels[rows]
            table = pa.table({"image": pa.array(cells, IMAGE_STRUCT), "label": values})
            path = root / f"{split}-{k:05d}-of-{files_per_split:05d}.parquet"
            pq.write_table(table, path)
            written.files.append(path)
            for i, p in zip(rows, paths, strict=True):
                written.add(p, split, labels[i])
    return written


def write_webdataset(
    root: Path, n_train: int, n_test: int, shard_size: int, label: str = "cls"
) -> Written:
    """ROOT/<split>-00000i.tar of `key.jpg` with `key.cls` (the class index as text) or
    `key.json` ({"label": index, "class": name}), as webdataset and img2dataset write them."""
    root, classes = Path(root), sample().classes
    root.mkdir(parents=True, exist_ok=True)
    written = Written(classes)
    for split, (images, labels) in splits(n_train, n_test).items():
        for shard, start in enumerate(range(0, len(labels), shard_size)):
            path = root / f"{split}-{shard:06d}.tar"
            with tarfile.open(path, "w") as tar:
                for i in range(start, min(start + shard_size, len(labels))):
                    key, y = f"{split}-{i:06d}", int(labels[i])
                    meta = {"label": y, "class": classes[y]}
                    side = json.dumps(meta).encode() if label == "json" else str(y).encode()
                    _add_member(tar, f"{key}.jpg", encode(images[i], "jpeg"))
                    _add_member(tar, f"{key}.{label}", side)
                    written.add(key, split, y)
            written.files.append(path)
    return written


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class Odd:
    path: Path
    mode: str  # Pillow's mode as written
    size: tuple[int, int]  # (width, height) as displayed: after EXIF orientation


ORIENTATION = 0x0112


def picture(width: int, height: int) -> Image.Image:
    """A real CIFAR photo stretched to width x height, its top-left quarter painted pure red:
    the mark orientation tests look for."""
    img = Image.fromarray(sample().splits["train"].images[0]).resize((width, height))
    img.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    return img


def _save(img: Image.Image, path: Path, **options) -> Path:
    img.save(path, **options)
    return path


def write_odd_images(folder: Path) -> list[Odd]:
    """One image of each size (16x16 to 4000x3000, one EXIF-rotated), each colour mode and
    each format: RGB, L, LA, 1, P, P with transparency, RGBA, CMYK, I;16; jpg, png, webp, bmp,
    gif (two frames), tif."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = picture(64, 48)
    out = [Odd(_save(picture(w, h), folder / f"rgb_{w}x{h}.{ext}"), "RGB", (w, h))
           for w, h, ext in ((16, 16, "png"), (100, 37, "jpg"), (640, 480, "webp"),
                             (4000, 3000, "jpg"))]  # fmt: skip
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown turned 90 degrees clockwise: 3000x4000 on screen
    stored = picture(3000, 4000).transpose(Image.Transpose.ROTATE_90)
    out.append(Odd(_save(stored, folder / "exif6_3000x4000.jpg", exif=exif), "RGB", (3000, 4000)))
    grey = rgb.convert("L")
    alpha = Image.new("L", rgb.size, 255)
    alpha.paste(0, (0, 24, 64, 48))  # the bottom half transparent
    modes = {
        "rgb.bmp": rgb, "rgb.tif": rgb, "grey.png": grey, "bilevel.bmp": rgb.convert("1"),
        "grey_alpha.png": Image.merge("LA", (grey, alpha)),
        "palette.png": rgb.convert("P"), "rgba.png": Image.merge("RGBA", (*rgb.split(), alpha)),
        "rgba.webp": Image.merge("RGBA", (*rgb.split(), alpha)),
        "cmyk.jpg": rgb.convert("CMYK"), "cmyk.tif": rgb.convert("CMYK"),
        "grey16.png": Image.fromarray(np.asarray(grey, np.uint16) * 257),
    }  # fmt: skip
    for name, img in modes.items():
        out.append(Odd(_save(img, folder / name), img.mode, img.size))
    transparent = rgb.convert("P")
    path = _save(transparent, folder / "palette_transparent.png", transparency=0)
    out.append(Odd(path, "P", rgb.size))
    frames = [rgb.convert("P"), Image.new("P", rgb.size, 3)]
    path = _save(frames[0], folder / "two_frames.gif", save_all=True, append_images=frames[1:])
    out.append(Odd(path, "P", rgb.size))
    return out


BOMB_SIDE = 10_000  # 100 M pixels, over Pillow's 89 M: ~12 KB on disk


def write_bad_images(folder: Path) -> dict[Path, str]:
    """One file of each bad kind -> the BadImage.kind decoding it must give."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png = encode(sample().splits["train"].images[1])
    jpeg = encode(sample().splits["train"].images[1], "jpeg", 256)
    idat = png.index(b"IDAT") + 8
    files = {
        "corrupt.png": (png[:idat] + bytes(b ^ 0x5A for b in png[idat : idat + 64])
                        + png[idat + 64 :], "corrupt"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"this is not a JPEG, only text\n" * 8, "not an image"),
        "bomb.png": (bomb_png(BOMB_SIDE), "too many pixels"),
        "one_pixel.png": (encode(np.zeros((1, 1, 3), np.uint8)), "too small"),
    }  # fmt: skip
    out = {}
    for name, (data, kind) in files.items():
        (folder / name).write_bytes(data)
        out[folder / name] = kind
    return out


def bomb_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: a few KB on disk, side**2 pixels (and
    3 * side**2 bytes as RGB) once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, grey
    packer = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the row's bits
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
