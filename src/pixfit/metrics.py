"""Prometheus metrics, shared across gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set.

prometheus_client picks its multi-process storage when it is first imported, so
`pixfit serve` sets that variable before anything imports this module.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.values import MutexValue, ValueClass

__all__ = [
    "CACHE",
    "OUTPUT_BYTES",
    "QUEUED",
    "RENDER_SECONDS",
    "REQUESTS",
    "SLOW_CLIENTS",
    "SOURCE_BYTES",
    "exposition",
]

_REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "pixfit_requests", "Image requests answered", ["status", "network_class"], registry=_REGISTRY
)
RENDER_SECONDS = Histogram(
    "pixfit_render_seconds",
    "Decode, resize and encode time per render",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=_REGISTRY,
)
SOURCE_BYTES = Counter("pixfit_source_bytes", "Source bytes read or fetched", registry=_REGISTRY)
OUTPUT_BYTES = Counter("pixfit_output_bytes", "Image bytes sent", registry=_REGISTRY)
CACHE = Counter("pixfit_cache", "Result cache lookups", ["result"], registry=_REGISTRY)
QUEUED = Gauge(
    "pixfit_render_queue",
    "Renders waiting for a slot",
    multiprocess_mode="livesum",
    registry=_REGISTRY,
)

SLOW_CLIENTS = Counter(
    "pixfit_slow_clients",
    "Connections `pixfit serve` closed: a request too slow or too large, or a stalled reader",
    ["reason"],
    registry=_REGISTRY,
)


def exposition() -> bytes:
    """The metrics in Prometheus' text format, summed over workers in multi-process mode."""
    if ValueClass is not MutexValue:  # prometheus_client chose multi-process storage
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(_REGISTRY))
