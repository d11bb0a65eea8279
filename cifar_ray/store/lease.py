"""One `extract` at a time on a store: a lease with an expiry.

Two extracts on one OUT were correct (records certify what is committed) but each computed
every shard, and the second one's planning deleted the first one's uncommitted attempts as
strays. Now each run holds a lease on each store it writes, `OUT/leases/<store>.json`, renewed
while it runs and given back at its end. A second run finds a live lease and is refused in
one line; a lease its run did not renew for LEASE_S (the run was killed) has lapsed, and the
next run takes it over. Object stores have no atomic create, so two runs that start within
LEASE_SETTLE_S of each other are told apart by re-reading: the last writer keeps the lease.
A lost race costs only the duplicate work it used to.

`train` holds a lease of its own kind, `OUT/leases/train/<store>.json`: two trains on one
store would break each other's Ray Train checkpoints; `run`, which extracts then trains in
one process, holds each kind in turn and never meets itself."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from cifar_ray.config import LEASE_RENEW_S, LEASE_S, LEASE_SETTLE_S
from cifar_ray.errors import StorageError, UserError
from cifar_ray.store import locations
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location

log = logging.getLogger(__name__)

HARM = {  # what a second run of each kind would do, as the refusal says
    "extract": "this one would compute the same shards again",
    "train": "the two would break each other's Ray Train checkpoints",
}


class Lease:
    def __init__(self, loc: Location, stores: list[str], lease_s: float = LEASE_S,
                 kind: str = "extract"):  # fmt: skip
        self.loc, self.stores, self.lease_s, self.kind = loc, stores, lease_s, kind
        self.run = uuid.uuid4().hex
        self.since = time.time()
        self.paths = [Layout(loc).lease(name, kind) for name in stores]
        self.made: list[Path] = []  # folders the lease created: removed with it, when empty

    def body(self) -> bytes:
        return json.dumps({
            "run": self.run, "host": socket.gethostname(), "pid": os.getpid(),
            "since_unix": round(self.since), "expires_unix": round(time.time() + self.lease_s),
        }).encode()  # fmt: skip

    def acquire(self, settle_s: float = LEASE_SETTLE_S) -> None:
        for path in self.paths:
            self._refuse_if_held(path)
        if self.loc.is_local:
            folder = Path(self.paths[0]).parent
            while not folder.exists() and folder != folder.parent:
                self.made.append(folder)  # deepest first
                folder = folder.parent
        try:
            for path in self.paths:
                locations.put_atomic(self.loc, path, self.body())
        except StorageError as exc:  # "cannot write <path>: <reason>", as extract's own check
            self.release()
            reason = str(exc).rpartition(": ")[2]
            raise UserError(f"--out {self.loc.uri}: cannot write there ({reason})") from None
        time.sleep(settle_s)
        for path in self.paths:
            self._refuse_if_held(path)

    def _refuse_if_held(self, path: str) -> None:
        held = _read(self.loc, path)
        if not held or held.get("run") == self.run:
            return
        left = float(held.get("expires_unix", 0)) - time.time()
        if left <= 0:
            log.warning("taking over %s: its run stopped renewing it %.0f s ago", path, -left)
            return
        if _gone(held):
            log.warning("taking over %s: its run (pid %s on this host) is no longer running",
                        path, held.get("pid"))  # fmt: skip
            return
        self.release()
        raise UserError(
            f"another {self.kind} is running on this store (pid {held.get('pid')} on "
            f"{held.get('host')}, lease {path}); {HARM[self.kind]}. "
            f"Wait for it; if it was killed, its lease lapses in {left:.0f} s"
        )

    def renew(self) -> None:
        for path in self.paths:
            try:
                locations.put_atomic(self.loc, path, self.body())
            except StorageError as exc:  # it may lapse: a second run could start, no harm
                log.warning("could not renew the lease: %s", exc)

    def release(self) -> None:
        """Give back what is still ours (a run that took over a lapsed lease keeps its own)."""
        for path in self.paths:
            with contextlib.suppress(StorageError, UserError, OSError):
                if (_read(self.loc, path) or {}).get("run") == self.run:
                    self.loc.fs.delete_file(path)
        # OUT/leases/ (and leases/<kind>/) go when empty, whoever made them (an earlier run,
        # interrupted, whose lease this one took over); a run refused, or that wrote nothing,
        # leaves no folder of those it made either.
        own = [Path(self.paths[0]).parent] if self.loc.is_local and self.paths else []
        own += [own[0].parent] if own and self.kind != "extract" else []
        for folder in [*own, *self.made]:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _gone(held: dict) -> bool:
    """The lease's run was on this host and its process has exited (killed outright: SIGKILL,
    the OOM killer), so the user's re-run need not wait for the lease to lapse. Another host's
    run, or a pid that is alive (or not ours to signal), is taken as running."""
    pid = held.get("pid")
    if held.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


def _read(loc: Location, path: str) -> dict | None:
    """The lease, or None; one that is not JSON is no lease (a write cut short)."""
    raw = locations.get_bytes(loc, path)
    try:
        found = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


@contextlib.contextmanager
def held(loc: Location, stores: list[str], renew_s: float = LEASE_RENEW_S,
         kind: str = "extract") -> Iterator[Lease]:  # fmt: skip
    """The leases on `stores`, renewed in a thread while the block runs, given back after."""
    lease = Lease(loc, stores, kind=kind)
    lease.acquire()
    stop = threading.Event()

    def renewing() -> None:
        while not stop.wait(renew_s):
            lease.renew()

    thread = threading.Thread(target=renewing, name="lease", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(timeout=5)
        lease.release()
