"""`cifar-ray bench`: the full pipeline against a plain Keras predict of the same model.

Steady state (default): both run in one process tree on the same images, in turns (baseline,
pipeline, baseline, ...): the baseline in a child process (so its TensorFlow runtime does not
sit in the driver), with the pipeline's precision and XLA setting, its best plain-process way
counting; the pipeline as the real extraction on an embedded Ray. Each side's best round counts.

`--whole-job`: the user's wait, start to end: `cifar-ray extract --local` as a fresh process
against benchmarks/bare.py, in turns.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from cifar_ray.config import BenchConfig, ExtractConfig
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.errors import UserError
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
    replies.put({"device": _device()})
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


class PeakMemory:
    """Peak proportional set size of a process and all its descendants (Ray's workers),
    sampled in a thread every 0.2 s (a whole job can last 7 s); PSS counts shared
    object-store pages once, not per process. Each sample reads /proc/PID/smaps_rollup of
    the processes already known (~0.3 ms each); the tree is walked again every second."""

    def __init__(self, every_s: float = 0.2, exclude: frozenset[int] = frozenset(),
                 root: int | None = None, rescan_s: float = 1.0):  # fmt: skip
        self.root = os.getpid() if root is None else root
        self.every_s, self.exclude, self.rescan_s, self.peak = every_s, exclude, rescan_s, 0
        self.samples = 0
        self._pids: list[int] = [self.root]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rescan(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.root).children(recursive=True)
        except psutil.Error:
            children = []
        self._pids = [p for p in [self.root, *(c.pid for c in children)]
                      if p not in self.exclude]  # fmt: skip

    def _sample(self) -> int:
        self.samples += 1
        return sum(_pss_bytes(pid) for pid in self._pids)

    def _run(self) -> None:
        scanned = 0.0
        while not self._stop.is_set():
            if time.monotonic() - scanned >= self.rescan_s:
                self._rescan()
                scanned = time.monotonic()
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._rescan()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._rescan()
        self.peak = max(self.peak, self._sample())


def _pss_bytes(pid: int) -> int:
    """A process's PSS from /proc (0 once it is gone); RSS where smaps_rollup is missing."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss
        except Exception:
            return 0
    except (ProcessLookupError, PermissionError, OSError):
        return 0
    return 0


def run(cfg: BenchConfig) -> dict:
    dataset = first_images(cifar.load(cfg.data_dir, dataset=cfg.dataset), cfg.images)
    images = np.concatenate([s.images for s in dataset.splits.values()])
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        # A fresh store per round, so every round embeds every image.
        plans = [job.prepare(_extract_config(cfg, f"{tmp}/round-{i}"), dataset)
                 for i in range(cfg.rounds)]  # fmt: skip
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
    never shares the machine with an idle Ray), memory measured without the baseline."""
    from cifar_ray.ray_runtime import ray_session

    base, summaries, init_s = [], [], []
    with PeakMemory(exclude=frozenset({baseline.pid})) as memory:
        for plan in plans:
            base.append(baseline.round())
            started = time.perf_counter()
            with ray_session(local=True):
                init_s.append(time.perf_counter() - started)
                summaries.append(job.execute(plan))
    return base, summaries, init_s[0], memory.peak


def _extract_config(cfg: BenchConfig, out: str) -> ExtractConfig:
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
            parts.append(plan.store.read_split(shards)[0])
    return np.concatenate(parts)


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


REPO = Path(__file__).resolve().parents[1]
BARE_SCRIPT = REPO / "benchmarks" / "bare.py"


def run_whole_job(cfg: BenchConfig) -> dict:
    """The user's wait, start to end: `cifar-ray extract --local` as a fresh process against
    benchmarks/bare.py (read, build, embed, write Parquet, nothing else), in turns, on the same
    images, with the same model, precision, XLA setting, batch and shard size. Ratio > 1: the
    job took less time than the bare script."""
    if not BARE_SCRIPT.is_file():
        raise UserError(f"--whole-job needs the repository's {BARE_SCRIPT.relative_to(REPO)}")
    archive = _archive(cfg.data_dir)
    sizes = {k: len(v) for k, v in cifar.load(cfg.data_dir).splits.items()}
    limit, n = per_split_limit(sizes, cfg.images)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    bare, pipeline = [], []
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        _, spec = job.embedder_spec(_extract_config(cfg, tmp))  # what both sides build
        for i in range(cfg.rounds):  # in turns: a busy spell hits both sides alike
            bare.append(_time_bare(cfg, spec, archive, limit, f"{tmp}/bare-{i}", env))
            pipeline.append(_time_extract(cfg, spec, limit, f"{tmp}/job-{i}", env))
            shutil.rmtree(f"{tmp}/bare-{i}", ignore_errors=True)
            shutil.rmtree(f"{tmp}/job-{i}", ignore_errors=True)
    best_bare, best_job = min(r["seconds"] for r in bare), min(r["seconds"] for r in pipeline)
    r2 = lambda x: round(x, 2)  # noqa: E731
    return {
        "mode": "whole_job",
        "config": asdict(cfg),
        "images": n,
        "limit_per_split": limit,
        "image_size": spec.image_size,
        "device": _cpu_device(),
        "bare_s": r2(best_bare),
        "bare_rounds_s": [r2(r["seconds"]) for r in bare],
        "pipeline_s": r2(best_job),
        "pipeline_rounds_s": [r2(r["seconds"]) for r in pipeline],
        "ratio": round(best_bare / best_job, 3),
        "ratio_rounds": [
            round(b["seconds"] / p["seconds"], 3) for b, p in zip(bare, pipeline, strict=True)
        ],
        "whole_job_images_per_s": r2(n / best_job),
        "bare_images_per_s": r2(n / best_bare),
        "steady_images_per_s": max(r["steady_images_per_s"] for r in pipeline),
        "first_shard_s": r2(min(r["first_shard_s"] for r in pipeline)),
        "first_shard_rounds_s": [r2(r["first_shard_s"]) for r in pipeline],
        "bare_first_batch_s": r2(min(r["first_batch_s"] for r in bare)),
        "bare_first_file_s": r2(min(r["first_file_s"] for r in bare)),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in pipeline),
        "bare_peak_pss_mb": max(r["peak_pss_mb"] for r in bare),
    }


def per_split_limit(sizes: dict[str, int], images: int) -> tuple[int | None, int]:
    """`extract --limit` cuts every split: the largest limit whose total is within `images`
    (None when all the data fits), and that total."""
    if images >= sum(sizes.values()):
        return None, sum(sizes.values())
    total = lambda k: sum(min(k, v) for v in sizes.values())  # noqa: E731
    low, high = 1, max(sizes.values())
    while low < high:  # the largest k with total(k) <= images
        mid = (low + high + 1) // 2
        low, high = (mid, high) if total(mid) <= images else (low, mid - 1)
    return low, total(low)


def _archive(data_dir: str | None) -> str:
    """The archive file both sides read (the bare script reads archives only)."""
    path = Path(data_dir or "").expanduser()
    for candidate in (path, path / "cifar-10-python.tar.gz"):
        if data_dir and candidate.is_file():
            return str(candidate)
    raise UserError("--whole-job needs --data-dir: the archive, or a folder that holds it")


def _time_bare(cfg: BenchConfig, spec: EmbedderSpec, archive: str, limit: int | None, out: str,
               env: dict) -> dict:  # fmt: skip
    args = [archive, out, spec.backbone if ":" in spec.backbone else _keras_name(spec),
            str(spec.image_size), str(limit or 0), str(cfg.batch_size), str(cfg.shard_size),
            cfg.precision, "1" if cfg.xla else "0"]  # fmt: skip
    started, (code, stdout, stderr, peak) = time.time(), _timed([sys.executable, str(BARE_SCRIPT),
                                                                  *args], env)  # fmt: skip
    seconds = time.time() - started
    if code != 0:
        raise RuntimeError(f"the bare script failed ({code}): {stderr[-2000:]}")
    stamps = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "first_batch_s": stamps["first_batch"] - started,
            "first_file_s": stamps["first_file"] - started, "peak_pss_mb": peak}  # fmt: skip


def _time_extract(cfg: BenchConfig, spec: EmbedderSpec, limit: int | None, out: str,
                  env: dict) -> dict:  # fmt: skip
    args = ["extract", "--local", "--data-dir", str(cfg.data_dir), "--backbone", cfg.backbone,
            "--weights", cfg.weights, "--image-size", str(spec.image_size),
            "--batch-size", str(cfg.batch_size), "--shard-size", str(cfg.shard_size),
            "--precision", cfg.precision, "--xla" if cfg.xla else "--no-xla",
            "--seed", str(cfg.seed), "--out", out]  # fmt: skip
    args += ["--limit", str(limit)] if limit else []
    args += ["--actors", str(cfg.actors)] if cfg.actors else []
    started = time.time()
    code, _, stderr, peak = _timed([sys.executable, "-m", "cifar_ray.cli", *args], env)
    seconds = time.time() - started
    if code != 0:
        raise RuntimeError(f"extract failed ({code}): {stderr[-2000:]}")
    records = list(Path(out).rglob("_shards/*.json"))
    manifest = json.loads(next(Path(out).rglob("manifest.json")).read_text())
    return {"seconds": seconds, "first_shard_s": min(p.stat().st_mtime for p in records) - started,
            "steady_images_per_s": manifest["last_run"]["steady_images_per_s"],
            "peak_pss_mb": peak}  # fmt: skip


def _keras_name(spec: EmbedderSpec) -> str:
    from cifar_ray.embed import backbones

    return backbones.get(spec.backbone).application


def _timed(cmd: list[str], env: dict) -> tuple[int, str, str, int]:
    """Run `cmd`; its exit code, output and the peak PSS (MB) of its process tree."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        with PeakMemory(root=proc.pid) as memory:
            code = proc.wait()
        out.seek(0), err.seek(0)
        return code, out.read(), err.read(), round(memory.peak / 2**20)


def _cpu_device() -> str:
    """The machine, without importing TensorFlow here: the CPU, and GPUs nvidia-smi lists."""
    gpus = ""
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        gpus = "; ".join(ln.split(" (UUID")[0] for ln in listed.stdout.splitlines() if ln)
    return f"{_cpu_name()}, {os.cpu_count()} cores" + (f"; {gpus}" if gpus else "")


def _cpu_name() -> str:
    return next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.machine(),
    )  # fmt: skip


def main(cfg: BenchConfig) -> dict:
    result = run_whole_job(cfg) if cfg.whole_job else run(cfg)
    print(json.dumps(result), flush=True)
    return result
