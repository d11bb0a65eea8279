"""Options checked against the machine before Ray starts, in milliseconds: a batch that no node
could hold, more actors than the cluster can place. Without this, `--batch-size 100000` cost
three actor starts of ~9.5 GB and TensorFlow segfaults (187 s), and `--actors 64` on 2 cores
placed 8 actors at a quarter of a core each (10.6 GB)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cifar_ray.config import ACTIVATION_BYTES_PER_PIXEL, BATCH_MEMORY_SHARE, ExtractConfig
from cifar_ray.errors import UserError
from cifar_ray.extract.scheduler import shape_for

log = logging.getLogger(__name__)

GB = 1024**3


def check(cfgs: list[ExtractConfig], image_sizes: list[int], *, local: bool) -> None:
    """With `--local` this machine is the cluster: what it cannot hold is refused in one line.
    On a cluster the nodes may be larger than this one: a batch is a warning, and actors are
    checked against the cluster's resources once Ray is up (`distributor.launch`)."""
    memory = memory_bytes()
    for cfg, size in zip(cfgs, image_sizes, strict=True):
        _say(batch_problem(cfg.batch_size, size, memory), local)
    if local:
        _say(actors_problem(cfgs[0].actors, cpu_count(), gpu_count(), cfgs[0].gpus_per_actor),
             local)  # fmt: skip


def _say(problem: str | None, local: bool) -> None:
    if problem and local:
        raise UserError(problem)
    if problem:
        log.warning("%s (on this machine; the cluster's nodes may hold it)", problem)


def batch_problem(batch_size: int, image_size: int, memory: int) -> str | None:
    """One batch's activations, estimated per pixel (InceptionV3-sized backbones: about 400
    bytes a pixel of the resized image), against a share of the node's memory."""
    if batch_size <= 0:  # auto: chosen for the device and size (embedder.auto_batch_size)
        return None
    per_image = image_size * image_size * ACTIVATION_BYTES_PER_PIXEL
    room = memory * BATCH_MEMORY_SHARE
    if batch_size * per_image <= room:
        return None
    fits = max(1, int(room // per_image))
    return (f"--batch-size {batch_size} at {image_size} px needs about "
            f"{batch_size * per_image / GB:.1f} GB for one batch, more than "
            f"{BATCH_MEMORY_SHARE:.0%} of this machine's {memory / GB:.1f} GB; use "
            f"--batch-size {fits} or less, or 0 (auto)")  # fmt: skip


def actors_problem(
    actors: int | None, cpus: float, gpus: float, gpus_per_actor: float, where: str = "this machine"
) -> str | None:
    """Actors past what the pool's own shape lets Ray place would wait for ever (or, at a
    quarter of a core each, crowd the machine)."""
    if not actors:
        return None
    shape = shape_for(cpus, gpus, 1, actors, gpus_per_actor)
    fits = int(cpus / shape.num_cpus + 1e-9)
    if shape.gpu:
        fits = min(fits, int(gpus / gpus_per_actor + 1e-9))
    if actors <= fits:
        return None
    what = f"{gpus:g} GPU(s) at {gpus_per_actor:g} each" if shape.gpu else f"{cpus:g} CPU(s)"
    return (
        f"--actors {actors}: {where}'s {what} can place {fits} actor(s) "
        f"(each needs {shape.num_cpus} CPU{f', {shape.num_gpus} GPU' if shape.gpu else ''})"
    )


def warn_unplaceable(actors: int | None, resources: dict, gpus_per_actor: float) -> None:
    """On a cluster, once Ray is up: refused before Ray with --local; a cluster may grow."""
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    problem = actors_problem(actors, cpus, gpus, gpus_per_actor, "the cluster")
    if problem:
        log.warning("%s now; the others wait for nodes to join", problem)


def memory_bytes() -> int:
    """Physical memory, or the cgroup's limit where that is lower (a container)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_count() -> int:
    """NVIDIA GPUs as the driver lists them: no TensorFlow import, no subprocess."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
