"""Admission control: a few renders at once per worker, a bounded queue, then 503 at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pixfit.errors import Overloaded

__all__ = [
    "RENDERED_ENVIRON_KEY",
    "RenderSlots",
]

# Set in the WSGI environ of a request that took a render slot; `pixfit serve` recycles a
# worker after so many renders (see serve.py).
RENDERED_ENVIRON_KEY = "pixfit.rendered"


class RenderSlots:
    """At most `concurrent` renders run; at most `queue` wait; the rest are refused."""

    def __init__(
        self,
        concurrent: int,
        queue: int,
        wait_seconds: float,
        on_queue_change: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._on_queue_change = on_queue_change
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._queue = queue
        self._wait_seconds = wait_seconds
        self.waiting = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one render slot for the block, or raise `Overloaded`."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self.waiting >= self._queue:
                    raise Overloaded("Too many renders are queued; retry shortly")
                self.waiting += 1
                self._on_queue_change(self.waiting)
            try:
                acquired = self._slots.acquire(timeout=self._wait_seconds)
            finally:
                with self._lock:
                    self.waiting -= 1
                    self._on_queue_change(self.waiting)
            if not acquired:
                raise Overloaded("No render slot came free in time; retry shortly")
        try:
            yield
        finally:
            self._slots.release()
