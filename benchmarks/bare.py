"""The bare single-process script `cifar-ray bench --whole-job` compares the whole job with:
read the archive, build the same model (same preprocessing, in-graph resize, precision and
XLA setting), run it in fixed batches, write one Parquet file per shard (zstd 1, no
dictionary, as the store does). No checks, no Ray, no resume: the least a job can do.

Usage: python benchmarks/bare.py OUT BACKBONE SIZE BATCH SHARD PRECISION XLA ARCHIVE LIMIT
BACKBONE is a keras.applications name (InceptionV3) or `module:factory`; LIMIT cuts each split
as `extract --limit` does (0: all); BATCH 0 is the embedder's choice for the size. Prints
one JSON line with wall-clock stamps (time.time()): the caller counts from when it started us.
The model, its run and the Parquet writing are shared with benchmarks/bare_images.py, which
takes image files instead of the archive.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import sys
import tarfile
import time

import numpy as np

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def read(archive: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    members = {}
    with tarfile.open(archive, "r:*") as tar:
        for info in tar:
            name = info.name.rsplit("/", 1)[-1]
            if name in BATCHES:
                members[name] = pickle.loads(tar.extractfile(info).read(), encoding="bytes")
    images, labels = [], []
    for name in BATCHES:
        batch = members[name]
        images.append(batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int64))
    splits = [(np.concatenate(images[:5]), np.concatenate(labels[:5])), (images[5], labels[5])]
    return (np.concatenate([np.ascontiguousarray(x[:limit]) for x, _ in splits]),
            np.concatenate([y[:limit] for _, y in splits]))  # fmt: skip


def build(backbone: str, size: int, precision: str, input_size: int = 32):
    import keras

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    if ":" in backbone:
        module, _, attr = backbone.partition(":")
        inner = getattr(importlib.import_module(module), attr)((size, size, 3), None)
    else:
        inner = getattr(keras.applications, backbone)(
            include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg"
        )
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    if size != input_size:
        x = keras.layers.Resizing(size, size, interpolation="bilinear")(x)
    return keras.Model(inputs, inner(x))


def write(out: str, index: int, ids: np.ndarray, labels: np.ndarray, features: np.ndarray,
          paths: list[str] | None = None):  # fmt: skip
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(np.ascontiguousarray(features, np.float32).reshape(-1))
    columns = {
        "id": pa.array(ids, pa.int64()), "label": pa.array(labels, pa.int64()),
        **({"path": pa.array(paths, pa.string())} if paths is not None else {}),
        "features": pa.FixedSizeListArray.from_arrays(values, features.shape[1]),
    }  # fmt: skip
    table = pa.table(columns)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=1, use_dictionary=False,
                   write_statistics=False)  # fmt: skip
    with open(f"{out}/part-{index:05d}.parquet", "wb") as handle:
        handle.write(sink.getvalue())


def model_call(model_args: list[str], input_size: int):
    """OUT BACKBONE SIZE BATCH SHARD PRECISION XLA -> the compiled forward pass on uint8
    batches of input_size, traced once, and (out, batch, shard)."""
    out, backbone, size, batch, shard, precision, xla = model_args
    size, batch, shard = int(size), int(batch), int(shard)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if batch <= 0:  # the rule the actors follow
        from cifar_ray.embed.embedder import auto_batch_size

        batch = auto_batch_size(size, bool(tf.config.list_physical_devices("GPU")))
    model = build(backbone, size, precision, input_size)
    sig = [tf.TensorSpec((None, input_size, input_size, 3), tf.uint8)]
    forward = tf.function(
        lambda x: model(x, training=False), input_signature=sig, jit_compile=xla == "1"
    )
    forward(np.zeros((batch, input_size, input_size, 3), np.uint8))  # trace (and compile) once
    return forward, out, batch, shard


def embed_shards(forward, out: str, batch: int, shards, stamps: dict) -> None:
    """Each shard (ids, labels, images, paths or None) through the model in fixed batches,
    then one Parquet file; prints the JSON line of stamps at the end."""
    os.makedirs(out, exist_ok=True)
    done = []
    for ids, labels, images, paths in shards:
        steps = range(0, len(images), batch)
        feats = [forward(images[i : i + batch]).numpy() for i in steps]
        stamps.setdefault("first_batch", time.time())
        write(out, len(done), ids, labels, np.concatenate(feats), paths)
        stamps.setdefault("first_file", time.time())
        done.append(len(ids))
    stamps["done"] = time.time()
    print(json.dumps({"images": sum(done), "files": len(done), **stamps}), flush=True)


def main(argv: list[str]) -> None:
    archive, limit = argv[7], int(argv[8]) or None
    stamps = {"started": time.time()}
    images, labels = read(archive, limit)
    stamps["read"] = time.time()
    forward, out, batch, shard = model_call(argv[:7], 32)
    stamps["built"] = time.time()
    shards = (
        (np.arange(s, min(s + shard, len(images))), labels[s : s + shard], images[s : s + shard],
         None)
        for s in range(0, len(images), shard)
    )  # fmt: skip
    embed_shards(forward, out, batch, shards, stamps)


if __name__ == "__main__":
    main(sys.argv[1:])
