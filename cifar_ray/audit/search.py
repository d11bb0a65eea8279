"""Nearest neighbours by cosine similarity, with faiss: exact (`IndexFlatIP` on L2-normalised
rows) or approximate (`IndexIVFFlat`, trained on a sample), always in blocks.

Memory stays bounded in the number of images: queries go in blocks of `query_block`, so the
similarity block faiss holds is `query_block x base rows`, never N x N; and the base itself
can come in blocks (`search_blocks`), each searched on its own and the top k merged, which is
how a store larger than one machine's memory is searched (one Ray task per block:
`audit.fanout`). No Ray here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np

EMPTY = -1  # faiss' id for "no neighbour" (fewer base rows than k)
TRAIN_PER_LIST = 64  # k-means sample: points per IVF list


def normalized(x: np.ndarray) -> np.ndarray:
    """A float32 copy with unit rows: inner product is then cosine similarity. An all-zero
    row stays zero (faiss leaves it alone), so it is nobody's near-duplicate."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(out)
    return out


def exact_index(base: np.ndarray) -> faiss.Index:
    """`base` must be normalised (`normalized`)."""
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index


def approximate_index(base: np.ndarray, nlist: int, nprobe: int, seed: int = 0) -> faiss.Index:
    """IVF: k-means on a sample of the base (faiss wants 39 to 256 points per list; 64 and
    10 iterations keep training a fraction of the search it saves), then every row into its
    nearest list; a query searches `nprobe` lists."""
    n, dim = base.shape
    nlist = max(1, min(nlist or int(np.sqrt(n)), n // 39 or 1))
    sample = base
    if n > TRAIN_PER_LIST * nlist:
        rows = np.random.default_rng(seed).choice(n, TRAIN_PER_LIST * nlist, replace=False)
        sample = base[np.sort(rows)]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10
    index.train(sample)
    index.add(base)
    index.nprobe = min(nprobe, nlist)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int, block: int) -> tuple:
    """(similarities, ids), each (len(queries), k), best first, equal similarities by id
    (as `merge` orders them, so a blocked search gives the same answer); queries in blocks."""
    n = len(queries)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    ids = np.full((n, k), EMPTY, dtype=np.int64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        d, i = index.search(queries[start:stop], k)
        sims[start:stop], ids[start:stop] = d, i
    sims[ids == EMPTY] = -np.inf
    order = np.lexsort((ids, -sims), axis=1)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def merge(a: tuple, b: tuple, k: int) -> tuple:
    """The top k of two (similarities, ids) results over disjoint bases, best first; ties go
    to the lower id, so the merged result does not depend on the order of the blocks."""
    sims = np.concatenate([a[0], b[0]], axis=1)
    ids = np.concatenate([a[1], b[1]], axis=1)
    order = np.lexsort((ids, -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def search_block(base: np.ndarray, offset: int, queries: np.ndarray, k: int,
                 block: int) -> tuple:  # fmt: skip
    """One base block (rows `offset`.. of the whole base), exact: what a Ray task runs."""
    sims, ids = search(exact_index(base), queries, min(k, len(base)), block)
    if sims.shape[1] < k:  # a block smaller than k: pad, so every block's result is (n, k)
        pad = k - sims.shape[1]
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=EMPTY)
    return sims, np.where(ids == EMPTY, EMPTY, ids + offset)


def search_blocks(blocks: Iterable[tuple[int, np.ndarray]], queries: np.ndarray, k: int,
                  block: int) -> tuple:  # fmt: skip
    """Exact search over a base that arrives in blocks (offset, normalised rows): one block
    in memory at a time, plus the running top k."""
    best = None
    for offset, base in blocks:
        found = search_block(base, offset, queries, k, block)
        best = found if best is None else merge(best, found, k)
    return best


def without_self(sims: np.ndarray, ids: np.ndarray, query_ids: np.ndarray) -> tuple:
    """A split searched against itself: each row's own id dropped from its neighbours (its
    exact copies elsewhere stay), keeping k-1 columns."""
    keep = ids != query_ids[:, None]
    k = ids.shape[1] - 1
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


def recall(exact_ids: np.ndarray, approx_ids: np.ndarray) -> float:
    """recall@k: the share of the exact k neighbours the approximate search also returned."""
    pairs = zip(exact_ids, approx_ids, strict=True)
    hits = sum(len(np.intersect1d(e[e != EMPTY], a)) for e, a in pairs)
    total = int((exact_ids != EMPTY).sum())
    return hits / total if total else 1.0


@dataclass(frozen=True)
class Timed:
    """A search's result and how long it took."""

    sims: np.ndarray
    ids: np.ndarray
    seconds: float


def timed_search(index: faiss.Index, queries: np.ndarray, k: int, block: int) -> Timed:
    started = time.perf_counter()
    sims, ids = search(index, queries, k, block)
    return Timed(sims, ids, time.perf_counter() - started)
