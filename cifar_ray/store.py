"""The feature store: one Parquet file per shard, a sidecar record per shard, a manifest."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray import storage
from cifar_ray.errors import UserError
from cifar_ray.shards import Shard
from cifar_ray.storage import Location

META_KEY = b"cifar_ray"


def schema(dim: int, metadata: dict | None = None) -> pa.Schema:
    """The one definition of a feature file's columns."""
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
        pa.field("features", pa.list_(pa.float32(), dim), nullable=False),
    ]
    meta = {META_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata else None
    return pa.schema(fields, metadata=meta)


@dataclass(frozen=True)
class ShardRecord:
    """Written last, after the data file: its presence is what makes a shard part of the result."""

    split: str
    index: int
    rows: int
    id_start: int
    id_stop: int
    sha256: str
    fingerprint: str
    node_id: str = ""
    seconds: float = 0.0  # embedding time of this shard on its actor
    worker_peak_rss_mb: int = 0  # the actor's peak resident memory so far

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:05d}"


class FeatureStore:
    """OUT/features/<backbone>/: layout, publishing and validation of one backbone's features."""

    def __init__(self, loc: Location, backbone: str):
        self.loc = loc
        self.backbone = backbone
        self.dir = loc.path("features", backbone)

    def data_path(self, shard: Shard) -> str:
        return f"{self.dir}/{shard.split}/{shard.file_name}"

    def record_path(self, shard: Shard) -> str:
        return f"{self.dir}/_shards/{shard.key}.json"

    # --- writing -------------------------------------------------------------------------
    def publish(
        self, shard: Shard, labels: np.ndarray, features: np.ndarray, metadata: dict, **extra
    ) -> ShardRecord:
        """Data first, record last; both names are fixed, so a repeated call is harmless."""
        if features.shape[0] != shard.rows or labels.shape[0] != shard.rows:
            raise ValueError(f"{shard.key}: expected {shard.rows} rows, got {features.shape[0]}")
        data = encode(np.arange(shard.start, shard.stop), labels, features, metadata)
        storage.put_atomic(self.loc, self.data_path(shard), data)
        record = ShardRecord(
            shard.split, shard.index, shard.rows, shard.start, shard.stop,
            hashlib.sha256(data).hexdigest(), metadata["fingerprint"], **extra,
        )  # fmt: skip
        body = json.dumps(asdict(record), indent=1).encode()
        storage.put_atomic(self.loc, self.record_path(shard), body)
        return record

    def write_json(self, name: str, payload: dict) -> None:
        body = json.dumps(payload, indent=1, sort_keys=True).encode()
        storage.put_atomic(self.loc, f"{self.dir}/{name}", body)

    def read_json(self, name: str) -> dict | None:
        raw = storage.get_bytes(self.loc, f"{self.dir}/{name}")
        return None if raw is None else json.loads(raw)

    # --- reading and checking ------------------------------------------------------------
    def record(self, shard: Shard) -> ShardRecord | None:
        raw = storage.get_bytes(self.loc, self.record_path(shard))
        try:
            return ShardRecord(**json.loads(raw)) if raw else None
        except (ValueError, TypeError):
            return None

    def problem(self, shard: Shard, fingerprint: str) -> str | None:
        """Why a shard is not a valid result (None when it is)."""
        record = self.record(shard)
        if record is None:
            return "missing"
        if record.fingerprint != fingerprint:
            return "other fingerprint"
        if (record.rows, record.id_start, record.id_stop) != (shard.rows, shard.start, shard.stop):
            return f"wrong rows ({record.rows}, expected {shard.rows})"
        data = storage.get_bytes(self.loc, self.data_path(shard))
        if data is None:
            return "data file missing"
        if hashlib.sha256(data).hexdigest() != record.sha256:
            return "checksum mismatch"
        try:
            table = pq.read_table(io.BytesIO(data))
        except Exception:
            return "unreadable Parquet"
        return None if table.num_rows == shard.rows else "wrong row count in file"

    def dim(self, shard: Shard) -> int:
        schema_ = pq.read_schema(self.data_path(shard), filesystem=self.loc.fs)
        return schema_.field("features").type.list_size

    def read_labels(self, shards: list[Shard]) -> np.ndarray:
        """One split's labels in id order; the label column alone, so it costs little."""
        tables = [pq.read_table(self.data_path(s), columns=["label"], filesystem=self.loc.fs)
                  for s in shards]  # fmt: skip
        return np.concatenate([t.column("label").to_numpy() for t in tables])

    def read_split(
        self, shards: list[Shard], order: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One split as (features [N, dim] float32, labels [N]): row i is id order[i] (id
        order by default). Each shard is decoded once, straight into its rows, so a caller
        that wants the rows grouped (fit, then validation) gets them without another copy."""
        n = sum(s.rows for s in shards)
        place = None if order is None else np.argsort(order)  # id -> row
        features = np.empty((n, self.dim(shards[0])), dtype=np.float32)
        labels = np.empty(n, dtype=np.int64)
        for shard in shards:
            table = pq.read_table(self.data_path(shard), filesystem=self.loc.fs)
            flat = table.column("features").combine_chunks().flatten().to_numpy()
            rows = slice(shard.start, shard.stop)
            rows = rows if place is None else place[rows]
            features[rows] = flat.reshape(shard.rows, -1)
            labels[rows] = table.column("label").to_numpy()
        return features, labels


def encode(ids: np.ndarray, labels: np.ndarray, features: np.ndarray, metadata: dict) -> bytes:
    dim = features.shape[1]
    values = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1))
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(labels, pa.int64()),
            pa.FixedSizeListArray.from_arrays(values, dim),
        ],
        schema=schema(dim, metadata),
    )
    sink = io.BytesIO()
    # Dictionary encoding and statistics on float vectors cost 8x the write time and buy
    # nothing (measured: 64 ms against 8 ms for 256 x 2048 floats). zstd level 1 against the
    # default 3: 7.4 ms against 10.2, files 55% of raw against 53%.
    pq.write_table(
        table, sink, compression="zstd", compression_level=1, use_dictionary=False,
        write_statistics=False,
    )  # fmt: skip
    return sink.getvalue()


def metadata_of(loc: Location, path: str) -> dict:
    meta = pq.read_schema(path, filesystem=loc.fs).metadata or {}
    if META_KEY not in meta:
        raise UserError(f"{path}: not a cifar-ray feature file")
    return json.loads(meta[META_KEY])
