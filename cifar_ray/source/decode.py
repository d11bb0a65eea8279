"""Encoded image bytes -> uint8 RGB pixels of the backbone's input size, with Pillow.

Pillow, not TensorFlow's decoders: on these CPUs it is as fast or faster for every case
measured (benchmarks/README.md, "Decoding"), it reads every format we accept, applies EXIF
orientation, converts every colour mode, and it releases the GIL while it decodes and
resizes, so one thread pool (`Decoder`) keeps every core busy without TensorFlow in the
process. A file that cannot become an image raises `BadImage` with a short reason; nothing
else about a bad file escapes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cifar_ray.config import DECODE_THREADS, DEFAULT_RESIZE, MAX_PIXELS, RESIZE_MODES

# Only these parsers ever see the bytes: a smaller attack surface than every Pillow plugin
# (EPS, for one, calls Ghostscript). JPEG's opener also reads MPO, as phone cameras write.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
MIN_SIDE = 2  # a 1-pixel side holds no picture (tracking pixels, spacer GIFs)
DRAFT_GAP = 2  # JPEG scaled decode only down to twice the target: the filter then smooths
BACKGROUND = (255, 255, 255)  # transparent pixels become white: see _to_rgb
PAD = (0, 0, 0)  # "pad" fills with black, as tf.image.resize_with_pad does
REASON_CHARS = 100

# The pixel limit is ours, per call, checked on the header before any pixel is decoded.
# Pillow's is one process-wide number that warns below twice itself and raises above: it
# would refuse a larger --max-pixels and print warnings from worker threads.
Image.MAX_IMAGE_PIXELS = None


class BadImage(Exception):
    """A file that is no usable image. str(): the reason, short enough for a record;
    `kind`: its category ("corrupt", "truncated", ...), for counting."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind} ({detail})" if detail else kind)


def decode_image(
    data: bytes, size: int, resize: str = DEFAULT_RESIZE, max_pixels: int | None = MAX_PIXELS
) -> np.ndarray:
    """(size, size, 3) uint8: EXIF orientation applied, RGB, resized by `resize` (one of
    config.RESIZE_MODES). `max_pixels` None: no limit."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            _check_header(img, max_pixels)
            _draft(img, size, resize)
            ImageOps.exif_transpose(img, in_place=True)  # decodes; before any copy loses EXIF
            return np.asarray(_resized(_to_rgb(img), size, resize), dtype=np.uint8)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except MemoryError:
        raise
    except Exception as exc:  # any parser's error on hostile bytes: the file is bad, not us
        raise _bad(exc) from None


def _bad(exc: Exception) -> BadImage:
    text = " ".join(str(exc).split())[:REASON_CHARS] or type(exc).__name__
    if "truncated" in text.lower():
        return BadImage("truncated", text)
    return BadImage("corrupt", text)


def _check_header(img: Image.Image, max_pixels: int | None) -> None:
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        raise BadImage("too many pixels", f"{w * h} > {max_pixels}")
    if min(w, h) < MIN_SIDE:
        raise BadImage("too small", f"{w}x{h}")


def _draft(img: Image.Image, size: int, resize: str) -> None:
    """JPEG only (a no-op for the rest): let libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale
    when even then the image keeps DRAFT_GAP times what the resize needs. Scaling is the same
    on both axes, so EXIF rotation afterwards changes nothing."""
    w, h = img.size
    side = max(w, h) if resize == "pad" else min(w, h)
    scale = DRAFT_GAP * size / side
    if scale < 0.5:  # otherwise libjpeg has no smaller scale to offer
        img.draft(None, (max(1, round(w * scale)), max(1, round(h * scale))))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Every mode to RGB, of the first frame (where Image.open stands). Alpha is composited
    on white: transparent pixels have no defined colour (often black, sometimes garbage), and
    such images (logos, product cut-outs) are made to be seen on a white page. 16-bit and
    32-bit integer greys keep their top 8 bits: Pillow's own conversion clips them at 255,
    which turns most 16-bit images white."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode == "I":
        grey = np.asarray(img, dtype=np.int64).clip(0, 65535) >> 8
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK (Adobe's inverted JPEGs handled), YCbCr, F


def _resized(img: Image.Image, size: int, resize: str) -> Image.Image:
    w, h = img.size
    bilinear = Image.Resampling.BILINEAR  # antialiased when shrinking, as TF's resize is not
    if resize == "squash":
        return img.resize((size, size), bilinear)
    if resize == "center-crop":  # the centred square of the shorter side, resized in one pass
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        return img.resize((size, size), bilinear, box=(left, top, left + side, top + side))
    scale = size / max(w, h)  # "pad": the whole image inside, centred on black
    inner = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = Image.new("RGB", (size, size), PAD)
    canvas.paste(img.resize(inner, bilinear), ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas


def cpu_count() -> int:
    """CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class Decoder:
    """A thread pool that decodes batches of files in parallel. Pillow releases the GIL in
    its decoders and resize, so threads use every core; results keep the input's order, and
    a bad file is its BadImage in that place, never an exception for the batch."""

    def __init__(self, threads: int | None = DECODE_THREADS) -> None:
        self.threads = threads or cpu_count()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")

    def decode(
        self,
        blobs: list[bytes],
        size: int,
        resize: str = DEFAULT_RESIZE,
        max_pixels: int | None = MAX_PIXELS,
    ) -> list[np.ndarray | BadImage]:
        def one(data: bytes) -> np.ndarray | BadImage:
            try:
                return decode_image(data, size, resize, max_pixels)
            except BadImage as bad:
                return bad

        return list(self._pool.map(one, blobs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
