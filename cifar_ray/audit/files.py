"""OUT/index/<store>/: what the audit writes beside a store, and how a build resumes.

    fingerprint.json    what the audit was computed from: the store's shards (their sha256)
                        and the settings that change the neighbours; another one: rebuilt
    train.faiss         the training split's index (faiss.read_index reads it directly)
    index.json          which index that is (exact or IVF), and its recall against exact
    _blocks/<pass>-<start>.npz   one block of queries' neighbours: a resumed build skips it
    neighbours.parquet  every test image's k nearest training images
    duplicates.parquet  the pairs: exact (same pixels) and near (similarity >= threshold)
    audit.json          threshold, counts, per-class agreement: what the report reads
    examples.npz        the pixels of the pairs and neighbours the report draws

Every file is written atomically (`store.locations.put_atomic`), so a repeated write is
harmless and a killed build leaves whole files only."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray.store import locations
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location

FINGERPRINT = "fingerprint.json"
INDEX = "train.faiss"
INDEX_INFO = "index.json"
BLOCKS = "_blocks"
NEIGHBOURS = "neighbours.parquet"
DUPLICATES = "duplicates.parquet"
SUMMARY = "audit.json"
EXAMPLES = "examples.npz"


def fingerprint_of(manifest: dict, files: dict[str, str], settings: dict) -> dict:
    """The store's fingerprint, the data files its records name (each attempt writes a file
    of its own name, so a re-extracted shard is another name) and the settings."""
    fields = {"store_fingerprint": manifest["fingerprint"], "files": sorted(files.items()),
              **settings}  # fmt: skip
    body = json.dumps(fields, sort_keys=True).encode()
    return {"id": hashlib.sha256(body).hexdigest()[:16], **settings,
            "store_fingerprint": manifest["fingerprint"]}  # fmt: skip


@dataclass(frozen=True)
class IndexFolder:
    loc: Location
    store: str

    def path(self, name: str) -> str:
        return Layout(self.loc).index_file(self.store, name)

    def claim(self, fingerprint: dict) -> bool:
        """Make the folder this fingerprint's: True when it already was (a build resumes),
        False when it was empty or another's (its files are removed first)."""
        found = self.read_json(FINGERPRINT)
        if found is not None and found.get("id") == fingerprint["id"]:
            return True
        locations.delete_dir(self.loc, Layout(self.loc).index_dir(self.store))
        self.write_json(FINGERPRINT, fingerprint)
        return False

    # --- bytes and JSON --------------------------------------------------------------------
    def write(self, name: str, data: bytes) -> None:
        locations.put_atomic(self.loc, self.path(name), data)

    def read(self, name: str) -> bytes | None:
        return locations.get_bytes(self.loc, self.path(name))

    def write_json(self, name: str, payload: dict) -> None:
        self.write(name, json.dumps(payload, indent=1, sort_keys=True).encode())

    def read_json(self, name: str) -> dict | None:
        """None when absent or not a JSON object (a torn or foreign file: rebuilt)."""
        raw = self.read(name)
        try:
            found = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return found if isinstance(found, dict) else None

    # --- arrays ----------------------------------------------------------------------------
    def write_arrays(self, name: str, **arrays: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.write(name, buffer.getvalue())

    def read_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        raw = self.read(name)
        if raw is None:
            return None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):  # torn or not ours: recomputed
            return None

    def block_name(self, what: str, start: int) -> str:
        return f"{BLOCKS}/{what}-{start:09d}.npz"

    # --- tables ----------------------------------------------------------------------------
    def write_table(self, name: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.write(name, sink.getvalue())

    def read_table(self, name: str) -> pa.Table | None:
        raw = self.read(name)
        return None if raw is None else pq.read_table(io.BytesIO(raw))
