"""The bar's view inside shards: a driver thread that asks the ready actors, twice a second, how
many images of their shards in flight they have embedded (no Ray here: the backend asks)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


class EmbeddingWatch:
    """Calls `on_images(n)` with the images in flight until closed; a failed ask (Ray shutting
    down under it, an actor that died) shows nothing rather than stopping the job."""

    def __init__(self, backend, pool, on_images: Callable[[int], None], every_s: float = 0.5):
        self.backend, self.pool, self.on_images, self.every_s = backend, pool, on_images, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="embedding-watch")
        self.thread.start()

    def _watch(self) -> None:
        while not self.stop.wait(self.every_s):
            with contextlib.suppress(Exception):
                self.on_images(self.backend.embedding(list(self.pool.ready)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
