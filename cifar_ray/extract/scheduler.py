"""Which shard goes to which actor, and what happens when actors or shards fail; no Ray here.

The cluster is reached through a narrow `Backend` (start an actor, submit a shard, wait, kill),
so these rules run in plain unit tests against a fake; `extraction.RayBackend` is the real one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cifar_ray.config import ExtractConfig
from cifar_ray.extract.watchdog import Watchdog
from cifar_ray.store.shards import Shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolShape:
    actors: int
    num_cpus: float
    num_gpus: float
    threads: int  # TensorFlow threads per actor: the cores it really has

    @property
    def gpu(self) -> bool:
        return self.num_gpus > 0


def shape_for(
    cpus: float, gpus: float, cpu_nodes: int, requested: int | None, gpus_per_actor: float
) -> PoolShape:
    """One actor per GPU where there are GPUs; on CPU one per node, leaving CPU for the driver."""
    if gpus > 0:
        actors = requested or max(1, int(gpus / gpus_per_actor))
        return PoolShape(actors, 1.0, gpus_per_actor, max(1, int(cpus / actors)))
    nodes = max(1, cpu_nodes)
    actors = requested or nodes
    num_cpus = min(1.0, max(0.25, (cpus - 1) / actors))  # a 2-core box must not deadlock
    threads = max(1, int(cpus / nodes) // max(1, actors // nodes))
    return PoolShape(actors, round(num_cpus, 2), 0.0, threads)


class ActorDied(Exception):
    """The actor's process is gone (its node left, it was killed, it crashed)."""

    def __init__(self, reason: str, node_ip: str | None = None):
        self.node_ip = node_ip
        super().__init__(reason)


class TaskFailed(Exception):
    """The call raised inside a live actor."""


class StoreFailed(TaskFailed):
    """The call could not write to the store for a reason no retry changes (a full disk, a
    read-only filesystem): every other shard would fail the same way."""


class NoActorCouldStart(Exception):
    """Every actor the job started failed to start, and none is up: waiting would never end."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"no actor could start: {reason}")


Actor = Hashable
Ticket = Hashable


class Backend(Protocol):
    """What the scheduler needs from a cluster. Tickets are waited on and then read once."""

    def shape(self) -> PoolShape:
        """The pool the cluster holds now (it changes as nodes join or leave)."""

    def nodes(self, gpu: bool) -> list[str]:
        """Live nodes that can host an actor of that kind."""

    def start(self, node_id: str | None, shape: PoolShape) -> tuple[Actor, Ticket]:
        """Start an actor (on `node_id`, softly, when given); the ticket yields its `info`:
        {"error": str | None, "user_error": bool, "digest", "node_id", "node_ip", "gpus"}."""

    def placed(self, actor: Actor) -> str | None:
        """The node a starting actor is placed on, its constructor running (None: the cluster
        has not found room for it yet): only a placed actor's start is bounded."""

    def submit(self, actor: Actor, shard: Shard) -> Ticket: ...

    def wait(self, tickets: list[Ticket], timeout: float) -> list[Ticket]:
        """Those of `tickets` that are done, waiting up to `timeout` for the first one."""

    def result(self, ticket: Ticket) -> Any:
        """The ticket's value; raises ActorDied or TaskFailed."""

    def kill(self, actor: Actor) -> None: ...

    def abandon(self, tickets: list[Ticket]) -> None:
        """Tickets the scheduler will not read (their actor was stuck, or the job stopped)."""


@dataclass
class Results:
    records: list = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    first_shard_at: float | None = None  # clock() when the first shard came back
    stuck: int = 0  # actors the watchdog killed
    stopped: str | None = None  # why the job stopped early: the store refused a write


