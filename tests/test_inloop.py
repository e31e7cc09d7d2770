"""Hits and 304s answered in the worker's event loop: the bytes gunicorn would send, or a thread."""

import contextlib
import socket
import threading
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from pixfit.config import Config
from pixfit.inloop import LoopAnswers, LoopReply
from pixfit.serve import SPARE_THREADS
from pixfit.web import create_app
from tests.conftest import decoded, photo, serving
from tests.test_drain import ORIGIN_SETTINGS, GatedOrigin
from tests.test_fastpath import QUERY, app_for, stable
from tests.test_serve import HOST, Server, started
from tests.test_web_cache import noise_photo

TARGET = f"/images/photo.jpg?{QUERY}"


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    return noise_photo(tmp_path / "photo.jpg")


def warmed(photo_path: Path, kind: str = "memory") -> tuple[Flask, LoopAnswers, bytes]:
    """The app, its loop answers, and the image of TARGET, now in the cache."""
    app, _ = app_for(photo_path, kind)
    answers = LoopAnswers.for_app(app)
    assert answers is not None
    image = Client(app).get(TARGET).data
    return app, answers, image


def ask(answers: LoopAnswers, head: str, *, may_keep_alive: bool = True) -> LoopReply | None:
    with socket.socket() as unconnected:  # what the round trip is read from: none here
        return answers.reply(head.encode("latin-1"), ("127.0.0.1", 5), unconnected, may_keep_alive)


def parsed(reply: LoopReply) -> tuple[str, dict[str, str]]:
    lines = reply.head.decode("latin-1").split("\r\n")
    assert lines[-2:] == ["", ""]  # the head ends with its blank line
    return lines[0], dict(line.split(": ", 1) for line in lines[1:-2])


