"""What a cache hit costs inside the app, path by path, in one process (no server, no socket).

    PYTHONPATH=src .venv/bin/python bench/hits.py [--n 20000]

Calls the WSGI app directly with a memory-cache hit and with a 304, through the plain-WSGI
fast path and through Flask's routing (the app the fast path wraps), gives the same request's
bytes to the answer `pixfit serve`'s event loop makes (inloop.py: httptools' parse, the fast
path, the response head), and prices the access log line and the metrics apart. The access
log goes to a file, as `[log] access_file` would send it. Prints microseconds per request and
the ratios to the Flask path measured in the same run. Through a WSGI server, its own cost per
request (parsing, threads) comes on top; in the event loop only the socket calls do.
"""

from __future__ import annotations

import argparse
import io
import logging
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips

from pixfit.config import Config
from pixfit.fastpath import FastPath, record_access
from pixfit.inloop import LoopAnswers
from pixfit.logs import ACCESS_LOGGER
from pixfit.profiles import NetworkClass
from pixfit.web import create_app

QUERY = "w=800&q=80&format=jpeg"


def environ(etag: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/images/photo.jpg",
        "QUERY_STRING": QUERY,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_ACCEPT": "image/avif,image/webp,*/*",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if etag:
        env["HTTP_IF_NONE_MATCH"] = etag
    return env


def request_bytes(env: dict[str, Any]) -> bytes:
    """The HTTP request a WSGI environ describes, as a client sends it."""
    lines = [f"{env['REQUEST_METHOD']} {env['PATH_INFO']}?{env['QUERY_STRING']} HTTP/1.1"]
    lines += [
        f"{key[5:].replace('_', '-').title()}: {value}"
        for key, value in env.items()
        if key.startswith("HTTP_")
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def loop_us(answers: LoopAnswers, data: bytes, n: int) -> float:
    with socket.socket() as unconnected:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                answers.reply(data, ("127.0.0.1", 5), unconnected, True)
            best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def per_request_us(app: Callable[..., Any], env: dict[str, Any], n: int) -> float:
    def start_response(*_: Any) -> None:
        pass

    best = float("inf")
    for _ in range(3):  # best of three: the machine is shared
        started = time.perf_counter()
        for _ in range(n):
            body = app(dict(env), start_response)
            b"".join(body)
            getattr(body, "close", lambda: None)()
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pyvips.Image.gaussnoise(2400, 1600, sigma=40, mean=128).cast("uchar").bandjoin(
            [128, 128]
        ).copy(interpretation="srgb").jpegsave(str(root / "photo.jpg"), Q=90)
        config = Config().merged(
            {
                "source": {"root": str(root)},
                "cache": {"kind": "memory"},
                "log": {"access_file": str(root / "access.log")},
            }
        )
        app = create_app(config)
        fast = app.wsgi_app
        assert isinstance(fast, FastPath)
        flask_only = app.wsgi_app = fast.app  # type: ignore[method-assign]
        headers: list[tuple[str, str]] = []
        b"".join(flask_only(environ(), lambda _s, h, *_: headers.extend(h)))
        etag = dict(headers)["ETag"]
        access = logging.getLogger(ACCESS_LOGGER)
        rows = []
        answers = LoopAnswers(fast)
        for label, env in (("hit", environ()), ("304", environ(etag))):
            app.wsgi_app = fast  # type: ignore[method-assign]
            in_loop = loop_us(answers, request_bytes(env), n)
            through_fast = per_request_us(app, env, n)
            app.wsgi_app = flask_only  # type: ignore[method-assign]
            through_flask = per_request_us(app, env, n)
            app.wsgi_app = fast  # type: ignore[method-assign]
            access.disabled = True
            no_log = per_request_us(app, env, n)
            access.disabled = False
            rows.append((label, through_flask, through_fast, no_log, in_loop))
        started = time.perf_counter()
        for _ in range(n):
            record_access(
                "127.0.0.1", "GET", "/images/photo.jpg?" + QUERY, 200, 1, NetworkClass.WIFI, 0
            )
        record_us = (time.perf_counter() - started) / n * 1e6
    print(f"{n} requests per path, best of 3, microseconds per request (one core, in-process)")
    print(
        "| answer | through Flask | fast path | fast / Flask | fast path, access log off "
        "| event loop (request bytes to response head) | loop / Flask |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|")
    for label, slow, quick, no_log, in_loop in rows:
        print(
            f"| {label} | {slow:.0f} | {quick:.0f} | {quick / slow:.2f} | {no_log:.0f} "
            f"| {in_loop:.0f} | {in_loop / slow:.2f} |"
        )
    print(f"\nrecord_access (metrics + one access-log line to a file): {record_us:.1f} us")


if __name__ == "__main__":
    main()