class Scheduler:
    """Streams shards through the pool's ready actors until each is done or failed for good.

    An actor's first shard runs alone: two at once would finish together, later, and the first
    published shard is what a user watches for (299 px: 9.0 s instead of 11.8). An actor takes
    a second shard only while the queue holds one for every ready actor, so at the end no actor
    sits on two shards while another has none (1,000 images on 2 actors: 0.72 of the
    baseline's rate without this rule).
    """

    def __init__(
        self,
        pool,  # actor_pool.ElasticPool
        backend: Backend,
        *,
        in_flight: int = ExtractConfig.in_flight,
        max_retries: int = ExtractConfig.max_retries,
        on_shard: Callable[[Any], None] = lambda r: None,
        clock: Callable[[], float] = time.monotonic,
        watchdog: Watchdog | None = None,
    ):
        self.pool, self.backend = pool, backend
        self.watchdog = watchdog or Watchdog()
        self.sent_at: dict = {}  # ticket -> clock() when it was submitted
        self.in_flight, self.max_retries, self.on_shard, self.clock = (
            in_flight, max_retries, on_shard, clock,
        )  # fmt: skip
        self.queue: deque[Shard] = deque()
        self.attempts: Counter[str] = Counter()
        self.running: dict = {}  # ticket -> (actor, shard)
        self.proven: set = set()  # actors that have returned a shard
        self.results = Results()

    def run(self, todo: list[Shard]) -> Results:
        self.queue.extend(todo)
        while self.queue or self.running:
            try:
                self.pool.poll()
            except NoActorCouldStart as exc:
                self._fail_all(str(exc))
                break
            self._dispatch()
            # Wake for an actor that finishes starting too, not only for a shard: it gets work
            # at once (waiting on shards alone left a new actor idle for up to 0.5 s).
            done = self.backend.wait([*self.running, *self.pool.starting_tickets()], 0.5)
            for ticket in done:
                if ticket in self.running:  # else an actor is up: the next poll() promotes it
                    self._collect(ticket)
            self.pool.release_retired(self.busy_actors())
            self._watch()
        return self.results

    def busy_actors(self) -> set:
        return {actor for actor, _ in self.running.values()}

    def _dispatch(self) -> None:
        for actor in list(self.pool.ready):
            busy = sum(1 for a, _ in self.running.values() if a is actor)
            while self.queue:
                deep = actor in self.proven and len(self.queue) >= len(self.pool.ready)
                if busy >= (self.in_flight if deep else 1):
                    break
                shard = self.queue.popleft()
                ticket = self.backend.submit(actor, shard)
                self.running[ticket], self.sent_at[ticket] = (actor, shard), self.clock()
                self.watchdog.sent(actor, self.sent_at[ticket], idle=busy == 0)
                busy += 1

    def _collect(self, ticket) -> None:
        actor, shard = self.running.pop(ticket)
        self.sent_at.pop(ticket, None)
        try:
            record = self.backend.result(ticket)
        except ActorDied as exc:
            self.watchdog.forget(actor)
            self.pool.lost(actor)
            self._retry(shard, f"actor died: {exc}")
            return
        except StoreFailed as exc:  # stop: what is in flight is cut short, nothing more starts
            self.results.stopped = str(exc)
            self.results.failed[shard.key] = str(exc)
            self._fail_all(str(exc), say=False)  # the command's last line says it
            return
        except TaskFailed as exc:
            self.watchdog.answered(actor, self.clock(), ok=False)
            self._retry(shard, str(exc))
            return
        self.watchdog.answered(actor, self.clock(), ok=True)
        self.proven.add(actor)
        if self.results.first_shard_at is None:
            self.results.first_shard_at = self.clock()
        self.results.records.append(record)
        self.on_shard(record)

    def _watch(self) -> None:
        """Cancel what stuck actors hold (killing the actor cancels its calls), and while
        nothing comes back say, once a minute, what the job waits for."""
        now = self.clock()
        for actor, quiet, bound in self.watchdog.stuck(self.busy_actors(), now, self.pool.warmup_s):
            self._cancel(actor, quiet, bound)
        if self.running and self.watchdog.time_to_say(now):
            held = ", ".join(
                f"{shard.key} on node {self.pool.where(actor)} ({now - self.sent_at[t]:.0f} s)"
                for t, (actor, shard) in self.running.items()
            )
            log.warning("nothing has come back for %.0f s; waiting for %s; %d shard(s) queued, "
                        "%d actor(s) starting", now - self.watchdog.last_result_at, held,
                        len(self.queue), len(self.pool.starting))  # fmt: skip

    def _cancel(self, actor, quiet: float, bound: float) -> None:
        where = self.pool.where(actor)
        held = [t for t, (a, _) in self.running.items() if a is actor]
        self.backend.abandon(held)
        shards = [self.running.pop(t)[1] for t in held]
        for t in held:
            self.sent_at.pop(t, None)
        self.watchdog.forget(actor)
        self.pool.lost(actor)  # killed (its calls with it) and replaced
        self.results.stuck += 1
        for shard in shards:
            self._retry(shard, f"stuck: no progress for {quiet:.0f} s on node {where} (bound "
                               f"{bound:.0f} s); its actor was killed and replaced")  # fmt: skip

    def _retry(self, shard: Shard, error: str) -> None:
        self.attempts[shard.key] += 1
        if self.attempts[shard.key] > self.max_retries:
            self.results.failed[shard.key] = error
            log.error("shard %s failed after %d attempts: %s", shard.key,
                      self.attempts[shard.key], error)  # fmt: skip
        else:
            log.warning("retrying shard %s (%s)", shard.key, error)
            self.queue.append(shard)

    def _fail_all(self, error: str, say: bool = True) -> None:
        """Nothing can run the shards still to do: each is named with the reason."""
        if say:
            log.error("%s", error)
        self.backend.abandon(list(self.running))
        for _, shard in self.running.values():
            self.results.failed[shard.key] = error
        for shard in self.queue:
            self.results.failed[shard.key] = error
        self.running.clear()
        self.queue.clear()
