"""Test inputs from the real CIFAR-10 sample written out as image files (a stand-in until
issue 22's writers land): a folder tree, Hugging Face-style Parquet, WebDataset tars."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cifar_ray.source import cifar


def samples(archive: Path, per_split: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ds = cifar.load(str(archive), per_split)
    return {k: (s.images, s.labels) for k, s in ds.splits.items()}


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def write_folder(root: Path, data: dict, fmt: str = "PNG") -> Path:
    ext = "jpg" if fmt == "JPEG" else fmt.lower()
    for split, (images, labels) in data.items():
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / cifar.CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.{ext}").write_bytes(encode(img, fmt))
    return root


def write_parquet(root: Path, data: dict, files: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    meta = {"info": {"features": {"label": {"_type": "ClassLabel", "names": list(cifar.CLASSES)}}}}
    for split, (images, labels) in data.items():
        parts = np.array_split(np.arange(len(labels)), files)
        for n, part in enumerate(parts):
            images_ = [{"bytes": encode(images[i], "JPEG"), "path": f"{i}.jpg"} for i in part]
            table = pa.table({"image": images_, "label": pa.array(labels[part], pa.int64())})
            table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
            pq.write_table(table, root / f"{split}-{n:05d}-of-{files:05d}.parquet",
                           row_group_size=7)  # fmt: skip
    return root


def write_webdataset(root: Path, data: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in data.items():
        with tarfile.open(root / f"{split}-000000.tar", "w") as tar:
            for i, (img, label) in enumerate(zip(images, labels, strict=True)):
                for name, body in ((f"{i:06d}.jpg", encode(img, "JPEG")),
                                   (f"{i:06d}.cls", str(int(label)).encode())):  # fmt: skip
                    info = tarfile.TarInfo(name)
                    info.size = len(body)
                    tar.addfile(info, io.BytesIO(body))
    (root / "classes.txt").write_text("\n".join(cifar.CLASSES) + "\n")
    return root


BAD_KINDS = ("zero-byte", "truncated", "not-an-image", "one-pixel", "bomb")
BOMB_LIMIT = 20_000_000  # --max-pixels for tests: more than 4000x3000, less than the bomb


def write_bad(folder: Path, pixels: np.ndarray) -> list[str]:
    """One file of each bad kind in `folder` (a class folder); their names."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(pixels, "JPEG")
    bodies = {
        "zero-byte.jpg": b"",
        "truncated.jpg": good[: len(good) // 2],
        "not-an-image.png": b"this is text, not a picture\n" * 10,
        "one-pixel.png": encode(np.zeros((1, 1, 3), np.uint8)),
        "bomb.png": encode(np.zeros((5000, 4500, 3), np.uint8)),
    }
    for name, body in bodies.items():
        (folder / name).write_bytes(body)
    return sorted(bodies)


def write_odd_modes(folder: Path, pixels: np.ndarray) -> list[str]:
    """Good images in every colour mode and from 16x16 to 4000x3000: all must decode."""
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels)
    made = {
        "gray.png": img.convert("L"),
        "rgba.png": img.convert("RGBA"),
        "palette.gif": img.convert("P"),
        "cmyk.jpg": img.convert("CMYK"),
        "sixteen-bit.png": img.convert("L").convert("I;16"),
        "tiny.bmp": img.resize((16, 16)),
        "large.jpg": img.resize((4000, 3000)),
        "wide.webp": img.resize((300, 100)),
        "scan.tif": img.resize((64, 48)),
    }
    for name, picture in made.items():
        picture.save(folder / name)
    return sorted(made)
