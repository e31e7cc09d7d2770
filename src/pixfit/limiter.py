"""Admission control: a few renders at once per worker, a bounded queue, then 503 at once.

It also drains: once `close` is called (SIGTERM under `pixfit serve`), a request that
arrives after it may still be answered from the cache but gets 503 for a render, while the
requests already in flight finish, renders included; `wait_idle` says when none is left.
"""

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
        # Image requests being answered, renders or not; `wait_idle` waits for none.
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        # Set by `close`: the node is draining and takes no new render.
        self.closed = False
        # Per thread: whether its current request came before `close` (and may render).
        self._admitted = threading.local()

    def close(self) -> None:
        """Refuse the renders of requests that come from now on; those in flight go on."""
        self.closed = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most `timeout` seconds; whether none is."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    @contextmanager
    def request(self) -> Iterator[None]:
        """Count the block as a request in flight (see `wait_idle`)."""
        with self._lock:
            self._in_flight += 1
            self._admitted.before_close = not self.closed
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._admitted.before_close = False
                self._idle.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one render slot for the block, or raise `Overloaded`."""
        if self.closed and not getattr(self._admitted, "before_close", False):
            raise Overloaded("This server is shutting down; retry (another one)")
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
