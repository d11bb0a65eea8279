"""The feature store: one Parquet file per shard, a sidecar record per shard, a manifest.

Publishing follows the output-commit protocol of Spark and Hadoop. Each attempt at a shard
writes its data under a name of its own (`<split>/part-00003-<attempt>.parquet`); then it
writes the shard's record, the commit point, which names that file and its sha256. The
record is written atomically (a rename on local disk, one object on S3) and the last one
wins, so two attempts at one shard (Ray retries a call whose actor may still be running it)
can interleave in any order and the record still certifies the bytes of the file it names.
Data files that no record names are strays: `remove_strays` deletes them when no attempt is
running, at the start and at the end of a run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray.errors import UserError, first_line
from cifar_ray.store import locations
from cifar_ray.store.layout import (
    DATA_FILE,
    FINGERPRINT,
    MANIFEST,
    RECORDS,
    STORE_FILES,
    Layout,
    data_file_name,
    shard_key,
)
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import Shard

log = logging.getLogger(__name__)

META_KEY = b"cifar_ray"
# The most images a split can hold (CIFAR-10 and CIFAR-100 alike): a manifest that plans
# more is corrupt, and planning its shards would not end.
SPLIT_LIMITS = {"train": 50_000, "test": 10_000}


COARSE = "coarse_label"  # CIFAR-100's superclass, beside the fine `label`


def schema(dim: int, metadata: dict | None = None, coarse: bool = False) -> pa.Schema:
    """The one definition of a feature file's columns. `coarse`: a `coarse_label` column after
    `label` (CIFAR-100 only; CIFAR-10 files keep the three columns they always had)."""
    fields = [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
        *([pa.field(COARSE, pa.int64(), nullable=False)] if coarse else []),
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
    file: str = ""  # the data file this record certifies; "" (older stores): part-NNNNN.parquet

    @property
    def key(self) -> str:
        return shard_key(self.split, self.index)


@dataclass(frozen=True)
class Attempt:
    """One attempt's data file, written under its own name and not yet committed."""

    shard: Shard
    file: str
    sha256: str
    fingerprint: str


