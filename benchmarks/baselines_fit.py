"""Fit time of every scikit-learn baseline at CIFAR scale (issue 21): `baselines.run` on
synthetic features shaped like InceptionV3's on CIFAR-10 (default 50,000 fit x 2,048, 5,000
validation, 10,000 test rows, 10 classes), one JSON line per baseline. No test runs this:

    python benchmarks/baselines_fit.py [--rows 50000] [--dim 2048]

Compare each `seconds` with extracting the same images at 75 px on the same cores
(benchmarks/README.md). The features are class centres plus noise, non-negative like pooled
ReLU activations, with the centres close enough that a linear model scores about 0.9 (as on
real ImageNet features), so the solvers see a problem of realistic size and difficulty."""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from cifar_ray.train import baselines


def features(rows: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).gamma(1.0, 0.035, (classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    x = centres[y] + rng.gamma(1.0, 0.6, (rows, dim)).astype(np.float32)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--only", default=",".join(baselines.CANDIDATES))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    fit = features(args.rows, args.dim, args.classes, 1)
    val = features(args.rows // 10, args.dim, args.classes, 2)
    test = features(args.rows // 5, args.dim, args.classes, 3)
    for name in args.only.split(","):
        started = time.perf_counter()
        record = baselines.run(name, fit, val, test, args.classes)
        print(json.dumps({
            "baseline": name, "rows": args.rows, "dim": args.dim, "cores": os.cpu_count(),
            "seconds": round(time.perf_counter() - started, 1), "fit_s": record["fit_s"],
            "params": {k: v for k, v in record["params"].items() if k != "val_scores"},
            "tried": len(record["params"]["val_scores"]), "test": record["accuracy"]["test"],
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
