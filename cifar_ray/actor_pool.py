"""An embedder actor pool that follows the cluster: work goes only to actors that are up,
nodes that join get actors, and actors that cannot be placed any more are given up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import ray
from ray.exceptions import RayActorError

from cifar_ray.errors import UserError

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 120.0  # a replacement not placed by then, while others work: cluster shrank
RESIZE_EVERY_S = 5.0  # how often to compare the pool with what the cluster can hold (cheap)


class ElasticPool:
    """`make(node_id | None)` starts an actor (on that node if given); `target()` is how many
    the cluster holds now; `nodes()` the nodes that can host one."""

    def __init__(
        self,
        make: Callable[[str | None], object],
        target: Callable[[], int],
        nodes: Callable[[], list[str]] = list,
    ):
        self.make, self.target, self.nodes = make, target, nodes
        self.ready: list = []
        self.starting: dict = {}  # actor -> (its info() ref, when it was asked for)
        self.node_of: dict = {}  # actor -> the node it runs on, or was asked to
        self.digest: str | None = None
        self.first_ready_at: float | None = None  # perf_counter() when the first was up
        self._resized_at = time.monotonic()
        for _ in range(target()):
            self._start()

    def _start(self, node_id: str | None = None) -> None:
        actor = self.make(node_id)
        self.node_of[actor] = node_id
        self.starting[actor] = (actor.info.remote(), time.monotonic())

    def _grow(self) -> None:
        """Newcomers go to nodes that have none of our actors: a node that joins gets one."""
        missing = self.target() - len(self.ready) - len(self.starting)
        if missing <= 0:
            return
        taken = {self.node_of.get(a) for a in [*self.ready, *self.starting]}
        free = [n for n in self.nodes() if n not in taken]
        for i in range(missing):
            log.info("the cluster grew: starting another actor")
            self._start(free[i] if i < len(free) else None)

    def poll(self) -> None:
        """Promote actors that finished starting; drop unplaceable ones; grow with the cluster."""
        if self.starting:
            refs = {ref: actor for actor, (ref, _) in self.starting.items()}
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in done:
                self._promote(refs[ref], ref)
        now = time.monotonic()
        for actor, (_, since) in list(self.starting.items()):
            if self.ready and now - since > PLACEMENT_TIMEOUT_S:
                log.warning("gave up on an actor the cluster could not place")
                self._kill(actor)
        if now - self._resized_at > RESIZE_EVERY_S:
            self._resized_at = now
            self._grow()

    def starting_refs(self) -> list:
        """What starting actors will answer when they are up: something to wait on."""
        return [ref for ref, _ in self.starting.values()]

    def _promote(self, actor, ref) -> None:
        del self.starting[actor]
        try:
            info = ray.get(ref)
        except RayActorError:  # died while starting (its node went away): resizing decides
            self.node_of.pop(actor, None)
            return
        if info["error"]:
            raise UserError(info["error"])
        if self.digest and info["digest"] != self.digest:
            raise RuntimeError("actors built different weights; refusing to mix their features")
        self.digest = info["digest"]
        self.node_of[actor] = info["node_id"]
        self.ready.append(actor)
        self.first_ready_at = self.first_ready_at or time.perf_counter()

    def lost(self, actor) -> None:
        """An actor died: replace it unless the cluster no longer has room for it."""
        if actor not in self.ready:
            return
        self.ready.remove(actor)
        self._kill(actor)
        if len(self.ready) + len(self.starting) < max(1, self.target()):
            self._start()

    def _kill(self, actor) -> None:
        self.starting.pop(actor, None)
        self.node_of.pop(actor, None)
        ray.kill(actor, no_restart=True)

    def shutdown(self) -> None:
        for actor in [*self.ready, *self.starting]:
            ray.kill(actor, no_restart=True)
        self.ready, self.starting, self.node_of = [], {}, {}
