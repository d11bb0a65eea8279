"""`cifar-ray bench`: the full pipeline against a plain Keras predict of the same model.

Both run in one process tree on the same images: the baseline in a child process (so its
TensorFlow runtime does not sit in the driver), then the real extraction on an embedded Ray.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cifar_ray import cifar, pipeline
from cifar_ray.config import ExtractConfig
from cifar_ray.embedder import EmbedderSpec


@dataclass(frozen=True)
class BenchConfig:
    data_dir: str | None = None
    backbone: str = "inceptionv3"
    weights: str = "none"  # the speed of random and ImageNet weights is the same
    image_size: int | None = None
    images: int = 300  # train first, then test, in source order
    batch_size: int = 0  # 0: the embedder's choice for the device and size
    shard_size: int = 256
    actors: int | None = None
    precision: str = "float32"
    xla: bool = False
    seed: int = 0
    rounds: int = 2  # each side runs this many times; the best counts (load on a shared box)


def first_images(dataset: cifar.Dataset, n: int) -> cifar.Dataset:
    train = dataset.splits["train"]
    take = {"train": min(n, len(train)), "test": max(0, n - len(train))}
    splits = {
        k: cifar.Split(s.images[: take[k]], s.labels[: take[k]]) for k, s in dataset.splits.items()
    }
    return replace(dataset, splits=splits)


def _baseline(spec: EmbedderSpec, images_path: str, out_path: str, rounds: int, queue) -> None:
    """Child process, no Ray: the same model through Keras `predict` and through the same
    compiled call the actors use; each warmed up, each the best of `rounds` timed runs."""
    from cifar_ray.embedder import Embedder
    from cifar_ray.tfsetup import configure_tensorflow

    configure_tensorflow()
    images = np.load(images_path)
    embedder = Embedder(replace(spec, precision="float32", xla=False))
    size = embedder.spec.batch_size  # resolved as the actors resolve it
    embedder.model.predict(images[:size], batch_size=size, verbose=0)
    rates = {}
    for name, call in (
        ("predict", lambda: embedder.model.predict(images, batch_size=size, verbose=0)),
        ("direct", lambda: embedder(images)),
    ):
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            features = call()
            best = min(best, time.perf_counter() - started)
        rates[name] = len(images) / best
    np.save(out_path, np.asarray(features, dtype=np.float32))
    queue.put({"rates": rates, "device": _device()})


class PeakMemory:
    """Peak proportional set size of this process and all its descendants (Ray's workers),
    sampled in a thread; PSS counts shared object-store pages once, not per process."""

    def __init__(self, every_s: float = 2.0):  # one sample costs ~20 ms of CPU here
        import psutil

        self.root, self.every_s, self.peak = psutil.Process(), every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def run(cfg: BenchConfig) -> dict:
    from cifar_ray.ray_runtime import ray_session

    dataset = first_images(cifar.load(cfg.data_dir), cfg.images)
    images = np.concatenate([s.images for s in dataset.splits.values()])
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        # A fresh store per round, so every round embeds every image.
        plans = [pipeline.prepare(_extract_config(cfg, f"{tmp}/round-{i}"), dataset)
                 for i in range(cfg.rounds)]  # fmt: skip
        base = _run_baseline(plans[0].spec, images, tmp, cfg.rounds)
        started = time.perf_counter()
        with PeakMemory() as memory, ray_session(local=True):
            ray_init_s = time.perf_counter() - started
            summaries = [pipeline.execute(plan) for plan in plans]
        features = _stored_features(plans[0])
        reference = np.load(f"{tmp}/baseline.npy")
    baseline_rate = max(base["rates"].values())  # the faster way: the model itself
    pipeline_rate = max(s.steady_images_per_s for s in summaries)
    cosine = _cosine_rows(features, reference)
    return {
        "config": asdict(cfg),
        "image_size": plans[0].spec.image_size,
        "device": base["device"],
        "baseline_images_per_s": round(baseline_rate, 2),
        "keras_predict_images_per_s": round(base["rates"]["predict"], 2),
        "direct_call_images_per_s": round(base["rates"]["direct"], 2),
        "pipeline_images_per_s": pipeline_rate,
        "pipeline_rounds_images_per_s": [s.steady_images_per_s for s in summaries],
        "ratio": round(pipeline_rate / baseline_rate, 3),
        "end_to_end_images_per_s": summaries[0].images_per_s,
        "ray_init_s": round(ray_init_s, 2),
        "first_shard_s": round(summaries[0].first_shard_s or 0.0, 2),  # the cold round
        "peak_pss_mb": round(memory.peak / 2**20),
        "cosine_vs_float32_min": round(float(cosine.min()), 6),
        "max_abs_diff_vs_float32": float(np.abs(features - reference).max()),
    }


def _extract_config(cfg: BenchConfig, out: str) -> ExtractConfig:
    return ExtractConfig(
        out=out, data_dir=cfg.data_dir, backbone=cfg.backbone, weights=cfg.weights,
        image_size=cfg.image_size, batch_size=cfg.batch_size, shard_size=cfg.shard_size,
        actors=cfg.actors, precision=cfg.precision, xla=cfg.xla, seed=cfg.seed,
    )  # fmt: skip


def _stored_features(plan: pipeline.ExtractionPlan) -> np.ndarray:
    """All splits, in the order the baseline saw the images (train, then test)."""
    parts = []
    for split in plan.dataset.splits:
        shards = [s for s in plan.shards if s.split == split]
        if shards:
            parts.append(plan.store.read_split(shards)[0])
    return np.concatenate(parts)


def _run_baseline(spec: EmbedderSpec, images: np.ndarray, tmp: str, rounds: int) -> dict:
    np.save(f"{tmp}/images.npy", images)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(
        target=_baseline, args=(spec, f"{tmp}/images.npy", f"{tmp}/baseline.npy", rounds, queue)
    )
    child.start()
    try:
        result = queue.get(timeout=3600)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    return result


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def _device() -> str:
    """What the baseline ran on: the GPU's name, else the CPU's model and core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.machine(),
    )  # fmt: skip
    return f"{model}, {os.cpu_count()} cores"


def main(cfg: BenchConfig) -> dict:
    result = run(cfg)
    print(json.dumps(result), flush=True)
    return result
