"""Shared fixtures: the CIFAR sample (or a synthetic one), a Ray session, the installed CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import cifar_files

SAMPLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-sample"
SAMPLE_ARCHIVE = SAMPLE / "cifar-10-python.tar.gz"

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="session")
def synthetic_archive(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    return cifar_files.write_archive(folder / "cifar-10-python.tar.gz", cifar_files.batches())


@pytest.fixture(scope="session")
def cifar_archive(synthetic_archive) -> Path:
    """The real sample when ../shared is there, else the synthetic archive."""
    return SAMPLE_ARCHIVE.resolve() if SAMPLE_ARCHIVE.exists() else synthetic_archive


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the in-process tests, always shut down."""
    import ray

    from cifar_ray.ray_runtime import worker_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=512 << 20, runtime_env={"env_vars": worker_env()})  # fmt: skip
    try:
        yield ray
    finally:
        ray.shutdown()


def cli_path() -> str:
    found = Path(sys.executable).parent / "cifar-ray"
    return str(found) if found.exists() else shutil.which("cifar-ray")


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, cwd=None):
    """The installed console script, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [cli_path(), *map(str, args)], capture_output=True, text=True, env=full_env,
        timeout=timeout, start_new_session=True, cwd=cwd,
    )  # fmt: skip


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [cli_path(), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=full_env, start_new_session=True,
    )  # fmt: skip


def kill_group(proc: subprocess.Popen) -> None:
    """Whatever a test started, it stops: the CLI and any Ray it spawned in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


RUN_TAG_ENV = "CIFAR_RAY_TEST_RUN_TAG"  # forwarded to Ray's workers: finds every process of a run


def tagged_processes(tag: str) -> list:
    """The live processes of a run started with {RUN_TAG_ENV: tag}: the CLI and all its Ray."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(RUN_TAG_ENV) == tag and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _ray_is_starting(proc: subprocess.Popen) -> bool:
    """Ray's GCS runs under `proc`: ray.init is under way (or just done), no work started."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
        return any("gcs_server" in " ".join(c.cmdline()) for c in children)
    except psutil.Error:
        return False


def signal_while_ray_starts(proc: subprocess.Popen, signum: int) -> str:
    """Send `signum` to the CLI once its Ray is starting; its stderr. The CLI's group is
    killed whatever happens."""
    import time

    try:
        deadline = time.monotonic() + 240
        while not _ray_is_starting(proc):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signum)
        return proc.communicate(timeout=120)[1]
    finally:
        kill_group(proc)


def tree_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()
