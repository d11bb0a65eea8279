"""Which fingerprint a run writes under: the store's own, a refusal (for your own images,
saying how the input's files moved), or a fresh store."""

from __future__ import annotations

from cifar_ray.embed import fingerprint
from cifar_ray.errors import UserError
from cifar_ray.extract import own_images
from cifar_ray.store.claims import read_claim
from cifar_ray.store.features import FeatureStore


def check_fingerprint(store: FeatureStore, fields: dict, overwrite: bool,
                      dataset: own_images.Dataset | None = None) -> tuple[dict, str]:  # fmt: skip
    """The fingerprint this run writes under: the store's own, or a refusal, or (with
    --overwrite) a fresh store. Storage that cannot be read raises StorageError here,
    before anything is deleted."""
    fid = fingerprint.fingerprint_id(fields)
    _, existing = read_claim(store, replacing=overwrite)  # corrupt + --overwrite: {}
    if existing is None or existing.get("id") == fid:
        return fields, fid
    legacy = _legacy(store, existing, fields) or _same_weights(existing, fields)
    if legacy:
        return legacy, existing["id"]
    if overwrite:  # replaced when this run has published (execute's cleanup), not before:
        return fields, fid  # a later backbone's error, or an actor that cannot start, keeps it
    own_images.check_listing(store, existing, fields, dataset)  # your images: what moved
    differs = sorted(k for k in fields if existing.get(k) != fields[k])
    raise UserError(
        f"{store.dir} holds features made differently ({', '.join(differs) or 'fingerprint'}); "
        "use --overwrite to replace them or another --out"
    )


def _same_weights(existing: dict, fields: dict) -> dict | None:
    """The same settings with the same weights named differently (a weights file copied to
    another path, or made before files were known by their bytes alone): the store resumes
    under its own fingerprint."""
    mine = {**fields, "weights": existing.get("weights")}
    if existing.get("id") != fingerprint.fingerprint_id(mine):
        return None
    same = fingerprint.same_weights(existing.get("weights") or {}, fields["weights"])
    return mine if same else None


def _legacy(store: FeatureStore, existing: dict, fields: dict) -> dict | None:
    """A store made before split sizes were in the fingerprint, with these settings and
    (by its manifest) these split sizes: it resumes under its own fingerprint."""
    old = {k: v for k, v in fields.items() if k != "split_sizes"}
    if "split_sizes" in existing or existing.get("id") != fingerprint.fingerprint_id(old):
        return None
    manifest = store.read_manifest() or {}
    return old if manifest.get("split_sizes") == fields["split_sizes"] else None
