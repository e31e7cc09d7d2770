"""A short back-off per upstream host, so that an origin that is down costs its timeout only
a few times rather than on every request.

After `failures` connect errors or timeouts in a row, a host is not asked again until its
back-off has passed: 1 s, then doubling up to 30 s while it keeps failing. Requests meanwhile
get the last error at once (502 or 504). One request is let through when the back-off ends
(a probe); a success forgets everything. Each worker process keeps its own record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pixfit.errors import PixfitError, UpstreamError

__all__ = ["HostBackoff"]


@dataclass(slots=True)
class _Record:
    failures: int = 0
    # Monotonic time before which the host is not asked; 0 when it is not backed off.
    until: float = 0.0
    backoff: float = 0.0
    # What the last failure was, so that a refused request gets the same status.
    error: type[PixfitError] = UpstreamError


class HostBackoff:
    """Consecutive failures per host, and the back-off they earn. Thread-safe."""

    def __init__(
        self,
        failures: int = 3,
        first_seconds: float = 1.0,
        longest_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.first_seconds = first_seconds
        self.longest_seconds = longest_seconds
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def check(self, host: str, where: str) -> None:
        """Raise at once if `host` is backed off; `where` names it in the message."""
        with self._lock:
            record = self._records.get(host)
            if record is None or not record.until:
                return
            left = record.until - self._clock()
            if left <= 0:
                # One probe goes through; until it answers, others wait out a new back-off.
                record.until = self._clock() + record.backoff
                return
            error = record.error
        raise error(f"{where} failed {record.failures} times in a row; retrying in {left:.0f} s")

    def failed(self, host: str, error: type[PixfitError]) -> None:
        """Count a connect error or timeout; past `failures` in a row, back off (longer)."""
        with self._lock:
            record = self._records.setdefault(host, _Record())
            record.failures += 1
            record.error = error
            if record.failures >= self.failures:
                record.backoff = min(
                    self.longest_seconds, max(self.first_seconds, record.backoff * 2)
                )
                record.until = self._clock() + record.backoff

    def succeeded(self, host: str) -> None:
        """The host answered: forget its failures."""
        with self._lock:
            self._records.pop(host, None)
