"""One config per backbone, and what `extract` checks of them before Ray starts."""

from __future__ import annotations

from dataclasses import replace

from cifar_ray.config import ExtractConfig, backbone_names
from cifar_ray.embed import backbones
from cifar_ray.extract import job, preflight
from cifar_ray.source.cifar import check_source, source
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location


def backbone_configs(cfg: ExtractConfig, local: bool) -> list[ExtractConfig]:
    """One config per backbone. What a user can get wrong without data (the --out URI,
    unknown backbones, sizes, weights paths, a --data-dir that is no file or folder, options
    this machine cannot hold) fails here, before Ray starts."""
    Location(cfg.out).check()
    check_source(cfg.data_dir, source(cfg.dataset))
    check_overrides(cfg)
    cfgs = [cfg_for(cfg, name) for name in _each_once(backbone_names(cfg.backbone))]
    sizes = [job.embedder_spec(one)[1].image_size for one in cfgs]
    preflight.check(cfgs, sizes, local=local)
    return cfgs


def _each_once(names: list[str]) -> list[str]:
    """`inceptionv3,InceptionV3` names one store: extracted once, under the first spelling.
    A `module:factory` or `hub:` name is kept as written (its case and underscores matter)."""
    first = {}
    for name in names:
        first.setdefault(name if ":" in name else backbones.key(name), name)
    return list(first.values())


def looks_done(cfg: ExtractConfig) -> bool:
    """A store whose manifest says it is complete most likely has nothing to do: do not start
    Ray for it ahead of the plan (the plan decides; a wrong guess only costs the overlap)."""
    if cfg.overwrite:
        return False
    try:
        manifest = FeatureStore(Location(cfg.out), job.store_of(cfg)).read_manifest()
    except Exception:  # unreadable storage: the plan says so, in one line
        return False
    return bool(manifest and manifest.get("complete"))


def cfg_for(cfg: ExtractConfig, backbone: str) -> ExtractConfig:
    """One backbone's config, with its own image size where `name=N` gave one."""
    overrides = {backbones.key(name): size for name, size in cfg.image_size_overrides}
    size = overrides.get(backbones.key(backbone), cfg.image_size)
    return replace(cfg, backbone=backbone, image_size=size, image_size_overrides=())


def check_overrides(cfg: ExtractConfig) -> None:
    """A typo in `name=N` must not be ignored silently; a known but unused name is fine."""
    for name, _ in cfg.image_size_overrides:
        backbones.get(name)
