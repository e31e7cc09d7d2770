"""A node that can be replaced: /readyz, and SIGTERM draining a real `pixfit serve`."""

from __future__ import annotations

import http.client
import http.server
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pixfit.config import Config
from pixfit.errors import Overloaded
from pixfit.limiter import RenderSlots
from pixfit.web import create_app
from tests.conftest import decoded, photo, serving
from tests.test_serve import Server, started


class GatedOrigin(http.server.ThreadingHTTPServer):
    """An origin whose image is only sent once the test says so: a request held in flight."""

    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _GatedHandler)
        self.body = body
        self.arrived = threading.Event()
        self.stop = threading.Event()  # `serving` sets it at exit: releases the handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/photo.jpg"


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    server: GatedOrigin

    def do_GET(self) -> None:
        self.server.arrived.set()
        self.server.stop.wait(120)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_closed_slots_refuse_new_renders_and_wait_for_requests_in_flight() -> None:
    slots = RenderSlots(1, 1, 1.0)
    refused: list[Exception] = []

    def new_request() -> None:
        with slots.request():
            try:
                with slots.slot():
                    pass
            except Overloaded as error:
                refused.append(error)

    with slots.request():
        slots.close()
        latecomer = threading.Thread(target=new_request)
        latecomer.start()
        latecomer.join(10)
        assert "shutting down" in str(refused[0])
        assert not slots.wait_idle(0.01)
        with slots.slot():  # the request in flight still renders
            pass
    assert slots.wait_idle(0)


def test_readyz_fails_once_the_node_drains(tmp_path: Path) -> None:
    app = create_app(Config().merged({"source": {"root": str(tmp_path)}}))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    app.extensions["pixfit"].slots.close()
    draining = client.get("/readyz")
    assert draining.status_code == 503 and draining.headers["Retry-After"] == "1"
    assert draining.mimetype == "application/problem+json"
    assert client.get("/healthz").status_code == 200  # liveness is another question


def start_slow_request(server: Server, origin: GatedOrigin) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    url = f"/images/?url={quote(origin.url, safe='')}&w=300"

    def ask() -> None:
        try:
            answers.append(server.get(url))
        except (OSError, http.client.HTTPException) as error:  # a worker killed under it
            answers.append(error)

    thread = threading.Thread(target=ask)
    thread.start()
    assert origin.arrived.wait(60), server.output()
    return thread, answers


def wait_until_draining(server: Server) -> None:
    while server.get("/readyz")[0] != 503:  # SIGTERM reaches the worker through the master
        assert server.process.poll() is None, server.output()
        time.sleep(0.05)


ORIGIN_SETTINGS = {
    "source_allowed_hosts": "127.0.0.1",
    "source_allow_private_networks": "true",
    "source_fetch_timeout": "120",
}


def test_sigterm_finishes_the_request_in_flight_and_refuses_new_renders(tmp_path: Path) -> None:
    body = bytes(photo(600, 400).jpegsave_buffer(Q=85))
    with (
        serving(GatedOrigin(body)) as origin,
        started(tmp_path, server_grace_period="60", **ORIGIN_SETTINGS) as server,
    ):
        assert server.get("/readyz")[0] == 200
        thread, answers = start_slow_request(server, origin)
        server.process.send_signal(signal.SIGTERM)
        wait_until_draining(server)
        status, headers, problem = server.get("/images/photo.jpg?w=200")
        assert status == 503 and headers["Retry-After"] == "1", problem
        assert b"shutting down" in problem
        assert server.get("/healthz")[0] == 200

        origin.stop.set()  # the slow request may now finish
        thread.join(60)
        status, headers, image = answers[0]
        assert status == 200 and decoded(image).width == 300
        assert server.process.wait(timeout=60) == 0, server.output()


def test_a_request_that_never_ends_does_not_outlive_the_grace_period(tmp_path: Path) -> None:
    body = bytes(photo(600, 400).jpegsave_buffer(Q=85))
    with (
        serving(GatedOrigin(body)) as origin,
        started(tmp_path, server_grace_period="2", **ORIGIN_SETTINGS) as server,
    ):
        thread, answers = start_slow_request(server, origin)
        server.process.send_signal(signal.SIGTERM)
        # gunicorn's master kills what is left after the grace period; the margin here is
        # only for a loaded machine.
        server.process.wait(timeout=60)
        assert "draining worker" in server.output()
        origin.stop.set()
        thread.join(60)
        assert isinstance(answers[0], http.client.RemoteDisconnected)  # cut, as promised
