"""Shard planning: every image of every split in exactly one fixed-size, predictably named slice."""

from __future__ import annotations

from cifar_ray.store.shards import Shard, plan


def test_plan_covers_each_split_once_in_order_with_a_short_last_shard():
    shards = plan({"train": 25, "test": 10}, 10)
    assert [(s.split, s.index, s.start, s.stop) for s in shards] == [
        ("train", 0, 0, 10), ("train", 1, 10, 20), ("train", 2, 20, 25),
        ("test", 0, 0, 10),
    ]  # fmt: skip
    assert [s.rows for s in shards] == [10, 10, 5, 10]


def test_plan_edge_sizes_empty_split_and_shard_larger_than_split():
    assert plan({"train": 0}, 8) == []
    assert plan({"train": 3}, 8) == [Shard("train", 0, 0, 3)]
    assert [s.rows for s in plan({"train": 7}, 1)] == [1] * 7


def test_names_are_a_pure_function_of_the_place():
    shard = plan({"train": 30_000}, 1)[12345]
    assert shard.key == "train-12345"
    assert shard.file_name == "part-12345.parquet"
    assert shard == Shard("train", 12345, 12345, 12346)  # the same place, the same shard
    keys = [s.key for s in plan({"train": 50, "test": 50}, 7)]
    assert len(set(keys)) == len(keys)
