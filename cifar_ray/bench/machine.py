"""What a benchmark ran on, named for its result line."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path


def tensorflow_device() -> str:
    """What the baseline ran on: the GPU's name, else the CPU's model and core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"{cpu_name()}, {os.cpu_count()} cores"


def machine() -> str:
    """The machine, without importing TensorFlow here: the CPU, and GPUs nvidia-smi lists."""
    gpus = ""
    if shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        gpus = "; ".join(ln.split(" (UUID")[0] for ln in listed.stdout.splitlines() if ln)
    return f"{cpu_name()}, {os.cpu_count()} cores" + (f"; {gpus}" if gpus else "")


def cpu_name() -> str:
    """The CPU's model as /proc/cpuinfo names it, else the architecture."""
    return next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.machine(),
    )  # fmt: skip
