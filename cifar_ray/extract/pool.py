"""An embedder actor pool that follows the cluster: work goes only to actors that are up,
nodes that join get actors, GPU actors replace CPU ones when GPUs arrive, actors that cannot be
placed any more are given up, and a job whose actors cannot start at all ends. No Ray here:
the cluster is reached through `scheduler.Backend`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cifar_ray import progress
from cifar_ray.config import ACTOR_START_TIMEOUT_S
from cifar_ray.errors import UserError
from cifar_ray.extract.scheduler import ActorDied, Backend, NoActorCouldStart, PoolShape
from cifar_ray.extract.watchdog import WAITING_SAY_EVERY_S

log = logging.getLogger(__name__)

PLACEMENT_TIMEOUT_S = 120.0  # a replacement not placed by then, while others work: cluster shrank
RESIZE_EVERY_S = 5.0  # how often to compare the pool with what the cluster can hold (cheap)
MAX_START_FAILURES = 3  # failed starts in a row, none up: the job cannot run anywhere


class ElasticPool:
    """The actors, by state: `starting` (asked for, not up), `ready` (take shards) and
    `retiring` (finish their shards, then stop). `poll()` moves them along; the scheduler
    calls `lost()` when one dies and `release_retired()` when its shards are back."""

    def __init__(
        self,
        backend: Backend,
        clock: Callable[[], float] = time.monotonic,
        max_start_failures: int = MAX_START_FAILURES,
        start_bound_s: float = ACTOR_START_TIMEOUT_S,
    ):
        self.backend, self.clock, self.max_start_failures = backend, clock, max_start_failures
        self.start_bound_s = start_bound_s  # placed, not ready by then: a failed start
        self.placed_at: dict = {}  # starting actor -> (clock() when first seen placed, node)
        self.ready: list = []
        self.starting: dict = {}  # actor -> (its info ticket, when it was asked for)
        self.retiring: list = []  # CPU actors a GPU actor replaced: no new work, then killed
        self.node_of: dict = {}  # actor -> the node it runs on, or was asked to
        self.gpu_of: dict = {}  # actor -> whether it holds a GPU
        self.ip_of: dict = {}  # actor -> its node's address, once it is up
        self.warmup_s: dict = {}  # actor -> seconds from being asked for to up: the watchdog's
        self.bad_nodes: set[str] = set()  # nodes where an actor failed to start while others work
        self.start_failures: list[str] = []  # since an actor last started well
        self.started: list[dict] = []  # the info of every actor that came up
        self.replaced = self.retired = 0
        self.digest: str | None = None
        self.first_ready_at: float | None = None  # clock() when the first was up
        self._resized_at = self._said_waiting_at = self._created_at = self.clock()
        self._grow()

    # --- growing with the cluster -------------------------------------------------------------
    def _start(self, node_id: str | None, shape: PoolShape) -> None:
        actor, ticket = self.backend.start(node_id, shape)
        self.node_of[actor], self.gpu_of[actor] = node_id, shape.gpu
        self.starting[actor] = (ticket, self.clock())

    def _grow(self) -> None:
        """Start what the cluster's shape asks for; newcomers go to nodes that have none of our
        actors of that kind, so a node that joins gets one. When the shape turns to GPUs, the
        CPU actors are no longer counted: GPU actors are started and CPU ones retired."""
        shape = self.backend.shape()
        own = [a for a in [*self.ready, *self.starting] if self.gpu_of[a] == shape.gpu]
        missing = shape.actors - len(own)
        if missing <= 0:
            return
        taken = {self.node_of.get(a) for a in own} | self.bad_nodes
        free = [n for n in self.backend.nodes(shape.gpu) if n not in taken]
        for i in range(missing):
            if i >= len(free) and self.bad_nodes:
                break  # placed anywhere, it could land on a node where actors cannot start
            if self.ready or self.start_failures:
                log.info("starting another %s actor", "GPU" if shape.gpu else "CPU")
            self._start(free[i] if i < len(free) else None, shape)

    def _retire_cpu_actors(self) -> None:
        """Each GPU actor that is up retires one CPU actor: a starting one is stopped at once,
        a working one gets no new shards and is stopped when its shards are back."""
        gpu_up = sum(1 for a in self.ready if self.gpu_of[a])
        while self.retired < gpu_up:
            cpu = [a for a in self.starting if not self.gpu_of[a]]
            cpu += [a for a in self.ready if not self.gpu_of[a]]
            if not cpu:
                return
            actor = cpu[0]
            self.retired += 1
            log.info("a GPU actor is up: retiring a CPU actor")
            if actor in self.starting:
                self._kill(actor)
            else:
                self.ready.remove(actor)
                self.retiring.append(actor)

    def release_retired(self, busy: set) -> None:
        """Stop retired actors whose shards are all back (in flight ones finish or are retried)."""
        for actor in [a for a in self.retiring if a not in busy]:
            self.retiring.remove(actor)
            self._kill(actor)

    # --- the loop's entry point ---------------------------------------------------------------
    def poll(self) -> None:
        """Promote actors that finished starting; drop unplaceable ones; follow the cluster."""
        if self.starting:
            tickets = {ticket: actor for actor, (ticket, _) in self.starting.items()}
            for ticket in self.backend.wait(list(tickets), 0):
                self._promote(tickets[ticket], ticket)
        now = self.clock()
        self._bound_starts(now)
        for actor, (_, since) in list(self.starting.items()):
            if actor not in self.placed_at and self.ready and now - since > PLACEMENT_TIMEOUT_S:
                log.warning("gave up on an actor the cluster could not place")
                self._kill(actor)
        if now - self._resized_at > RESIZE_EVERY_S:
            self._resized_at = now
            self._grow()
        self._retire_cpu_actors()
        self._say_what_it_waits_for(now)

    def _bound_starts(self, now: float) -> None:
        """An actor on a node whose constructor never returns (a stopped process, a hung
        driver) is a failed start: killed, replaced, and a few in a row end the job."""
        for actor in list(self.starting):
            if actor not in self.placed_at:
                node = self.backend.placed(actor)
                if node is not None:
                    self.placed_at[actor] = (now, node)
                continue
            since, node = self.placed_at[actor]
            if now - since > self.start_bound_s:
                error = (f"not ready {now - since:.0f} s after it was placed (bound "
                         f"{self.start_bound_s:.0f} s): stuck while starting")  # fmt: skip
                self._start_failed(actor, error, node, self.node_of.get(actor))

    def _say_what_it_waits_for(self, now: float) -> None:
        """An actor the cluster cannot place yet (no GPU node up, or none big enough) is not a
        failure, as the autoscaler may still bring one; but the user must not wait in silence."""
        if self.ready or not self.starting or now - self._said_waiting_at < WAITING_SAY_EVERY_S:
            return
        since = now - min(when for _, when in self.starting.values())
        if since < WAITING_SAY_EVERY_S:
            return
        self._said_waiting_at = now
        placed = sum(1 for a in self.starting if a in self.placed_at)
        if placed:
            log.warning("no actor is up after %.0f s: %d actor(s) placed, still starting (building"
                        " the model; bound %.0f s)", since, placed, self.start_bound_s)  # fmt: skip
            return
        shape = self.backend.shape()
        log.warning("no actor is up after %.0f s: waiting for the cluster to place %d actor(s) "
                    "of {CPU: %s, GPU: %s}", since, len(self.starting), shape.num_cpus,
                    shape.num_gpus)  # fmt: skip

    def starting_tickets(self) -> list:
        """What starting actors will answer when they are up: something to wait on."""
        return [ticket for ticket, _ in self.starting.values()]

    def where(self, actor) -> str:
        """The actor's node, as the user can find it: its address where known."""
        return self.ip_of.get(actor) or self.node_of.get(actor) or "unknown"

    def _promote(self, actor, ticket) -> None:
        _, asked_at = self.starting.pop(actor)
        self.placed_at.pop(actor, None)
        try:
            info = self.backend.result(ticket)
        except ActorDied as exc:  # its process died while starting: a crash or its node left
            node = self.node_of.get(actor)
            self._start_failed(actor, f"its process died: {exc}", exc.node_ip or node, node)
            return
        if info.get("user_error"):
            raise UserError(info["error"])
        if info["error"]:
            shown = info.get("node_ip") or info.get("node_id")
            self._start_failed(actor, info["error"], shown, info.get("node_id"))
            return
        if self.digest and info["digest"] != self.digest:
            raise RuntimeError("actors built different weights; refusing to mix their features")
        self.digest = info["digest"]
        self.node_of[actor], self.ip_of[actor] = info["node_id"], info.get("node_ip")
        self.warmup_s[actor] = self.clock() - asked_at
        self.ready.append(actor)
        self.started.append(info)
        self.start_failures.clear()
        if self.first_ready_at is None:
            self.first_ready_at = self.clock()
            progress.phase(f"first actor ready after {self.first_ready_at - self._created_at:.1f} s"
                         f" (model built on {info.get('node_ip') or 'this node'})")  # fmt: skip

    def _start_failed(self, actor, error: str, shown: str | None, node_id: str | None) -> None:
        """With actors at work, a node where actors cannot start gets no more of them; with
        none, a few failures in a row end the job instead of retrying forever."""
        self._kill(actor)
        where = f"{error} (node {shown or 'unknown'})"
        if self.ready:
            log.warning("an actor could not start: %s; no more actors on that node", where)
            if node_id:
                self.bad_nodes.add(node_id)
            return
        self.start_failures.append(where)
        log.warning("an actor could not start (%d of %d): %s", len(self.start_failures),
                    self.max_start_failures, where)  # fmt: skip
        if len(self.start_failures) >= self.max_start_failures:
            raise NoActorCouldStart(self.start_failures[0])
        self._grow()  # try again now, not at the next resize

    def lost(self, actor) -> None:
        """An actor died: replace it unless the cluster no longer has room for it."""
        if actor in self.retiring:
            self.retiring.remove(actor)
            self._kill(actor)
            return
        if actor not in self.ready:
            return
        self.ready.remove(actor)
        self._kill(actor)
        self.replaced += 1
        self._grow()

    def _kill(self, actor) -> None:
        self.starting.pop(actor, None)
        self.placed_at.pop(actor, None)
        self.node_of.pop(actor, None)
        self.ip_of.pop(actor, None)
        self.warmup_s.pop(actor, None)
        self.backend.kill(actor)

    def shutdown(self) -> None:
        for actor in [*self.ready, *self.starting, *self.retiring]:
            self.backend.kill(actor)
        self.ready, self.starting, self.retiring, self.node_of = [], {}, [], {}
