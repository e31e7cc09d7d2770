"""The Flask adapter, the only module that imports Flask: routes, problems, access log.

Image requests go to the serving core (`service.py`) as plain values and come back as
plain values; everything an answer depends on is decided there.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from functools import partial

from flask import Blueprint, Flask, Response, g, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from pixfit import metrics
from pixfit.config import Config, SourceStore
from pixfit.embed import template_helpers
from pixfit.errors import BadOption, PixfitError
from pixfit.fastpath import FastPath, record_access
from pixfit.hints import CRITICAL_CH
from pixfit.limiter import RENDERED_ENVIRON_KEY
from pixfit.linkscript import SCRIPT_NAME, link_script
from pixfit.logs import APP_LOGGER, configure_logging
from pixfit.playground import PAGE_ACCEPT_CH, page
from pixfit.rendering import configure, limit_malloc_arenas
from pixfit.service import (
    ImageRequest,
    ImageResponse,
    ImageService,
    SourceKind,
    problem,
    problem_response,
)
from pixfit.sources import LocalSource

__all__ = ["ImageService", "blueprint", "create_app"]

log = logging.getLogger(APP_LOGGER)


def create_app(config: Config | None = None, *, prefix: str | None = None) -> Flask:
    """A Flask app serving images under `prefix` (the config's by default; "" at the root)."""
    config = config or Config()
    # A standalone app owns its process, so it sets up logging and libvips; a blueprint
    # leaves both to its host (libvips is then set up by the first render).
    configure_logging(config.log)
    configure()
    limit_malloc_arenas()  # as `pixfit serve` does; mod_wsgi and plain gunicorn need it too
    prefix = config.server.prefix if prefix is None else prefix
    app = Flask(__name__, static_folder=None)
    # werkzeug answers `//x` with an HTML 308 to `/x`; pixfit's own routes say 404 instead.
    app.url_map.merge_slashes = False
    service = ImageService.from_config(config)
    app.register_blueprint(blueprint(config, service=service), url_prefix=prefix or None)
    # Hits and 304s are answered before Flask's routing; the rest reaches the routes.
    app.wsgi_app = FastPath(  # type: ignore[method-assign]
        app.wsgi_app, service, prefix, x_sendfile=config.server.x_sendfile
    )
    app.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"})
    app.add_url_rule("/readyz", "readyz", partial(_readyz, service))
    if config.security.admin_tokens:  # no token, no endpoint: a plain 404
        purge = partial(_purge, service, config.security.admin_tokens)
        app.add_url_rule("/_pixfit/purge", "purge", purge, methods=["POST"])
    app.add_url_rule("/metrics", "metrics", _metrics)
    if prefix and config.source.kind == SourceStore.LOCAL:  # the playground lists files
        files = LocalSource(config.source.root, config.source.max_source_bytes)
        app.add_url_rule("/", "home", lambda: _home(files))
    if prefix:  # DESIGN's address of the script; the blueprint serves it under its mount too
        app.add_url_rule(f"/{SCRIPT_NAME}", "script", _script)
    app.register_error_handler(HTTPException, _http_problem)
    return app


def blueprint(config: Config | None = None, *, service: ImageService | None = None) -> Blueprint:
    """The image routes, to mount in an existing Flask app with `register_blueprint`.

    It leaves the host application's logging alone: pixfit logs to the `pixfit` and
    `pixfit.access` loggers, which the host configures like any other.
    """
    config = config or Config()
    service = service or ImageService.from_config(config)
    # The playground's assets live under the mount point too, so it works wherever the
    # blueprint is mounted (an image folder named `_static` would be shadowed).
    pixfit = Blueprint(
        "pixfit",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/_static",
    )
    files = LocalSource(config.source.root, config.source.max_source_bytes)
    from_url = _image_route(service, SourceKind.URL)
    pixfit.add_url_rule(
        "/", "index", lambda: from_url("") if "url" in request.args else _home(files)
    )
    pixfit.add_url_rule(f"/{SCRIPT_NAME}", "script", _script)
    # merge_slashes=False: `/images//etc/passwd` and `/images/%2fetc%2fpasswd` reach the
    # source, which refuses empty segments with a problem, not werkzeug's HTML redirect.
    pixfit.add_url_rule(
        "/<path:path>",
        "image",
        _image_route(service, SourceKind.PATH),
        merge_slashes=False,
    )
    pixfit.register_error_handler(PixfitError, _problem)
    pixfit.register_error_handler(HTTPException, _http_problem)
    pixfit.register_error_handler(Exception, _internal_error)
    pixfit.after_request(_log_access)

    # Templates of the host app can write {{ pixfit_url("a.jpg", w=400) }},
    # {{ pixfit_srcset("a.jpg", widths=[320, 640]) }} and {{ pixfit_script() }}; the
    # prefix is wherever this blueprint is mounted, and URLs are signed when keys are
    # configured.
    @pixfit.record
    def _template_helpers(state: BlueprintSetupState) -> None:
        state.app.extensions["pixfit"] = service
        prefix = state.url_prefix or ""
        script_url = f"{prefix}/{SCRIPT_NAME}?v={link_script().version}"
        for name, helper in template_helpers(config, prefix, script_url).items():
            state.app.add_template_global(helper, name)

    return pixfit


def _image_route(service: ImageService, kind: SourceKind) -> Callable[[str], Response]:
    """A view that hands the request to the serving core and adapts its answer."""

    def view(path: str) -> Response:
        answer = service.handle(
            ImageRequest(
                kind=kind,
                ref=request.args["url"] if kind == SourceKind.URL else path,
                query=_single_values(),
                headers=dict(request.headers),
                signed_path=request.script_root + request.path,
                rtt_ms=service.rtt_ms(request.environ),
            )
        )
        g.pixfit_class = answer.network
        g.pixfit_render_ms = answer.render_ms
        if answer.rendered:
            request.environ[RENDERED_ENVIRON_KEY] = True
        return _response(answer)

    return view


def _response(answer: ImageResponse) -> Response:
    response = Response(answer.body, status=answer.status, mimetype=answer.media_type)
    response.headers.extend(answer.headers)
    return response


def _problem(error: PixfitError) -> Response:
    return _response(problem_response(error))


def _single_values() -> dict[str, str]:
    """The query as a plain mapping; a repeated key is ambiguous, so it is refused."""
    values: dict[str, str] = {}
    for key, items in request.args.lists():
        if len(items) > 1:
            raise BadOption(f"Expected option {key!r} once but received it {len(items)} times")
        values[key] = items[0]
    return values


def _http_problem(error: HTTPException) -> Response:
    response = _response(problem(error.code or 500, error.name, error.description or error.name))
    for name, value in error.get_headers():  # keeps `Allow` on a 405, `Location` on a 308
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _internal_error(error: Exception) -> Response:
    # A 500 is a bug: log it in full here, and tell the client nothing about the inside.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _response(problem(500, "Internal error", "The server failed; the error has been logged"))


def _log_access(response: Response) -> Response:
    record_access(
        request.remote_addr,
        request.method,
        request.full_path.rstrip("?"),
        response.status_code,
        response.content_length or 0,
        g.get("pixfit_class"),
        g.get("pixfit_render_ms", 0.0),
    )
    return response


def _purge(service: ImageService, tokens: tuple[str, ...]) -> Response:
    """POST /_pixfit/purge with `path` or `url` (JSON or form): drop that source's variants."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Every token is compared, in constant time, so timing tells nothing about any.
    matches = [hmac.compare_digest(token.encode(), known.encode()) for known in tokens]
    if scheme.lower() != "bearer" or not any(matches):
        response = _response(
            problem(401, "Unauthorized", "Expected Authorization: Bearer with an admin token")
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="pixfit"'
        return response
    body = request.get_json(silent=True)
    values = body if isinstance(body, dict) else request.values
    given = [(name, values.get(name)) for name in ("path", "url") if name in values]
    name, ref = given[0] if len(given) == 1 else ("", None)
    if not isinstance(ref, str) or not ref:
        return _response(
            problem(400, "Bad request", "Expected one of path or url, a non-empty string")
        )
    try:
        purged = service.purge(SourceKind.URL if name == "url" else SourceKind.PATH, ref)
    except PixfitError as error:
        return _problem(error)
    log.info("purged %d variants of %s %r", purged, name, ref)
    return Response(json.dumps({name: ref, "purged": purged}), mimetype="application/json")


def _readyz(service: ImageService) -> Response:
    """200 while the server takes renders; 503 once it drains (a load balancer's check)."""
    if service.slots.closed:
        return _response(
            problem(503, "Draining", "This server is shutting down", (("Retry-After", "1"),))
        )
    return Response(json.dumps({"status": "ready"}), mimetype="application/json")


def _metrics() -> Response:
    return Response(metrics.exposition(), mimetype="text/plain; version=0.0.4")


def _home(files: LocalSource) -> Response:
    """The playground: every sample rendered for every network class, side by side."""
    prefix = url_for("pixfit.index").rstrip("/")
    response = Response(
        render_template(
            "playground.html", script_version=link_script().version, **page(files, prefix)
        )
    )
    response.headers["Accept-CH"] = ", ".join(PAGE_ACCEPT_CH)
    # Only what the page asks for: Critical-CH must be a subset of Accept-CH.
    critical = [hint for hint in CRITICAL_CH if hint in PAGE_ACCEPT_CH]
    response.headers["Critical-CH"] = ", ".join(critical)
    return response


def _script() -> Response:
    """/pixfit.js: a year's caching under its versioned URL, five minutes under others."""
    script = link_script()
    response = Response(script.body, headers=script.headers(request.args.get("v")))
    response.make_conditional(request)  # a 304 for a matching If-None-Match
    return response
