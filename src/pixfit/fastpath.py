"""Cache hits and 304s through plain WSGI, in front of Flask's routing.

A hit needs a plan, a stat and a cache lookup; Flask's request context, routing, response
object and hooks cost about as much again (bench/hits.py measures both paths). `FastPath`
asks the serving core for an answer that needs no render, sends it with the headers the
Flask view would send, and passes everything else (misses, errors, other routes) to the
app it wraps, untouched. Disk-cache hits leave through `wsgi.file_wrapper`, which
gunicorn and mod_wsgi turn into sendfile, or with `server.x_sendfile` as an `X-Sendfile`
header naming the cached file, which Apache's mod_xsendfile then sends itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import parse_qsl

from werkzeug.http import remove_entity_headers

from pixfit import metrics
from pixfit.errors import PixfitError
from pixfit.logs import ACCESS_LOGGER
from pixfit.profiles import NetworkClass
from pixfit.service import ImageRequest, ImageResponse, ImageService, SourceKind

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "FastPath",
    "Reply",
    "record_access",
]

access_log = logging.getLogger(ACCESS_LOGGER)

# How many bytes wsgi.file_wrapper reads at a time where it cannot use sendfile.
_FILE_BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A hit or a 304 as it goes out: the body is `file` when that is set, else `body`."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes  # b"" for a HEAD or a 304
    # A disk-cache hit's file, positioned at the image bytes; the sender closes it.
    file: BinaryIO | None = None
    # Bytes of `file` to send (`body` tells its own length).
    file_length: int = 0


class FastPath:
    """WSGI middleware: answers hits and 304s itself, hands the rest to `app`."""

    def __init__(
        self, app: WSGIApplication, service: ImageService, prefix: str, *, x_sendfile: bool = False
    ) -> None:
        self.app = app
        self.service = service
        self.prefix = prefix.rstrip("/") + "/"
        self.x_sendfile = x_sendfile

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        reply = self.reply(environ)
        if reply is None:
            return self.app(environ, start_response)
        status = HTTPStatus(reply.status)
        start_response(f"{status.value} {status.phrase}", reply.headers)
        if reply.file is not None:
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                return wrapper(reply.file, _FILE_BLOCK)  # type: ignore[no-any-return]
            with reply.file:
                return [reply.file.read()]
        return [reply.body] if reply.body else []

    def reply(self, environ: WSGIEnvironment) -> Reply | None:
        """The hit or 304 for this request, logged and counted; None where the app must answer.

        Needs only the CGI keys of `environ` (method, path, query, headers, peer), so the
        worker's event loop can ask it too (inloop.py).
        """
        request = self._image_request(environ)
        if request is None:
            return None
        try:
            answer = self.service.cached(request)
        except PixfitError:
            return None  # the app's own handlers word the problem
        if answer is None:
            return None
        return self._reply(environ, answer)

    def _image_request(self, environ: WSGIEnvironment) -> ImageRequest | None:
        """The request as the Flask view would build it, or None where Flask must decide."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        # As werkzeug reads it: PATH_INFO holds the URL's bytes as latin-1 characters.
        path = _decoded(environ.get("PATH_INFO", ""))
        if not path.startswith(self.prefix):
            return None
        ref = path[len(self.prefix) :]
        # Leave anything Flask would redirect, refuse or route elsewhere to Flask.
        if "//" in path or ref.endswith("/") or ref.startswith("_static/"):
            return None
        try:
            pairs = parse_qsl(
                environ.get("QUERY_STRING", "").encode("latin-1").decode(),
                keep_blank_values=True,
                errors="strict",
            )
        except UnicodeError:
            return None
        query = dict(pairs)
        if len(query) != len(pairs):
            return None  # a repeated key: the view refuses it with a 400
        if ref:
            kind = SourceKind.PATH
        elif "url" in query:
            kind, ref = SourceKind.URL, query["url"]
        else:
            return None  # the playground
        return ImageRequest(
            kind=kind,
            ref=ref,
            query=query,
            headers=dict(_headers(environ)),
            signed_path=_decoded(environ.get("SCRIPT_NAME", "")) + path,
            rtt_ms=self.service.rtt_ms(environ),
        )

    def _reply(self, environ: WSGIEnvironment, answer: ImageResponse) -> Reply:
        headers = list(answer.headers)
        sendfile = self.x_sendfile and answer.file is not None
        if answer.status == 304:
            remove_entity_headers(headers)  # as werkzeug does for the Flask view's 304
        elif answer.media_type:
            headers.append(("Content-Type", answer.media_type))
            if not sendfile:  # mod_xsendfile sets the length of the file it sends
                headers.append(("Content-Length", str(answer.length)))
        method = environ["REQUEST_METHOD"]
        record_access(
            environ.get("REMOTE_ADDR"),
            method,
            _target(environ),
            answer.status,
            answer.length if answer.status != 304 else 0,
            answer.network,
            0.0,
        )
        file = answer.file
        if file is not None and (sendfile or method == "HEAD"):
            if sendfile:
                headers.append(("X-Sendfile", str(file.name)))
            file.close()
            file = None
        sends_body = method != "HEAD" and answer.status != 304
        body = answer.body if sends_body else b""
        return Reply(answer.status, headers, body, file, answer.length if file else 0)


def record_access(
    remote: str | None,
    method: str,
    target: str,
    status: int,
    length: int,
    network: NetworkClass | None,
    render_ms: float,
) -> None:
    """Count an image answer in the metrics and write its access-log line."""
    metrics.REQUESTS.labels(str(status), str(network or "-")).inc()
    if status == 200:
        metrics.OUTPUT_BYTES.inc(length)
    access_log.info(
        '%s "%s %s" %s %s class=%s render_ms=%.1f',
        remote,
        method,
        target,
        status,
        length,
        network or "-",
        render_ms,
    )


def _decoded(wsgi_string: str) -> str:
    return wsgi_string.encode("latin-1").decode(errors="replace")


def _target(environ: WSGIEnvironment) -> str:
    """Path and query as the access log shows them (werkzeug's `full_path`, no bare `?`)."""
    query = environ.get("QUERY_STRING", "").encode("latin-1").decode(errors="replace")
    path = _decoded(environ.get("PATH_INFO", ""))
    return f"{path}?{query}" if query else path


def _headers(environ: WSGIEnvironment) -> Iterable[tuple[str, str]]:
    """Request headers named as werkzeug names them (`If-None-Match`)."""
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            yield key[5:].replace("_", "-").title(), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").title(), value
