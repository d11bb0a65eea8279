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
