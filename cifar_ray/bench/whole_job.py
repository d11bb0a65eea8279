"""`cifar-ray bench --whole-job`: the user's wait, start to end, `cifar-ray extract --local`
as a fresh process against a bare script, in turns: on CIFAR's archive (benchmarks/bare.py)
or, with `--image-files`, on JPEG files the bench writes (benchmarks/bare_images.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cifar_ray.bench import image_folder
from cifar_ray.bench.machine import machine
from cifar_ray.bench.memory import PeakMemory
from cifar_ray.bench.steady import extract_config
from cifar_ray.config import DEFAULT_RESIZE, BenchConfig
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.errors import UserError
from cifar_ray.extract import job
from cifar_ray.source import cifar

REPO = Path(__file__).resolve().parents[2]
BARE_SCRIPT = REPO / "benchmarks" / "bare.py"
BARE_IMAGES_SCRIPT = REPO / "benchmarks" / "bare_images.py"


@dataclass(frozen=True)
class Inputs:
    """What both sides run on: the bare script and the arguments that follow its model
    arguments, extract's input options, and what the result line says about the input."""

    images: int
    script: Path
    bare_args: list[str]
    extract_args: list[str]
    facts: dict


def run_whole_job(cfg: BenchConfig) -> dict:
    """The user's wait, start to end: `cifar-ray extract --local` as a fresh process against
    a bare script (read, build, embed, write Parquet, nothing else: benchmarks/bare.py on
    CIFAR's archive, benchmarks/bare_images.py on image files), in turns, on the same images,
    with the same model, precision, XLA setting, batch and shard size. Ratio > 1: the job took
    less time than the bare script."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    bare, pipeline = [], []
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        inputs = _image_inputs(cfg, tmp) if cfg.image_files else _cifar_inputs(cfg)
        _, spec = job.embedder_spec(extract_config(cfg, tmp))  # what both sides build
        for i in range(cfg.rounds + 1):  # in turns: a busy spell hits both sides alike
            memory = i == cfg.rounds  # the last round measures memory only (see PeakMemory)
            bare.append(_time_bare(cfg, spec, inputs, f"{tmp}/bare-{i}", env, memory))
            pipeline.append(_time_extract(cfg, spec, inputs, f"{tmp}/job-{i}", env, memory))
            shutil.rmtree(f"{tmp}/bare-{i}", ignore_errors=True)
            shutil.rmtree(f"{tmp}/job-{i}", ignore_errors=True)
    return {"mode": "whole_job", "config": asdict(cfg), "images": inputs.images,
            **inputs.facts, "image_size": spec.image_size, "device": machine(),
            **_summary(inputs.images, bare, pipeline)}  # fmt: skip


def _summary(n: int, bare: list[dict], pipeline: list[dict]) -> dict:
    """Each side's best timed round, every round, and the untimed memory round."""
    bare, bare_sampled = bare[:-1], bare[-1]
    pipeline, job_sampled = pipeline[:-1], pipeline[-1]
    best_bare, best_job = min(r["seconds"] for r in bare), min(r["seconds"] for r in pipeline)
    r2 = lambda x: round(x, 2)  # noqa: E731
    return {
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
        "peak_pss_mb": job_sampled["peak_pss_mb"],
        "bare_peak_pss_mb": bare_sampled["peak_pss_mb"],
        "memory_round_s": {
            "bare": r2(bare_sampled["seconds"]),
            "pipeline": r2(job_sampled["seconds"]),
        },
    }


def _cifar_inputs(cfg: BenchConfig) -> Inputs:
    """CIFAR's archive, cut to `images` as `extract --limit` cuts it."""
    _needs(BARE_SCRIPT)
    archive = _archive(cfg.data_dir)
    sizes = {k: len(v) for k, v in cifar.load(cfg.data_dir).splits.items()}
    limit, n = per_split_limit(sizes, cfg.images)
    extract = ["--data-dir", str(cfg.data_dir), *(["--limit", str(limit)] if limit else [])]
    return Inputs(n, BARE_SCRIPT, [archive, str(limit or 0)], extract, {"limit_per_split": limit})


def _image_inputs(cfg: BenchConfig, tmp: str) -> Inputs:
    """`images` JPEG files written from the data's photos into an image folder tree; both
    sides decode them to the input size, centre-cropped."""
    _needs(BARE_IMAGES_SCRIPT)
    root, started = Path(tmp) / "images", time.time()
    written = image_folder.write_bench_jpegs(root, cifar.load(cfg.data_dir), cfg.images)
    facts = {
        "input": f"image folder, JPEG {image_folder.BENCH_SIZE}x{image_folder.BENCH_SIZE}",
        "input_mb": round(sum(p.stat().st_size for p in written.files) / 2**20, 1),
        "write_input_s": round(time.time() - started, 1),
        "resize": DEFAULT_RESIZE,
    }
    extract = ["--data", str(root), "--resize", DEFAULT_RESIZE]
    return Inputs(len(written.names), BARE_IMAGES_SCRIPT, [str(root), DEFAULT_RESIZE], extract,
                  facts)  # fmt: skip


def _needs(script: Path) -> None:
    if not script.is_file():
        raise UserError(f"--whole-job needs the repository's {script.relative_to(REPO)}")


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


def _time_bare(cfg: BenchConfig, spec: EmbedderSpec, inputs: Inputs, out: str, env: dict,
               memory: bool) -> dict:  # fmt: skip
    args = [out, spec.backbone if ":" in spec.backbone else _keras_name(spec),
            str(spec.image_size), str(cfg.batch_size), str(cfg.shard_size), cfg.precision,
            "1" if cfg.xla else "0", *inputs.bare_args]  # fmt: skip
    started = time.time()
    code, stdout, stderr, peak = _timed([sys.executable, str(inputs.script), *args], env, memory)
    seconds = time.time() - started
    if code != 0:
        raise RuntimeError(f"the bare script failed ({code}): {stderr[-2000:]}")
    stamps = json.loads(stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "first_batch_s": stamps["first_batch"] - started,
            "first_file_s": stamps["first_file"] - started, "peak_pss_mb": peak}  # fmt: skip


def _time_extract(cfg: BenchConfig, spec: EmbedderSpec, inputs: Inputs, out: str, env: dict,
                  memory: bool) -> dict:  # fmt: skip
    args = ["extract", "--local", *inputs.extract_args, "--backbone", cfg.backbone,
            "--weights", cfg.weights, "--image-size", str(spec.image_size),
            "--batch-size", str(cfg.batch_size), "--shard-size", str(cfg.shard_size),
            "--precision", cfg.precision, "--xla" if cfg.xla else "--no-xla",
            "--seed", str(cfg.seed), "--out", out]  # fmt: skip
    args += ["--actors", str(cfg.actors)] if cfg.actors else []
    started = time.time()
    code, _, stderr, peak = _timed([sys.executable, "-m", "cifar_ray.cli", *args], env, memory)
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


def _timed(cmd: list[str], env: dict, memory: bool) -> tuple[int, str, str, int]:
    """Run `cmd`; its exit code, output and, with `memory`, the peak PSS (MB) of its process
    tree (else 0)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        with PeakMemory(root=proc.pid) if memory else contextlib.nullcontext() as sampler:
            code = proc.wait()
        out.seek(0), err.seek(0)
        peak = round(sampler.peak / 2**20) if sampler else 0
        return code, out.read(), err.read(), peak
