"""Peak memory (PSS) of a process tree, sampled in a thread while a benchmark runs."""

from __future__ import annotations

import os
import threading
import time


class PeakMemory:
    """Peak proportional set size of a process and all its descendants (Ray's workers),
    sampled in a thread every 0.2 s (a whole job can last 7 s); PSS counts shared
    object-store pages once, not per process. Each sample reads /proc/PID/smaps_rollup of
    the processes already known; the tree is walked again every second. That is not free:
    the kernel walks every mapping, 20 ms for a TensorFlow process and 35 ms for an embedded
    Ray with one actor (2-core EPYC), a sixth of a core at this rate. So the benchmarks time
    their rounds without it and measure memory in a round of its own."""

    def __init__(self, every_s: float = 0.2, exclude: frozenset[int] = frozenset(),
                 root: int | None = None, rescan_s: float = 1.0):  # fmt: skip
        self.root = os.getpid() if root is None else root
        self.every_s, self.exclude, self.rescan_s, self.peak = every_s, exclude, rescan_s, 0
        self.samples = 0
        self._pids: list[int] = [self.root]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rescan(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.root).children(recursive=True)
        except psutil.Error:
            children = []
        self._pids = [p for p in [self.root, *(c.pid for c in children)]
                      if p not in self.exclude]  # fmt: skip

    def _sample(self) -> int:
        self.samples += 1
        return sum(_pss_bytes(pid) for pid in self._pids)

    def _run(self) -> None:
        scanned = 0.0
        while not self._stop.is_set():
            if time.monotonic() - scanned >= self.rescan_s:
                self._rescan()
                scanned = time.monotonic()
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._rescan()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._rescan()
        self.peak = max(self.peak, self._sample())


def _pss_bytes(pid: int) -> int:
    """A process's PSS from /proc (0 once it is gone); RSS where smaps_rollup is missing."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss
        except Exception:
            return 0
    except (ProcessLookupError, PermissionError, OSError):
        return 0
    return 0
