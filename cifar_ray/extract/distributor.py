"""Extraction on Ray: a pool of embedder actors, shards streamed through, failures contained.

This is the only Ray-aware part of extraction: `RayBackend` is how the scheduler reaches the
cluster (`scheduler.py` and `actor_pool.py` decide what to do); the work is `worker.ShardWorker`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cifar_ray import progress
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.embed.tfsetup import configure_tensorflow
from cifar_ray.errors import StorageRefused, UserError, first_line
from cifar_ray.extract import preflight
from cifar_ray.extract.embedding_watch import EmbeddingWatch
from cifar_ray.extract.inputs import ShardPixels
from cifar_ray.extract.placement import Placement, request_actors, request_bundles
from cifar_ray.extract.pool import ElasticPool
from cifar_ray.extract.ray_errors import death, task_reason
from cifar_ray.extract.scheduler import (
    ActorDied,
    PoolShape,
    Scheduler,
    StoreFailed,
    TaskFailed,
    shape_for,
)  # fmt: skip
from cifar_ray.extract.watchdog import Watchdog
from cifar_ray.extract.worker import ShardWorker
from cifar_ray.source.cifar import Dataset
from cifar_ray.store.locations import Location
from cifar_ray.store.records import ShardRecord
from cifar_ray.store.shards import Shard

log = logging.getLogger(__name__)


class _RayShardWorker(ShardWorker):
    """Records where it runs and keeps any start-up error, so the driver can report it in one
    line and decide (a raising constructor would only show as a dead actor, its cause lost)."""

    def __init__(self, spec: EmbedderSpec, loc: Location, metadata: dict):
        self.error, self.user_error = None, False
        context = ray.get_runtime_context()
        self.node_id, self.node_ip = context.get_node_id(), ray.util.get_node_ip_address()
        self.gpus = float(context.get_assigned_resources().get("GPU", 0.0))
        try:
            configure_tensorflow(spec.threads)  # before anything can initialise TensorFlow
            super().__init__(spec, loc, metadata, node_id=self.node_id)
        except UserError as exc:
            self.error, self.user_error = str(exc), True
        except Exception as exc:  # OOM on the warm-up batch, a CUDA or import error, skew...
            log.exception("the embedder actor could not start")  # the traceback: Ray's logs
            self.error = first_line(exc)

    def info(self) -> dict:
        where = {"node_id": self.node_id, "node_ip": self.node_ip, "gpus": self.gpus}
        if self.error:
            return {"error": self.error, "user_error": self.user_error, **where}
        return {"error": None, "user_error": False, **super().info(), **where}


def pool_shape(requested: int | None, gpus_per_actor: float) -> PoolShape:
    resources = ray.cluster_resources()
    return shape_for(resources.get("CPU", 1.0), resources.get("GPU", 0.0),
                     len(_work_nodes("CPU")), requested, gpus_per_actor)  # fmt: skip


def _work_nodes(resource: str) -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get(resource)]


class RayBackend:
    """The scheduler's view of a Ray cluster (see `scheduler.Backend`)."""

    def __init__(self, spec: EmbedderSpec, loc: Location, startup: dict, requested: int | None,
                 gpus_per_actor: float, in_flight: int):  # fmt: skip
        self.spec, self.loc, self.startup = spec, loc, startup
        self.requested, self.gpus_per_actor, self.in_flight = requested, gpus_per_actor, in_flight
        self.worker = ray.remote(_RayShardWorker)
        self.pixels: ShardPixels | None = None
        self._metadata = None  # the plan's file metadata, in the object store once
        self.abandoned: list = []  # tickets the scheduler will not read (see drain)
        self.placement = Placement()

    def set_work(self, metadata: dict, pixels: ShardPixels) -> None:
        """What shards need, known once the dataset is read (the actors may be up already)."""
        self.pixels, self._metadata = pixels, ray.put(metadata)

    def shape(self) -> PoolShape:
        return pool_shape(self.requested, self.gpus_per_actor)

    def nodes(self, gpu: bool) -> list[str]:
        return _work_nodes("GPU" if gpu else "CPU")

    def start(self, node_id: str | None, shape: PoolShape):
        """On `node_id` when given (a node that has none of our actors), else spread."""
        spec = EmbedderSpec(**{**self.spec.__dict__, "threads": self.spec.threads or shape.threads})
        where = NodeAffinitySchedulingStrategy(node_id, soft=True) if node_id else "SPREAD"
        name = self.placement.new_name()
        actor = self.worker.options(
            num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, max_restarts=0, max_task_retries=0,
            max_concurrency=self.in_flight + 1, scheduling_strategy=where,  # +1: `embedding`
            name=name,  # Ray's state API finds it by name: is it placed yet? (placement.py)
        ).remote(spec, self.loc, self.startup)  # fmt: skip
        self.placement.names[actor] = name
        return actor, actor.info.remote()

    def placed(self, actor) -> str | None:
        return self.placement.placed(actor)

    def submit(self, actor, shard: Shard):
        return self.pixels.submit(actor, shard, self._metadata)

    def wait(self, tickets: list, timeout: float) -> list:
        if not tickets:
            time.sleep(min(timeout, 0.05))  # nothing to wait on: actors are being placed
            return []
        done, _ = ray.wait(tickets, num_returns=1, timeout=timeout)
        if done and len(tickets) > 1:
            done, _ = ray.wait(tickets, num_returns=len(tickets), timeout=0)
        return done

    def result(self, ticket):
        try:
            return ray.get(ticket)
        except RayActorError as exc:
            raise ActorDied(*death(exc)) from None
        except RayTaskError as exc:
            failed = StoreFailed if isinstance(exc.cause, StorageRefused) else TaskFailed
            raise failed(task_reason(exc)) from None

    def kill(self, actor) -> None:
        ray.kill(actor, no_restart=True)

    def abandon(self, tickets: list) -> None:
        self.abandoned.extend(tickets)

    def drain(self, timeout: float = 5.0) -> None:
        """Read what the scheduler abandoned once its actors are killed, so that Ray does not
        print their errors (a killed or stopped call) as an unhandled error's traceback."""
        if self.abandoned:
            done, _ = ray.wait(self.abandoned, num_returns=len(self.abandoned), timeout=timeout)
            for ticket in done:
                with contextlib.suppress(Exception):
                    ray.get(ticket)
        self.abandoned = []

    def embedding(self, actors: list, timeout: float = 0.5) -> int:
        """Images the actors have embedded in shards still in flight (an actor that does not
        answer in time, or died, counts none: the bar is a view, never the result)."""
        refs = [actor.embedding.remote() for actor in actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout) if refs else ([], [])
        total = 0
        for ref in ready:
            with contextlib.suppress(Exception):
                total += ray.get(ref)
        return total


