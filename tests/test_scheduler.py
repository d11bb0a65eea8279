"""The scheduling rules against a fake cluster: no Ray, a fake clock, milliseconds per test."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from cifar_ray.errors import UserError
from cifar_ray.extract import pool
from cifar_ray.extract.placement import autoscaler_bundles
from cifar_ray.extract.pool import ElasticPool
from cifar_ray.extract.scheduler import ActorDied, PoolShape, Scheduler, TaskFailed, shape_for
from cifar_ray.extract.watchdog import Watchdog
from cifar_ray.store.shards import Shard

START_S, SHARD_S = 2.3, 1.0  # fake seconds: an actor's start-up, one shard on one actor


@dataclass(eq=False)
class FakeActor:
    id: int
    node: str
    gpu: bool
    fails: str | None = None  # "error", "user", "dies": how its start goes wrong
    dead: bool = False
    free_at: float = 0.0  # one device: shards run one after another
    running: int = 0
    returned: int = 0  # shards it has handed back


@dataclass(eq=False)
class Ticket:
    actor: FakeActor
    done_at: float
    shard: Shard | None = None  # None: the actor's start
    outcome: str = "ok"  # "ok", "fail", "die"


@dataclass
class FakeCluster:
    """A scheduler.Backend: nodes with CPUs or GPUs, actors that start and embed in fake time."""

    nodes_: dict = field(default_factory=lambda: {"n1": {"cpus": 1, "gpus": 0}})
    requested: int | None = None
    now: float = 0.0
    start_fails: dict = field(default_factory=dict)  # node -> "error" | "user" | "dies"
    shard_fails: set = field(default_factory=set)  # shard keys that always raise
    shard_dies: set = field(default_factory=set)  # shard keys whose actor dies, first time only
    actors: list = field(default_factory=list)
    submitted: list = field(default_factory=list)  # (actor, shard, when)
    tickets: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    abandoned: list = field(default_factory=list)  # tickets the scheduler will never read
    unplaced: bool = False  # actors wait for room (an autoscaler) instead of being placed
    _ids: itertools.count = field(default_factory=itertools.count)

    def clock(self) -> float:
        return self.now

    def shape(self) -> PoolShape:
        cpus = sum(n["cpus"] for n in self.nodes_.values())
        gpus = sum(n["gpus"] for n in self.nodes_.values())
        cpu_nodes = sum(1 for n in self.nodes_.values() if n["cpus"])
        return shape_for(cpus, gpus, cpu_nodes, self.requested, 1.0)

    def nodes(self, gpu: bool) -> list[str]:
        return [k for k, n in self.nodes_.items() if n["gpus" if gpu else "cpus"]]

    def start(self, node_id, shape):
        node = node_id or min(self.nodes(shape.gpu), key=self._load)
        actor = FakeActor(next(self._ids), node, shape.gpu, self.start_fails.get(node))
        self.actors.append(actor)
        ticket = Ticket(actor, self.now + START_S)
        self.tickets.append(ticket)
        return actor, ticket

    def placed(self, actor) -> str | None:
        return None if self.unplaced else f"ip-{actor.node}"

    def _load(self, node: str) -> int:
        return sum(1 for a in self.actors if a.node == node and not a.dead)

    def submit(self, actor, shard):
        if actor.returned == 0 and actor.running:
            self.violations.append(f"actor {actor.id} got a second shard before its first")
        actor.running += 1
        actor.free_at = max(self.now, actor.free_at) + SHARD_S
        outcome = "ok"
        if shard.key in self.shard_fails:
            outcome = "fail"
        elif shard.key in self.shard_dies:
            self.shard_dies.discard(shard.key)
            outcome = "die"
        ticket = Ticket(actor, actor.free_at, shard, outcome)
        self.tickets.append(ticket)
        self.submitted.append((actor, shard, self.now))
        return ticket

    def wait(self, tickets, timeout):
        if self.now > 3600:  # the old pool retried failed starts for ever: fail, not hang
            raise AssertionError("the job ran for an hour of fake time")
        done = [t for t in tickets if t.done_at <= self.now]
        if not done:
            pending = [t.done_at for t in tickets]
            self.now = min([*pending, self.now + timeout]) if pending else self.now + timeout
            done = [t for t in tickets if t.done_at <= self.now]
        return done

    def result(self, ticket):
        actor = ticket.actor
        if ticket.shard is None:
            if actor.dead or actor.fails == "dies":
                actor.dead = True
                raise ActorDied("The actor died unexpectedly before finishing this task.")
            if actor.fails:
                where = {"node_id": actor.node, "node_ip": f"ip-{actor.node}", "gpus": 0.0}
                return {"error": "RuntimeError: boom", "user_error": actor.fails == "user", **where}
            return {"error": None, "user_error": False, "digest": "d", "node_id": actor.node,
                    "node_ip": f"ip-{actor.node}", "gpus": float(actor.gpu)}  # fmt: skip
        actor.running -= 1
        if actor.dead or ticket.outcome == "die":
            self._die(actor)
            raise ActorDied("worker process exited")
        if ticket.outcome == "fail":
            raise TaskFailed(f"injected failure for shard {ticket.shard.key}")
        actor.returned += 1
        return (ticket.shard.key, actor.node, actor.id)

    def _die(self, actor) -> None:
        actor.dead = True
        for t in self.tickets:  # what it still had in flight fails now
            if t.actor is actor and t.done_at > self.now:
                t.done_at, t.outcome = self.now, "die"

    def kill(self, actor) -> None:
        if not actor.dead:
            self._die(actor)

    def abandon(self, tickets) -> None:
        self.abandoned.extend(tickets)


def _shards(n: int, split: str = "train") -> list[Shard]:
    return [Shard(split, i, i * 10, (i + 1) * 10) for i in range(n)]


def _run(cluster: FakeCluster, todo: list[Shard], **kw):
    pool = ElasticPool(cluster, clock=cluster.clock)
    scheduler = Scheduler(pool, cluster, clock=cluster.clock, **kw)
    results = scheduler.run(todo)
    pool.shutdown()
    return pool, results


def _keys(results) -> list[str]:
    return sorted(r[0] for r in results.records)


# --- dispatch ----------------------------------------------------------------------------------
class FairCluster(FakeCluster):
    """Checks the tail rule on every wait: no actor sits on a queued shard while another is idle."""

    scheduler = None

    def wait(self, tickets, timeout):
        if self.scheduler and not self.scheduler.queue:
            busy = [a.running for a in self.scheduler.pool.ready]
            if busy and max(busy) >= 2 and min(busy) == 0:
                self.violations.append(f"at {self.now}: in flight per actor {busy}")
        return super().wait(tickets, timeout)


def test_first_shard_alone_and_no_actor_holds_two_while_another_has_none():
    cluster = FairCluster(nodes_={"n1": {"cpus": 1, "gpus": 0}, "n2": {"cpus": 1, "gpus": 0}})
    pool = ElasticPool(cluster, clock=cluster.clock)
    scheduler = Scheduler(pool, cluster, clock=cluster.clock, in_flight=2)
    cluster.scheduler = scheduler
    results = scheduler.run(_shards(9))
    assert _keys(results) == sorted(s.key for s in _shards(9)) and not results.failed
    assert not cluster.violations, cluster.violations
    per_actor = {a.id: a.returned for a in cluster.actors}
    assert sorted(per_actor.values()) in ([4, 5], [5, 4]), per_actor  # shared evenly
    assert {a.node for a in cluster.actors} == {"n1", "n2"}  # one per node, by affinity


def test_failing_shard_is_retried_up_to_max_then_named():
    cluster = FakeCluster(shard_fails={"train-00001"})
    _, results = _run(cluster, _shards(3), max_retries=2)
    assert results.failed == {"train-00001": "injected failure for shard train-00001"}
    assert _keys(results) == ["train-00000", "train-00002"]
    assert [s.key for _, s, _ in cluster.submitted].count("train-00001") == 3  # 1 + 2 retries


def test_dead_actor_is_replaced_and_its_shard_retried():
    cluster = FakeCluster(shard_dies={"train-00002"})
    pool, results = _run(cluster, _shards(5))
    assert _keys(results) == sorted(s.key for s in _shards(5)) and not results.failed
    assert pool.replaced == 1 and len(cluster.actors) == 2
    first, second = cluster.actors
    assert first.dead and ("train-00002", "n1", second.id) in results.records


# --- start failures ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["error", "dies"])
def test_actors_that_cannot_start_end_the_job_with_every_shard_named(how):
    cluster = FakeCluster(start_fails={"n1": how})
    _, results = _run(cluster, _shards(4))
    assert len(cluster.actors) == pool.MAX_START_FAILURES  # then it stops trying
    assert not results.records and sorted(results.failed) == [s.key for s in _shards(4)]
    reason = set(results.failed.values())
    expected = (
        "no actor could start: RuntimeError: boom (node ip-n1)"
        if how == "error"
        else "no actor could start: its process died: The actor died unexpectedly before "
        "finishing this task. (node n1)"
    )
    assert reason == {expected}
    assert all(a.dead for a in cluster.actors)


def test_a_user_error_in_the_actor_is_a_user_error():
    cluster = FakeCluster(start_fails={"n1": "user"})
    with pytest.raises(UserError, match="boom"):
        _run(cluster, _shards(2))


def test_a_node_where_actors_cannot_start_is_left_out_while_others_work():
    cluster = FakeCluster(
        nodes_={"good": {"cpus": 1, "gpus": 0}, "bad": {"cpus": 1, "gpus": 0}},
        start_fails={"bad": "error"},
    )
    pool, results = _run(cluster, _shards(40))  # 20+ fake seconds: several resizes
    assert _keys(results) == sorted(s.key for s in _shards(40)) and not results.failed
    assert [a.node for a in cluster.actors].count("bad") == 1  # no second try on that node
    assert pool.bad_nodes == {"bad"}
    assert {r[1] for r in results.records} == {"good"}


# --- following the cluster ---------------------------------------------------------------------
@dataclass
class GrowingCluster(FakeCluster):
    """After `at` fake seconds, the node `joins` names joins."""

    at: float = 6.0
    joins: tuple = ("n2", {"cpus": 1, "gpus": 0})

    def wait(self, tickets, timeout):
        done = super().wait(tickets, timeout)
        if self.now >= self.at and self.joins[0] not in self.nodes_:
            self.nodes_[self.joins[0]] = self.joins[1]
        return done


def test_a_node_that_joins_gets_an_actor_that_takes_shards():
    cluster = GrowingCluster()
    _, results = _run(cluster, _shards(30))
    assert _keys(results) == sorted(s.key for s in _shards(30)) and not results.failed
    assert [a.node for a in cluster.actors] == ["n1", "n2"]  # by affinity to the newcomer
    assert {r[1] for r in results.records} == {"n1", "n2"}
    newcomer = cluster.actors[1]
    up = next(t.done_at for t in cluster.tickets if t.actor is newcomer and t.shard is None)
    first = min(when for a, _, when in cluster.submitted if a is newcomer)
    assert first == up  # woken by the actor coming up, not by the next shard of another


def test_gpu_node_that_joins_gets_a_gpu_actor_and_the_cpu_actor_retires():
    cluster = GrowingCluster(joins=("g1", {"cpus": 1, "gpus": 1}))
    pool, results = _run(cluster, _shards(30))
    assert _keys(results) == sorted(s.key for s in _shards(30)) and not results.failed
    cpu, gpu = cluster.actors
    assert (cpu.node, cpu.gpu, gpu.node, gpu.gpu) == ("n1", False, "g1", True)
    assert pool.retired == 1 and cpu.dead
    gpu_up = min(t.done_at for t in cluster.tickets if t.actor is gpu and t.shard is None)
    late = [s for a, s, when in cluster.submitted if a is cpu and when >= gpu_up]
    cpu_after = [t for t in cluster.tickets if t.actor is cpu and t.shard and t.done_at > gpu_up]
    assert not late and len(cpu_after) <= 2  # only what it had in flight, then nothing new
    assert {r[1] for r in results.records} == {"n1", "g1"}  # the GPU actor did the rest
    assert {p["gpus"] for p in pool.started} == {0.0, 1.0}


def test_shape_follows_the_cluster():
    assert shape_for(2, 0, 1, None, 1.0) == PoolShape(1, 1.0, 0.0, 2)
    assert shape_for(2, 0, 1, 2, 1.0).num_cpus == 0.5  # two actors on 2 cores leave the driver
    assert shape_for(9, 2, 3, None, 1.0) == PoolShape(2, 1.0, 1.0, 4)
    assert shape_for(9, 2, 3, None, 0.5).actors == 4


def test_autoscaler_is_asked_for_gpu_actors_only_with_actors_on_a_cluster():
    assert autoscaler_bundles(3, 1.0, local=False) == [{"CPU": 1.0, "GPU": 1.0}] * 3
    assert autoscaler_bundles(2, 0.5, local=False) == [{"CPU": 1.0, "GPU": 0.5}] * 2
    assert autoscaler_bundles(3, 1.0, local=True) == []
    assert autoscaler_bundles(None, 1.0, local=False) == []


def test_with_no_actor_placed_the_pool_says_what_it_waits_for(caplog):
    """An actor the cluster cannot place (no node big enough yet) is waited for, not failed,
    but the user hears what the job waits for, once a minute, not on every poll."""
    cluster = FakeCluster(nodes_={"n1": {"cpus": 1, "gpus": 0}}, unplaced=True)
    start = FakeCluster.start

    def unplaceable(self, node_id, shape):
        actor, ticket = start(self, node_id, shape)
        ticket.done_at = float("inf")
        return actor, ticket

    cluster.start = unplaceable.__get__(cluster)
    actors = ElasticPool(cluster, clock=cluster.clock)
    for _ in range(300):  # five fake minutes, a poll a second
        cluster.now += 1.0
        actors.poll()
    said = [r.getMessage() for r in caplog.records if "waiting for the cluster" in r.message]
    assert len(said) == 5 and not actors.ready
    assert said[0].startswith("no actor is up after 60 s") and "1 actor(s)" in said[0]


# --- a start that never ends -------------------------------------------------------------------
def _never_ready(cluster: FakeCluster, nodes: set[str]) -> None:
    """Actors started on `nodes` are placed but their constructor never returns (SIGSTOP)."""
    start = FakeCluster.start

    def stuck(self, node_id, shape):
        actor, ticket = start(self, node_id, shape)
        if actor.node in nodes:
            ticket.done_at = float("inf")
        return actor, ticket

    cluster.start = stuck.__get__(cluster)


def _run_bounded(cluster: FakeCluster, todo: list[Shard], start_bound_s: float):
    actors = ElasticPool(cluster, clock=cluster.clock, start_bound_s=start_bound_s)
    results = Scheduler(actors, cluster, clock=cluster.clock).run(todo)
    actors.shutdown()
    return actors, results


def test_an_actor_placed_but_never_ready_is_a_failed_start_and_three_end_the_job(caplog):
    cluster = FakeCluster()
    _never_ready(cluster, {"n1"})
    _, results = _run_bounded(cluster, _shards(3), start_bound_s=30.0)
    assert len(cluster.actors) == pool.MAX_START_FAILURES and all(a.dead for a in cluster.actors)
    assert not results.records and sorted(results.failed) == [s.key for s in _shards(3)]
    (reason,) = set(results.failed.values())
    assert reason.startswith("no actor could start: not ready 30 s after it was placed (bound")
    assert reason.endswith("stuck while starting (node ip-n1)")
    assert 90 <= cluster.now < 100  # three bounds of fake time, not for ever
    assert not [r for r in caplog.records if "waiting for the cluster to place" in r.message]


def test_a_stuck_start_on_one_node_is_replaced_while_others_work():
    cluster = FakeCluster(nodes_={"good": {"cpus": 1, "gpus": 0}, "bad": {"cpus": 1, "gpus": 0}})
    _never_ready(cluster, {"bad"})
    actors, results = _run_bounded(cluster, _shards(80), start_bound_s=10.0)
    assert _keys(results) == sorted(s.key for s in _shards(80)) and not results.failed
    assert [a.node for a in cluster.actors].count("bad") == 1 and actors.bad_nodes == {"bad"}
    assert {r[1] for r in results.records} == {"good"}


def test_an_actor_not_placed_yet_is_not_bounded():
    cluster = FakeCluster(unplaced=True)
    _never_ready(cluster, {"n1"})
    actors = ElasticPool(cluster, clock=cluster.clock, start_bound_s=10.0)
    for _ in range(600):
        cluster.now += 1.0
        actors.poll()
    assert len(cluster.actors) == 1 and not cluster.actors[0].dead and actors.starting


def test_a_placed_actor_still_starting_is_said_as_such(caplog):
    """Before: "waiting for the cluster to place" an actor that --local had placed at once."""
    cluster = FakeCluster()
    _never_ready(cluster, {"n1"})
    actors = ElasticPool(cluster, clock=cluster.clock, start_bound_s=1000.0)
    for _ in range(61):
        cluster.now += 1.0
        actors.poll()
    said = [r.getMessage() for r in caplog.records if "no actor is up" in r.getMessage()]
    assert said == ["no actor is up after 60 s: 1 actor(s) placed, still starting (building the "
                    "model; bound 1000 s)"]  # fmt: skip


# --- the watchdog ------------------------------------------------------------------------------
@dataclass
class HangingCluster(FakeCluster):
    """Shards in `hangs` never come back on their first attempt: the actor is alive but stuck."""

    hangs: set = field(default_factory=set)

    def submit(self, actor, shard):
        ticket = super().submit(actor, shard)
        if shard.key in self.hangs:
            self.hangs.discard(shard.key)
            ticket.done_at = actor.free_at = float("inf")
        return ticket


def test_a_stuck_actor_is_killed_replaced_and_its_shard_retried_with_one_line(caplog):
    cluster = HangingCluster(hangs={"train-00003"})
    dog = Watchdog(floor_s=5.0, factor=2.0)
    pool, results = _run(cluster, _shards(6), in_flight=1, watchdog=dog)
    assert _keys(results) == sorted(s.key for s in _shards(6)) and not results.failed
    assert results.stuck == 1 and pool.replaced == 1 and len(cluster.abandoned) == 1
    first, second = cluster.actors
    assert first.dead and ("train-00003", "n1", second.id) in results.records
    said = [r.getMessage() for r in caplog.records if "stuck" in r.getMessage()]
    # 2x the slowest shard (1 s) is under the floor: 5 s without progress, then killed
    assert len(said) == 1 and said[0].startswith("retrying shard train-00003 (stuck: no progress")
    assert "on node ip-n1 (bound 5 s); its actor was killed and replaced" in said[0]
    assert cluster.now < 20  # fake seconds: 6 shards, one warm-up, one bound, one warm-up


def test_before_any_shard_the_bound_is_the_warm_up_times_the_factor():
    cluster = HangingCluster(hangs={"train-00000"})
    _, results = _run(cluster, _shards(2), watchdog=Watchdog(floor_s=0.0, factor=3.0))
    assert _keys(results) == ["train-00000", "train-00001"] and results.stuck == 1
    restarted = min(t.done_at for t in cluster.tickets[1:] if t.shard is None) - START_S
    assert restarted == pytest.approx(START_S + 3 * START_S, abs=0.6)  # one 0.5 s poll late


def test_a_shard_that_always_hangs_fails_after_its_retries_and_the_job_ends():
    cluster = HangingCluster()
    cluster.hangs = {"train-00001"}
    always = cluster.submit

    def rehang(actor, shard):
        cluster.hangs.add("train-00001")
        return always(actor, shard)

    cluster.submit = rehang
    _, results = _run(cluster, _shards(3), max_retries=2, watchdog=Watchdog(fixed_s=4.0))
    assert list(results.failed) == ["train-00001"] and "stuck" in results.failed["train-00001"]
    assert _keys(results) == ["train-00000", "train-00002"] and results.stuck == 3


def test_the_bound_follows_the_slowest_shard_with_a_floor_and_a_fixed_override():
    dog = Watchdog(floor_s=60.0, factor=10.0)
    assert dog.bound(warmup_s=12.0) == 120.0 and dog.bound(warmup_s=None) == 60.0
    dog.sent("a", 0.0, idle=True)
    dog.answered("a", 9.0, ok=True)
    assert dog.bound(warmup_s=100.0) == 90.0  # measured now: the warm-up no longer counts
    dog.answered("a", 9.5, ok=False)  # an error is progress, not a shard's duration
    assert dog.slowest_s == 9.0
    assert Watchdog(fixed_s=2.0).bound(warmup_s=100.0) == 2.0


def test_while_nothing_comes_back_the_scheduler_says_what_it_waits_for_once_a_minute(caplog):
    cluster = HangingCluster(hangs={"train-00000"})
    _, results = _run(cluster, _shards(1), watchdog=Watchdog(fixed_s=200.0))
    assert _keys(results) == ["train-00000"]
    said = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(said) == 3, said  # at 60, 120 and 180 s of the 200 s bound
    assert said[0].startswith("nothing has come back for 60 s; waiting for train-00000 on node ")
    assert "ip-n1 (60 s); 0 shard(s) queued, 0 actor(s) starting" in said[0]
