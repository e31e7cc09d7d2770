"""Hits and 304s through the plain-WSGI fast path: the same answer as Flask's, without Flask."""

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import pytest
from flask import Flask
from werkzeug.test import Client

from pixfit.config import Config
from pixfit.fastpath import FastPath
from pixfit.logs import ACCESS_LOGGER
from pixfit.signing import sign_url
from pixfit.web import create_app
from tests.conftest import decoded
from tests.test_serve import started
from tests.test_web_cache import noise_photo

QUERY = "w=120&q=70&format=jpeg"
# Headers that differ between any two answers, whoever sends them.
VOLATILE = {"Date", "Server", "Server-Timing"}


def app_for(photo: Path, kind: str) -> tuple[Flask, list[str]]:
    """The app, and the paths Flask itself handled (its routing never sees fast-path hits)."""
    config = Config().merged(
        {
            "source": {"root": str(photo.parent)},
            "cache": {"kind": kind, "path": str(photo.parent / "cache")},
        }
    )
    app = create_app(config)
    routed: list[str] = []

    @app.before_request
    def count() -> None:
        from flask import request  # noqa: PLC0415

        routed.append(request.path)

    return app, routed


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return noise_photo(tmp_path / "photo.jpg")


def stable(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name not in VOLATILE}


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_hit_skips_flask_and_sends_what_flask_sends(photo: Path, kind: str) -> None:
    app, routed = app_for(photo, kind)
    assert isinstance(app.wsgi_app, FastPath)
    fast, slow = Client(app), Client(app.wsgi_app.app)
    first = fast.get(f"/images/photo.jpg?{QUERY}")
    assert first.status_code == 200 and routed == ["/images/photo.jpg"]  # a miss: Flask
    hit = fast.get(f"/images/photo.jpg?{QUERY}")
    assert routed == ["/images/photo.jpg"]  # the hit never reached Flask
    assert hit.headers["Server-Timing"] == 'cache;desc="hit"'
    through_flask = slow.get(f"/images/photo.jpg?{QUERY}")
    assert through_flask.headers["Server-Timing"] == 'cache;desc="hit"'
    assert stable(hit.headers.items()) == stable(through_flask.headers.items())
    assert hit.data == through_flask.data == first.data
    assert decoded(hit.data).width == 120
    head = fast.head(f"/images/photo.jpg?{QUERY}")
    assert head.data == b"" and head.headers["Content-Length"] == str(len(first.data))


@pytest.mark.parametrize("kind", ["none", "memory"])
def test_a_304_skips_flask_and_sends_what_flask_sends(photo: Path, kind: str) -> None:
    app, routed = app_for(photo, kind)
    fast, slow = Client(app), Client(app.wsgi_app.app)  # type: ignore[attr-defined]
    etag = fast.get(f"/images/photo.jpg?{QUERY}").headers["ETag"]
    routed.clear()
    asked = {"If-None-Match": etag}
    again = fast.get(f"/images/photo.jpg?{QUERY}", headers=asked)
    assert again.status_code == 304 and again.data == b"" and routed == []
    through_flask = slow.get(f"/images/photo.jpg?{QUERY}", headers=asked)
    assert through_flask.status_code == 304
    assert stable(again.headers.items()) == stable(through_flask.headers.items())
    assert again.headers["ETag"] == etag and "Content-Type" not in again.headers


def test_misses_errors_and_other_routes_reach_flask(photo: Path) -> None:
    app, routed = app_for(photo, "memory")
    client = Client(app)
    bad = client.get("/images/photo.jpg?w=abc")
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/problem+json"
    twice = client.get("/images/photo.jpg?w=10&w=20")
    assert twice.status_code == 400 and "once" in twice.get_json()["detail"]
    assert client.get("/images/nope.jpg?w=10").status_code == 404
    assert client.get("/images/../photo.jpg?w=10").status_code in (403, 404)
    assert client.get("/healthz").status_code == 200
    assert client.post(f"/images/photo.jpg?{QUERY}").status_code == 405
    assert len(routed) == 6


def test_a_disk_hit_leaves_through_the_file_wrapper(photo: Path) -> None:
    app, _ = app_for(photo, "disk")
    body = Client(app).get(f"/images/photo.jpg?{QUERY}").data
    wrapped: list[FileWrapper] = []

    def file_wrapper(file: io.BufferedReader, block: int) -> FileWrapper:
        wrapped.append(FileWrapper(file, block))
        return wrapped[-1]

    status: list[str] = []
    headers: list[tuple[str, str]] = []

    def start_response(line: str, sent: list[tuple[str, str]], *_: Any) -> None:
        status.append(line)
        headers.extend(sent)

    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/images/photo.jpg",
        "QUERY_STRING": QUERY,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.file_wrapper": file_wrapper,
    }
    answer = app(environ, start_response)
    assert status == ["200 OK"] and wrapped and answer is wrapped[0]
    sent = b"".join(answer)
    wrapped[0].close()
    # The wrapper starts at the image bytes (past the entry's header line), and the file
    # descriptor is there too, as sendfile reads from it.
    assert sent == body
    assert dict(headers)["Content-Length"] == str(len(body))


def test_fast_path_hits_are_logged_and_counted(
    photo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_for(photo, "memory")
    client = Client(app)
    client.get(f"/images/photo.jpg?{QUERY}")
    hits, answered = metric(client, CACHE_HITS), metric(client, ANSWERED_200)
    logging.getLogger(ACCESS_LOGGER).addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, ACCESS_LOGGER):
            caplog.clear()
            size = len(client.get(f"/images/photo.jpg?{QUERY}").data)
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(caplog.handler)
    # The test client gives no remote address, so the line starts with None.
    assert [r.getMessage() for r in caplog.records] == [
        f'None "GET /images/photo.jpg?{QUERY}" 200 {size} class=wifi render_ms=0.0'
    ]
    assert metric(client, CACHE_HITS) == hits + 1
    assert metric(client, ANSWERED_200) == answered + 1


CACHE_HITS = 'pixfit_cache_total{result="hit"}'
ANSWERED_200 = 'pixfit_requests_total{network_class="wifi",status="200"}'


def metric(client: Client, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_disk_hits_under_gunicorn_arrive_whole(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with started(tmp_path, cache_kind="disk", cache_path=str(cache)) as server:
        status, _, first = server.get(f"/images/photo.jpg?{QUERY}")
        assert status == 200
        for _ in range(3):  # sendfile from the entry, past its header line
            status, headers, body = server.get(f"/images/photo.jpg?{QUERY}")
            assert status == 200 and headers["Server-Timing"] == 'cache;desc="hit"'
            assert body == first and decoded(body).width == 120


def test_signed_hits_are_checked_on_the_fast_path(photo: Path) -> None:
    config = Config().merged(
        {
            "source": {"root": str(photo.parent)},
            "cache": {"kind": "memory"},
            "security": {"signing_keys": ["k1"]},
        }
    )
    app = create_app(config)
    routed: list[str] = []
    app.before_request(lambda: routed.append("flask") and None)
    client = Client(app)
    url = sign_url(f"/images/photo.jpg?{QUERY}", "k1")
    assert client.get(url).status_code == 200 and routed == ["flask"]  # the miss
    assert client.get(url).headers["Server-Timing"] == 'cache;desc="hit"'
    assert routed == ["flask"]  # the hit was answered before Flask
    forged = url.replace("w=120", "w=121")
    refused = client.get(forged)
    assert refused.status_code == 403 and routed == ["flask", "flask"]
    assert client.get(f"/images/photo.jpg?{QUERY}").status_code == 403  # unsigned
