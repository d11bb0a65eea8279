"""Two attempts at one shard, every interleaving of their steps, on local disk and on S3.

Ray may run a retry while the first attempt still runs, and GPU kernels are not
bit-deterministic, so the two attempts write different bytes. Whatever the order, the record
must certify the bytes of the file it names, and cleanup must leave one data file per shard.
"""

from __future__ import annotations

import hashlib
import io
import itertools

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cifar_ray.store import locations
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import Shard, plan
from tests.moto_s3 import moto_server

META = {"fingerprint": "fp1", "backbone": "toy"}
SHARDS = plan({"train": 20}, 10)  # train-00000 races, train-00001 is published once
RACED = SHARDS[0]


def _interleavings() -> list[tuple[str, ...]]:
    """Every order of A.data, A.commit, B.data, B.commit with each attempt's data first."""
    steps = ["A.data", "A.commit", "B.data", "B.commit"]
    return sorted({
        order for order in itertools.permutations(steps)
        if order.index("A.data") < order.index("A.commit")
        and order.index("B.data") < order.index("B.commit")
    })  # fmt: skip


def _features(shard: Shard, offset: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(shard.rows * 3, dtype=np.float32).reshape(shard.rows, 3) + offset
    return np.arange(shard.start, shard.stop) % 10, x


def _race(store: FeatureStore, order: tuple[str, ...]) -> str:
    """Run the two attempts' steps in `order`; the attempt whose record came last."""
    written = {}
    offsets = {"A": 1000.0, "B": 2000.0}  # different bytes, as two GPU runs may give
    for step in order:
        who, what = step.split(".")
        if what == "data":
            labels, x = _features(RACED, offsets[who])
            written[who] = store.write_data(RACED, labels, x, META)
        else:
            store.commit(written[who])
    return _winner(order)


def _winner(order: tuple[str, ...]) -> str:
    commits = [s for s in order if s.endswith("commit")]
    return commits[-1].split(".")[0]


def _check(store: FeatureStore, loc: Location, winner: str) -> None:
    assert store.problem(RACED, "fp1") is None
    record = store.record(RACED)
    named = locations.get_bytes(loc, store.data_path(RACED))
    assert hashlib.sha256(named).hexdigest() == record.sha256
    got = pq.read_table(io.BytesIO(named)).column("features").to_pylist()
    assert got[0][0] == {"A": 1000.0, "B": 2000.0}[winner]  # the last record's own bytes
    assert len(store.strays(SHARDS)) == 1  # the loser's file, not yet removed

    store.remove_strays(SHARDS)
    assert store.strays(SHARDS) == []
    assert store.problem(RACED, "fp1") is None
    for shard in SHARDS:
        folder = f"{store.dir}/{shard.split}"
        mine = [p for p in locations.list_files(loc, folder)
                if p.rpartition("/")[2].startswith(f"part-{shard.index:05d}")]  # fmt: skip
        assert mine == [store.data_path(shard)]
    dataset = ds.dataset(f"{store.dir}/train", filesystem=loc.fs, format="parquet")
    assert sorted(dataset.to_table(columns=["id"]).column("id").to_pylist()) == list(range(20))


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path, monkeypatch):
    if request.param == "local":
        yield lambda name: Location(str(tmp_path / name))
        return
    with moto_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield lambda name: Location(f"s3://feats/{name}")


@pytest.mark.parametrize("order", _interleavings(), ids="-".join)
def test_two_attempts_in_any_order_leave_a_record_that_certifies_its_file(location, order):
    loc = location("race")
    store = FeatureStore(loc, "toy")
    labels, x = _features(SHARDS[1], 0.0)
    store.publish(SHARDS[1], labels, x, META)
    _race(store, order)
    _check(store, loc, _winner(order))


def test_every_interleaving_is_covered():
    assert len(_interleavings()) == 6


def test_store_of_the_old_layout_still_validates_and_reads(tmp_path):
    """Records without a file name, data at the fixed part-NNNNN.parquet: the old layout."""
    import json

    loc = Location(str(tmp_path))
    store = FeatureStore(loc, "toy")
    for shard in SHARDS:
        record = store.publish(shard, *_features(shard, 0.0), META)
        (tmp_path / "features/toy/train" / record.file).rename(
            tmp_path / "features/toy/train" / shard.file_name
        )
        path = tmp_path / "features/toy/_shards" / f"{shard.key}.json"
        body = json.loads(path.read_text())
        del body["file"]
        path.write_text(json.dumps(body))
    assert [store.problem(s, "fp1") for s in SHARDS] == [None, None]
    assert store.strays(SHARDS) == []
    x, _ = store.read_checked(SHARDS, "fp1")
    np.testing.assert_array_equal(x, np.concatenate([_features(s, 0.0)[1] for s in SHARDS]))


def test_a_record_may_name_only_its_own_shards_file(tmp_path):
    import json

    store = FeatureStore(Location(str(tmp_path)), "toy")
    records = [store.publish(s, *_features(s, 0.0), META) for s in SHARDS]
    path = tmp_path / "features/toy/_shards/train-00000.json"
    for bad in (records[1].file, "../../elsewhere.parquet"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "file": bad}))
        assert store.problem(SHARDS[0], "fp1").startswith("record names another shard's file")


def test_on_s3_a_shards_data_is_uploaded_once(monkeypatch):
    """The data file (the large part) is one upload under its attempt name: no temporary,
    no copy (a bucket with versioning keeps every object ever written). Its record still
    goes through a temporary: that name is trusted, and must never be replaced by an
    interrupted upload."""
    import boto3

    with moto_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        s3.put_bucket_versioning(Bucket="feats", VersioningConfiguration={"Status": "Enabled"})
        store = FeatureStore(Location("s3://feats/once"), "toy")
        labels, x = _features(SHARDS[1], 0.0)
        record = store.publish(SHARDS[1], labels, x, META)
        history = s3.list_object_versions(Bucket="feats", Prefix="once/")
    written = [v["Key"] for v in history.get("Versions", [])]
    data_objects = [k for k in written if record.file.removesuffix(".parquet") in k]
    assert data_objects == [f"once/features/toy/train/{record.file}"]
    assert written.count("once/features/toy/_shards/train-00001.json") == 1


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_interrupted_write_never_replaces_a_good_file(where, tmp_path, monkeypatch):
    """pyarrow completes an object-store upload on close whatever happened: a write that
    fails midway must leave the file it was replacing as it was (here fingerprint.json)."""
    broken = memoryview(b"half")
    broken.release()  # writing it raises inside the upload

    def check(loc: Location) -> None:
        path = loc.path("fingerprint.json")
        locations.put_atomic(loc, path, b'{"id": "good"}')
        with pytest.raises(ValueError):
            locations.put_atomic(loc, path, broken)
        assert locations.get_bytes(loc, path) == b'{"id": "good"}'

    if where == "local":
        check(Location(str(tmp_path)))
        return
    with moto_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        check(Location("s3://feats/interrupted"))
