"""The feature store: schema and metadata, atomic publish, validation, assembly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cifar_ray.errors import UserError
from cifar_ray.store import latents, locations
from cifar_ray.store.feature_file import metadata_of
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import Shard, plan

META = {"fingerprint": "fp1", "backbone": "toy", "image_size": 75}


def _publish(tmp_path, shard, dim=4):
    store = FeatureStore(Location(str(tmp_path)), "toy")
    feats = np.arange(shard.rows * dim, dtype=np.float32).reshape(shard.rows, dim) + shard.start
    labels = np.arange(shard.start, shard.stop) % 10
    return store, store.publish(shard, labels, feats, META), feats


def test_published_file_has_the_schema_and_metadata(tmp_path):
    shard = Shard("train", 2, 20, 30)
    store, record, _ = _publish(tmp_path, shard)
    path = tmp_path / "features/toy/train" / record.file
    assert record.file.startswith("part-00002-") and store.data_path(shard) == str(path)
    table = pq.read_table(path)
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("label").type == pa.int64()
    assert table.schema.field("features").type == pa.list_(pa.float32(), 4)
    assert table.column("id").to_pylist() == list(range(20, 30))
    assert metadata_of(store.loc, str(path))["backbone"] == "toy"
    assert (record.rows, record.id_start, record.id_stop) == (10, 20, 30)
    assert store.problem(shard, "fp1") is None
    assert not [p for p in tmp_path.rglob("*") if locations.TMP_MARK in p.name]


def test_publish_is_safe_to_repeat(tmp_path):
    shard = Shard("test", 0, 0, 5)
    _, first, _ = _publish(tmp_path, shard)
    store, second, _ = _publish(tmp_path, shard)
    assert first.sha256 == second.sha256 and first.file != second.file
    assert store.problem(shard, "fp1") is None and store.record(shard) == second
    assert store.remove_strays([shard]) == [str(tmp_path / "features/toy/test" / first.file)]
    assert [p.name for p in (tmp_path / "features/toy/test").iterdir()] == [second.file]


def test_problems_are_detected(tmp_path):
    shard = Shard("train", 0, 0, 8)
    store, record, _ = _publish(tmp_path, shard)
    assert store.problem(shard, "other") == "other fingerprint"
    assert store.problem(Shard("train", 0, 0, 9), "fp1").startswith("wrong rows")
    path = tmp_path / "features/toy/train" / record.file
    path.write_bytes(path.read_bytes()[:-40])
    assert store.problem(shard, "fp1") == "checksum mismatch"
    assert store.problem(Shard("train", 1, 8, 16), "fp1") == "missing"
    path.unlink()
    assert store.problem(shard, "fp1") == "data file missing"


def test_shards_outside_the_plan_are_strays(tmp_path):
    shards = plan({"train": 30}, 10)
    records = [_publish(tmp_path, shard)[1] for shard in shards]
    store = FeatureStore(Location(str(tmp_path)), "toy")
    (tmp_path / "features/toy/train/notes.parquet").write_bytes(b"not ours")
    removed = store.remove_strays(shards[:2])  # a smaller plan: shard 2 is not in it
    names = sorted(p.rpartition("/")[2] for p in removed)
    assert names == sorted(["notes.parquet", "train-00002.json", records[2].file])
    assert removed[0].endswith("_shards/train-00002.json")  # the record goes first
    assert pq.read_table(tmp_path / "features/toy/train").column("id").to_pylist() == list(
        range(20)
    )


def _read(store: FeatureStore, shards: list[Shard], order=None):
    return store.read_checked(shards, "fp1", order)


def test_read_split_assembles_in_id_order(tmp_path):
    shards = plan({"train": 25}, 10)
    for shard in reversed(shards):
        store, _, _ = _publish(tmp_path, shard)
    x, y = _read(store, shards)
    assert x.shape == (25, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(
        x[:, 0], [s.start + 4 * (i - s.start) for s in shards for i in range(s.start, s.stop)]
    )
    np.testing.assert_array_equal(y, np.arange(25) % 10)


def test_read_split_decodes_rows_straight_into_the_given_order(tmp_path):
    shards = plan({"train": 25}, 10)
    for shard in shards:
        store, _, _ = _publish(tmp_path, shard)
    in_id_order = _read(store, shards)
    order = np.random.default_rng(0).permutation(25)
    x, y = _read(store, shards, order)
    np.testing.assert_array_equal(x, in_id_order[0][order])
    np.testing.assert_array_equal(y, in_id_order[1][order])
    labels = np.concatenate([store.verify(s, "fp1").labels() for s in shards])
    np.testing.assert_array_equal(labels, in_id_order[1])


def test_training_reads_the_files_it_checked_not_a_record_written_since(tmp_path):
    """latents.load checks each shard; a record committed afterwards (another run's attempt,
    other bytes) does not change what the checked latents read."""
    shards = plan({"train": 20, "test": 10}, 10)
    for shard in shards:
        store, _, _ = _publish(tmp_path, shard)
    Manifest("toy", "fp1", list("abcdefghij"), {"train": 20, "test": 10}, None, 10).write(store)
    lat = latents.load(store.loc, "toy")
    before = lat.features("train")
    labels = np.arange(shards[0].start, shards[0].stop) % 10
    store.publish(shards[0], labels, np.full((10, 4), 1000.0, np.float32), META)  # commits
    np.testing.assert_array_equal(lat.features("train"), before)
    assert lat.dim == 4 and lat.y["test"].tolist() == list(range(10))


def test_stale_temporaries_are_removed(tmp_path):
    loc = Location(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f".part-00000.parquet{locations.TMP_MARK}abc").write_bytes(b"x")
    (tmp_path / "a" / "keep.parquet").write_bytes(b"x")
    assert locations.remove_temporaries(loc, str(tmp_path)) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["keep.parquet"]


def test_not_enough_space_is_refused_before_work(tmp_path):
    import pytest

    from cifar_ray.errors import UserError

    with pytest.raises(UserError, match="MB free, the features need"):
        locations.check_writable(Location(str(tmp_path)), str(tmp_path / "f"), need_bytes=10**18)


def test_inspect_returns_what_it_found_and_prints_nothing(tmp_path, capsys):
    from cifar_ray.store import checks
    from cifar_ray.store.manifest import Manifest

    shards = plan({"train": 20}, 10)
    store, _, _ = _publish(tmp_path, shards[0])
    Manifest("toy", "fp1", ["a"], {"train": 20}, None, 10).write(store)
    (tmp_path / "features/toy/train/notes.parquet").write_bytes(b"not ours")
    [found] = checks.inspect(str(tmp_path))
    assert (found.backbone, found.ok, found.problems) == ("toy", False, ["train-00001: missing"])
    assert found.counts["strays"] == [str(tmp_path / "features/toy/train/notes.parquet")]
    counts = found.counts  # rows: what is there (one of two shards), not what was planned
    assert (counts["shards"], counts["published"], counts["dim"]) == (2, 1, 4)
    assert (counts["rows"], counts["planned_rows"]) == (10, 20)
    assert capsys.readouterr() == ("", "")


def test_read_checked_refuses_a_shard_that_is_not_a_valid_result(tmp_path):
    shards = plan({"train": 20}, 10)
    for shard in shards:
        store, record, _ = _publish(tmp_path, shard)
    (tmp_path / "features/toy/train" / record.file).write_bytes(b"PAR1 truncated")
    with pytest.raises(UserError, match=r"train-00001 \(checksum mismatch\)"):
        store.read_checked(shards, "fp1")


def test_latents_refuse_shards_of_different_widths(tmp_path):
    """One fingerprint means one model; shards of two widths would only fail mid-training."""
    shards = plan({"train": 20, "test": 10}, 10)
    for shard in shards:
        store, _, _ = _publish(tmp_path, shard, dim=5 if shard.key == "test-00000" else 4)
    Manifest("toy", "fp1", list("abcdefghij"), {"train": 20, "test": 10}, None, 10).write(store)
    with pytest.raises(UserError, match=r"shards of different widths \[4, 5\]"):
        latents.load(store.loc, "toy")
