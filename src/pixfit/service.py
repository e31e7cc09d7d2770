"""The serving core: an image request value in, a response value out. No Flask, no pyvips.

It owns everything between the HTTP adapter and the renderer: signatures, options, the
plan, conditional requests, the result cache (lookup, store, revalidation), render slots
and Server-Timing. `web.py` adapts it to Flask; a plain-WSGI path can use it as it is.
pyvips is only imported by the first render, so a process that answers hits and 304s
never loads it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO

from werkzeug.datastructures import ETags
from werkzeug.http import http_date, parse_etags, quote_etag

from pixfit import metrics
from pixfit.cache import Cache, DiskCache, StoredVariant, cache_key, make_cache
from pixfit.config import Config, SourceStore
from pixfit.errors import Overloaded, PixfitError
from pixfit.hints import ACCEPT_CH, CRITICAL_CH, ClientHints, rtt_class
from pixfit.limiter import RenderSlots
from pixfit.masters import Masters
from pixfit.options import check_allowlists, parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass
from pixfit.remote import UrlSource
from pixfit.rtt import RttMeter
from pixfit.signing import verify
from pixfit.sources import LocalSource, Source, SourceImage, SourceStamp

__all__ = [
    "ImageRequest",
    "ImageResponse",
    "ImageService",
    "SourceKind",
    "Sources",
    "path_source",
    "private",
    "problem",
    "problem_response",
    "source_tag",
    "url_key",
    "variant_etag",
]

# Query keys the serving core reads itself; everything else is an image option.
OWN_KEYS = frozenset({"url", "sig"})

Headers = tuple[tuple[str, str], ...]


class SourceKind(StrEnum):
    """Which source a request names: a path under the image root, or a URL."""

    PATH = "path"
    URL = "url"


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One image request, as any HTTP front end can describe it."""

    kind: SourceKind
    # The path under the root, or the URL.
    ref: str
    # The query, one value per key (the front end refuses repeated keys).
    query: Mapping[str, str]
    # Request headers; names are matched without regard to case.
    headers: Mapping[str, str]
    # The URL path as the client sent it, mount point included: what a signature covers.
    signed_path: str = ""
    # The client's round trip in ms as the server measured it (TCP_INFO, or a trusted
    # proxy's header; see rtt.py); None when not measured or unknown.
    rtt_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ImageResponse:
    """What to send back: status, headers and body, plus what the access log reports."""

    status: int
    headers: Headers
    body: bytes = b""
    media_type: str | None = None
    # The network class of the plan; None when the request failed before planning.
    network: NetworkClass | None = None
    # Milliseconds spent decoding and encoding; 0 when nothing was rendered.
    render_ms: float = 0.0
    # Whether a render slot was taken (`pixfit serve` recycles workers by this count).
    rendered: bool = False
    # A disk-cache hit's file, positioned at the image bytes, sent instead of `body`
    # (`wsgi.file_wrapper`); the receiver closes it. None: the body is `body`.
    file: BinaryIO | None = None
    # The body's length in bytes, whichever of `body` and `file` carries it.
    length: int = -1

    def __post_init__(self) -> None:
        if self.length < 0:
            object.__setattr__(self, "length", len(self.body))


@dataclass(frozen=True, slots=True)
class Sources:
    """Where images come from: paths under `{prefix}/`, and `?url=` references."""

    paths: Source
    urls: Source

    def __getitem__(self, kind: SourceKind) -> Source:
        return self.paths if kind == SourceKind.PATH else self.urls


@dataclass(frozen=True, slots=True)
class _Looked:
    """What `ImageService._look` found before any source read."""

    planned: Plan
    inm: ETags
    # The source's version from a stat; None for URL sources.
    known: SourceStamp | None
    key: str
    # The cache's entry under `key`, fresh or stale; None on a miss.
    stored: StoredVariant | None


