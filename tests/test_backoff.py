"""The per-host back-off (backoff.py), on a fake clock."""

from __future__ import annotations

import pytest

from pixfit.backoff import HostBackoff
from pixfit.errors import UpstreamError, UpstreamTimeout


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_three_failures_in_a_row_back_off_then_one_probe_then_longer() -> None:
    clock = Clock()
    backoff = HostBackoff(failures=3, first_seconds=1, longest_seconds=4, clock=clock)
    for _ in range(2):
        backoff.check("a:80", "the host")
        backoff.failed("a:80", UpstreamTimeout)
    backoff.check("a:80", "the host")  # two failures: still asked
    backoff.failed("a:80", UpstreamTimeout)
    with pytest.raises(UpstreamTimeout, match="failed 3 times in a row; retrying in 1 s"):
        backoff.check("a:80", "the host")
    backoff.check("b:80", "another host")  # per host
    clock.now += 1.5
    backoff.check("a:80", "the host")  # the probe
    with pytest.raises(UpstreamTimeout):  # others wait while the probe is out
        backoff.check("a:80", "the host")
    backoff.failed("a:80", UpstreamError)  # the probe failed: twice as long, and a 502 now
    clock.now += 1.5
    with pytest.raises(UpstreamError, match="failed 4 times"):
        backoff.check("a:80", "the host")
    for _ in range(3):  # the back-off stops growing at its longest
        clock.now += 10
        backoff.check("a:80", "the host")
        backoff.failed("a:80", UpstreamError)
    clock.now += 3.9
    with pytest.raises(UpstreamError):
        backoff.check("a:80", "the host")
    clock.now += 0.2
    backoff.check("a:80", "the host")


def test_a_success_forgets_the_failures() -> None:
    clock = Clock()
    backoff = HostBackoff(failures=2, clock=clock)
    backoff.failed("a:80", UpstreamError)
    backoff.succeeded("a:80")
    backoff.failed("a:80", UpstreamError)
    backoff.check("a:80", "the host")  # one failure since the success: still asked
