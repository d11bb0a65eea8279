"""Reading a store before touching it (issue 20, items 4 and 7): planning deletes nothing
until it has read every record and data file, and `inspect` counts what is committed and
lists temporaries and strays. No Ray: stores are published in-process."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.errors import StorageError
from cifar_ray.extract import job, store_meta
from cifar_ray.source import cifar
from cifar_ray.store import checks
from cifar_ray.store.locations import TMP_MARK
from tests.conftest import run_cli


@pytest.fixture
def half_store(tmp_path, cifar_archive):
    """A store of 4 shards with 2 committed (as an interrupted run leaves it), a stray data
    file and a temporary; returns (cfg, dataset, store folder)."""
    cfg = ExtractConfig(out=str(tmp_path / "out"), data_dir=str(cifar_archive), weights="none",
                        backbone="mobilenetv2", image_size=32, limit=20, shard_size=10)  # fmt: skip
    dataset = cifar.load(cfg.data_dir, cfg.limit)
    p = job.prepare(cfg, dataset)
    for shard in p.shards[:2]:
        labels = dataset.splits[shard.split].labels[shard.start : shard.stop]
        p.store.publish(shard, labels, np.zeros((shard.rows, 4), np.float32), p.metadata)
    store_meta.write_manifest(p, None)
    p.store.write_fingerprint(p.fingerprint_id, p.fingerprint)
    folder = tmp_path / "out" / "features" / "mobilenetv2"
    (folder / "train" / "part-00009-lost.parquet").write_bytes(b"an attempt that never committed")
    (folder / f".manifest.json{TMP_MARK}1234abcd").write_bytes(b"{")
    return cfg, dataset, folder


def test_a_storage_error_on_a_data_file_stops_planning_before_anything_is_deleted(half_store):
    """Before: strays and temporaries were deleted, then the error stopped the command."""
    cfg, dataset, folder = half_store
    committed = sorted((folder / "train").glob("part-00000-*.parquet"))[0]
    committed.unlink()
    committed.mkdir()  # a folder where the file should be: an error, never "absent"
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(StorageError, match=f"cannot read {committed}"):
        job.prepare(cfg, dataset)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_inspect_counts_committed_rows_and_lists_temporaries_and_strays(half_store):
    """Before: the rows column showed the planned count (3,000 where 896 were committed)."""
    cfg = half_store[0]
    (found,) = checks.inspect(cfg.out)
    assert (found.counts["rows"], found.counts["planned_rows"]) == (20, 40)
    assert [p.rpartition("/")[2] for p in found.counts["temporaries"]] == [
        f".manifest.json{TMP_MARK}1234abcd"
    ]
    assert [p.rpartition("/")[2] for p in found.counts["strays"]] == ["part-00009-lost.parquet"]
    assert sorted(p.partition(":")[0] for p in found.problems) == ["test-00000", "test-00001"]
    shown = run_cli("inspect", cfg.out)
    text = " ".join((shown.stdout + shown.stderr).split())
    assert shown.returncode == 1 and "temporary file of an interrupted write" in text
    assert "│ 20 │" in text and "2 bad, 1 stray, 1 temporary" in text