class ImageService:
    """Answers image requests from a config and the collaborators it is given."""

    def __init__(
        self,
        config: Config,
        *,
        sources: Sources,
        cache: Cache,
        slots: RenderSlots,
        masters: Masters | None = None,
    ) -> None:
        self.config = config
        self.sources = sources
        self.cache = cache
        self.slots = slots
        # Reduced masters of recent JPEG sources, which later variants resize from.
        self.masters = masters
        # Plans by query and hints: a pure function of them and the config, and every hit
        # and 304 needs one. Refused queries raise, so they are never stored.
        self._planned = functools.lru_cache(maxsize=4096)(self._plan_uncached)
        server = config.server
        self._rtt_meter = (
            RttMeter(server.rtt_header, server.trusted_proxies) if server.measure_rtt else None
        )

    @classmethod
    def from_config(cls, config: Config) -> ImageService:
        """The service with the sources, cache and render slots the config names."""
        source = config.source
        limits = config.limits
        return cls(
            config,
            sources=Sources(
                paths=path_source(config),
                urls=UrlSource(
                    allowed_hosts=source.allowed_hosts,
                    allow_private_networks=source.allow_private_networks,
                    timeout=source.fetch_timeout,
                    max_bytes=source.max_source_bytes,
                ),
            ),
            cache=make_cache(config.cache),
            slots=RenderSlots(
                limits.max_concurrent, limits.max_queue, limits.render_timeout, metrics.QUEUED.set
            ),
            masters=Masters(config.cache.master_bytes, config.cache.master_edge),
        )

    def rtt_ms(self, environ: Mapping[str, Any]) -> float | None:
        """The client's round trip read from a WSGI environ (see rtt.py), for the front ends
        to put in `ImageRequest.rtt_ms`; None while `server.measure_rtt` is off, or unknown."""
        return self._rtt_meter.rtt_ms(environ) if self._rtt_meter else None

    def handle(self, request: ImageRequest) -> ImageResponse:
        """The answer to `request`; raises a `PixfitError` for anything it refuses."""
        with self.slots.request():  # a draining server waits for it before it exits
            return self._handle(request)

    def _handle(self, request: ImageRequest) -> ImageResponse:
        looked, early = self._look(request, self.cache.get)
        if early is not None:
            return early
        planned, inm, known, key, stored = (
            looked.planned,
            looked.inm,
            looked.known,
            looked.key,
            looked.stored,
        )
        source = self.sources[request.kind]
        started = time.perf_counter()
        if known is None and (stored is not None or inm):
            # A stale variant or a conditional request: an object store tells the version
            # from one HEAD, without the bytes.
            current = source.check(request.ref)
            if current is not None:
                etag = variant_etag(current, planned)
                fetched = f"fetch;dur={(time.perf_counter() - started) * 1000:.1f}"
                if stored is not None and stored.etag == etag:
                    return self._revalidated(stored, key, current, planned, inm, fetched)
                if inm.contains_weak(etag):
                    return self._not_modified(etag, current.modified, planned)
        image = source.open(request.ref)
        metrics.SOURCE_BYTES.inc(len(image.data))
        current = SourceStamp(image.identity, image.modified, image.max_age)
        etag = variant_etag(current, planned)
        fetched = f"fetch;dur={(time.perf_counter() - started) * 1000:.1f}"
        if stored is not None and stored.etag == etag:
            return self._revalidated(stored, key, current, planned, inm, fetched)
        if known is None and inm.contains_weak(etag):
            return self._not_modified(etag, image.modified, planned)
        fresh_until = None if known is not None else self._fresh_until(current)
        return self._render(image, planned, key, etag, fresh_until, fetched)

    def _revalidated(
        self,
        stored: StoredVariant,
        key: str,
        current: SourceStamp,
        planned: Plan,
        inm: ETags,
        fetched: str,
    ) -> ImageResponse:
        """A stale variant whose origin still has the same version: fresh again, no decode."""
        variant = replace(stored, fresh_until=self._fresh_until(current))
        self.cache.put(key, variant)
        return self._answer(variant, planned, inm, f'{fetched}, cache;desc="revalidated"')

    def purge(self, kind: SourceKind, ref: str) -> int:
        """Remove every cached variant of one source, whatever its version; how many."""
        return self.cache.purge(source_tag(kind, ref))

    def cached(self, request: ImageRequest) -> ImageResponse | None:
        """The answer if it needs no source read and no render (a 304 or a fresh hit), else None.

        The plain-WSGI fast path (`fastpath.py`) asks this first; on None the request goes
        through `handle` as usual, which counts the miss. A disk hit comes back with an open
        `file` instead of a body, for `wsgi.file_wrapper`.
        """
        opened: list[tuple[BinaryIO, int]] = []

        def lookup(key: str) -> StoredVariant | None:
            if not isinstance(self.cache, DiskCache):
                return self.cache.get(key)
            entry = self.cache.open(key)
            if entry is None:
                return None
            variant, handle, length = entry
            opened.append((handle, length))
            return variant

        try:
            with self.slots.request():  # counted like any request while draining
                _, early = self._look(request, lookup, count_miss=False)
        except BaseException:
            for handle, _ in opened:
                handle.close()
            raise
        if not opened:
            return early
        handle, length = opened[0]
        if early is None or early.status != 200:
            handle.close()
            return early
        return replace(early, file=handle, length=length)

    def _look(
        self,
        request: ImageRequest,
        lookup: Callable[[str], StoredVariant | None],
        *,
        count_miss: bool = True,
    ) -> tuple[_Looked, ImageResponse | None]:
        """What the request needs, and its answer when a 304 or a fresh hit gives it."""
        planned = self._plan(request)
        inm = parse_etags(_header(request.headers, "if-none-match"))
        # Files give their version from a stat: a 304 or a cache hit then costs no read and
        # no decode. The version of a URL or an object is only known by asking its origin,
        # so their variants are stored under the reference and trusted until they go stale.
        known = self.sources[request.kind].identify(request.ref)
        variant = variant_etag(known, planned) if known else url_key(request.ref, planned)
        key = cache_key(source_tag(request.kind, request.ref), variant)
        if known is not None and inm.contains_weak(variant):
            return _Looked(planned, inm, known, key, None), self._not_modified(
                variant, known.modified, planned
            )
        stored = None if planned.passthrough else lookup(key)
        looked = _Looked(planned, inm, known, key, stored)
        if stored is not None and stored.is_fresh(time.time()):
            metrics.CACHE.labels("hit").inc()
            return looked, self._answer(stored, planned, inm, 'cache;desc="hit"')
        if count_miss and not planned.passthrough:
            # A stale URL variant counts as a hit: it may still spare the decode.
            metrics.CACHE.labels("miss" if stored is None else "hit").inc()
        return looked, None

    def _plan(self, request: ImageRequest) -> Plan:
        security = self.config.security
        if security.signing_keys:
            verify(security.signing_keys, request.signed_path, request.query)
        hints = ClientHints.from_headers(request.headers)
        query = tuple(request.query.items())
        rtt = request.rtt_ms if self.config.server.measure_rtt else None
        if rtt is None or hints.network is not None:
            return self._planned(query, hints)
        # A round trip is no memo key: such a plan is made afresh (only hint-less
        # requests with the measurement on, and only the options are parsed again).
        return self._plan_uncached(query, hints, rtt)

    def _plan_uncached(
        self, query: tuple[tuple[str, str], ...], hints: ClientHints, rtt: float | None = None
    ) -> Plan:
        """The plan; `rtt`, the client's measured round trip, classes it when nothing else does."""
        security = self.config.security
        options = parse_options(
            dict(query),
            max_edge=self.config.limits.max_output_edge,
            strict=security.strict_options,
            ignore=OWN_KEYS,
            presets=self.config.presets,
            presets_only=security.presets_only,
        )
        check_allowlists(options, security.allowed_widths, security.allowed_qualities)
        if rtt is None or options.network is not None:
            return plan(options, hints, self.config)
        # Only a slow round trip changes the class; a fast one leaves the default. Either
        # way the answer came from the measurement, which the plan records.
        measured = plan(options, replace(hints, network=rtt_class(rtt)), self.config)
        return replace(measured, measured_rtt=rtt)

    def _render(
        self,
        image: SourceImage,
        planned: Plan,
        key: str,
        etag: str,
        fresh_until: float | None,
        fetched: str,
    ) -> ImageResponse:
        """Render the source by the plan, store the result, and answer with it."""
        # Imported here so that importing the serving core loads no pyvips (see the top).
        from pixfit.rendering import render_plan  # noqa: PLC0415

        if planned.passthrough:
            # The original bytes: no slot (nothing is decoded) and nothing to store.
            rendered = render_plan(image.data, planned, self.config.limits)
        else:
            with self.slots.slot():
                rendered = render_plan(
                    image.data,
                    planned,
                    self.config.limits,
                    masters=self.masters,
                    identity=image.identity,
                )
        timings = rendered.timings
        render_ms = timings.decode_ms + timings.encode_ms
        metrics.RENDER_SECONDS.observe(render_ms / 1000)
        variant = StoredVariant(
            data=rendered.data,
            media_type=rendered.media_type,
            width=rendered.width,
            height=rendered.height,
            quality=rendered.quality,
            budget_met=rendered.budget_met,
            score=rendered.score,
            etag=etag,
            modified=image.modified,
            fresh_until=fresh_until,
            animation=rendered.animation,
        )
        if not planned.passthrough:
            self.cache.put(key, variant)
        timing = (
            f'{fetched}, decode;dur={timings.decode_ms:.1f};desc="decode+resize", '
            f"encode;dur={timings.encode_ms:.1f}"
        )
        response = self._image(variant, planned, timing)
        return replace(response, render_ms=render_ms, rendered=not planned.passthrough)

    def _fresh_until(self, current: SourceStamp) -> float:
        """Until when a variant of a URL or an object may be served without asking again."""
        max_age = float(self.config.cache.url_max_age)
        if current.max_age is not None:
            max_age = min(max_age, current.max_age)
        return time.time() + max_age

    def _not_modified(self, etag: str, modified: datetime | None, planned: Plan) -> ImageResponse:
        headers = self._validators(etag, modified, planned)
        return ImageResponse(304, headers, network=planned.network)

    def _answer(
        self, variant: StoredVariant, planned: Plan, inm: ETags, timing: str
    ) -> ImageResponse:
        """A stored variant, or a 304 when the client already holds it."""
        if inm.contains_weak(variant.etag):
            return self._not_modified(variant.etag, variant.modified, planned)
        return self._image(variant, planned, timing)

    def _image(self, variant: StoredVariant, planned: Plan, timing: str) -> ImageResponse:
        quality = "original" if variant.quality is None else str(variant.quality)
        if planned.measured_rtt is not None:
            timing += f', rtt;dur={planned.measured_rtt:.1f};desc="measured round trip"'
        headers = (
            *self._validators(variant.etag, variant.modified, planned),
            ("Server-Timing", timing),
            ("X-Pixfit-Class", str(planned.network)),
            ("X-Pixfit-Quality", quality),
            ("X-Pixfit-Budget", _budget_verdict(planned.budget, variant.budget_met)),
        )
        if variant.score is not None:
            headers += (("X-Pixfit-Score", f"{variant.score:.1f}"),)
        if variant.animation == "still":
            headers += (("X-Pixfit-Animation", "still"),)
        return ImageResponse(
            200, headers, variant.data, variant.media_type, network=planned.network
        )

    def _validators(self, etag: str, modified: datetime | None, planned: Plan) -> Headers:
        """The headers a 200 and a 304 share: validators and caching rules."""
        headers = [("ETag", quote_etag(etag))]
        if modified is not None:
            headers.append(("Last-Modified", http_date(modified)))
        cache_control = self.config.server.cache_control
        if planned.measured_rtt is not None:
            cache_control = private(cache_control)
        headers += [
            ("Cache-Control", cache_control),
            ("Vary", ", ".join(planned.vary)),
            ("Accept-CH", ", ".join(ACCEPT_CH)),
            ("Critical-CH", ", ".join(CRITICAL_CH)),
        ]
        return tuple(headers)


