"""`cifar-ray bench` in steady state: the pipeline's extraction on an embedded Ray against
the same model in a plain child process, on the same images, in turns; each side's best
round counts."""

from __future__ import annotations

import multiprocessing
import queue
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from cifar_ray.bench.machine import tensorflow_device
from cifar_ray.bench.memory import PeakMemory
from cifar_ray.config import BenchConfig, ExtractConfig
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.extract import job
from cifar_ray.source import cifar


def first_images(dataset: cifar.Dataset, n: int) -> cifar.Dataset:
    train = dataset.splits["train"]
    take = {"train": min(n, len(train)), "test": max(0, n - len(train))}
    return replace(dataset, splits={k: s.head(take[k]) for k, s in dataset.splits.items()})


def _baseline(spec: EmbedderSpec, images_path: str, out_path: str, requests, replies) -> None:
    """Child process, no Ray: the same model, with the pipeline's precision and XLA setting,
    through Keras `predict`, through the compiled call the actors use, and through that call
    from two threads at once (what a CPU actor does: worker.CPU_FORWARD_SLOTS), all warmed
    up; one timed run of each per request. float32 features are made once, for the cosine
    check only."""
    from concurrent.futures import ThreadPoolExecutor

    from cifar_ray.embed.embedder import Embedder
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()
    images = np.load(images_path)
    if spec.precision != "float32" or spec.xla:
        reference = Embedder(replace(spec, precision="float32", xla=False))
        np.save(out_path.replace(".npy", "-float32.npy"), reference(images))
        del reference
    embedder = Embedder(spec)
    size = embedder.spec.batch_size  # resolved as the actors resolve it
    chunks = [images[i : i + size] for i in range(0, len(images), size)]
    embedder.model.predict(images[:size], batch_size=size, verbose=0)
    threads = ThreadPoolExecutor(2)
    list(threads.map(embedder, chunks[:2]))  # both threads warm
    replies.put({"device": tensorflow_device()})
    calls = {
        "predict": lambda: embedder.model.predict(images, batch_size=size, verbose=0),
        "direct": lambda: embedder(images),
        "two_threads": lambda: np.concatenate(list(threads.map(embedder, chunks))),
    }
    while requests.get() is not None:
        rates = {}
        for name, call in calls.items():
            started = time.perf_counter()
            features = call()
            rates[name] = len(images) / (time.perf_counter() - started)
        np.save(out_path, np.asarray(features, dtype=np.float32))
        replies.put(rates)
    threads.shutdown()


class Baseline:
    """The baseline's child process, kept up between rounds so that its rounds interleave
    with the pipeline's and a busy spell on a shared machine hits both sides alike."""

    def __init__(self, spec: EmbedderSpec, images: np.ndarray, tmp: str):
        np.save(f"{tmp}/images.npy", images)
        self.features_path = f"{tmp}/baseline.npy"
        ctx = multiprocessing.get_context("spawn")
        self._requests, self._replies = ctx.Queue(), ctx.Queue()
        self._child = ctx.Process(
            target=_baseline,
            args=(spec, f"{tmp}/images.npy", self.features_path, self._requests, self._replies),
        )
        self._child.start()
        self.device = self._reply()["device"]

    @property
    def pid(self) -> int:
        return self._child.pid

    def _reply(self) -> dict:
        while self._child.is_alive() or not self._replies.empty():
            try:
                return self._replies.get(timeout=1.0)
            except queue.Empty:
                continue
        raise RuntimeError(f"the baseline process died (exit code {self._child.exitcode})")

    def round(self) -> dict[str, float]:
        self._requests.put("round")
        return self._reply()

    def close(self) -> None:
        self._requests.put(None)
        self._child.join(timeout=60)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()


