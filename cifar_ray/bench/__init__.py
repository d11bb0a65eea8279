"""`cifar-ray bench`: the full pipeline against a plain Keras predict of the same model.

Steady state (default, `bench.steady`): both run in one process tree on the same images, in
turns (baseline, pipeline, baseline, ...): the baseline in a child process (so its TensorFlow
runtime does not sit in the driver), with the pipeline's precision and XLA setting, its best
plain-process way counting; the pipeline as the real extraction on an embedded Ray. Each
side's best round counts.

`--whole-job` (`bench.whole_job`): the user's wait, start to end: `cifar-ray extract --local`
as a fresh process against benchmarks/bare.py, in turns; with `--image-files`, on JPEG files
the bench writes (`bench.image_folder`), against benchmarks/bare_images.py.
"""

from __future__ import annotations

import json

from cifar_ray.bench.steady import run
from cifar_ray.bench.whole_job import run_whole_job
from cifar_ray.config import BenchConfig


def main(cfg: BenchConfig) -> dict:
    result = run_whole_job(cfg) if cfg.whole_job else run(cfg)
    print(json.dumps(result), flush=True)
    return result