class FeatureStore:
    """OUT/features/<backbone>/: layout, publishing and validation of one backbone's features."""

    def __init__(self, loc: Location, backbone: str):
        self.loc = loc
        self.backbone = backbone
        self.layout = Layout(loc)
        self.dir = self.layout.store_dir(backbone)

    def file_path(self, shard: Shard, file: str = "") -> str:
        """Where a data file of this shard lives; "" is the fixed name older stores used."""
        return self.layout.data_file(self.backbone, shard.split, file or shard.file_name)

    def data_path(self, shard: Shard) -> str:
        """The file the shard's record names: the only data file a reader may trust."""
        record = self.record(shard)
        if record is None:
            raise UserError(f"{self.record_path(shard)}: no record; run `cifar-ray extract`")
        return self.file_path(shard, record.file)

    def record_path(self, shard: Shard) -> str:
        return self.layout.record(self.backbone, shard.key)

    # --- writing -------------------------------------------------------------------------
    def publish(
        self, shard: Shard, labels: np.ndarray, features: np.ndarray, metadata: dict,
        coarse: np.ndarray | None = None, **extra,
    ) -> ShardRecord:  # fmt: skip
        """Data first, record last. Repeating it, even while an earlier call still runs,
        is harmless: each call writes its own data file and the last record wins."""
        return self.commit(self.write_data(shard, labels, features, metadata, coarse), **extra)

    def write_data(
        self, shard: Shard, labels: np.ndarray, features: np.ndarray, metadata: dict,
        coarse: np.ndarray | None = None,
    ) -> Attempt:  # fmt: skip
        """Step 1: the data, under a name no other attempt uses. Nothing reads it yet."""
        if features.shape[0] != shard.rows or labels.shape[0] != shard.rows:
            raise ValueError(f"{shard.key}: expected {shard.rows} rows, got {features.shape[0]}")
        if coarse is not None and coarse.shape[0] != shard.rows:
            raise ValueError(f"{shard.key}: expected {shard.rows} coarse labels")
        data = encode(np.arange(shard.start, shard.stop), labels, features, metadata, coarse)
        file = data_file_name(shard.index, uuid.uuid4().hex[:16])
        locations.put_atomic(self.loc, self.file_path(shard, file), data)
        return Attempt(shard, file, hashlib.sha256(data).hexdigest(), metadata["fingerprint"])

    def commit(self, attempt: Attempt, **extra) -> ShardRecord:
        """Step 2, the commit point: one atomic write of the record that names the file."""
        shard = attempt.shard
        record = ShardRecord(
            shard.split, shard.index, shard.rows, shard.start, shard.stop, attempt.sha256,
            attempt.fingerprint, **extra, file=attempt.file,
        )  # fmt: skip
        body = json.dumps(asdict(record), indent=1).encode()
        locations.put_atomic(self.loc, self.record_path(shard), body)
        return record

    def write_json(self, name: str, payload: dict) -> None:
        """One of the store's own files (`manifest.json`, `fingerprint.json`), atomically."""
        body = json.dumps(payload, indent=1, sort_keys=True).encode()
        locations.put_atomic(self.loc, f"{self.dir}/{name}", body)

    def read_json(self, name: str, recover: str = "re-run `cifar-ray extract`") -> dict | None:
        """One of the store's own files, None when absent. A file that is not a JSON object
        is a one-line UserError naming it and `recover`, never a traceback."""
        path = f"{self.dir}/{name}"
        raw = locations.get_bytes(self.loc, path)
        if raw is None:
            return None
        try:
            payload = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            raise corrupt(path, f"not JSON ({first_line(exc, typed=False)})", recover) from None
        if not isinstance(payload, dict):
            raise corrupt(path, f"expected a JSON object, got {type(payload).__name__}", recover)
        return payload

    def read_manifest(self) -> dict | None:
        """The manifest (see `store.manifest`), None before extraction planned this store;
        one of the wrong shape (it would crash or never end planning) is a UserError."""
        recover = "re-run `cifar-ray extract` (it rewrites the manifest)"
        manifest = self.read_json(MANIFEST, recover)
        if manifest is not None:
            problem = manifest_problem(manifest)
            if problem:
                raise corrupt(f"{self.dir}/{MANIFEST}", problem, recover)
        return manifest

    def read_fingerprint(self, replacing: bool = False) -> dict | None:
        """Everything that determines the feature values, with its "id"; None when unclaimed.
        A corrupt one is a UserError, unless `replacing` (--overwrite): then it reads as {},
        which matches no settings, so the store is replaced rather than blocked."""
        recover = "use --overwrite to replace this store"
        try:
            found = self.read_json(FINGERPRINT, recover)
            if found is not None and not isinstance(found.get("id"), str):
                raise corrupt(f"{self.dir}/{FINGERPRINT}", 'no string "id"', recover)
        except UserError:
            if replacing:
                return {}
            raise
        return found

    def write_fingerprint(self, fingerprint_id: str, fields: dict) -> None:
        """Claims the store for these settings: written with the first published shard."""
        self.write_json(FINGERPRINT, {"id": fingerprint_id, **fields})

    # --- reading and checking ------------------------------------------------------------
    def record(self, shard: Shard) -> ShardRecord | None:
        """The shard's record; None when absent or not a record (an invalid shard, to be
        recomputed): undecodable, missing fields, or a field of the wrong type."""
        raw = locations.get_bytes(self.loc, self.record_path(shard))
        try:
            record = ShardRecord(**json.loads(raw)) if raw else None
        except (ValueError, TypeError):
            return None
        return record if record is None or _well_typed(record) else None

    def problem(self, shard: Shard, fingerprint: str) -> str | None:
        """Why a shard is not a valid result (None when it is)."""
        record = self.record(shard)
        if record is None:
            return "missing"
        if record.fingerprint != fingerprint:
            return "other fingerprint"
        if (record.rows, record.id_start, record.id_stop) != (shard.rows, shard.start, shard.stop):
            return f"wrong rows ({record.rows}, expected {shard.rows})"
        if not _names_own_file(record, shard):
            return f"record names another shard's file ({record.file})"
        data = locations.get_bytes(self.loc, self.file_path(shard, record.file))
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

    def strays(self, shards: list[Shard]) -> list[str]:
        """Files under this store that are not part of the result of `shards`: data files no
        record names (attempts that lost, or never committed) and records, with their files,
        of shards outside the plan. Readers of a split folder as a Parquet dataset would get
        their rows; hidden names (temporaries, `_shards`) are skipped by those readers."""
        planned = {self.record_path(s) for s in shards}
        named = {self.file_path(s, r.file) for s in shards if (r := self.record(s))}
        records, data = [], []
        for path in locations.list_files(self.loc, self.dir):
            rel = path[len(self.dir) + 1 :]
            if rel in STORE_FILES or locations.TMP_MARK in rel.rpartition("/")[2]:
                continue
            if rel.startswith(f"{RECORDS}/"):
                if path not in planned:
                    records.append(path)
            elif path not in named:
                data.append(path)
        return sorted(records) + sorted(data)  # records first: see remove_strays

    def remove_other_fingerprints(self, shards: list[Shard], fingerprint_id: str) -> int:
        """Records of shards made differently are not results once the store is this
        fingerprint's (an --overwrite run replacing an old store); their data files are then
        strays. Call it only while no attempt runs."""
        old = [s for s in shards if (r := self.record(s)) and r.fingerprint != fingerprint_id]
        for shard in old:
            locations.delete_file(self.loc, self.record_path(shard))
        return len(old)

    def remove_strays(self, shards: list[Shard]) -> list[str]:
        """Delete `strays`. Call it only while no attempt runs: a data file written but not
        yet committed is a stray too. Records go first, so a crash midway never leaves a
        record whose file is gone."""
        stray = self.strays(shards)
        for path in stray:
            locations.delete_file(self.loc, path)
        if stray:
            log.info("removed %d stray files under %s", len(stray), self.dir)
        return stray

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


