"""The HTTP layer, and the only module that imports Flask: parse, plan, fetch, render, respond."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from datetime import datetime
from functools import partial

from flask import Blueprint, Flask, Response, g, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from pixfit import metrics
from pixfit.cache import Variant, make_cache
from pixfit.config import Config
from pixfit.embed import image_url, srcset
from pixfit.errors import BadOption, Overloaded, PixfitError
from pixfit.hints import ACCEPT_CH, ClientHints
from pixfit.limiter import RENDERED_ENVIRON_KEY, RenderSlots
from pixfit.logs import ACCESS_LOGGER, APP_LOGGER, configure_logging
from pixfit.options import Fit, check_allowlists, parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass
from pixfit.remote import UrlSource
from pixfit.render import Rendered, render_plan
from pixfit.signing import verify
from pixfit.sources import LocalSource, Source, SourceImage, SourceStamp

log = logging.getLogger(APP_LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)

# Width presets offered by the playground, in CSS pixels.
PLAYGROUND_WIDTHS = (240, 320, 480, 640, 800, 1200)

# Query keys the web layer reads itself; everything else is an image option.
_OWN_KEYS = frozenset({"url", "sig"})


def create_app(config: Config | None = None, *, prefix: str | None = None) -> Flask:
    """A Flask app serving images under `prefix` (the config's by default; "" at the root)."""
    config = config or Config()
    prefix = config.server.prefix if prefix is None else prefix
    app = Flask(__name__, static_folder=None)
    app.register_blueprint(blueprint(config), url_prefix=prefix or None)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/metrics", "metrics", _metrics)
    if prefix:
        files = LocalSource(config.source.root, config.source.max_source_bytes)
        app.add_url_rule("/", "home", lambda: _home(files))
    app.register_error_handler(HTTPException, _http_problem)
    return app


def blueprint(config: Config | None = None) -> Blueprint:
    """The image routes, to mount in an existing Flask app with `register_blueprint`."""
    config = config or Config()
    configure_logging(config.log)
    service = ImageService(config)
    # The playground's assets live under the mount point too, so it works wherever the
    # blueprint is mounted (an image folder named `_static` would be shadowed).
    pixfit = Blueprint(
        "pixfit",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/_static",
    )
    pixfit.add_url_rule("/", "index", service.index)
    pixfit.add_url_rule("/<path:path>", "image", service.local)
    pixfit.register_error_handler(PixfitError, problem)
    pixfit.register_error_handler(HTTPException, _http_problem)
    pixfit.register_error_handler(Exception, _internal_error)
    pixfit.after_request(_log_access)

    # Templates of the host app can write {{ pixfit_url("a.jpg", w=400) }} and
    # {{ pixfit_srcset("a.jpg", widths=[320, 640]) }}; the prefix is wherever this
    # blueprint is mounted, and URLs are signed when keys are configured.
    @pixfit.record
    def _template_helpers(state: BlueprintSetupState) -> None:
        prefix = state.url_prefix or ""
        state.app.add_template_global(
            partial(image_url, config=config, prefix=prefix), "pixfit_url"
        )
        state.app.add_template_global(
            partial(srcset, config=config, prefix=prefix), "pixfit_srcset"
        )

    return pixfit


class ImageService:
    """The image routes' state: the sources, the render slots and the result cache."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.files = LocalSource(config.source.root, config.source.max_source_bytes)
        self.urls = UrlSource(
            allowed_hosts=config.source.allowed_hosts,
            allow_private_networks=config.source.allow_private_networks,
            timeout=config.source.fetch_timeout,
            max_bytes=config.source.max_source_bytes,
        )
        limits = config.limits
        self.slots = RenderSlots(
            limits.max_concurrent, limits.max_queue, limits.render_timeout, metrics.QUEUED.set
        )
        self.cache = make_cache(config.cache)

    def local(self, path: str) -> Response:
        """GET {prefix}/<path>: an image under the root."""
        return self._serve(self.files, path)

    def index(self) -> Response:
        """GET {prefix}/?url=...: a remote image; without `url`, the index page."""
        url = request.args.get("url")
        if url is None:
            return _home(self.files)
        return self._serve(self.urls, url)

    def _serve(self, source: Source, ref: str) -> Response:
        args = _single_values()
        security = self.config.security
        if security.signing_keys:
            verify(security.signing_keys, request.script_root + request.path, args)
        options = parse_options(
            args,
            max_edge=self.config.limits.max_output_edge,
            strict=security.strict_options,
            ignore=_OWN_KEYS,
        )
        check_allowlists(options, security.allowed_widths, security.allowed_qualities)
        planned = plan(options, ClientHints.from_headers(dict(request.headers)), self.config)
        g.pixfit_class = planned.network

        # Files give their version from a stat: a 304 or a cache hit then costs no read and
        # no decode. A URL's version is only known by fetching it, so its variants are
        # stored under the URL and trusted until they go stale.
        known = source.identify(ref)
        key = _etag(known, planned) if known else _url_key(ref, planned)
        if known is not None and request.if_none_match.contains_weak(key):
            return self._not_modified(key, known.modified, planned)
        stored = None if planned.passthrough else self._lookup(key)
        if stored is not None and stored.is_fresh(time.time()):
            if request.if_none_match.contains_weak(stored.etag):
                return self._not_modified(stored.etag, stored.modified, planned)
            return self._image_response(stored, planned, 'cache;desc="hit"')
        return self._fetch_and_render(source, ref, planned, known, key, stored)

    def _lookup(self, key: str) -> Variant | None:
        stored = self.cache.get(key)
        metrics.CACHE.labels("miss" if stored is None else "hit").inc()
        return stored

    def _fetch_and_render(
        self,
        source: Source,
        ref: str,
        planned: Plan,
        known: SourceStamp | None,
        key: str,
        stored: Variant | None,
    ) -> Response:
        """Open the source and render it, unless a stale variant turns out to be current."""
        started = time.perf_counter()
        image = source.open(ref)
        metrics.SOURCE_BYTES.inc(len(image.data))
        etag = _etag(SourceStamp(image.identity, image.modified), planned)
        fetched = f"fetch;dur={(time.perf_counter() - started) * 1000:.1f}"
        if stored is not None and stored.etag == etag:
            # A stale URL variant whose origin still has the same version: fresh again,
            # with no decode.
            variant = replace(stored, fresh_until=self._fresh_until(known, image))
            self.cache.put(key, variant)
            if request.if_none_match.contains_weak(etag):
                return self._not_modified(etag, variant.modified, planned)
            return self._image_response(variant, planned, f'{fetched}, cache;desc="revalidated"')
        if known is None and request.if_none_match.contains_weak(etag):
            return self._not_modified(etag, image.modified, planned)
        if planned.passthrough:
            rendered = render_plan(image.data, planned, self.config.limits)
        else:
            with self.slots.slot():
                rendered = render_plan(image.data, planned, self.config.limits)
            request.environ[RENDERED_ENVIRON_KEY] = True
        g.pixfit_render_ms = rendered.timings.decode_ms + rendered.timings.encode_ms
        metrics.RENDER_SECONDS.observe(g.pixfit_render_ms / 1000)
        timing = (
            f'{fetched}, decode;dur={rendered.timings.decode_ms:.1f};desc="decode+resize", '
            f"encode;dur={rendered.timings.encode_ms:.1f}"
        )
        variant = Variant(rendered, etag, image.modified, self._fresh_until(known, image))
        if not planned.passthrough:
            self.cache.put(key, variant)
        return self._image_response(variant, planned, timing)

    def _fresh_until(self, known: SourceStamp | None, image: SourceImage) -> float | None:
        """Until when a new variant may be served without a fetch (None: while stored)."""
        if known is not None:
            return None  # keyed by the file's version, so it can never be stale
        max_age = float(self.config.cache.url_max_age)
        if image.max_age is not None:
            max_age = min(max_age, image.max_age)
        return time.time() + max_age

    def _not_modified(self, etag: str, modified: datetime | None, planned: Plan) -> Response:
        response = Response(status=304)
        self._cache_headers(response, etag, modified, planned)
        return response

    def _image_response(self, variant: Variant, planned: Plan, timing: str) -> Response:
        rendered = variant.rendered
        response = Response(rendered.data, mimetype=rendered.media_type)
        self._cache_headers(response, variant.etag, variant.modified, planned)
        response.headers["Server-Timing"] = timing
        response.headers["X-Pixfit-Class"] = str(rendered.network)
        response.headers["X-Pixfit-Quality"] = str(rendered.quality or "original")
        response.headers["X-Pixfit-Budget"] = _budget_verdict(rendered)
        return response

    def _cache_headers(
        self, response: Response, etag: str, modified: datetime | None, planned: Plan
    ) -> None:
        response.set_etag(etag)
        if modified:
            response.last_modified = modified
        response.headers["Cache-Control"] = self.config.server.cache_control
        response.headers["Vary"] = ", ".join(planned.vary)
        response.headers["Accept-CH"] = ", ".join(ACCEPT_CH)


def _etag(stamp: SourceStamp, planned: Plan) -> str:
    """Strong validator (and cache key): the source version plus the normalised plan."""
    return hashlib.sha256(f"{stamp.identity}\n{planned.key}".encode()).hexdigest()[:32]


def _url_key(url: str, planned: Plan) -> str:
    """Cache key of a URL source's variant, whatever the origin's current version."""
    return hashlib.sha256(f"url:{url}\n{planned.key}".encode()).hexdigest()[:32]


def _budget_verdict(rendered: Rendered) -> str:
    if rendered.budget is None:
        return "none"
    return f"{rendered.budget} {'met' if rendered.budget_met else 'exceeded'}"


def problem(error: PixfitError) -> Response:
    """An `application/problem+json` response for a pixfit error."""
    response = _problem_response(error.status, error.title, str(error))
    if isinstance(error, Overloaded):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def _single_values() -> dict[str, str]:
    """The query as a plain mapping; a repeated key is ambiguous, so it is refused."""
    values: dict[str, str] = {}
    for key, items in request.args.lists():
        if len(items) > 1:
            raise BadOption(f"Expected option {key!r} once but received it {len(items)} times")
        values[key] = items[0]
    return values


def _problem_response(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _http_problem(error: HTTPException) -> Response:
    response = _problem_response(error.code or 500, error.name, error.description or error.name)
    for name, value in error.get_headers():  # keeps `Allow` on a 405, `Location` on a 308
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _internal_error(error: Exception) -> Response:
    # A 500 is a bug: log it in full here, and tell the client nothing about the inside.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _problem_response(500, "Internal error", "The server failed; the error has been logged")


def _log_access(response: Response) -> Response:
    network: NetworkClass | None = g.get("pixfit_class")
    render_ms: float = g.get("pixfit_render_ms", 0.0)
    metrics.REQUESTS.labels(str(response.status_code), str(network or "-")).inc()
    if response.status_code == 200:
        metrics.OUTPUT_BYTES.inc(response.content_length or 0)
    access_log.info(
        '%s "%s %s" %s %s class=%s render_ms=%.1f',
        request.remote_addr,
        request.method,
        request.full_path.rstrip("?"),
        response.status_code,
        response.content_length or 0,
        network or "-",
        render_ms,
    )
    return response


def _metrics() -> Response:
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


def _home(files: LocalSource) -> Response:
    """The playground: every sample rendered for every network class, side by side."""
    names = files.names()
    html = render_template(
        "playground.html",
        prefix=url_for("pixfit.index").rstrip("/"),
        # Original sizes come with the page: a request for the original would carry the
        # browser's client hints (ECT...) and so be rendered for its network.
        images=[(name, (files.root / name).stat().st_size) for name in names],
        default_image="landscape.jpg" if "landscape.jpg" in names else None,
        classes=[str(network) for network in NetworkClass],
        widths=PLAYGROUND_WIDTHS,
        heights=PLAYGROUND_WIDTHS,
        fits=[str(fit) for fit in Fit],
        dprs=(1, 1.5, 2, 3),
        screens=("360x740", "768x1024", "1280x720", "1920x1080"),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Accept-CH"] = ", ".join(ACCEPT_CH)
    return response
