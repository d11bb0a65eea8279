"""Training on Ray: the dense head through Ray Train, baselines as parallel Ray tasks.

`prepare` checks every store before Ray starts; `train_all` runs in the Ray session the
command layer opened and returns the results, which the command layer prints."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from cifar_ray import progress
from cifar_ray.config import TrainConfig, as_dict, backbone_names
from cifar_ray.errors import UserError
from cifar_ray.store import checks, latents, locations, quality
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location
from cifar_ray.train import baselines, maps, pixel_baselines, ray_train, reuse, splits
from cifar_ray.train.results import HEAD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """Every store loaded and checked, and the pixels for the raw-pixel baselines: made before
    Ray starts, because a clear refusal beats a failed Ray job."""

    cfg: TrainConfig
    loc: Location
    loaded: dict[str, latents.Latents]
    pixels: dict[str, dict]  # split sizes (_split_key) -> the images behind the latents
    kept: dict[str, dict] = field(default_factory=dict)  # store -> results already up to date
    pixel_models: dict[str, dict] = field(default_factory=dict)  # _split_key -> trained ones


def prepare(cfg: TrainConfig) -> TrainingPlan:
    """The stores named by --backbone (all under OUT when none is named), checked; a store
    whose results are up to date (`reuse`) is kept, not loaded."""
    loc = Location(cfg.out)
    names = backbone_names(cfg.backbone, required=False) or checks.stores(loc)
    if not names:
        raise UserError(f"{loc.uri}: no feature stores; run `cifar-ray extract` first")
    kept, pixel_models = {}, {}
    for name in dict.fromkeys([*names, *checks.stores(loc)]):  # pixel models of any store
        res = reuse.prior(loc, name)
        if name in names and reuse.up_to_date(res, FeatureStore(loc, name).read_manifest(), cfg):
            kept[name] = res
        if res and res.get("split_sizes") and (found := reuse.pixel_models(res, cfg)):
            pixel_models.setdefault(_split_key(res, res["split_sizes"]), found)
    loaded = {name: latents.load(loc, name) for name in names if name not in kept}
    for folder in (Layout(loc).models_dir(), Layout(loc).train_runs()) if loaded else ():
        locations.check_writable(loc, folder, need_bytes=0)  # before Ray: one line, not 46 s
    todo = {k: lat for k, lat in loaded.items() if _lat_key(lat) not in pixel_models}
    pixels = pixel_inputs(cfg, todo) if cfg.pixel_baselines else {}
    return TrainingPlan(cfg, loc, loaded, pixels, kept, pixel_models)


def train_all(plan: TrainingPlan) -> dict[str, dict]:
    """Train every store of the plan that is not up to date, in the Ray session the caller
    opened; backbone -> results (as results.json holds them), the kept ones included."""
    pixel_refs = _start_pixel_baselines(plan.cfg, plan.pixels)
    trained = {}
    for name, lat in plan.loaded.items():
        key = _lat_key(lat)
        trained[name] = train_one(plan.cfg, plan.loc, lat, pixel_refs.get(key, []),
                                  plan.pixel_models.get(key, {}))  # fmt: skip
    return {**plan.kept, **trained}


def _dataset(lat: latents.Latents) -> str:
    return lat.manifest.get("dataset", "cifar10")  # stores made before datasets: CIFAR-10


def _split_key(res_or_manifest: dict, split_sizes: dict) -> str:
    """The stores whose raw-pixel baselines are the same models: same dataset, same sizes."""
    dataset = res_or_manifest.get("dataset", "cifar10")
    return json.dumps([dataset, split_sizes], sort_keys=True)


def _lat_key(lat: latents.Latents) -> str:
    return _split_key(lat.manifest, lat.manifest["split_sizes"])


def pixel_inputs(cfg: TrainConfig, loaded: dict[str, latents.Latents]) -> dict[str, dict]:
    """The images behind the latents, split the same way, per dataset; a dataset whose
    source is gone is skipped with a warning (the backbone models do not need it)."""
    inputs = {}
    for dataset in dict.fromkeys(map(_dataset, loaded.values())):
        group = {k: lat for k, lat in loaded.items() if _dataset(lat) == dataset}
        inputs.update(_dataset_pixels(cfg, dataset, group))
    return inputs


def _dataset_pixels(cfg: TrainConfig, dataset: str, loaded: dict[str, latents.Latents]) -> dict:
    from cifar_ray.source import cifar

    if dataset not in cifar.SOURCES:  # your own images: of any size, not a 32x32 archive
        log.info("raw-pixel baselines are for CIFAR's 32x32 pixels: none for %s", dataset)
        return {}
    first = next(iter(loaded.values()))
    source = cfg.data_dir or first.manifest.get("data_dir")
    try:
        ds = cifar.load(source, dataset=dataset)
    except UserError as exc:
        log.warning("raw-pixel baselines skipped for %s: %s", dataset, exc)
        return {}
    inputs = {}
    for lat in loaded.values():
        sizes = lat.manifest["split_sizes"]
        x = {k: ds.splits[k].images[: sizes[k]] for k in sizes}
        y = {k: ds.splits[k].labels[: sizes[k]] for k in sizes}
        if any(not np.array_equal(y[k], lat.y[k]) for k in sizes):
            raise UserError(f"{source}: labels differ from the {lat.backbone} features; "
                            "pass the --data-dir used for extraction")  # fmt: skip
        inputs[_lat_key(lat)] = {
            **splits.parts(x, y, cfg.val_fraction, cfg.seed),
            "n_classes": len(lat.classes),
        }
    return inputs


def _start_pixel_baselines(cfg: TrainConfig, inputs: dict[str, dict]) -> dict[str, list]:
    import ray

    task = ray.remote(num_cpus=1)(pixel_baselines.run)
    refs = {}
    for key, p in inputs.items():
        put = {k: ray.put(p[k]) for k in ("train", "val", "test")}
        refs[key] = [
            task.remote(
                name,
                put["train"],
                put["val"],
                put["test"],
                p["n_classes"],
                epochs=cfg.pixel_epochs,
                seed=cfg.seed,
            )
            for name in pixel_baselines.CANDIDATES
        ]
    return refs


def train_one(cfg: TrainConfig, loc: Location, lat: latents.Latents, pixel_refs=(),
              pixel_done: dict | None = None) -> dict:  # fmt: skip
    """`pixel_refs`: raw-pixel models training for this dataset; `pixel_done`: or trained."""
    import ray

    refs = _share(splits.latent_parts(lat, cfg.val_fraction, cfg.seed))
    parts = {k: ray.get(ref) for k, ref in refs.items()}  # read-only views of shared memory
    n_classes = len(lat.classes)
    pending = []
    if cfg.baselines:
        task = ray.remote(num_cpus=1)(baselines.run)
        pending = [
            task.remote(name, refs["train"], refs["val"], refs["test"], n_classes)
            for name in baselines.CANDIDATES
        ]
    with progress.status(f"training dense head on {lat.backbone} (Ray Train)"):
        started = time.perf_counter()
        state = ray_train.fit(cfg, loc, lat, refs["train"], refs["val"])
        fit_s = time.perf_counter() - started
    head_result = ray_train.evaluate(loc, lat.backbone, parts, n_classes, state, fit_s)
    models = {HEAD: head_result.to_dict()}
    with progress.status("baselines"):
        for result in ray.get([*pending, *pixel_refs]):
            models[result["name"]] = result
    models.update(pixel_done or {})
    result = {
        "backbone": lat.backbone,  # the store's name: `<backbone>@<dataset>` beyond CIFAR-10
        "dataset": _dataset(lat),
        "fingerprint": lat.manifest["fingerprint"],
        "dim": lat.dim,
        "classes": list(lat.classes),
        "sizes": {k: len(v[1]) for k, v in parts.items()},
        "split_sizes": lat.manifest["split_sizes"],  # what its raw-pixel models were fit on
        "feature_warning": quality.degenerate(lat.manifest.get("shards") or []),
        "train_config": as_dict(cfg),
        "extraction": lat.manifest.get("throughput", {}),
        "models": models,
        "embedding_2d": maps.pca_map(parts["test"], cfg.seed),
    }
    if lat.manifest.get("superclasses"):  # CIFAR-100: what the report groups classes by
        result["superclasses"] = lat.manifest["superclasses"]
        result["fine_to_coarse"] = lat.manifest["fine_to_coarse"]
    if cfg.tsne:
        result["embedding_tsne"] = maps.tsne_map(*parts["test"], cfg.seed)
    body = json.dumps(result, indent=1).encode()
    locations.put_atomic(loc, Layout(loc).results(lat.backbone), body)
    return result


def _share(parts: dict[str, tuple]) -> dict:
    """Into Ray's object store once: the driver, the baselines and the Ray Train worker then
    read the same pages (zero-copy on this node), instead of each reading the Parquet files.
    The driver's own arrays are dropped when this returns."""
    import ray

    return {k: ray.put(v) for k, v in parts.items()}
