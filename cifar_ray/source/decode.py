"""Image bytes to uint8 pixels of the input size (a stand-in until issue 22's decoder lands:
same interface, fewer checks)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

RESIZES = ("squash", "center-crop", "pad")
DEFAULT = Image.MAX_IMAGE_PIXELS  # Pillow's own decompression-bomb limit
MIN_SIDE = 2  # a 1x1 image is a placeholder, not a picture


class BadImage(Exception):
    """An image that cannot be used; its str is the reason."""


def decode_image(data: bytes, size: int, resize: str = "center-crop",
                 max_pixels: int | None = DEFAULT) -> np.ndarray:  # fmt: skip
    if not data:
        raise BadImage("zero-byte file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max_pixels and img.width * img.height > max_pixels:
                raise BadImage(f"{img.width}x{img.height} is more than {max_pixels} pixels")
            if min(img.size) < MIN_SIDE:
                raise BadImage(f"too small ({img.width}x{img.height})")
            img.draft("RGB", (size, size))
            img = ImageOps.exif_transpose(img).convert("RGB")
            return np.asarray(_resized(img, size, resize), dtype=np.uint8)
    except BadImage:
        raise
    except Exception as exc:  # Pillow raises many kinds for corrupt or foreign bytes
        raise BadImage(f"not a readable image ({type(exc).__name__}: {exc})") from None


def _resized(img: Image.Image, size: int, resize: str) -> Image.Image:
    if resize == "squash":
        return img.resize((size, size), Image.BILINEAR)
    if resize == "center-crop":
        return ImageOps.fit(img, (size, size), Image.BILINEAR)
    return ImageOps.pad(img, (size, size), Image.BILINEAR)


class Decoder:
    """Decodes in a thread pool sized to this node's CPUs (Pillow releases the GIL)."""

    def __init__(self, threads: int | None = None):
        self.pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)

    def decode(self, blobs: list[bytes], size: int, resize: str = "center-crop",
               max_pixels: int | None = DEFAULT) -> list[np.ndarray | BadImage]:  # fmt: skip
        def one(data: bytes) -> np.ndarray | BadImage:
            try:
                return decode_image(data, size, resize, max_pixels)
            except BadImage as exc:
                return exc

        return list(self.pool.map(one, blobs))
