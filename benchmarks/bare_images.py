"""The bare script `cifar-ray bench --whole-job --image-files` compares the whole job with:
list an image folder tree, decode each shard's files in a thread pool (the next shard while
the model runs this one), run the same model as benchmarks/bare.py in the same batches,
write one Parquet file per shard with each image's path. No checks, no Ray, no resume.

Usage: python benchmarks/bare_images.py OUT BACKBONE SIZE BATCH SHARD PRECISION XLA DIR RESIZE
DIR holds ROOT/<split>/<class>/<image>; RESIZE is one of config.RESIZE_MODES. Prints one
JSON line of wall-clock stamps, as bare.py does.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.bare import embed_shards, model_call
from cifar_ray.source.decode import BadImage, Decoder

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def listing(root: str) -> tuple[list[str], np.ndarray]:
    """Every image under ROOT/<split>/<class>/, splits in name order, and its class index
    (classes: the folder names, sorted)."""
    files = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root)
        for name in names
        if os.path.splitext(name)[1].lower() in EXTENSIONS
    )
    classes = sorted({Path(f).parent.name for f in files})
    index = {name: i for i, name in enumerate(classes)}
    return files, np.array([index[Path(f).parent.name] for f in files], np.int64)


def decode_shard(decoder: Decoder, files: list[str], size: int, resize: str):
    blobs = [Path(f).read_bytes() for f in files]
    decoded = decoder.decode(blobs, size, resize)
    keep = [i for i, d in enumerate(decoded) if not isinstance(d, BadImage)]
    return keep, np.stack([decoded[i] for i in keep])


def main(argv: list[str]) -> None:
    size, shard, root, resize = int(argv[2]), int(argv[4]), argv[7], argv[8]
    stamps = {"started": time.time()}
    files, labels = listing(root)
    stamps["read"] = time.time()
    decoder, ahead = Decoder(), ThreadPoolExecutor(1)
    starts = range(0, len(files), shard)

    def submit(start: int):
        return ahead.submit(decode_shard, decoder, files[start : start + shard], size, resize)

    pending = submit(0)  # the first shard decodes while TensorFlow loads
    forward, out, batch, _ = model_call(argv[:7], size)
    stamps["built"] = time.time()

    def shards():
        nonlocal pending
        for start in starts:
            keep, images = pending.result()
            if start + shard < len(files):  # the next shard decodes while the model runs
                pending = submit(start + shard)
            ids = start + np.asarray(keep, np.int64)
            yield ids, labels[ids], images, [files[i] for i in ids]

    embed_shards(forward, out, batch, shards(), stamps)
    ahead.shutdown()
    decoder.close()


if __name__ == "__main__":
    main(sys.argv[1:])