def path_source(config: Config) -> Source:
    """Where the paths under the prefix are read: a folder, or a bucket's folder."""
    source = config.source
    if source.kind == SourceStore.S3:
        from pixfit.s3 import Bucket, S3Source  # noqa: PLC0415 (boto3 only for kind s3)

        return S3Source(Bucket.configured(source, source.fetch_timeout), source.max_source_bytes)
    return LocalSource(source.root, source.max_source_bytes)


def source_tag(kind: SourceKind, ref: str) -> str:
    """What the cache keys of every variant of one source start with (see cache.py)."""
    return hashlib.sha256(f"{kind}:{ref}".encode()).hexdigest()[:16]


def private(cache_control: str) -> str:
    """`cache_control` for the browser's cache alone: `private`, without `public`/`s-maxage`.

    For answers classed by the server's own RTT measurement: a shared cache would hand
    one client's class to the next. (A redirect to the URL with `bw=` would keep them
    shareable, but it costs a round trip, on the very links that are slowest.)
    """
    kept = [
        part.strip()
        for part in cache_control.split(",")
        if part.strip()
        and part.strip().lower().split("=")[0] not in ("public", "private", "s-maxage")
    ]
    return ", ".join(["private", *kept])


def variant_etag(stamp: SourceStamp, planned: Plan) -> str:
    """Strong validator (and cache key): the source version plus the normalised plan."""
    return hashlib.sha256(f"{stamp.identity}\n{planned.key}".encode()).hexdigest()[:32]


def url_key(url: str, planned: Plan) -> str:
    """Cache key of a URL source's variant, whatever the origin's current version."""
    return hashlib.sha256(f"url:{url}\n{planned.key}".encode()).hexdigest()[:32]


def problem_response(error: PixfitError) -> ImageResponse:
    """An `application/problem+json` answer for a pixfit error."""
    headers: Headers = ()
    if isinstance(error, Overloaded):
        headers = (("Retry-After", str(error.retry_after_seconds)),)
    return problem(error.status, error.title, str(error), headers)


def problem(status: int, title: str, detail: str, headers: Headers = ()) -> ImageResponse:
    """An RFC 9457 problem answer; errors are never stored by caches."""
    body = json_problem(status, title, detail)
    return ImageResponse(
        status,
        (("Cache-Control", "no-store"), *headers),
        body,
        "application/problem+json",
    )


def json_problem(status: int, title: str, detail: str) -> bytes:
    """The problem document's bytes."""
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


def _budget_verdict(budget: int | None, met: bool | None) -> str:
    if budget is None:
        return "none"
    return f"{budget} {'met' if met else 'exceeded'}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)
