"""Shard planning: fixed-size slices of each split, named by a pure function of their place."""

from __future__ import annotations

from dataclasses import dataclass

from cifar_ray.store.layout import data_file_name, shard_key


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    start: int  # first image id (index in the split, in source order)
    stop: int  # one past the last

    @property
    def key(self) -> str:
        return shard_key(self.split, self.index)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return data_file_name(self.index)  # the fixed name of older stores


def plan(split_sizes: dict[str, int], shard_size: int) -> list[Shard]:
    shards = []
    for split, n in split_sizes.items():
        for index, start in enumerate(range(0, n, shard_size)):
            shards.append(Shard(split, index, start, min(n, start + shard_size)))
    return shards
