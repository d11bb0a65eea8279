"""CIFAR's pixels written out as image files: the input of the image-folder benchmark, and
of the tests' folder trees (tests/image_files.py). Deterministic: the same call writes the
same bytes."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_ray.source.cifar import Dataset
from cifar_ray.source.decode import cpu_count

EXTENSIONS = {"png": "png", "jpeg": "jpg"}
JPEG_QUALITY = 90  # what cameras and img2dataset write (img2dataset's default is 95)
BENCH_SIZE = 256  # the bench's JPEGs: about the size of a web photo's thumbnail, ~17 KB
TEST_SHARE = 6  # one image in six goes to test/, as in CIFAR-10


@dataclass
class Written:
    """What a writer wrote: one entry per image in `names`, `splits`, `labels` (in order),
    every file it created in `files`."""

    classes: tuple[str, ...]
    files: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # relative path, member or row path
    splits: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def add(self, name: str, split: str, label: int) -> None:
        self.names.append(name)
        self.splits.append(split)
        self.labels.append(int(label))


def encode(pixels: np.ndarray, fmt: str = "png", size: int | None = None) -> bytes:
    """One (H, W, 3) uint8 image as PNG or JPEG bytes, upscaled (bicubic) to size x size."""
    img = Image.fromarray(pixels)
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    if fmt == "jpeg":
        img.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        img.save(out, "PNG")
    return out.getvalue()


def write_folder_tree(
    root: Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: tuple[str, ...],
    fmt: str = "png",
    layout: str = "split",
    size: int | None = None,
) -> Written:
    """ROOT/<split>/<class>/<n>.<ext> ("split") or ROOT/<class>/<split>-<n>.<ext> ("flat"):
    the layouts of Keras' image_dataset_from_directory and torchvision's ImageFolder. Encoded
    in a thread pool (Pillow releases the GIL): 100,000 JPEGs take minutes, not tens."""
    root, ext = Path(root), EXTENSIONS[fmt]
    written = Written(tuple(classes))
    jobs = []
    for split, (images, labels) in splits.items():
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            cls = classes[int(label)]
            rel = (
                f"{split}/{cls}/{i:06d}.{ext}"
                if layout == "split"
                else f"{cls}/{split}-{i:06d}.{ext}"
            )
            written.files.append(root / rel)
            written.add(rel, split, label)
            jobs.append((root / rel, pixels))
    for folder in {path.parent for path, _ in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(cpu_count()) as pool:
        list(pool.map(lambda job: job[0].write_bytes(encode(job[1], fmt, size)), jobs))
    return written


def write_bench_jpegs(root: Path, data: Dataset, n: int) -> Written:
    """n JPEGs of BENCH_SIZE px in ROOT/train|test/<class>/, from `data`'s photos (train,
    then test) upscaled, cycled and mirrored as needed; one in TEST_SHARE goes to test/."""
    images = np.concatenate([s.images for s in data.splits.values()])
    labels = np.concatenate([s.labels for s in data.splits.values()])
    images, labels = repeated(images, labels, n)
    cut = n - n // TEST_SHARE
    parts = {"train": (images[:cut], labels[:cut]), "test": (images[cut:], labels[cut:])}
    return write_folder_tree(root, parts, data.classes, "jpeg", "split", BENCH_SIZE)


def repeated(images: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n images cycled from the given ones, every other pass mirrored, so that no two files
    of a larger set are the same bytes."""
    idx = np.arange(n) % len(images)
    flip = (np.arange(n) // len(images)) % 2 == 1
    out = images[idx].copy()
    out[flip] = out[flip][:, :, ::-1]
    return out, labels[idx]
