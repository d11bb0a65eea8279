"""What each CLI command does, with Ray sessions and progress around the core stages."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

from cifar_ray import progress
from cifar_ray.background import InBackground
from cifar_ray.config import AuditConfig, ExtractConfig, TrainConfig
from cifar_ray.errors import ExtractionFailed, StorageError
from cifar_ray.extract import configs, job, own_images
from cifar_ray.ray_runtime import ray_session
from cifar_ray.source import cifar
from cifar_ray.store.locations import Location

log = logging.getLogger(__name__)


def extract(cfg: ExtractConfig, *, local: bool, address: str | None, verbose: bool) -> list:
    """One plan per backbone, all validated before anything is written; then extract each in
    turn. Ray and the first backbone's actors start while the archive is read: the actors'
    TensorFlow import and model build, Ray's start and the read overlap instead of adding up."""
    cfgs = configs.backbone_configs(cfg, local=local)
    from cifar_ray.store import lease

    with lease.held(Location(cfg.out), [job.store_of(one) for one in cfgs]):
        return _extract_all(cfg, cfgs, local, address, verbose)


def _extract_all(cfg: ExtractConfig, cfgs: list[ExtractConfig], local: bool,
                 address: str | None, verbose: bool) -> list:  # fmt: skip
    first = next((one for one in cfgs if not configs.looks_done(one)), None)
    where = cfg.data or cfg.data_dir or "the download cache"
    progress.phase(f"reading {own_images.dataset_key(cfg)} from {where}")
    if first is None or (cfg.data_dir is None and cfg.data is None):  # done, or a download
        return _extract(cfgs, own_images.load(cfg), local, address, verbose)
    # Niced where this machine also starts Ray and the actors (see background.yield_cpu).
    reading = InBackground(own_images.load, cfg, nice=local)
    with ray_session(local, address, verbose):
        from cifar_ray.cluster import check_out_is_shared

        check_out_is_shared(cfg.out)
        launched = job.launch(first)
        try:
            dataset = reading.result()  # archive errors first, with nothing written
            progress.phase(f"read {sum(len(s.labels) for s in dataset.splits.values())} images")
        except BaseException:
            launched.shutdown()
            raise
        return _extract(cfgs, dataset, local, address, verbose, launched={first.backbone: launched})


def _extract(cfgs: list[ExtractConfig], dataset: own_images.Dataset, local: bool,
             address: str | None, verbose: bool, launched: dict | None = None) -> list:  # fmt: skip
    launched = dict(launched or {})
    try:
        plans = [job.prepare(one, dataset) for one in cfgs]
    except BaseException:
        for pool in launched.values():
            pool.shutdown()
        raise
    summaries = []
    if any(p.todo for p in plans):
        with ray_session(local, address, verbose):  # already open when actors were launched
            from cifar_ray.cluster import check_out_is_shared
            from cifar_ray.extract.inputs import ShardPixels

            check_out_is_shared(cfgs[0].out)

            keep = sum(bool(p.todo) for p in plans) > 1
            pixels = ShardPixels(dataset, keep) if isinstance(dataset, cifar.Dataset) else None
            for p in plans:
                summaries.append(_extract_one(p, pixels, launched.pop(p.cfg.backbone, None)))
                if summaries[-1].storage_error:  # the next store would be refused the same
                    break
    else:
        summaries = [job.execute(p, launched=launched.pop(p.cfg.backbone, None)) for p in plans]
    _print_summary(summaries)
    failed = {f"{s.backbone}/{k}": v for s in summaries for k, v in s.failed.items()}
    stopped = next((s.storage_error for s in summaries if s.storage_error), None)
    cut = sorted(k for k, v in failed.items() if v == stopped)  # one reason: said once, below
    if cut:
        progress.say(f"{len(cut)} shard(s): {', '.join(cut)}", tag="not published", style="red")
    for key, error in sorted(failed.items()):
        if error != stopped:
            progress.say(f"{key}: {error}", tag="failed", style="red")
    if stopped:
        raise StorageError(stopped)
    if failed:
        raise ExtractionFailed(failed)
    return summaries


def _extract_one(p: job.ExtractionPlan, pixels, launched=None) -> job.ExtractionSummary:
    if p.temporaries_removed:
        log.warning("removed %d stale temporary files", p.temporaries_removed)
    if p.skipped:
        done = f"{p.skipped} of {len(p.shards)} shards already done, skipped"
        progress.say(f"{p.backbone.name}: {done}")
    total = sum(s.rows for s in p.todo)
    with progress.image_bar(f"embed {p.backbone.name}", total) as bar:
        return job.execute(p, on_shard=lambda record: bar.done(record.rows), pixels=pixels,
                           launched=launched, on_embedding=bar.embedding)  # fmt: skip


