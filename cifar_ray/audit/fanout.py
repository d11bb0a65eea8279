"""The search on a Ray cluster, for a store larger than one machine's memory would
comfortably hold: one Ray task per block of training shards reads its block where it runs
and searches it exactly (`search.search_block`); the driver merges each block's top k. The
core (`audit.search`) knows nothing of Ray: this module is the thin edge."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from cifar_ray.audit import search
from cifar_ray.store.latents import Latents
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import Shard


def blocks(lat: Latents, rows: int) -> list[list[Shard]]:
    """The training shards grouped into blocks of at most `rows` rows (at least one shard)."""
    groups, current, size = [], [], 0
    for shard in lat.shards["train"]:
        if current and size + shard.rows > rows:
            groups.append(current)
            current, size = [], 0
        current.append(shard)
        size += shard.rows
    return [*groups, current] if current else groups


def read_block(uri: str, paths: list[str]) -> np.ndarray:
    """One block's features, normalised: its shards' files, in id order."""
    loc = Location(uri)
    parts = [pq.read_table(p, columns=["features"], filesystem=loc.fs).column("features")
             for p in paths]  # fmt: skip
    flat = [p.combine_chunks().flatten().to_numpy().reshape(len(p), -1) for p in parts]
    return search.normalized(np.concatenate(flat))


def _block_task(uri: str, paths: list[str], offset: int, queries: np.ndarray, k: int,
                block: int) -> tuple:  # fmt: skip
    return search.search_block(read_block(uri, paths), offset, queries, k, block)


def ray_searcher(rows: int, query_block: int):
    """A `run.RemoteSearch`: the searcher of a store's training split, one task per block."""

    def for_store(lat: Latents):
        import ray

        task = ray.remote(num_cpus=1)(_block_task)
        groups = blocks(lat, rows)
        paths = [[lat.store.file_path(s, lat.files[s.key]) for s in g] for g in groups]

        def searcher(queries: np.ndarray, k: int) -> tuple:
            ref = ray.put(queries)
            pending = [task.remote(lat.store.loc.uri, p, g[0].start, ref, k, query_block)
                       for p, g in zip(paths, groups, strict=True)]  # fmt: skip
            best = None
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                found = ray.get(done[0])
                best = found if best is None else search.merge(best, found, k)
            return best

        return searcher

    return for_store
