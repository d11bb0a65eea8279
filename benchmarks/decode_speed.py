"""Pillow (source/decode.py) against TensorFlow's decoders, per JPEG, to choose one.

Usage: python benchmarks/decode_speed.py [CIFAR_ARCHIVE]  (one JSON line per case)

Each case: a real CIFAR photo upscaled to 256x256 or 4000x3000, with seeded noise so the
JPEG holds a photo's entropy (quality 90), decoded to a centre-cropped size x size RGB:
- pillow: decode_image (libjpeg-turbo's scaled decode where the image is >= 2x the need);
- pillow_full: the same without the scaled decode (every pixel decoded, then resized);
- tf_decode_image: tf.io.decode_image then crop and tf.image.resize(antialias=True);
- tf_decode_jpeg_ratio: tf.io.decode_jpeg(ratio=r), libjpeg's scaled decode, as pillow.
Single thread (ms per image), then images/s on every CPU: Decoder's threads for Pillow,
tf.data's parallel map for TensorFlow. Each figure is the best of its rounds: on a shared
machine the least disturbed round is the closest to the code's own speed.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_ray.source import cifar, decode

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared/data/cifar10-sample"
SHAPES = ((256, 256), (4000, 3000))
SIZES = (75, 299)


def photo(width: int, height: int, archive: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = cifar.load(archive).splits["train"].images[7]
    img = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BICUBIC))
    noisy = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, "JPEG", quality=90)
    return out.getvalue()


def pillow_full(data: bytes, size: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR, box=box))


def tf_functions():
    import tensorflow as tf

    def finish(img, size):
        shape = tf.shape(img)
        side = tf.minimum(shape[0], shape[1])
        img = tf.image.crop_to_bounding_box(
            img, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side
        )
        return tf.cast(tf.image.resize(img, (size, size), antialias=True), tf.uint8)

    def decode_image(data, size):
        return finish(tf.io.decode_image(data, channels=3, expand_animations=False), size)

    def decode_jpeg_ratio(data, size, ratio):
        return finish(tf.io.decode_jpeg(data, channels=3, ratio=ratio), size)

    return tf, decode_image, decode_jpeg_ratio


def ms_per_image(fn, rounds: int) -> float:
    fn()  # warm: first call builds whatever is cached
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1000 * min(times), 2)


ROUNDS_ALL_CPUS = 3


def throughput_pillow(data: bytes, size: int, n: int) -> float:
    with decode.Decoder() as pool:
        pool.decode([data] * 4, size)
        return best_rate(lambda: pool.decode([data] * n, size), n)


def throughput_tf(tf, fn, data: bytes, n: int) -> float:
    ds = tf.data.Dataset.from_tensors(data).repeat(n).map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    for _ in ds.take(4):
        pass
    return best_rate(lambda: [None for _ in ds], n)


def best_rate(run, n: int) -> float:
    seconds = []
    for _ in range(ROUNDS_ALL_CPUS):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return round(n / min(seconds), 1)


def case(data: bytes, size: int, ratio: int, rounds: int, n: int) -> dict:
    tf, tf_image, tf_jpeg = tf_functions()
    image = lambda d: tf_image(d, size)  # noqa: E731
    jpeg = lambda d: tf_jpeg(d, size, ratio)  # noqa: E731
    ms = {
        "pillow": ms_per_image(lambda: decode.decode_image(data, size), rounds),
        "pillow_full": ms_per_image(lambda: pillow_full(data, size), rounds),
        "tf_decode_image": ms_per_image(lambda: image(data).numpy(), rounds),
        "tf_decode_jpeg_ratio": ms_per_image(lambda: jpeg(data).numpy(), rounds),
    }
    per_s = {
        "pillow": throughput_pillow(data, size, n),
        "tf_decode_image": throughput_tf(tf, image, data, n),
        "tf_decode_jpeg_ratio": throughput_tf(tf, jpeg, data, n),
    }
    return {"ms": ms, "images_per_s_all_cpus": per_s}


def main(archive: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for w, h in SHAPES:
        data = photo(w, h, archive)
        rounds, n = (30, 600) if w <= 256 else (5, 40)
        for size in SIZES:
            ratio = next(r for r in (8, 4, 2, 1) if min(w, h) // r >= 2 * size or r == 1)
            row = {"image": f"{w}x{h}", "jpeg_kb": len(data) // 1024, "size": size,
                   "tf_ratio": ratio, "cpus": decode.cpu_count()}  # fmt: skip
            print(json.dumps({**row, **case(data, size, ratio, rounds, n)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(SAMPLE / "cifar-10-python.tar.gz"))
