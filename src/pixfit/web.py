"""The HTTP layer, and the only module that imports Flask: parse, plan, fetch, render, respond."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from html import escape

from flask import Blueprint, Flask, Response, g, request, url_for
from werkzeug.exceptions import HTTPException

from pixfit.config import Config
from pixfit.errors import BadOption, Overloaded, PixfitError
from pixfit.hints import ACCEPT_CH, ClientHints
from pixfit.limiter import RenderSlots
from pixfit.logs import ACCESS_LOGGER, APP_LOGGER, configure_logging
from pixfit.options import parse_options
from pixfit.planner import Plan, plan
from pixfit.profiles import NetworkClass
from pixfit.remote import UrlSource
from pixfit.render import Rendered, render_plan
from pixfit.sources import LocalSource, Source, SourceImage

log = logging.getLogger(APP_LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)

# Query keys the web layer reads itself; everything else is an image option.
_OWN_KEYS = frozenset({"url", "sig"})


def create_app(config: Config | None = None, *, prefix: str | None = None) -> Flask:
    """A Flask app serving images under `prefix` (the config's by default; "" at the root)."""
    config = config or Config()
    prefix = config.server.prefix if prefix is None else prefix
    app = Flask("pixfit")
    app.register_blueprint(blueprint(config), url_prefix=prefix or None)
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
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
    pixfit = Blueprint("pixfit", __name__)
    pixfit.add_url_rule("/", "index", service.index)
    pixfit.add_url_rule("/<path:path>", "image", service.local)
    pixfit.register_error_handler(PixfitError, problem)
    pixfit.register_error_handler(HTTPException, _http_problem)
    pixfit.register_error_handler(Exception, _internal_error)
    pixfit.after_request(_log_access)
    return pixfit


class ImageService:
    """The image routes' state: the sources and the render slots."""

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
        self.slots = RenderSlots(limits.max_concurrent, limits.max_queue, limits.render_timeout)

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
        options = parse_options(
            _single_values(),
            max_edge=self.config.limits.max_output_edge,
            strict=self.config.security.strict_options,
            ignore=_OWN_KEYS,
        )
        planned = plan(options, ClientHints.from_headers(dict(request.headers)), self.config)
        g.pixfit_class = planned.network
        started = time.perf_counter()
        image = source.open(ref)
        fetch_ms = (time.perf_counter() - started) * 1000
        etag = hashlib.sha256(f"{image.identity}\n{planned.key}".encode()).hexdigest()[:32]
        if request.if_none_match.contains_weak(etag):
            response = Response(status=304)
            self._cache_headers(response, etag, planned, image)
            return response
        if planned.passthrough:
            rendered = render_plan(image.data, planned, self.config.limits)
        else:
            with self.slots.slot():
                rendered = render_plan(image.data, planned, self.config.limits)
        g.pixfit_render_ms = rendered.timings.decode_ms + rendered.timings.encode_ms
        response = Response(rendered.data, mimetype=rendered.media_type)
        self._cache_headers(response, etag, planned, image)
        _pixfit_headers(response, rendered, fetch_ms)
        return response

    def _cache_headers(
        self, response: Response, etag: str, planned: Plan, image: SourceImage
    ) -> None:
        response.set_etag(etag)
        if image.modified:
            response.last_modified = image.modified
        response.headers["Cache-Control"] = self.config.server.cache_control
        response.headers["Vary"] = ", ".join(planned.vary)
        response.headers["Accept-CH"] = ", ".join(ACCEPT_CH)


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


def _pixfit_headers(response: Response, rendered: Rendered, fetch_ms: float) -> None:
    timings = rendered.timings
    response.headers["Server-Timing"] = (
        f'fetch;dur={fetch_ms:.1f}, decode;dur={timings.decode_ms:.1f};desc="decode+resize", '
        f"encode;dur={timings.encode_ms:.1f}"
    )
    response.headers["X-Pixfit-Class"] = str(rendered.network)
    response.headers["X-Pixfit-Quality"] = str(rendered.quality) if rendered.quality else "original"
    if rendered.budget is None:
        response.headers["X-Pixfit-Budget"] = "none"
    else:
        verdict = "met" if rendered.budget_met else "exceeded"
        response.headers["X-Pixfit-Budget"] = f"{rendered.budget} {verdict}"


def _problem_response(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _http_problem(error: HTTPException) -> Response:
    return _problem_response(error.code or 500, error.name, error.description or error.name)


def _internal_error(error: Exception) -> Response:
    # A 500 is a bug: log it in full here, and tell the client nothing about the inside.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _problem_response(500, "Internal error", "The server failed; the error has been logged")


def _log_access(response: Response) -> Response:
    network: NetworkClass | None = g.get("pixfit_class")
    render_ms: float = g.get("pixfit_render_ms", 0.0)
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


def _home(files: LocalSource) -> Response:
    """A small index of the images under the root (the playground replaces it)."""
    rows: list[str] = []
    for name in files.names():
        cells = []
        for network in NetworkClass:
            src = url_for("pixfit.image", path=name, w=320, bw=str(network))
            caption = f"<figcaption>{network}</figcaption>"
            cells.append(f'<figure><img src="{escape(src)}" width="320">{caption}</figure>')
        rows.append(f"<h2>{escape(name)}</h2><div class=row>{''.join(cells)}</div>")
    html = _PAGE.format(body="".join(rows) or "<p>No images under the root.</p>")
    response = Response(html, mimetype="text/html")
    response.headers["Accept-CH"] = ", ".join(ACCEPT_CH)
    return response


_PAGE = """<!doctype html><html lang=en><meta charset=utf-8><title>pixfit</title>
<style>body{{font:15px system-ui;margin:2em}}.row{{display:flex;gap:1em;flex-wrap:wrap}}
figure{{margin:0}}img{{background:#eee}}</style><h1>pixfit</h1>{body}</html>"""
