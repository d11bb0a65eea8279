"""The training split's index: exact or approximate, chosen, built, written to train.faiss and
read back on a resumed build; and the resumable passes of queries through it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from cifar_ray.audit import search
from cifar_ray.audit.files import INDEX, INDEX_INFO, IndexFolder
from cifar_ray.config import AuditConfig

log = logging.getLogger(__name__)

MIN_APPROXIMATE_ROWS = 10_000  # below this exact search is instant and IVF lists are thin

Searcher = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Built:
    """The index to search with, and what the record says about it."""

    searcher: Searcher
    info: dict


def build(folder: IndexFolder, base: np.ndarray, test: np.ndarray, cfg: AuditConfig,
          budget_s: float | None, n_queries: int) -> Built:  # fmt: skip
    """Reads train.faiss back when a resumed build wrote it; else chooses (`_choose`), builds
    and writes it. `budget_s`: how long extraction took, the time exact search may take."""
    info = folder.read_json(INDEX_INFO)
    raw = folder.read(INDEX) if info else None
    if info is not None and raw is not None:
        index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        return Built(_searcher(index, cfg.query_block), info)
    index, info = _choose(base, test, cfg, budget_s, n_queries)
    folder.write(INDEX, faiss.serialize_index(index).tobytes())
    folder.write_json(INDEX_INFO, info)  # last: it says the index file is whole
    return Built(_searcher(index, cfg.query_block), info)


def _searcher(index: faiss.Index, block: int) -> Searcher:
    return lambda queries, k: search.search(index, queries, k, block)


def _choose(base: np.ndarray, test: np.ndarray, cfg: AuditConfig, budget_s: float | None,
            n_queries: int) -> tuple[faiss.Index, dict]:  # fmt: skip
    """Exact search timed on a sample of test queries and extrapolated to every query: above
    what extraction took (auto), or when asked, the IVF index instead, its recall@k measured
    on the same sample against the exact answer. Auto keeps exact search when IVF was not
    faster on the sample (on a CPU, exact search runs as a matrix product, several times
    more work per second than IVF's list scans: measured in benchmarks/README.md)."""
    exact = search.exact_index(base)
    rows = np.random.default_rng(0).permutation(len(test))[: cfg.recall_sample]
    sample = test[np.sort(rows)]
    k = min(cfg.k, len(base))
    truth = search.timed_search(exact, sample, k, cfg.query_block)
    estimate = truth.seconds / max(1, len(sample)) * n_queries
    info = {"kind": "exact", "faiss": "IndexFlatIP", "rows": len(base), "dim": base.shape[1],
            "exact_estimate_s": round(estimate, 3), "budget_s": budget_s}  # fmt: skip
    if not _approximate(cfg.index, len(base), estimate, budget_s):
        return exact, info
    del exact
    approx = search.approximate_index(base, cfg.nlist, cfg.nprobe)
    found = search.timed_search(approx, sample, k, cfg.query_block)
    info.update(kind="approximate", faiss="IndexIVFFlat", nlist=approx.nlist, nprobe=approx.nprobe,
                recall_at_k=round(search.recall(truth.ids, found.ids), 4),
                recall_sample=len(sample), k=k,
                speedup=round(truth.seconds / max(found.seconds, 1e-9), 2))  # fmt: skip
    log.info("approximate index: recall@%d %.3f", k, info["recall_at_k"])
    if cfg.index == "auto" and info["speedup"] <= 1:
        info.update(kind="exact", faiss="IndexFlatIP (IVF was not faster on the sample)")
        return search.exact_index(base), info
    return approx, info


def _approximate(kind: str, rows: int, estimate_s: float, budget_s: float | None) -> bool:
    if kind != "auto":
        return kind == "approximate"
    return rows >= MIN_APPROXIMATE_ROWS and budget_s is not None and estimate_s > budget_s


def resumable_pass(folder: IndexFolder, what: str, queries: np.ndarray, k: int,
                   searcher: Searcher, block: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every query's k neighbours, one block file per `block` queries: a block already
    written (a killed build) is read instead of searched again."""
    sims, ids = [], []
    for start in range(0, len(queries), block):
        name = folder.block_name(what, start)
        done = folder.read_arrays(name)
        rows = queries[start : start + block]
        if done is None or done["ids"].shape != (len(rows), k):
            found = searcher(rows, k)
            done = {"sims": found[0], "ids": found[1]}
            folder.write_arrays(name, **done)
        sims.append(done["sims"])
        ids.append(done["ids"])
    if not sims:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
    return np.concatenate(sims), np.concatenate(ids)
