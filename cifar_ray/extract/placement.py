"""Where actors go: what to ask the autoscaler for, and whether a starting actor is placed on a
node (its constructor running) or still waits for room; the pool bounds only the former's
start (see pool.ElasticPool._bound_starts)."""

from __future__ import annotations

import logging
import time
import uuid

import ray
from ray.util import state

from cifar_ray import ray_runtime

log = logging.getLogger(__name__)

ASK_EVERY_S = 5.0  # the state API is a call to the head node: not on every 0.5 s poll


class Placement:
    """Names each actor so that Ray's state API can say where it is, asking now and then."""

    def __init__(self):
        self.names: dict = {}  # actor -> its Ray name
        self.asked_at: dict = {}

    @staticmethod
    def new_name() -> str:
        return f"cifar-ray-embedder-{uuid.uuid4().hex}"

    def placed(self, actor) -> str | None:
        name, now = self.names.get(actor), time.monotonic()
        if name is None:
            return None
        if ray_runtime.started_locally():  # one node, no autoscaler: placed at once
            return ray.util.get_node_ip_address()
        if now - self.asked_at.get(name, -ASK_EVERY_S) < ASK_EVERY_S:
            return None
        self.asked_at[name] = now
        return placed_on(name)


def placed_on(name: str) -> str | None:
    """On a cluster: Ray's id of the node the actor named `name` runs on (a process there runs
    its constructor), or None while Ray has not placed it or cannot say (a state API error is
    not a stuck actor). With --local, `Placement.placed` answers without asking."""
    try:
        found = state.list_actors(
            filters=[("name", "=", name)], raise_on_missing_output=False, timeout=5
        )
    except Exception:  # the state API is best effort here: no answer is not stuck
        return None
    for actor in found:
        if actor.state in ("PENDING_CREATION", "ALIVE") and actor.pid and actor.node_id:
            return actor.node_id
    return None


def autoscaler_bundles(actors: int | None, gpus_per_actor: float, local: bool) -> list[dict]:
    """What to ask the autoscaler for: with `--actors N` on a cluster, N bundles of a GPU
    actor's shape, so a job submitted before any GPU worker is up brings them up (a cluster
    that has no such node type, or no autoscaler, leaves the request unmet and harmless).
    Nothing on an embedded Ray, or without --actors (the pool follows the cluster it finds)."""
    if local or not actors:
        return []
    return [{"CPU": 1.0, "GPU": gpus_per_actor} for _ in range(actors)]


def request_actors(actors: int | None, gpus_per_actor: float) -> bool:
    bundles = autoscaler_bundles(actors, gpus_per_actor, ray_runtime.started_locally())
    if bundles:
        log.info("asking the autoscaler for %d GPU actor(s)", len(bundles))
        request_bundles(bundles)
    return bool(bundles)


def request_bundles(bundles: list[dict]) -> None:
    from ray.autoscaler.sdk import request_resources

    try:
        request_resources(bundles=bundles)
    except Exception as exc:  # a hint only: a cluster without an autoscaler must still run
        log.warning("could not ask the autoscaler for resources: %s", exc)
