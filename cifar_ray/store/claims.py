"""What a store claims to hold, read the one way every command reads it."""

from __future__ import annotations

from cifar_ray.errors import UserError
from cifar_ray.store.features import REPLACE_STORE, FeatureStore
from cifar_ray.store.layout import FINGERPRINT
from cifar_ray.store.records import corrupt


def read_claim(store: FeatureStore, replacing: bool = False) -> tuple[dict | None, dict | None]:
    """(manifest, fingerprint), each None when absent, checked against each other: the one
    way `extract`, `inspect`, `train` and `report` read what a store claims to hold. A
    fingerprint that is garbage, not an object, or another store's (its id is not the
    manifest's) is a UserError naming the file; with `replacing` it reads as {}."""
    try:
        manifest = store.read_manifest()
    except UserError:
        if not replacing:
            raise
        manifest = None  # replaced as a whole: the new run rewrites it
    claimed = store.read_fingerprint(replacing)
    if manifest is not None and claimed and claimed["id"] != manifest["fingerprint"]:
        if replacing:
            return manifest, {}
        problem = f"it names {claimed['id']}, the manifest {manifest['fingerprint']}"
        raise corrupt(f"{store.dir}/{FINGERPRINT}", problem, REPLACE_STORE)
    return manifest, claimed