@dataclass
class Outcome:
    records: list[ShardRecord] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    first_shard_s: float | None = None
    pool_ready_s: float = 0.0  # actors built and warmed up: start-up ends here
    actors_replaced: int = 0
    actors_retired: int = 0  # CPU actors that GPU actors took over from
    actors: list[dict] = field(default_factory=list)  # each actor that came up: node, GPUs
    stopped: str | None = None  # the store refused a write: the job stopped there


@dataclass
class Launch:
    """A pool started before its plan: its actors import TensorFlow and build the model while
    the driver reads the dataset. `startup` is what an actor checks itself against (the
    backbone's name and weights identity); the plan's metadata follows with the shards."""

    backend: RayBackend
    pool: ElasticPool
    requested: bool
    started: float = field(default_factory=time.monotonic)

    @property
    def startup(self) -> dict:
        return self.backend.startup

    def shutdown(self) -> None:
        self.pool.shutdown()
        self.backend.drain()
        if self.requested:
            request_bundles([])  # the request persists until replaced: give it back


def launch(spec: EmbedderSpec, loc: Location, startup: dict, *, actors: int | None,
           gpus_per_actor: float, in_flight: int, start_timeout: float) -> Launch:  # fmt: skip
    """Ask for the actors now; their start-up errors surface when the pool is polled."""
    backend = RayBackend(spec, loc, startup, actors, gpus_per_actor, in_flight)
    preflight.warn_unplaceable(actors, ray.cluster_resources(), gpus_per_actor)
    requested = request_actors(actors, gpus_per_actor)
    try:
        pool = ElasticPool(backend, start_bound_s=start_timeout)
        progress.phase(f"starting {len(pool.starting)} embedder actor(s) for {spec.backbone}: "
                     "each imports TensorFlow and builds the model")  # fmt: skip
        return Launch(backend, pool, requested)
    except BaseException:
        if requested:
            request_bundles([])
        raise


def startup_metadata(metadata: dict) -> dict:
    """The part of a plan's metadata an actor needs to start: no dataset in it."""
    return {k: metadata[k] for k in ("backbone", "weights", "store")}


def run(
    dataset: Dataset,
    todo: list[Shard],
    spec: EmbedderSpec,
    loc: Location,
    metadata: dict,
    *,
    actors: int | None,  # the run's ExtractConfig fields: no second set of defaults here
    gpus_per_actor: float,
    in_flight: int,
    max_retries: int,
    shard_timeout: float | None,
    start_timeout: float,
    on_shard: Callable[[ShardRecord], None] = lambda r: None,
    pixels: ShardPixels | None = None,
    launched: Launch | None = None,
    on_embedding: Callable[[int], None] | None = None,
) -> Outcome:
    """Embed and publish every shard in `todo`; a shard fails only after `max_retries` retries,
    or at once, named, when no actor can start. `launched`: a pool started earlier for this
    spec (it is shut down here either way). `on_embedding(n)`: images embedded in shards
    still in flight, twice a second."""
    started = time.monotonic()
    watch = None
    if launched is not None and launched.startup != startup_metadata(metadata):
        launched.shutdown()  # started for other settings: never mix
        launched = None
    try:
        if launched is None:
            launched = launch(spec, loc, startup_metadata(metadata), actors=actors,
                              gpus_per_actor=gpus_per_actor, in_flight=in_flight,
                              start_timeout=start_timeout)  # fmt: skip
        launched.backend.set_work(metadata, pixels or ShardPixels(dataset))
        pool = launched.pool
        scheduler = Scheduler(pool, launched.backend, in_flight=in_flight,
                              max_retries=max_retries, on_shard=on_shard,
                              watchdog=Watchdog(fixed_s=shard_timeout))  # fmt: skip
        if on_embedding is not None:
            watch = EmbeddingWatch(launched.backend, pool, on_embedding)
        results = scheduler.run(todo)
    finally:
        if watch is not None:
            watch.close()
        if launched is not None:
            launched.shutdown()
    at = lambda t: None if t is None else max(0.0, t - started)  # noqa: E731
    return Outcome(
        records=results.records, failed=results.failed, seconds=time.monotonic() - started,
        first_shard_s=at(results.first_shard_at), pool_ready_s=at(pool.first_ready_at) or 0.0,
        actors_replaced=pool.replaced, actors_retired=pool.retired, actors=pool.started,
        stopped=results.stopped,
    )  # fmt: skip
