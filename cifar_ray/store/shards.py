"""Shard planning: fixed-size slices of each split, named by a pure function of their place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    start: int  # first image id (index in the split, in source order)
    stop: int  # one past the last

    @property
    def key(self) -> str:
        return f"{self.split}-{self.index:05d}"

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return f"part-{self.index:05d}.parquet"


def plan(split_sizes: dict[str, int], shard_size: int) -> list[Shard]:
    shards = []
    for split, n in split_sizes.items():
        for index, start in enumerate(range(0, n, shard_size)):
            shards.append(Shard(split, index, start, min(n, start + shard_size)))
    return shards
