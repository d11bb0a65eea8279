"""What a re-run need not train again: a store's results are kept when they were made from
the same features (the store's fingerprint) with the same training options, as extraction
keeps a finished shard. Raw-pixel models depend on the dataset and its split, not on the
backbone: trained once, then taken from any results that hold them."""

from __future__ import annotations

import json

from cifar_ray.config import TrainConfig, as_dict
from cifar_ray.store import locations
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location
from cifar_ray.train import baselines, pixel_baselines
from cifar_ray.train.results import HEAD, PIXEL_KIND

# Options that do not change what a model learns: where things are, and what to train.
NOT_TRAINING = ("out", "backbone", "data_dir", "retrain")
PIXEL_OPTIONS = ("seed", "val_fraction", "pixel_epochs")  # what the raw-pixel models depend on


def training_options(train_config: dict) -> dict:
    return {k: v for k, v in train_config.items() if k not in NOT_TRAINING}


def prior(loc: Location, store: str) -> dict | None:
    """The store's results.json as written, or None (absent, or not a results object: it is
    then trained again, and rewritten)."""
    try:
        raw = locations.get_bytes(loc, Layout(loc).results(store))
        res = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return res if isinstance(res, dict) and isinstance(res.get("models"), dict) else None


def expected_models(cfg: TrainConfig) -> set[str]:
    names = {HEAD}
    if cfg.baselines:
        names |= set(baselines.CANDIDATES)
    if cfg.pixel_baselines:
        names |= set(pixel_baselines.CANDIDATES)
    return names


def up_to_date(res: dict | None, manifest: dict | None, cfg: TrainConfig) -> bool:
    """Same features, same options, every model asked for, each with its test predictions
    (results written before they were kept cannot give the audit's cleaned score): nothing to
    train."""
    if cfg.retrain or not res or not manifest or not manifest.get("complete"):
        return False
    wanted = expected_models(cfg)
    return (
        res.get("fingerprint") == manifest.get("fingerprint")
        and training_options(res.get("train_config") or {}) == training_options(as_dict(cfg))
        and wanted <= set(res["models"])
        and all(
            isinstance(res["models"][n], dict)
            and res["models"][n].get("test_predictions") is not None
            for n in wanted
        )
    )


def pixel_models(res: dict | None, cfg: TrainConfig) -> dict[str, dict]:
    """The raw-pixel models of earlier results trained with the same pixel options."""
    if cfg.retrain or not res:
        return {}
    made_with = res.get("train_config") or {}
    if any(made_with.get(k) != getattr(cfg, k) for k in PIXEL_OPTIONS):
        return {}
    found = {
        n: m
        for n, m in res["models"].items()
        if m.get("kind") == PIXEL_KIND and m.get("test_predictions") is not None
    }
    return found if set(pixel_baselines.CANDIDATES) <= set(found) else {}
