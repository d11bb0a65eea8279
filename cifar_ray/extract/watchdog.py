"""The shard watchdog: an actor that holds shards and stops making progress is noticed. No Ray.

An actor alive but stuck (a hung GPU, an NFS stall, an S3 call that never returns, a stopped
process) looks, to Ray, like a slow one: Ray's keepalive caught a SIGSTOPped actor after 420 s
and a frozen filesystem never. So the job bounds, per actor, the time since it last made
progress (handed back a shard, or took one while idle) by what the job has measured itself:
`factor` x the slowest shard so far, at least `floor_s`; before any shard has come back, the
actor's own warm-up time x `factor` (the warm-up built the model and ran one batch through it).
`--shard-timeout` replaces the derived bound with a fixed one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from cifar_ray.config import SHARD_TIMEOUT_FACTOR, SHARD_TIMEOUT_MIN_S, ExtractConfig

WAITING_SAY_EVERY_S = 60.0  # with nothing coming back, say what the job waits for this often


@dataclass
class Watchdog:
    fixed_s: float | None = ExtractConfig.shard_timeout  # None: derived from measurements
    factor: float = SHARD_TIMEOUT_FACTOR
    floor_s: float = SHARD_TIMEOUT_MIN_S
    slowest_s: float | None = None  # the longest one actor took between two results
    since: dict = field(default_factory=dict)  # actor -> when it last made progress
    last_result_at: float | None = None  # any actor, any result: the job is not silent
    said_at: float | None = None

    def sent(self, actor: Hashable, now: float, idle: bool) -> None:
        """A shard went to `actor`; an idle one starts its clock now."""
        if idle or actor not in self.since:
            self.since[actor] = now
        if self.last_result_at is None:
            self.last_result_at = now

    def answered(self, actor: Hashable, now: float, ok: bool) -> None:
        """A result (or a raised error: the actor answered) is progress; only a shard that came
        back whole says how long a shard takes."""
        if ok and actor in self.since:
            took = now - self.since[actor]
            self.slowest_s = took if self.slowest_s is None else max(self.slowest_s, took)
        self.since[actor] = self.last_result_at = now

    def forget(self, actor: Hashable) -> None:
        self.since.pop(actor, None)

    def bound(self, warmup_s: float | None) -> float:
        if self.fixed_s is not None:
            return self.fixed_s
        measured = self.slowest_s if self.slowest_s is not None else warmup_s
        return max(self.floor_s, self.factor * (measured or 0.0))

    def stuck(
        self, busy: Iterable[Hashable], now: float, warmup_s: dict
    ) -> list[tuple[Hashable, float, float]]:
        """(actor, seconds without progress, bound) for each busy actor past its bound."""
        out = []
        for actor in busy:
            quiet = now - self.since.get(actor, now)
            bound = self.bound(warmup_s.get(actor))
            if quiet > bound:
                out.append((actor, quiet, bound))
        return out

    def time_to_say(self, now: float) -> bool:
        """Once a minute while nothing comes back: the user must not wait in silence."""
        if self.last_result_at is None or now - self.last_result_at < WAITING_SAY_EVERY_S:
            return False
        if self.said_at is not None and now - self.said_at < WAITING_SAY_EVERY_S:
            return False
        self.said_at = now
        return True
