"""Nearest-neighbour search at scale: random unit vectors, exact (IndexFlatIP, queries in
blocks) against approximate (IVF, trained on a sample), each in a fresh process so its peak
memory is its own. One JSON line per mode; the approximate line has its recall@k against the
exact answer on a sample of the queries.

    python -m benchmarks.neighbours --rows 100000 --dim 2048 --queries 10000

Random vectors are the worst case for IVF: they have no clusters, so recall at a given
nprobe is far lower than on real features (where near neighbours share a list)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from cifar_ray.audit import search

K = 10
BLOCK = 4096
RECALL_SAMPLE = 500


def _data(rows: int, dim: int, queries: int, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors: uniform (`clusters` 0), or around `clusters` random centres, as features
    of images of a few thousand kinds are (a point's noise as large as its centre)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(clusters, 1), dim), dtype=np.float32)

    def draw(n: int) -> np.ndarray:
        x = rng.standard_normal((n, dim), dtype=np.float32)
        if clusters:
            x += centres[rng.integers(0, clusters, n)]
        return search.normalized(x)

    return draw(rows), draw(queries)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one(mode: str, rows: int, dim: int, queries: int, nprobe: int, clusters: int) -> dict:
    base, q = _data(rows, dim, queries, clusters)
    data_mb = _peak_mb()
    started = time.perf_counter()
    if mode == "exact":
        index = search.exact_index(base)
    else:
        index = search.approximate_index(base, 0, nprobe)
    built = time.perf_counter() - started
    found = search.timed_search(index, q, K, BLOCK)
    line = {"mode": mode, "rows": rows, "dim": dim, "queries": queries, "k": K,
            "clusters": clusters,
            "build_s": round(built, 2), "search_s": round(found.seconds, 2),
            "queries_per_s": round(queries / found.seconds, 1),
            "peak_rss_mb": round(_peak_mb()), "data_rss_mb": round(data_mb)}  # fmt: skip
    if mode != "exact":
        sample = q[:RECALL_SAMPLE]
        truth = search.search(search.exact_index(base), sample, K, BLOCK)[1]
        recall = search.recall(truth, found.ids[:RECALL_SAMPLE])
        line.update(nlist=index.nlist, nprobe=index.nprobe, recall_at_k=round(recall, 4))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--clusters", type=int, default=0, help="0: uniform random vectors")
    parser.add_argument("--mode", choices=("exact", "approximate"))
    args = parser.parse_args()
    if args.mode:
        found = one(args.mode, args.rows, args.dim, args.queries, args.nprobe, args.clusters)
        print(json.dumps(found))
        return
    for mode in ("exact", "approximate"):  # each in a process of its own: its own peak
        argv = [sys.executable, "-m", "benchmarks.neighbours", "--mode", mode,
                *(f"--{k}={v}" for k, v in vars(args).items() if k != "mode")]  # fmt: skip
        subprocess.run(argv, check=True)


if __name__ == "__main__":
    main()
