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
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cifar_ray.errors import UserError, first_line
from cifar_ray.store import locations
from cifar_ray.store.feature_file import Verified, assemble, encode
from cifar_ray.store.layout import (
    FINGERPRINT,
    MANIFEST,
    RECORDS,
    STORE_FILES,
    Layout,
    data_file_name,
)
from cifar_ray.store.locations import Location
from cifar_ray.store.records import (
    Attempt,
    Rows,
    ShardRecord,
    corrupt,
    manifest_problem,
    names_own_file,
    parse_record,
)
from cifar_ray.store.shards import Shard

# How to recover from a corrupt or mismatched fingerprint.json, said the same way whichever
# command read it: only `extract` has --overwrite (train, report, neighbours do not).
REPLACE_STORE = "re-run `cifar-ray extract` with --overwrite to replace this store"

log = logging.getLogger(__name__)


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
        coarse: np.ndarray | None = None, rows: Rows | None = None, **extra,
    ) -> ShardRecord:  # fmt: skip
        """Data first, record last. Repeating it, even while an earlier call still runs,
        is harmless: each call writes its own data file and the last record wins. `rows`:
        your own images' ids, paths and bad images (CIFAR's rows are the whole shard)."""
        attempt = self.write_data(shard, labels, features, metadata, coarse, rows)
        if rows is not None:
            extra["bad"] = [list(b) for b in rows.bad]
        return self.commit(attempt, **extra)

    def write_data(
        self, shard: Shard, labels: np.ndarray, features: np.ndarray, metadata: dict,
        coarse: np.ndarray | None = None, rows: Rows | None = None,
    ) -> Attempt:  # fmt: skip
        """Step 1: the data, under a name no other attempt uses. Nothing reads it yet."""
        ids = np.arange(shard.start, shard.stop) if rows is None else np.asarray(rows.ids)
        expected = shard.rows - (len(rows.bad) if rows else 0)
        if len(ids) != expected or features.shape[0] != expected or len(labels) != expected:
            raise ValueError(f"{shard.key}: expected {expected} rows, got {features.shape[0]}")
        if coarse is not None and coarse.shape[0] != shard.rows:
            raise ValueError(f"{shard.key}: expected {shard.rows} coarse labels")
        paths = None if rows is None else list(rows.paths)
        data = encode(ids, labels, features, metadata, coarse, paths)
        file = data_file_name(shard.index, uuid.uuid4().hex[:16])
        locations.put_new(self.loc, self.file_path(shard, file), data)  # certified later
        return Attempt(shard, file, hashlib.sha256(data).hexdigest(), metadata["fingerprint"])

    def commit(self, attempt: Attempt, **extra) -> ShardRecord:
        """Step 2, the commit point: one atomic write of the record that names the file."""
        shard = attempt.shard
        rows = shard.rows - len(extra.get("bad", ()))
        record = ShardRecord(
            shard.split, shard.index, rows, shard.start, shard.stop, attempt.sha256,
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
        recover = REPLACE_STORE
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
        return parse_record(locations.get_bytes(self.loc, self.record_path(shard)))

    def problem(self, shard: Shard, fingerprint: str) -> str | None:
        """Why a shard is not a valid result (None when it is)."""
        checked = self.verify(shard, fingerprint)
        return checked if isinstance(checked, str) else None

    def verify(self, shard: Shard, fingerprint: str) -> Verified | str:
        """The shard's record and the bytes it certifies, or why the shard is not a valid
        result: one read of each. The checksum proves the bytes are the ones the worker
        encoded, so the Parquet footer gives the row count without decoding. `read_checked`
        decodes these very bytes; training (`latents`) keeps the labels and the file name and
        reads that file again when it wants the features (attempt files are never rewritten)."""
        record = self.record(shard)
        if record is None:
            return "missing"
        if record.fingerprint != fingerprint:
            return "other fingerprint"
        listed = record.rows + len(record.bad)  # bad images: skipped, named in the record
        if (listed, record.id_start, record.id_stop) != (shard.rows, shard.start, shard.stop):
            return f"wrong rows ({listed}, expected {shard.rows})"
        if not names_own_file(record, shard):
            return f"record names another shard's file ({record.file})"
        data = locations.get_bytes(self.loc, self.file_path(shard, record.file))
        if data is None:
            return "data file missing"
        if hashlib.sha256(data).hexdigest() != record.sha256:
            return "checksum mismatch"
        try:
            rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        except Exception:
            return "unreadable Parquet"
        return Verified(record, data) if rows == record.rows else "wrong row count in file"

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

    def read_split(
        self, shards: list[Shard], files: dict[str, str], dim: int,
        order: np.ndarray | None = None, counts: dict[str, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """One split as (features [N, dim] float32, labels [N]): row i is id order[i] (id
        order by default). `files`: shard key -> the data file its record named when it was
        verified (latents.load), so no record is read again and no other file is read."""

        def table(shard: Shard) -> pa.Table:
            return pq.read_table(self.file_path(shard, files[shard.key]), filesystem=self.loc.fs)

        return assemble(shards, dim, order, table, counts)

    def read_checked(
        self, shards: list[Shard], fingerprint: str, order: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`read_split` for a caller that reads a split once (the bench): each shard checked,
        then its checked bytes decoded, one read per file. A shard that is not a valid result
        is a UserError naming it."""
        checked = {s.key: self.verify(s, fingerprint) for s in shards}
        bad = sorted(f"{key} ({v})" for key, v in checked.items() if isinstance(v, str))
        if bad:
            raise UserError(f"{self.dir}: not valid results: {', '.join(bad)}")
        dim = checked[shards[0].key].dim()
        counts = {s.key: checked[s.key].record.rows for s in shards}
        return assemble(shards, dim, order, lambda shard: checked[shard.key].table(), counts)
