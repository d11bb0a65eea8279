"""Starting, joining and always stopping Ray, quietly unless asked."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Environment that every Ray worker needs, forwarded explicitly so remote nodes get it too.
FORWARD_PREFIXES = ("CIFAR_RAY_TEST_", "AWS_", "KERAS_HOME")


# An embedded Ray shares the machine with the model: no auth on a private cluster, and no
# metrics export or prestarted idle workers (nothing reads the metrics without a dashboard;
# the actors need their own workers). Measured on 2 cores: Ray's own processes used 4.2% of
# a core idle and 3.0% without these, and extraction at 75 px ran 1.5% faster.
LOCAL_RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_enable_metrics_collection": "0",
    "RAY_prestart_worker_first_driver": "0",
}


_embedded: list[bool] = []  # set while ray_session runs a Ray it started with local=True


def started_locally() -> bool:
    """Whether this process runs an embedded Ray (--local): no autoscaler to ask for nodes."""
    return bool(_embedded)


def worker_env() -> dict[str, str]:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "RAY_TRAIN_V2_ENABLED": "1", "PYTHONWARNINGS": "ignore"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARD_PREFIXES)})
    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    taken = (job.get("runtime_env") or {}).get("env_vars") or {}
    return {k: v for k, v in env.items() if k not in taken}  # a job's own env reaches workers


@contextmanager
def ray_session(local: bool, address: str | None = None, verbose: bool = False) -> Iterator[None]:
    """`local` starts an embedded Ray; otherwise join `address`, RAY_ADDRESS or a running one.

    Whatever this starts it stops, on errors and Ctrl-C too.
    """
    import ray

    if ray.is_initialized():  # a caller (a test, a job script) already owns the session
        yield
        return
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if local:
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)
    quiet(verbose)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    from cifar_ray import progress

    joined = address or os.environ.get("RAY_ADDRESS") or "auto"
    progress.phase("starting Ray on this machine" if local else f"joining Ray at {joined}")
    try:
        _init(ray, local, address, verbose, handlers)
        if local:
            _embedded.append(True)
        yield
    finally:  # also when a signal lands inside ray.init: what it started, it stops
        try:
            if _embedded:
                _stop_autoscaler_monitor()
        finally:  # a second Ctrl-C in there still shuts Ray down
            _embedded.clear()
            ray.shutdown()


# The autoscaler monitor of an embedded Ray, by its script (no Ray API names the process).
MONITOR_SCRIPT = os.path.join("autoscaler", "_private", "monitor.py")


def _stop_autoscaler_monitor() -> None:
    """ray.shutdown stops the GCS before the autoscaler monitor, whose SIGTERM handler then
    reports its own end to the GCS that is gone and is killed after a 1 s wait: 1.0 of the
    1.4 s shutdown on 2 cores (Ray 2.60). An embedded Ray has nothing to autoscale, so the
    monitor goes first, at once; if Ray renames it, nothing matches and shutdown is as before."""
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(part.endswith(MONITOR_SCRIPT) for part in child.cmdline()):
                child.kill()
                child.wait(timeout=5)


def _init(ray, local: bool, address: str | None, verbose: bool, handlers: dict) -> None:
    """ray.init installs a SIGTERM handler that exits with code 15 on the spot; a SIGTERM
    that lands while it runs goes to our handler instead, like one that lands after it."""
    env = worker_env()
    try:
        with _inherited_by_local_workers(env if local else {}):
            ray.init(
                address="local" if local else address,
                include_dashboard=False,
                logging_level=logging.INFO if verbose else logging.ERROR,
                log_to_driver=verbose,
                runtime_env=None if local else {"env_vars": env},
                object_store_memory=_local_object_store() if local else None,
            )
    except SystemExit as exc:
        ours = handlers.get(signal.SIGTERM)
        if exc.code == signal.SIGTERM and callable(ours):
            ours(signal.SIGTERM, None)  # records it and unwinds (cli.on_stop_signal)
        raise
    finally:
        _keep_signal_handlers(handlers)


@contextmanager
def _inherited_by_local_workers(env: dict[str, str]) -> Iterator[None]:
    """An embedded Ray's processes are this process's children and inherit its environment,
    so its workers get `env` without a runtime_env, which Ray's runtime-env agent would have to
    set up before the first actor can start (0.3 s on the job's critical path, 2 cores). Set
    only while Ray starts; the driver's own environment is left as it was, also when a signal
    lands in between. (ray.init itself sets PYTHONBREAKPOINT here, beside the archive reader.)"""
    saved = {key: os.environ.get(key) for key in env}
    try:
        os.environ.update(env)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _keep_signal_handlers(handlers: dict) -> None:
    """ray.init replaces the SIGTERM handler with a bare exit; put ours back so SIGTERM
    unwinds like Ctrl-C and Ray is shut down."""
    if threading.current_thread() is threading.main_thread():
        for sig, handler in handlers.items():
            if callable(handler):
                signal.signal(sig, handler)


def _local_object_store() -> int:
    """Extraction moves small uint8 shards, but training shares every split's features
    through the store (60,000 x 2,048 float32 is 490 MB, 4,032 dims twice that); a quarter of
    memory, at least 1 GiB, holds them without spilling. Pages are used only when filled."""
    import psutil

    return max(1 << 30, psutil.virtual_memory().total // 4)


def quiet(verbose: bool) -> None:
    """Ray and TensorFlow log plenty at INFO; users see warnings only with -v."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.train", "ray.data", "ray.tune", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        warnings.filterwarnings("ignore")