def encode(
    ids: np.ndarray, labels: np.ndarray, features: np.ndarray, metadata: dict,
    coarse: np.ndarray | None = None,
) -> bytes:  # fmt: skip
    dim = features.shape[1]
    values = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1))
    coarse_col = [] if coarse is None else [pa.array(coarse, pa.int64())]
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(labels, pa.int64()),
            *coarse_col,
            pa.FixedSizeListArray.from_arrays(values, dim),
        ],
        schema=schema(dim, metadata, coarse=coarse is not None),
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


_TYPES = {"str": str, "int": int, "float": (int, float)}


def _well_typed(record: ShardRecord) -> bool:
    """Every field of the type its annotation names (JSON may hold anything)."""
    return all(
        isinstance(getattr(record, f.name), _TYPES[f.type])
        and not isinstance(getattr(record, f.name), bool)
        for f in fields(record)
    )


def corrupt(path: str, problem: str, recover: str) -> UserError:
    """The one-line error for a store or result file that cannot be used as it is."""
    return UserError(f"{path}: corrupt, {problem}; {recover}")


def manifest_problem(manifest: dict) -> str | None:
    """What makes a manifest unusable for planning (None when it is fine)."""
    sizes, shard_size = manifest.get("split_sizes"), manifest.get("shard_size")
    if not isinstance(manifest.get("fingerprint"), str):
        return 'no string "fingerprint"'
    if not isinstance(manifest.get("classes", []), list):  # older manifests may lack it
        return '"classes" is not a list'
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size <= 0:
        return f"shard_size must be a positive integer, got {shard_size!r}"
    if not isinstance(sizes, dict) or not sizes:
        return f"split_sizes must name the splits, got {sizes!r}"
    for split, n in sizes.items():
        limit = SPLIT_LIMITS.get(split)
        if limit is None:
            return f"split_sizes names an unknown split {split!r}"
        if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= limit:
            return f"split_sizes[{split!r}] must be 1..{limit}, got {n!r}"
    return None


def _names_own_file(record: ShardRecord, shard: Shard) -> bool:
    """A record may name only this shard's data file, never a path elsewhere."""
    match = DATA_FILE.fullmatch(record.file or shard.file_name)
    return bool(match) and int(match.group(1)) == shard.index


def metadata_of(loc: Location, path: str) -> dict:
    meta = pq.read_schema(path, filesystem=loc.fs).metadata or {}
    if META_KEY not in meta:
        raise UserError(f"{path}: not a cifar-ray feature file")
    return json.loads(meta[META_KEY])
