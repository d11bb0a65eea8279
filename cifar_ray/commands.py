"""What each CLI command does, with Ray sessions and progress around the core stages."""

from __future__ import annotations

import logging
from dataclasses import replace

from cifar_ray import progress
from cifar_ray.background import InBackground
from cifar_ray.config import ExtractConfig, TrainConfig
from cifar_ray.errors import ExtractionFailed, StorageError, UserError
from cifar_ray.extract import configs, job
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
        except BaseException:
            launched.shutdown()
            raise
        return _extract(cfgs, dataset, local, address, verbose, launched={first.backbone: launched})


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
        progress.console.print(f"[red]not published[/red] {len(cut)} shard(s): {', '.join(cut)}")
    for key, error in sorted(failed.items()):
        if error != stopped:
            progress.console.print(f"[red]failed[/red] {key}: {error}")
    if stopped:
        raise StorageError(stopped)
    if failed:
        raise ExtractionFailed(failed)
    return summaries


def _extract_one(p: job.ExtractionPlan, pixels, launched=None) -> job.ExtractionSummary:
    if p.temporaries_removed:
        log.warning("removed %d stale temporary files", p.temporaries_removed)
    if p.skipped:
        progress.console.print(
            f"{p.backbone.name}: {p.skipped} of {len(p.shards)} shards already done, skipped"
        )
    total = sum(s.rows for s in p.todo)
    with progress.image_bar(f"embed {p.backbone.name}", total) as advance:
        return job.execute(p, on_shard=lambda record: advance(record.rows), pixels=pixels,
                           launched=launched)  # fmt: skip


def _print_summary(summaries: list[job.ExtractionSummary]) -> None:
    rows = [
        [s.backbone, s.shards, s.computed, s.skipped, len(s.failed), s.images, s.seconds,
         s.images_per_s]
        for s in summaries
    ]  # fmt: skip
    progress.table(
        "extraction",
        ["backbone", "shards", "computed", "skipped", "failed", "images", "seconds", "img/s"],
        rows,
    )


def train(cfg: TrainConfig, *, local: bool, address: str | None, verbose: bool,
          write_report: bool = False) -> dict:  # fmt: skip
    """Every store is checked before Ray starts; training runs in this command's Ray session
    (or `run`'s, already open). With `write_report`, the cluster job ends where `run` does:
    OUT/report/."""
    from cifar_ray.train import runner

    plan = runner.prepare(cfg)
    with ray_session(local, address, verbose):
        from cifar_ray.cluster import check_out_is_shared

        check_out_is_shared(cfg.out)  # the Ray Train worker writes the model to OUT
        results = runner.train_all(plan)
    _print_results(results)
    if write_report:
        report(cfg.out)
    return results


def _print_results(results: dict[str, dict]) -> None:
    from cifar_ray.train.results import models_of

    rows = [
        [backbone, name, m.accuracy["train"], m.accuracy["val"], m.test_accuracy, m.fit_s]
        for backbone, res in results.items()
        for name, m in models_of(res).items()
    ]
    progress.table("models", ["backbone", "model", "train", "val", "test", "fit s"], rows)


def report(out: str) -> None:
    from cifar_ray.report import writer as report_mod

    path = report_mod.write(out)
    rows = report_mod.comparison(report_mod.collect(Location(out)))
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
    progress.console.print(f"report: {path}")


def run(xcfg: ExtractConfig, tcfg: TrainConfig, *, local: bool, address: str | None,
        verbose: bool) -> None:  # fmt: skip
    """One Ray session for extraction and training (each stage's own opens nothing more)."""
    configs.backbone_configs(xcfg, local)  # the user's mistakes, before Ray starts
    with ray_session(local, address, verbose):
        summaries = extract(xcfg, local=local, address=address, verbose=verbose)
        stores = ",".join(s.backbone for s in summaries)  # train what this run extracted
        train(replace(tcfg, backbone=stores), local=local, address=address, verbose=verbose)
    report(xcfg.out)


def inspect(out: str) -> bool:
    """Print what `store.checks` found; True when every store is whole."""
    from cifar_ray.store import checks

    found = checks.inspect(out)
    rows = []
    for store in found:
        name, counts, problems = store.backbone, store.counts, store.problems
        status = "ok" if store.ok else f"{len(problems)} bad"
        # Strays do not make a store bad (training reads only what records name), but a
        # reader of a split folder as a Parquet dataset would see their rows: say so.
        for path in counts.get("strays", []):
            progress.console.print(
                f"[yellow]{name}[/yellow] stray file, not part of the result "
                f"(the next extract removes it): {path}"
            )
        for path in counts.get("temporaries", []):
            progress.console.print(
                f"[yellow]{name}[/yellow] temporary file of an interrupted write "
                f"(the next extract removes it): {path}"
            )
        if counts.get("strays"):
            status += f", {len(counts['strays'])} stray"
        if counts.get("temporaries"):
            status += f", {len(counts['temporaries'])} temporary"
        rows.append(
            [name, *(counts.get(k) for k in ("shards", "rows", "dim", "fingerprint")), status]
        )
        for problem in problems:
            progress.console.print(f"[red]{name}[/red] {problem}")
    progress.table(
        "feature stores", ["backbone", "shards", "rows", "dim", "fingerprint", "status"], rows
    )
    return all(store.ok for store in found)


def list_backbones(files: bool = False) -> None:
    from cifar_ray.embed import backbones

    rows = []
    for name in backbones.names():
        try:
            b = backbones.get(name)
        except UserError as exc:  # an installed plugin that does not load: list the others
            rows.append([name, f"error: {exc}"])
            continue
        if files:
            rows.append([b.name, b.weights_file, b.weights_hash])
        else:
            rows.append([b.name, b.application, b.dim or None, b.default_size, b.min_size,
                         b.preprocessing, b.params_m or None, b.gmacs or None])  # fmt: skip
    columns = (
        ["name", "ImageNet weights file (no top, in ~/.keras/models/)", "Keras file_hash"]
        if files
        else ["name", "source", "dim", "size", "min size", "preprocessing", "params (M)", "GMACs"]
    )
    progress.table("backbones", columns, [r + [None] * (len(columns) - len(r)) for r in rows])
    _list_hub_backbones(files)


def _list_hub_backbones(files: bool) -> None:
    """Keras Hub's image backbone families beside the registry, from its installed tables."""
    from cifar_ray.embed import hub

    try:
        families = hub.families()
    except UserError as exc:  # the extra is not installed: say how to get it
        progress.console.print(f"Keras Hub backbones (--backbone hub:<preset>): {exc}")
        return
    if files:
        progress.console.print("Keras Hub presets (--backbone hub:<preset>): downloaded and "
                               "cached by Keras Hub (kagglehub: KAGGLEHUB_CACHE)")  # fmt: skip
        return
    rows = [["keras-hub", family, len(presets), ", ".join(presets[:3]) or None]
            for family, presets in families]  # fmt: skip
    progress.table("Keras Hub backbones: --backbone hub:<preset> (or a preset directory)",
                   ["source", "family", "presets", "examples"], rows)  # fmt: skip
