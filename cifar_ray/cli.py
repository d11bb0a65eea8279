"""The `cifar-ray` command line: extract, train, report, run, inspect, backbones."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from inspect import signature
from typing import Annotated

import typer

from cifar_ray import cli_options as opt
from cifar_ray import cli_tools, commands_audit
from cifar_ray.config import (
    DEFAULT_OUT,
    ExtractConfig,
    TrainConfig,
    parse_image_sizes,
)
from cifar_ray.errors import ExtractionFailed, StorageError, UserError

X, T = ExtractConfig, TrainConfig  # every option's default is one of theirs

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no `<bool>` on flags, no markup read in help texts
    help="Turn image datasets into embeddings with Ray actors, train classifiers, report.",
)

EXIT_USER_ERROR, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


@app.callback()
def main_options(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging.")] = 0,
) -> None:
    """Keeps subcommands as subcommands, and sets logging once for all of them."""
    _state["command"] = ctx.invoked_subcommand
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from cifar_ray.ray_runtime import quiet

    quiet(verbose > 0)
    _state["verbose"] = verbose > 0


_state = {"verbose": False, "command": None}

# What an interrupted command keeps for the next run, said after "interrupted; ".
RESUME_HINTS = {
    "extract": "published shards are kept, re-run to resume",
    "run": "published shards and training checkpoints are kept, re-run to resume",
    "train": "training checkpoints are kept, re-run to resume",
}


def _ray_target(local: bool, address: str | None) -> None:
    """`--local` starts a Ray of its own and `--address` joins one: both at once would
    silently ignore the address."""
    if local and address:
        raise UserError(f"--local starts its own Ray and --address {address} joins one; "
                        "give one of them")  # fmt: skip


def _extract_config(image_size: str | None, **fields) -> ExtractConfig:
    """`--image-size 75,resnet50=224`: a default and per-backbone sizes."""
    default, overrides = parse_image_sizes(image_size)
    return ExtractConfig(image_size=default, image_size_overrides=overrides, **fields)


@app.command()
def extract(
    out: opt.Out = X.out,
    data_dir: opt.DataDir = X.data_dir,
    dataset: opt.DatasetOpt = X.dataset,
    backbone: opt.Backbone = X.backbone,
    weights: opt.Weights = X.weights,
    image_size: opt.ImageSize = None,  # X.image_size and X.image_size_overrides, as one text
    limit: opt.Limit = X.limit,
    batch_size: opt.BatchSize = X.batch_size,
    precision: opt.Precision = X.precision,
    xla: opt.Xla = X.xla,
    shard_size: opt.ShardSize = X.shard_size,
    seed: opt.Seed = X.seed,
    actors: opt.Actors = X.actors,
    gpus_per_actor: opt.GpusPerActor = X.gpus_per_actor,
    max_retries: opt.MaxRetries = X.max_retries,
    shard_timeout: opt.ShardTimeout = X.shard_timeout,
    start_timeout: opt.StartTimeout = X.start_timeout,
    overwrite: opt.Overwrite = X.overwrite,
    data: opt.Data = X.data,
    resize: opt.Resize = X.resize,
    test_fraction: opt.TestFraction = X.test_fraction,
    image_column: opt.ImageColumn = X.image_column,
    label_column: opt.LabelColumn = X.label_column,
    strict: opt.Strict = X.strict,
    max_pixels: opt.MaxPixels = X.max_pixels,
    local: opt.Local = False,
    address: opt.Address = None,
) -> None:
    """Embed every image into OUT/features/<backbone>/ (resumes where it stopped)."""
    options = dict(locals())  # exactly the parameters (first line): `run` passes the same set
    local, address = options.pop("local"), options.pop("address")
    _ray_target(local, address)
    from cifar_ray import commands

    commands.extract(_extract_config(**options), local=local, address=address,
                     verbose=_state["verbose"])  # fmt: skip


def _with_extract_options(command: Callable) -> Callable:
    """`run` takes every option of `extract`, listed once, in `extract`'s signature, and
    then its own: Typer reads the combined signature."""
    own = signature(command, eval_str=True).parameters
    shared = [p for p in signature(extract, eval_str=True).parameters.values() if p.name not in own]
    keyword = [p for p in own.values() if p.kind is p.KEYWORD_ONLY]
    command.__signature__ = signature(extract).replace(parameters=[*shared, *keyword])
    return command


@app.command()
def train(
    out: opt.Out = T.out,
    backbone: opt.TrainBackbone = T.backbone,
    epochs: opt.Epochs = T.epochs,
    batch_size: opt.HeadBatchSize = T.batch_size,
    hidden: opt.Hidden = T.hidden,
    dropout: opt.Dropout = T.dropout,
    learning_rate: opt.LearningRate = T.learning_rate,
    val_fraction: opt.ValFraction = T.val_fraction,
    seed: opt.Seed = T.seed,
    baselines: opt.Baselines = T.baselines,
    pixel_baselines: opt.PixelBaselines = T.pixel_baselines,
    pixel_epochs: opt.PixelEpochs = T.pixel_epochs,
    data_dir: opt.PixelDataDir = T.data_dir,
    tsne: opt.Tsne = T.tsne,
    retrain: opt.Retrain = T.retrain,
    write_report: Annotated[
        bool, typer.Option("--report/--no-report", help="Then write OUT/report/ (jobs/train.py).")
    ] = False,
    local: opt.Local = False,
    address: opt.Address = None,
) -> None:
    """Fit the dense head (Ray Train) and baselines on stored features."""
    from cifar_ray import commands

    _ray_target(local, address)
    cfg = TrainConfig(
        out=out, backbone=backbone, epochs=epochs, batch_size=batch_size, hidden=hidden,
        dropout=dropout, learning_rate=learning_rate, val_fraction=val_fraction, seed=seed,
        baselines=baselines, pixel_baselines=pixel_baselines, pixel_epochs=pixel_epochs,
        data_dir=data_dir, tsne=tsne, retrain=retrain,
    )  # fmt: skip
    commands.train(
        cfg, local=local, address=address, verbose=_state["verbose"], write_report=write_report
    )


@app.command()
def report(out: opt.Out = DEFAULT_OUT) -> None:
    """Write OUT/report/ from the trained models and metrics."""
    from cifar_ray import commands

    commands.report(out)


@app.command()
@_with_extract_options
def run(
    *,
    epochs: opt.Epochs = T.epochs,
    baselines: opt.Baselines = T.baselines,
    pixel_baselines: opt.PixelBaselines = T.pixel_baselines,
    pixel_epochs: opt.PixelEpochs = T.pixel_epochs,
    tsne: opt.Tsne = T.tsne,
    retrain: opt.Retrain = T.retrain,
    **extraction,  # every option of `extract` (see _with_extract_options)
) -> None:
    """The whole job: extract, train, report."""
    from cifar_ray import commands

    local, address = extraction.pop("local"), extraction.pop("address")
    _ray_target(local, address)
    xcfg = _extract_config(**extraction)
    tcfg = TrainConfig(
        out=xcfg.out, epochs=epochs, seed=xcfg.seed, baselines=baselines,
        pixel_baselines=pixel_baselines, pixel_epochs=pixel_epochs, data_dir=xcfg.data_dir,
        tsne=tsne, retrain=retrain,
    )  # fmt: skip
    commands.run(xcfg, tcfg, local=local, address=address, verbose=_state["verbose"])


app.command(name="neighbours")(commands_audit.neighbours_command)


@app.command()
def inspect(
    path: Annotated[
        str | None, typer.Argument(help="OUT, as --out gives it.", show_default=False)
    ] = None,
    out: opt.Out = DEFAULT_OUT,
    as_json: opt.Json = False,
) -> None:
    """Check a feature store: schema, rows, checksums, fingerprints, missing shards."""
    from cifar_ray import listings

    if path and out != DEFAULT_OUT and path != out:
        raise UserError(f"OUT given twice: {path} and --out {out}; give one")
    if not listings.inspect(path or out, as_json):
        raise typer.Exit(EXIT_FAILED)


app.command(name="bench")(cli_tools.bench)
app.command(name="backbones")(cli_tools.list_backbones)


_received: list[int] = []  # the signals that stopped us, for the exit message and code


def on_stop_signal(signum, frame) -> None:
    """Ctrl-C and SIGTERM both unwind through KeyboardInterrupt, so finally blocks stop Ray."""
    _received.append(signum)
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGINT, on_stop_signal)
    signal.signal(signal.SIGTERM, on_stop_signal)
    code = 0
    try:
        # Standalone: typer prints its own usage errors (usage line, message) and exits 2,
        # whichever click it vendors; an interrupt inside a command becomes exit 130.
        app()
    except SystemExit as exc:
        code = exc.code
    except UserError as exc:
        print(f"cifar-ray: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except ExtractionFailed as exc:
        print(f"cifar-ray: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except StorageError as exc:  # storage failed us: not the user's input, nothing replaced
        print(f"cifar-ray: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:  # a signal outside typer's own handling
        code = EXIT_INTERRUPTED
    if _received or code == EXIT_INTERRUPTED:
        terminated = signal.SIGTERM in _received
        what = "terminated" if terminated else "interrupted"
        hint = RESUME_HINTS.get(_state["command"] or "")
        print(f"cifar-ray: {what}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


def run_job(command: str, *defaults: str) -> None:
    """jobs/*.py: `ray submit` and `ray job submit` start the script on the cluster; join it.

    `defaults` come before the user's options, so the user's own choice wins."""
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if "--local" not in args and not any(a.startswith("--address") for a in args):
        args = ["--address", "auto", *args]
    sys.argv = ["cifar-ray", command, *defaults, *args]
    main()


if __name__ == "__main__":
    main()
