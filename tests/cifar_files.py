"""Writers for CIFAR-10 in the official python format, for tests that need their own data."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
           b"dog", b"frog", b"horse", b"ship", b"truck"]  # fmt: skip


def planted_batch(n: int, seed: int) -> dict:
    """Images whose mean colour depends on the label: a signal any classifier can learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    palette = np.random.default_rng(99).integers(30, 225, (10, 3))
    images = palette[labels][:, :, None, None] + rng.normal(0, 20, (n, 3, 32, 32))
    data = np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)
    return {b"batch_label": b"synthetic", b"labels": labels.tolist(), b"data": data}


def batches(n_per_batch: int = 60, seed: int = 0) -> dict[str, bytes]:
    out = {name: pickle.dumps(planted_batch(n_per_batch, seed + i), protocol=2)
           for i, name in enumerate(NAMES)}  # fmt: skip
    out["batches.meta"] = pickle.dumps({b"label_names": CLASSES}, protocol=2)
    return out


def write_archive(path: Path, members: dict[str, bytes], prefix="cifar-10-batches-py") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder
