"""TensorFlow process setup: quiet logs, threads, GPU memory growth; before anything else runs."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def configure_tensorflow(threads: int = 0) -> None:
    """Before TensorFlow starts: quiet logs, thread count, and GPU memory growth per process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = _import_tensorflow()
    try:
        if threads > 0:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # already initialised in this process: settings are fixed
        log.debug("TensorFlow was already initialised; thread and memory settings unchanged")


def _import_tensorflow():
    """TensorFlow's C++ import-time messages ignore TF_CPP_MIN_LOG_LEVEL; silence stderr for
    the import alone, unless debugging."""
    if "tensorflow" in sys.modules or logging.getLogger().level <= logging.DEBUG:
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # CUDA probing logs here too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