def test_a_hit_goes_out_with_the_headers_flask_and_gunicorn_send(photo_path: Path) -> None:
    app, answers, image = warmed(photo_path)
    reply = ask(answers, f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nAccept: image/jpeg\r\n\r\n")
    assert reply is not None and reply.keep_alive and reply.file is None
    status, headers = parsed(reply)
    assert status == "HTTP/1.1 200 OK"
    assert headers["Server"] == "gunicorn"
    assert headers["Date"].endswith(" GMT")
    through_flask = Client(app.wsgi_app.app).get(TARGET)  # type: ignore[attr-defined]
    ours = stable(headers.items())
    assert ours.pop("Connection") == "keep-alive"  # gunicorn's, not the app's
    assert ours == stable(through_flask.headers.items())
    assert headers["Server-Timing"] == 'cache;desc="hit"'
    assert reply.body == image and int(headers["Content-Length"]) == len(image)
    assert decoded(reply.body).width == 120


def test_a_head_a_304_and_a_disk_hit(photo_path: Path) -> None:
    _, answers, image = warmed(photo_path, "disk")
    head = ask(answers, f"HEAD {TARGET} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head is not None and head.body == b"" and head.file is None
    assert parsed(head)[1]["Content-Length"] == str(len(image))
    hit = ask(answers, f"GET {TARGET} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert hit is not None and hit.body == b"" and hit.file is not None
    with hit.file:
        assert hit.file.read() == image  # sent by sendfile from where it stands
    etag = parsed(hit)[1]["ETag"]
    same = ask(answers, f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n")
    assert same is not None and same.body == b"" and same.file is None
    status, headers = parsed(same)
    assert status == "HTTP/1.1 304 Not Modified" and headers["ETag"] == etag
    assert "Content-Type" not in headers and "Content-Length" not in headers


@pytest.mark.parametrize(
    ("version", "connection", "may_keep_alive", "keep_alive"),
    [
        ("1.1", None, True, True),
        ("1.1", "close", True, False),
        ("1.1", None, False, False),  # a stopping worker, or too many kept-alive connections
        ("1.0", None, True, False),
        ("1.0", "keep-alive", True, True),
    ],
)
def test_keep_alive_follows_the_client_and_the_worker(
    photo_path: Path, version: str, connection: str | None, may_keep_alive: bool, keep_alive: bool
) -> None:
    _, answers, _ = warmed(photo_path)
    extra = f"Connection: {connection}\r\n" if connection else ""
    request = f"GET {TARGET} HTTP/{version}\r\nHost: x\r\n{extra}\r\n"
    reply = ask(answers, request, may_keep_alive=may_keep_alive)
    assert reply is not None and reply.keep_alive is keep_alive
    status, headers = parsed(reply)
    assert status == f"HTTP/{version} 200 OK"
    assert headers["Connection"] == ("keep-alive" if keep_alive else "close")


@pytest.mark.parametrize(
    "request_text",
    [
        f"POST {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\n\r\nGET {TARGET} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nX_Forwarded: 1\r\n\r\n",  # gunicorn drops it
        f"GET http://x{TARGET} HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute form
        f"GET {TARGET} HTTP/1.1\r\nHost x\r\n\r\n",  # not a header
        f"GET {TARGET} HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /images/photo.jpg?w=121 HTTP/1.1\r\nHost: x\r\n\r\n",  # a miss
        "GET /images/photo.jpg?w=abc HTTP/1.1\r\nHost: x\r\n\r\n",  # a 400
        "GET /images/nope.jpg?w=120 HTTP/1.1\r\nHost: x\r\n\r\n",  # a 404
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # another route
        "GET /images/ HTTP/1.1\r\nHost: x\r\n\r\n",  # the playground
    ],
)
def test_anything_but_a_plain_hit_goes_to_a_thread(photo_path: Path, request_text: str) -> None:
    _, answers, _ = warmed(photo_path)
    assert ask(answers, request_text) is None


@pytest.mark.parametrize(
    "request_text",
    [
        "GET /images/ph%6Fto.jpg?w=120&q=70&format=jpeg HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET {TARGET} HTTP/1.1\r\nhOsT: x\r\nACCEPT: image/webp\r\nAccept: */*\r\n\r\n",
        f"GET {TARGET}#fragment HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_odd_but_lawful_requests_get_the_same_hit(photo_path: Path, request_text: str) -> None:
    _, answers, image = warmed(photo_path)
    reply = ask(answers, request_text)
    assert reply is not None and reply.body == image


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from([f"GET {TARGET} HTTP/1.1\r\n", "HEAD / HTTP/1.0\r\n", ""]),
    noise=st.binary(max_size=200),
)
def test_any_bytes_give_an_answer_or_a_thread_never_an_exception(
    loop_answers: LoopAnswers, start: str, noise: bytes
) -> None:
    with socket.socket() as unconnected:
        data = start.encode() + noise + b"\r\n\r\n"
        reply = loop_answers.reply(data, ("127.0.0.1", 5), unconnected, True)
    if reply is not None:
        status, _ = parsed(reply)
        assert status.startswith("HTTP/1.")


@pytest.fixture(scope="module")
def loop_answers(tmp_path_factory: pytest.TempPathFactory) -> LoopAnswers:
    return warmed(noise_photo(tmp_path_factory.mktemp("loop") / "photo.jpg"))[1]


def test_only_apps_with_a_cache_that_never_waits_on_the_network_answer_in_the_loop(
    tmp_path: Path,
) -> None:
    def app(**sections: dict[str, object]) -> Flask:
        return create_app(Config().merged({"source": {"root": str(tmp_path)}, **sections}))

    assert LoopAnswers.for_app(app(cache={"kind": "memory"})) is not None
    assert LoopAnswers.for_app(app(cache={"kind": "disk", "path": str(tmp_path / "c")}))
    assert LoopAnswers.for_app(app(cache={"kind": "none"})) is not None  # 304s need a stat
    redis = {"kind": "redis", "url": "redis://127.0.0.1:1/0"}
    assert LoopAnswers.for_app(app(cache=redis)) is None
    assert LoopAnswers.for_app(app(cache={"kind": "memory"}, server={"x_sendfile": True})) is None
    off = {"hits_in_loop": False}
    assert LoopAnswers.for_app(app(cache={"kind": "memory"}, server=off)) is None
    assert LoopAnswers.for_app(Flask("not pixfit")) is None


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_hits_over_one_kept_alive_connection_of_a_real_server(tmp_path: Path, kind: str) -> None:
    settings = {"cache_kind": kind, "cache_path": str(tmp_path / "cache")}
    with started(tmp_path, **settings) as server:
        status, _, first = server.get(TARGET)  # the miss: a thread renders it
        assert status == 200
        with (
            socket.create_connection((HOST, server.port), timeout=10) as conn,
            conn.makefile("rb") as reader,
        ):
            hit = f"GET {TARGET} HTTP/1.1\r\nHost: x\r\n\r\n"
            head = f"HEAD {TARGET} HTTP/1.1\r\nHost: x\r\n\r\n"
            for sent in (hit, head, hit + hit):  # the last pair pipelined: a thread's
                conn.sendall(sent.encode())
                for _ in range(sent.count("HTTP/1.1")):
                    status_line, headers, body = read_answer(reader, sent.startswith("HEAD"))
                    assert status_line == "HTTP/1.1 200 OK"
                    assert headers["server-timing"] == 'cache;desc="hit"'
                    assert headers["connection"] == "keep-alive"
                    assert int(headers["content-length"]) == len(first)
                    assert body == (b"" if sent.startswith("HEAD") else first)


def test_a_worker_whose_threads_all_wait_on_origins_still_answers_hits(tmp_path: Path) -> None:
    """Every thread of the one worker waits on a held origin; a hit and a 304 still come back,
    over one kept-alive connection, because the event loop answers them itself."""
    origin_body = bytes(photo(600, 400).jpegsave_buffer(Q=85))
    limits = {"limits_max_concurrent": "1", "limits_max_queue": "0", "cache_kind": "memory"}
    threads = 1 + 0 + SPARE_THREADS
    with (
        serving(CountingOrigin(origin_body)) as origin,
        started(tmp_path, **limits, **ORIGIN_SETTINGS) as server,
    ):
        status, _, first = server.get(TARGET)
        assert status == 200
        held = [
            threading.Thread(
                target=ask_quietly, args=(server, f"/images/?url={quote(origin.url)}&w={w}")
            )
            for w in range(100, 100 + threads)
        ]
        for thread in held:
            thread.start()
        assert origin.all_arrived(threads, 30), server.output()
        with (
            socket.create_connection((HOST, server.port), timeout=10) as conn,
            conn.makefile("rb") as reader,
        ):
            etag = None
            for extra in ("", "If-None-Match: {etag}\r\n"):
                request = f"GET {TARGET} HTTP/1.1\r\nHost: x\r\n{extra.format(etag=etag)}\r\n"
                conn.sendall(request.encode())
                status_line, headers, body = read_answer(reader)
                etag = headers["etag"]
                if extra:
                    assert status_line.startswith("HTTP/1.1 304") and body == b""
                else:
                    assert status_line.startswith("HTTP/1.1 200") and body == first
                    assert headers["server-timing"] == 'cache;desc="hit"'
        origin.stop.set()
        for thread in held:
            thread.join(30)


def ask_quietly(server: Server, path: str) -> None:
    """A request whose answer does not matter (it may time out while its origin is held)."""
    with contextlib.suppress(OSError):
        server.get(path)


class CountingOrigin(GatedOrigin):
    """A held origin that counts the requests waiting on it."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.waiting = 0
        self.changed = threading.Condition()

    def process_request(self, request: object, client_address: object) -> None:
        with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        super().process_request(request, client_address)  # type: ignore[arg-type]

    def all_arrived(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.waiting >= count, timeout)


def read_answer(reader: BinaryIO, to_head: bool = False) -> tuple[str, dict[str, str], bytes]:
    """One answer off a kept-alive connection: status line, headers (lower case), body
    (none after a HEAD)."""
    status_line = reader.readline().decode("latin-1").rstrip("\r\n")
    headers = {}
    while line := reader.readline().decode("latin-1").rstrip("\r\n"):
        name, value = line.split(": ", 1)
        headers[name.lower()] = value
    length = 0 if to_head else int(headers.get("content-length", "0"))
    body = reader.read(length)
    assert len(body) == length, "the server closed the connection"
    return status_line, headers, body
