"""The audit of one store: neighbours, the threshold, duplicate pairs, the summary. Written
to OUT/index/<store>/ (`audit.files`); the searches resume block by block."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from cifar_ray.audit import duplicates, pixels, search, summary, threshold
from cifar_ray.audit.files import DUPLICATES, NEIGHBOURS, SUMMARY, IndexFolder, fingerprint_of
from cifar_ray.audit.index import Built, Searcher, build, resumable_pass
from cifar_ray.config import AuditConfig
from cifar_ray.store import latents
from cifar_ray.store.locations import Location

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.5  # of available memory the in-process index may take

# A searcher over the training split that is not an index in this process (a Ray fan-out):
# given the store's latents, it answers (queries, k) -> (similarities, ids).
RemoteSearch = Callable[[latents.Latents], Searcher]


def audit_store(loc: Location, store: str, cfg: AuditConfig,
                pixels_for: Callable[[latents.Latents], pixels.PixelSource | None] | None = None,
                remote: RemoteSearch | None = None) -> dict:  # fmt: skip
    """Everything `cifar-ray neighbours` writes for one store; returns audit.json's content.
    `pixels_for(latents)`: the store's images, for exact duplicates (None: near only)."""
    started = time.perf_counter()
    lat = latents.load(loc, store)
    pixel_source = pixels_for(lat) if pixels_for else None
    remote = remote if remote is not None and (cfg.fan_out or _too_big(lat)) else None
    folder = IndexFolder(loc, store)
    resumed = folder.claim(fingerprint_of(lat.manifest, lat.files, _settings(cfg, remote)))
    test = search.normalized(lat.features("test"))
    train = search.normalized(lat.features("train")) if remote is None or cfg.within_train else None
    built = _searcher(folder, lat, cfg, test, train, remote)
    k = min(cfg.k, len(lat.y["train"]))
    sims, ids = resumable_pass(folder, "test", test, k, built.searcher, cfg.query_block)
    train_nn = _within_train(folder, cfg, train, built.searcher)
    chosen = threshold.choose(sims[:, 0] if k else np.empty(0), cfg.threshold_floor,
                              cfg.fallback_threshold, cfg.duplicate_threshold)  # fmt: skip
    exact, hashed = _exact_pairs(pixel_source)
    pairs = _pairs(test, train, (sims, ids), train_nn, chosen.value, exact)
    folder.write_table(NEIGHBOURS, _neighbours_table(lat, sims, ids))
    folder.write_table(DUPLICATES, pairs.table({"test": lat.y["test"], "train": lat.y["train"]},
                                               lat.y["train"]))  # fmt: skip
    record = {
        "store": store, "store_fingerprint": lat.manifest["fingerprint"],
        "dataset": lat.manifest.get("dataset", "cifar10"),
        "classes": list(lat.classes), "sizes": {s: len(y) for s, y in lat.y.items()}, "k": k,
        "index": built.info, "threshold": chosen.to_dict(), "resumed": resumed,
        "exact_duplicates": "pixel hash" if hashed else "unavailable (pixels unreadable): "
                            "near-duplicates only",
        **_findings(lat, pairs, (sims, ids), train_nn),
        "examples": summary.examples(folder, pairs, (sims, ids), (lat.y["test"], lat.y["train"]),
                                     pixel_source if hashed else None),
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    folder.write_json(SUMMARY, record)
    return record


def _settings(cfg: AuditConfig, remote: RemoteSearch | None) -> dict:
    """What changes the neighbours (the threshold and the pixels are recomputed each time)."""
    return {"k": cfg.k, "index": cfg.index, "nlist": cfg.nlist, "nprobe": cfg.nprobe,
            "recall_sample": cfg.recall_sample, "within_train": cfg.within_train,
            "remote": remote is not None}  # fmt: skip


def _findings(lat: latents.Latents, pairs: duplicates.Pairs, nn: tuple,
              train_nn: tuple | None) -> dict:  # fmt: skip
    sims, ids = nn
    first = ids[:, 0] if ids.shape[1] else np.full(len(ids), -1)
    return {
        "counts": duplicates.counts(pairs, len(ids)),
        "leaked_test": summary.leaked(pairs, lat.y["test"]),
        "knn_agreement": summary.knn_agreement(first, lat.y["test"], lat.y["train"],
                                               len(lat.classes)),
        "nn_similarity": _histograms(sims, train_nn),
    }  # fmt: skip


def _too_big(lat: latents.Latents) -> bool:
    """The training split, normalised and indexed (two copies), would take more than half of
    this machine's available memory: search it where it is read, block by block."""
    import psutil

    need = 2 * len(lat.y["train"]) * lat.dim * 4
    return need > MEMORY_SHARE * psutil.virtual_memory().available


def _searcher(folder: IndexFolder, lat: latents.Latents, cfg: AuditConfig, test: np.ndarray,
              train: np.ndarray | None, remote: RemoteSearch | None) -> Built:  # fmt: skip
    if remote is not None:
        info = {"kind": "exact", "faiss": "IndexFlatIP per block, one Ray task each",
                "rows": len(lat.y["train"]), "dim": lat.dim}  # fmt: skip
        return Built(remote(lat), info)
    budget = lat.manifest.get("throughput", {}).get("seconds")
    n_queries = len(test) + (len(train) if cfg.within_train else 0)
    return build(folder, train, test, cfg, budget, n_queries)


def _within_train(folder: IndexFolder, cfg: AuditConfig, train: np.ndarray | None,
                  searcher: Searcher) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """Each training image's nearest other training image (itself dropped)."""
    if not cfg.within_train or train is None or len(train) < 2:
        return None
    sims, ids = resumable_pass(folder, "train", train, 2, searcher, cfg.query_block)
    return search.without_self(sims, ids, np.arange(len(train)))


def _exact_pairs(source: pixels.PixelSource | None) -> tuple[dict, bool]:
    """Same-pixel pairs, test/train and within train; ({}, False) without pixels."""
    test = source("test") if source else None
    train = source("train") if source else None
    if test is None or train is None:
        return {}, False
    train_h = pixels.digests(train)
    return {"test": pixels.cross_pairs(pixels.digests(test), train_h),
            "train": pixels.within_pairs(train_h)}, True  # fmt: skip


def _pairs(test: np.ndarray, train: np.ndarray | None, test_nn: tuple, train_nn: tuple | None,
           value: float, exact: dict) -> duplicates.Pairs:  # fmt: skip
    def cosine(queries: np.ndarray) -> Callable[[int, int], float]:
        if train is None:  # train's features not held here (remote search): from the pass
            return lambda q, t: _listed(test_nn, q, t)
        return lambda q, t: float(queries[q] @ train[t])

    parts = [duplicates.combine("test", duplicates.near(*test_nn, value), exact.get("test", []),
                                cosine(test))]  # fmt: skip
    if train_nn is not None:
        parts.append(duplicates.combine("train", duplicates.near(*train_nn, value),
                                        exact.get("train", []), cosine(train)))  # fmt: skip
    return duplicates.concat(*parts)


def _listed(nn: tuple[np.ndarray, np.ndarray], q: int, t: int) -> float:
    """t's similarity among q's neighbours; NaN when t is not among them."""
    found = nn[0][q][nn[1][q] == t]
    return float(found.max()) if found.size else float("nan")


def _neighbours_table(lat: latents.Latents, sims: np.ndarray, ids: np.ndarray) -> pa.Table:
    k = ids.shape[1]
    labels = np.where(ids >= 0, lat.y["train"][np.maximum(ids, 0)], -1)
    return pa.table({
        "test_id": pa.array(np.arange(len(ids)), pa.int64()),
        "label": pa.array(lat.y["test"], pa.int64()),
        "train_ids": pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), k),
        "similarities": pa.FixedSizeListArray.from_arrays(pa.array(sims.reshape(-1)), k),
        "train_labels": pa.FixedSizeListArray.from_arrays(pa.array(labels.reshape(-1)), k),
    })  # fmt: skip


def _histograms(sims: np.ndarray, train_nn: tuple | None) -> dict:
    firsts = {"test": sims[:, 0] if sims.size else np.empty(0)}
    if train_nn is not None:
        firsts["train"] = train_nn[0][:, 0]
    finite = np.concatenate([v[np.isfinite(v)] for v in firsts.values()])
    low = float(np.floor(min(finite.min(initial=1.0), 0.999) * 20) / 20)
    return {split: summary.histogram(v, low) for split, v in firsts.items()}
