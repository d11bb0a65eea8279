"""`cifar-ray neighbours`: the audit of every store (`cifar_ray.audit`), its table, and
the Ray session when the search fans out to a cluster."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

import typer

from cifar_ray import cli_options as opt
from cifar_ray import progress
from cifar_ray.config import DEFAULT_OUT, AuditConfig, backbone_names
from cifar_ray.errors import UserError
from cifar_ray.store.locations import Location

A = AuditConfig  # every option's default is one of its fields


def neighbours(cfg: AuditConfig, *, address: str | None = None, verbose: bool = False) -> dict:
    """Audit every store named (all under OUT when none is): in this process, or, joined to
    the cluster at `address`, a training split too big for this machine's memory (or every
    one, `--fan-out`) searched by Ray tasks where its blocks are read."""
    from cifar_ray.audit import fanout, pixels
    from cifar_ray.audit.run import audit_store
    from cifar_ray.store import checks

    if cfg.data_dir is not None:  # named by the user: refused, not skipped with a warning
        from cifar_ray.source.paths import check_data_dir

        check_data_dir(cfg.data_dir)
    loc = Location(cfg.out).check()
    names = backbone_names(cfg.backbone, required=False) or checks.stores(loc)
    if not names:
        raise UserError(f"{loc.uri}: no feature stores; run `cifar-ray extract` first")
    pixels_for = pixels.cifar_pixels_for(cfg.data_dir)
    audits = {}
    with contextlib.ExitStack() as stack:
        remote = None
        if address:
            from cifar_ray.ray_runtime import ray_session

            stack.enter_context(ray_session(False, address, verbose))
            remote = fanout.ray_searcher(cfg.base_block, cfg.query_block)
        for name in names:
            with progress.status(f"neighbours of {name}"):
                audits[name] = audit_store(loc, name, cfg, pixels_for, remote)
    _print_audits(audits)
    return audits


def _print_audits(audits: dict[str, dict]) -> None:
    from cifar_ray.audit.threshold import NO_CLUSTER

    rows = []
    for name, a in audits.items():
        c, t, index = a["counts"], a["threshold"], a["index"]
        recall = index.get("recall_at_k") if index["kind"] == "approximate" else None
        rows.append([name, a["sizes"]["test"], c["test_images_with_duplicate"],
                     c["test_pairs"]["exact"], c["test_pairs"]["near"],
                     c["train_pairs"]["exact"] + c["train_pairs"]["near"],
                     f"{t['value']:.4f} ({t['chosen']})", index["kind"],
                     recall, a["seconds"]])  # fmt: skip
    progress.table(
        "near-duplicates (test images with a duplicate in train)",
        ["store", "test", "leaked", "exact pairs", "near pairs", "train pairs", "threshold",
         "index", "recall@k", "seconds"],
        rows,
    )  # fmt: skip
    for name, a in audits.items():
        if a["threshold"]["chosen"] == "none":
            progress.say(f"near-duplicates not called: {NO_CLUSTER}", tag=name, style="yellow")
        if not a["exact_duplicates"].startswith("pixel"):
            progress.say(f"exact duplicates {a['exact_duplicates']}", tag=name, style="yellow")


def neighbours_command(
    out: Annotated[str, typer.Argument(help="Output folder or URI.")] = DEFAULT_OUT,
    backbone: opt.AuditStores = A.backbone,
    data_dir: opt.AuditDataDir = A.data_dir,
    k: opt.K = A.k,
    duplicate_threshold: opt.DuplicateThreshold = A.duplicate_threshold,
    index: opt.IndexKind = A.index,
    within_train: opt.WithinTrain = A.within_train,
    address: opt.AuditAddress = None,
    fan_out: opt.FanOut = A.fan_out,
) -> None:
    """Nearest training images of every test image, near-duplicates across splits (OUT/index/)."""
    if fan_out and not address:  # it would search in this process and say nothing
        raise UserError("--fan-out needs --address (a Ray cluster to run the search on)")
    cfg = AuditConfig(
        out=out, backbone=backbone, data_dir=data_dir, k=k, index=index,
        duplicate_threshold=duplicate_threshold, within_train=within_train, fan_out=fan_out,
    )  # fmt: skip
    neighbours(cfg, address=address, verbose=logging.getLogger().level < logging.WARNING)
