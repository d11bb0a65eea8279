"""What each CLI command does, with Ray sessions and progress around the core stages."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from cifar_ray import progress
from cifar_ray.background import InBackground
from cifar_ray.config import AuditConfig, ExtractConfig, TrainConfig, backbone_names
from cifar_ray.errors import ExtractionFailed, StorageError, UserError
from cifar_ray.extract import job
from cifar_ray.ray_runtime import ray_session
from cifar_ray.source import cifar
from cifar_ray.store.locations import Location

log = logging.getLogger(__name__)


def extract(cfg: ExtractConfig, *, local: bool, address: str | None, verbose: bool) -> list:
    """One plan per backbone, all validated before anything is written; then extract each in
    turn. Ray and the first backbone's actors start while the archive is read: the actors'
    TensorFlow import and model build, Ray's start and the read overlap instead of adding up."""
    cfgs = backbone_configs(cfg, local=local)
    first = next((one for one in cfgs if not _looks_done(one)), None)
    progress.phase(f"reading {cfg.dataset} from {cfg.data_dir or 'the download cache'}")
    if first is None or cfg.data_dir is None:  # a finished store, or a download: as before
        return _extract(
            cfgs, cifar.load(cfg.data_dir, cfg.limit, cfg.dataset), local, address, verbose
        )
    # Niced where this machine also starts Ray and the actors (see background.yield_cpu).
    reading = InBackground(cifar.load, cfg.data_dir, cfg.limit, cfg.dataset, nice=local)
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


def backbone_configs(cfg: ExtractConfig, local: bool) -> list[ExtractConfig]:
    """One config per backbone. What a user can get wrong without data (the --out URI,
    unknown backbones, sizes, weights paths, a --data-dir that is no file or folder, options
    this machine cannot hold) fails here, before Ray starts."""
    from cifar_ray.extract import preflight
    from cifar_ray.source.paths import check_data_dir

    Location(cfg.out).check()
    check_data_dir(cfg.data_dir)
    _check_overrides(cfg)
    cfgs = [cfg_for(cfg, name) for name in _each_once(backbone_names(cfg.backbone))]
    sizes = [job.embedder_spec(one)[1].image_size for one in cfgs]
    preflight.check(cfgs, sizes, local=local)
    return cfgs


def check_data_dir(data_dir: str | None) -> None:
    """A --data-dir that is not there or cannot be read is refused by a stat, at once: the
    read itself overlaps Ray's start, so a typo would otherwise cost Ray's start-up first."""
    if data_dir is None:
        return
    path = os.path.expanduser(data_dir)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise UserError(f"--data-dir {data_dir}: no such file or directory") from None
    except OSError as exc:
        raise UserError(f"--data-dir {data_dir}: cannot be read ({exc.strerror})") from None
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise UserError(f"--data-dir {data_dir}: cannot be read (permission denied)")


def _extract(cfgs: list[ExtractConfig], dataset: cifar.Dataset, local: bool, address: str | None,
             verbose: bool, launched: dict | None = None) -> list:  # fmt: skip
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
            from cifar_ray.extract.distributor import ShardPixels

            check_out_is_shared(cfgs[0].out)

            pixels = ShardPixels(dataset, keep=sum(bool(p.todo) for p in plans) > 1)
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


def _each_once(names: list[str]) -> list[str]:
    """`inceptionv3,InceptionV3` names one store: extracted once, under the first spelling.
    A `module:factory` or `hub:` name is kept as written (its case and underscores matter)."""
    from cifar_ray.embed import backbones

    first = {}
    for name in names:
        first.setdefault(name if ":" in name else backbones.key(name), name)
    return list(first.values())


def _looks_done(cfg: ExtractConfig) -> bool:
    """A store whose manifest says it is complete most likely has nothing to do: do not start
    Ray for it ahead of the plan (the plan decides; a wrong guess only costs the overlap)."""
    from cifar_ray.embed import backbones
    from cifar_ray.store.features import FeatureStore
    from cifar_ray.store.layout import store_name

    if cfg.overwrite:
        return False
    try:
        name = store_name(backbones.get(cfg.backbone).name, cfg.dataset)
        manifest = FeatureStore(Location(cfg.out), name).read_manifest()
    except Exception:  # unreadable storage: the plan says so, in one line
        return False
    return bool(manifest and manifest.get("complete"))


def cfg_for(cfg: ExtractConfig, backbone: str) -> ExtractConfig:
    """One backbone's config, with its own image size where `name=N` gave one."""
    from cifar_ray.embed import backbones

    overrides = {backbones.key(name): size for name, size in cfg.image_size_overrides}
    size = overrides.get(backbones.key(backbone), cfg.image_size)
    return replace(cfg, backbone=backbone, image_size=size, image_size_overrides=())


def _check_overrides(cfg: ExtractConfig) -> None:
    """A typo in `name=N` must not be ignored silently; a known but unused name is fine."""
    from cifar_ray.embed import backbones

    for name, _ in cfg.image_size_overrides:
        backbones.get(name)


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
        [s.backbone, s.shards, s.computed, s.skipped, len(s.failed), s.images, s.seconds,
         s.images_per_s]
        for s in summaries
    ]  # fmt: skip
    columns = ["backbone", "shards", "computed", "skipped", "failed", "images", "seconds"]
    progress.table("extraction", [*columns, "img/s whole job"], rows)


def train(cfg: TrainConfig, *, local: bool, address: str | None, verbose: bool,
          write_report: bool = False) -> dict:  # fmt: skip
    """Every store is checked before Ray starts; training runs in this command's Ray session
    (or `run`'s, already open). With `write_report`, the cluster job ends where `run` does:
    the audit of the trained stores (OUT/index/), then OUT/report/."""
    from cifar_ray.train import runner

    plan = runner.prepare(cfg)
    with ray_session(local, address, verbose):
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
    from cifar_ray.train.results import models_of

    rows = [
        [backbone, name, m.accuracy["train"], m.accuracy["val"], m.test_accuracy, m.fit_s]
        for backbone, res in results.items()
        for name, m in models_of(res).items()
    ]
    progress.table("models", ["backbone", "model", "train", "val", "test", "fit s"], rows)


def report(out: str) -> None:
    from cifar_ray.report import audit_section
    from cifar_ray.report import writer as report_mod

    path = report_mod.write(out)
    loc = Location(out)
    results = report_mod.collect(loc)
    rows = report_mod.comparison(results, audit_section.collect(loc, results))
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
    """One Ray session for extraction and training (each stage's own opens nothing more)."""
    backbone_configs(xcfg, local)  # the user's mistakes, before Ray starts
    with ray_session(local, address, verbose):
        summaries = extract(xcfg, local=local, address=address, verbose=verbose)
        stores = ",".join(s.backbone for s in summaries)  # train what this run extracted
        train(replace(tcfg, backbone=stores), local=local, address=address, verbose=verbose)
    audit(xcfg.out, stores, xcfg.data_dir, address, verbose)
    report(xcfg.out)
