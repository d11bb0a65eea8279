"""Checks that only matter on a multi-machine Ray cluster."""

from __future__ import annotations

import os

from cifar_ray.errors import UserError
from cifar_ray.store.locations import Location

# Set to 1 when a local --out path is a network filesystem mounted at that path on every node.
SHARED_FS_ENV = "CIFAR_RAY_SHARED_FS"


def check_out_is_shared(out_uri: str) -> None:
    """Refuse a local --out on a cluster that spans machines: each would keep its own shards.

    Call inside the Ray session, before any work. Ray nodes on one machine (a laptop, a test
    cluster) share its disk, so machines are counted by node address, not nodes.
    """
    if not Location(out_uri).is_local or os.environ.get(SHARED_FS_ENV) == "1":
        return
    import ray

    if not ray.is_initialized():
        return
    hosts = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
    if len(hosts) > 1:
        raise UserError(
            f"--out {out_uri} is a local path but this Ray cluster spans {len(hosts)} machines, "
            "so each node would write its shards to its own disk; use shared storage such as "
            f"s3://bucket/prefix (or set {SHARED_FS_ENV}=1 if that path is a filesystem every "
            "node mounts)"
        )