def _print_summary(summaries: list[job.ExtractionSummary]) -> None:
    rows = [
        [s.backbone, s.shards, s.computed, s.skipped, len(s.failed), s.images, s.bad_images,
         s.seconds, s.images_per_s]
        for s in summaries
    ]  # fmt: skip
    columns = ["backbone", "shards", "computed", "skipped", "failed", "images", "bad images",
               "seconds"]  # fmt: skip
    progress.table("extraction", [*columns, "img/s whole job"], rows)
    for s in summaries:
        if s.warning:
            progress.say(s.warning, tag=f"warning: {s.backbone}", style="yellow")


def train(cfg: TrainConfig, *, local: bool, address: str | None, verbose: bool,
          write_report: bool = False) -> dict:  # fmt: skip
    """Every store is checked before Ray starts; training runs in this command's Ray session
    (or `run`'s, already open). With `write_report`, the cluster job ends where `run` does:
    the audit of the trained stores (OUT/index/), then OUT/report/."""
    from cifar_ray.train import reuse, runner

    plan = runner.prepare(cfg)
    if plan.kept:
        kept = sum(len(res["models"]) for res in plan.kept.values())
        every = kept + len(plan.loaded) * len(reuse.expected_models(cfg))
        progress.say(f"{kept} of {every} models already trained, skipped (--retrain trains "
                     "them again)")  # fmt: skip
    results = dict(plan.kept)
    if plan.loaded:
        from cifar_ray.store import lease

        with (
            lease.held(Location(cfg.out), list(plan.loaded), kind="train"),
            ray_session(local, address, verbose),
        ):
            from cifar_ray.cluster import check_out_is_shared

            check_out_is_shared(cfg.out)  # the Ray Train worker writes the model to OUT
            results = runner.train_all(plan)
    _print_results(results)
    if write_report:
        audit(cfg.out, ",".join(results), cfg.data_dir, address, verbose)
        report(cfg.out)
    return results


def audit(out: str, stores: str, data_dir: str | None, address: str | None,
          verbose: bool) -> None:  # fmt: skip
    """`cifar-ray neighbours` on the stores a run made, before its report."""
    from cifar_ray.commands_audit import neighbours

    neighbours(AuditConfig(out=out, backbone=stores, data_dir=data_dir), address=address,
               verbose=verbose)  # fmt: skip


def _print_results(results: dict[str, dict]) -> None:
    """Raw-pixel models once per dataset (every store of a dataset holds the same ones)."""
    from cifar_ray.train.results import PIXEL_KIND, models_of

    rows, pixels = [], {}
    for backbone, res in results.items():
        for name, m in models_of(res).items():
            row = [backbone, name, m.accuracy["train"], m.accuracy["val"], m.test_accuracy,
                   m.fit_s]  # fmt: skip
            if m.kind != PIXEL_KIND:
                rows.append(row)
            else:
                pixels.setdefault((res.get("dataset", "cifar10"), name), row)
    rows += [[f"raw pixels ({dataset})", *row[1:]] for (dataset, _), row in pixels.items()]
    progress.table("models", ["backbone", "model", "train", "val", "test", "fit s"], rows)


def report(out: str) -> None:
    import json

    from cifar_ray.report import writer as report_mod
    from cifar_ray.store import locations
    from cifar_ray.store.layout import Layout

    path = report_mod.write(out)
    loc = Location(out)  # the table is the one the report holds (its files read once)
    rows = json.loads(locations.get_bytes(loc, Layout(loc).report_file("metrics.json")))
    rows = rows["comparison"]
    fixed = ["backbone", "dim", "images_per_s", "extraction_s"]
    shown = ["backbone", "dim", "img/s", "extract s"]
    if any("dataset" in r for r in rows):  # OUT holds more than one dataset
        fixed, shown = ["dataset", *fixed], ["dataset", *shown]
    models = sorted({k for r in rows for k in r} - set(fixed))
    progress.table(
        "comparison (test accuracy)",
        [*shown, *models],
        [[r.get(k) for k in (*fixed, *models)] for r in rows],
    )
    progress.result(f"report: {path}")


def run(xcfg: ExtractConfig, tcfg: TrainConfig, *, local: bool, address: str | None,
        verbose: bool) -> None:  # fmt: skip
    """One Ray session for extraction and training (each stage's own opens nothing more).
    A re-run whose stores are extracted leaves Ray to the stages: with nothing to train
    either, it starts no Ray at all and writes the report."""
    cfgs = configs.backbone_configs(xcfg, local)  # the user's mistakes, before Ray starts
    done = all(configs.looks_done(one) for one in cfgs)
    with contextlib.nullcontext() if done else ray_session(local, address, verbose):
        summaries = extract(xcfg, local=local, address=address, verbose=verbose)
        stores = ",".join(s.backbone for s in summaries)  # train what this run extracted
        train(replace(tcfg, backbone=stores), local=local, address=address, verbose=verbose)
    audit(xcfg.out, stores, xcfg.data_dir, address, verbose)
    report(xcfg.out)
