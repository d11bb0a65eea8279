"""The commands that measure and list rather than run the job: `bench` and `backbones`."""

from __future__ import annotations

from typing import Annotated

import typer

from cifar_ray import cli_options as opt
from cifar_ray.config import BenchConfig

B = BenchConfig  # every option's default is one of its fields


def bench(
    data_dir: opt.DataDir = B.data_dir,
    dataset: opt.DatasetOpt = B.dataset,
    backbone: opt.BenchBackbone = B.backbone,
    image_size: opt.BenchImageSize = B.image_size,
    images: opt.BenchImages = B.images,
    batch_size: opt.BatchSize = B.batch_size,
    shard_size: opt.BenchShardSize = B.shard_size,
    actors: opt.Actors = B.actors,
    precision: opt.Precision = B.precision,
    xla: opt.Xla = B.xla,
    rounds: opt.Rounds = B.rounds,
    whole_job: opt.WholeJob = B.whole_job,
    image_files: opt.ImageFiles = B.image_files,
) -> None:
    """Measure extraction against a plain Keras predict; prints one JSON line."""
    from cifar_ray import bench as bench_mod

    bench_mod.main(
        BenchConfig(
            data_dir=data_dir, dataset=dataset, backbone=backbone, image_size=image_size,
            images=images,
            batch_size=batch_size, shard_size=shard_size, actors=actors, precision=precision,
            xla=xla, rounds=rounds, whole_job=whole_job, image_files=image_files,
        )
    )  # fmt: skip


def list_backbones(
    files: Annotated[bool, typer.Option("--files", help="ImageNet weights files, hashes.")] = False,
    as_json: opt.Json = False,
) -> None:
    """List the registered backbones."""
    from cifar_ray import listings

    listings.list_backbones(files, as_json)
