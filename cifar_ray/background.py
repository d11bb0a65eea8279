"""A call run in a background thread, optionally at a lower CPU priority: how the driver
reads the archive while Ray and the first actors start."""

from __future__ import annotations

import contextlib
import os
import sys
import threading


class InBackground:
    """A call run in a thread; `result()` returns its value or raises what it raised. Reading
    the archive is mostly zlib and hashing, which release the GIL, so it overlaps well."""

    def __init__(self, func, *args, nice: bool = False):
        self._value, self._error, self._nice = None, None, nice
        self._thread = threading.Thread(target=self._run, args=(func, *args), daemon=True)
        self._thread.start()

    def _run(self, func, *args) -> None:
        if self._nice:
            yield_cpu()
        try:
            self._value = func(*args)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def yield_cpu() -> None:
    """The archive is read while Ray starts and the first actor imports TensorFlow, and it has
    slack (read in 2.7 s, wanted after 6 s): a nicer thread gives that critical path the CPU.
    Near-free 60k extract on 2 cores, 4 interleaved runs each: 9.26, 9.39, 9.50, 9.51 s plain,
    8.96, 9.08, 9.12, 9.23 s niced. Linux only: there a thread id names the thread alone;
    elsewhere it could name another process."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