def run(cfg: BenchConfig) -> dict:
    dataset = first_images(cifar.load(cfg.data_dir, dataset=cfg.dataset), cfg.images)
    images = np.concatenate([s.images for s in dataset.splits.values()])
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        # A fresh store per round, so every round embeds every image.
        plans = [job.prepare(extract_config(cfg, f"{tmp}/round-{i}"), dataset)
                 for i in range(cfg.rounds + 1)]  # fmt: skip
        baseline = Baseline(plans[0].spec, images, tmp)
        try:
            base, summaries, ray_init_s, peak = _rounds(baseline, plans)
        finally:
            baseline.close()
        features = _stored_features(plans[0])
        float32 = Path(baseline.features_path.replace(".npy", "-float32.npy"))
        reference = np.load(float32 if float32.exists() else baseline.features_path)
    best = {name: max(r[name] for r in base) for name in ("predict", "direct", "two_threads")}
    baseline_rate = max(best.values())  # the fastest plain-process way to run the model
    pipeline_rate = max(s.steady_images_per_s for s in summaries)
    cosine = _cosine_rows(features, reference)
    return {
        "config": asdict(cfg),
        "image_size": plans[0].spec.image_size,
        "device": baseline.device,
        "baseline_images_per_s": round(baseline_rate, 2),
        "baseline_rounds_images_per_s": [round(max(r.values()), 2) for r in base],
        "keras_predict_images_per_s": round(best["predict"], 2),
        "direct_call_images_per_s": round(best["direct"], 2),
        "two_threads_images_per_s": round(best["two_threads"], 2),
        "baseline_precision": plans[0].spec.precision,
        "baseline_xla": plans[0].spec.xla,
        "pipeline_images_per_s": pipeline_rate,
        "pipeline_rounds_images_per_s": [s.steady_images_per_s for s in summaries],
        "ratio": round(pipeline_rate / baseline_rate, 3),
        "end_to_end_images_per_s": summaries[0].images_per_s,
        "ray_init_s": round(ray_init_s, 2),
        "first_shard_s": round(summaries[0].first_shard_s or 0.0, 2),  # the cold round
        "peak_pss_mb": round(peak / 2**20),
        "cosine_vs_float32_min": round(float(cosine.min()), 6),
        "max_abs_diff_vs_float32": float(np.abs(features - reference).max()),
    }


def _rounds(baseline: Baseline, plans: list) -> tuple[list, list, float, int]:
    """Baseline, then pipeline, per round; each round on a fresh embedded Ray (so the baseline
    never shares the machine with an idle Ray). The last plan is a pipeline round of its own
    that measures memory (without the baseline): sampling costs the timed rounds too much."""
    from cifar_ray.ray_runtime import ray_session

    base, summaries, init_s = [], [], []
    for plan in plans[:-1]:
        base.append(baseline.round())
        started = time.perf_counter()
        with ray_session(local=True):
            init_s.append(time.perf_counter() - started)
            summaries.append(job.execute(plan))
    with PeakMemory(exclude=frozenset({baseline.pid})) as memory, ray_session(local=True):
        job.execute(plans[-1])
    return base, summaries, init_s[0], memory.peak


def extract_config(cfg: BenchConfig, out: str) -> ExtractConfig:
    """The extraction both bench modes run: the bench's model and sizes, into `out`."""
    return ExtractConfig(
        out=out, data_dir=cfg.data_dir, dataset=cfg.dataset, backbone=cfg.backbone,
        weights=cfg.weights, image_size=cfg.image_size, batch_size=cfg.batch_size,
        shard_size=cfg.shard_size, actors=cfg.actors, precision=cfg.precision, xla=cfg.xla,
        seed=cfg.seed,
    )  # fmt: skip


def _stored_features(plan: job.ExtractionPlan) -> np.ndarray:
    """All splits, in the order the baseline saw the images (train, then test)."""
    parts = []
    for split in plan.dataset.splits:
        shards = [s for s in plan.shards if s.split == split]
        if shards:
            parts.append(plan.store.read_checked(shards, plan.fingerprint_id)[0])
    return np.concatenate(parts)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
