"""The command line's shared options, declared once: each command names them, and every
default comes from the config dataclasses (cli.py)."""

from __future__ import annotations

from typing import Annotated

import typer

Out = Annotated[str, typer.Option("--out", help="Output folder or s3:// URI.")]
DataDir = Annotated[
    str | None,
    typer.Option(help="CIFAR folder, its parent, or the .tar.gz (default: download)."),
]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="cifar10 or cifar100.")]
Backbone = Annotated[
    str, typer.Option(help="Registered name(s), comma-separated, or module:factory.")
]
Weights = Annotated[str, typer.Option(help="imagenet, none (seeded random) or a weights file.")]
ImageSize = Annotated[
    str | None,
    typer.Option(help="Upscale 32px to N (default: backbone's); per backbone: 75,resnet50=224."),
]
Limit = Annotated[int | None, typer.Option(help="Keep the first N images of each split.")]
Seed = Annotated[int, typer.Option(help="Seed for random weights, splits and training.")]
Local = Annotated[bool, typer.Option("--local", help="Start an embedded Ray on this machine.")]
Address = Annotated[str | None, typer.Option(help="Ray cluster address (default: auto).")]
Baselines = Annotated[bool, typer.Option(help="Also fit scikit-learn baselines.")]
PixelBaselines = Annotated[bool, typer.Option(help="Also train an MLP and a CNN on raw pixels.")]
PixelEpochs = Annotated[int, typer.Option(help="Raw-pixel model epochs.")]
Tsne = Annotated[bool, typer.Option(help="Add a t-SNE map of the embedding (slow).")]
Precision = Annotated[
    str, typer.Option(help="float32, mixed_float16 or mixed_bfloat16 (GPUs with tensor cores).")
]
Xla = Annotated[bool, typer.Option(help="XLA-compile the embed step.")]
BatchSize = Annotated[int, typer.Option(help="Images per forward pass (0: auto).")]
ShardSize = Annotated[int, typer.Option(help="Images per Parquet file.")]
Actors = Annotated[int | None, typer.Option(help="Embedder actors (default: auto).")]
GpusPerActor = Annotated[float, typer.Option(help="GPUs per actor, e.g. 0.5.")]
MaxRetries = Annotated[int, typer.Option(help="Retries per shard before it fails.")]
ShardTimeout = Annotated[
    float | None,
    typer.Option(help="Seconds an actor may hold shards without progress (default: derived)."),
]
StartTimeout = Annotated[
    float,
    typer.Option(
        help="Seconds a placed actor may take to start (build the model) before it is replaced."
    ),
]
Overwrite = Annotated[bool, typer.Option(help="Replace features made differently.")]
Data = Annotated[
    str | None,
    typer.Option(
        help="Your own images: a folder tree, Parquet files or WebDataset tars "
        "(local or s3://); CIFAR when not given."
    ),
]
Resize = Annotated[
    str | None,
    typer.Option(help="squash, center-crop or pad (default: center-crop; CIFAR: squash)."),
]
TestFraction = Annotated[
    float, typer.Option(help="Test share of each class when --data names no splits.")
]
ImageColumn = Annotated[str, typer.Option(help="Parquet inputs: the encoded image column.")]
LabelColumn = Annotated[str, typer.Option(help="Parquet inputs: the label column.")]
Strict = Annotated[bool, typer.Option(help="A bad image fails its shard instead of skipped.")]
MaxPixels = Annotated[int, typer.Option(help="Images of more pixels are bad (bombs).")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON, for scripts.")]
Retrain = Annotated[
    bool, typer.Option("--retrain", help="Train again models whose results are up to date.")
]
TrainBackbone = Annotated[
    str, typer.Option(help="Backbone(s) to train on, comma-separated (default: all).")
]
Epochs = Annotated[int, typer.Option(help="Dense head epochs.")]
HeadBatchSize = Annotated[int, typer.Option(help="Dense head batch size.")]
Hidden = Annotated[int, typer.Option(help="Dense head hidden units.")]
Dropout = Annotated[float, typer.Option(help="Dense head dropout.")]
LearningRate = Annotated[float, typer.Option(help="Adam learning rate.")]
ValFraction = Annotated[float, typer.Option(help="Validation share of train.")]
PixelDataDir = Annotated[
    str | None, typer.Option(help="Pixels for raw-pixel baselines (default: as extracted).")
]
BenchBackbone = Annotated[str, typer.Option(help="Registered backbone.")]
BenchImageSize = Annotated[int | None, typer.Option(help="Input size (default: backbone's).")]
BenchImages = Annotated[int, typer.Option(help="Images to embed (train first, then test).")]
BenchShardSize = Annotated[int, typer.Option(help="Images per shard.")]
Rounds = Annotated[
    int, typer.Option(help="Runs of each side; the best counts, as load comes and goes.")
]
ImageFiles = Annotated[
    bool, typer.Option(help="With --whole-job: on --images JPEG files written from the data.")
]
WholeJob = Annotated[
    bool,
    typer.Option(
        help="Time the whole `extract --local` command against a bare script "
        "(benchmarks/bare.py), start-up and archive reading included."
    ),
]

# cifar-ray neighbours
AuditStores = Annotated[str, typer.Option("--backbone", help="Store(s) to audit (default: all).")]
AuditDataDir = Annotated[
    str | None, typer.Option(help="Pixels for exact duplicates (default: as extracted).")
]
K = Annotated[int, typer.Option("--k", help="Neighbours kept per test image.")]
DuplicateThreshold = Annotated[
    float | None,
    typer.Option(help="Cosine similarity of a near-duplicate (default: from the data)."),
]
IndexKind = Annotated[
    str, typer.Option("--index", help="exact, approximate (IVF) or auto (approximate if slow).")
]
WithinTrain = Annotated[bool, typer.Option(help="Also find duplicates inside the training set.")]
AuditAddress = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster: a train split too big for this machine is "
                 "searched by one Ray task per block."),
]  # fmt: skip
FanOut = Annotated[
    bool, typer.Option(help="With --address: Ray tasks even when train fits this machine.")
]
