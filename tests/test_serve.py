"""A smoke test of `pixfit serve`: a real gunicorn on a free port, reached over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyvips

from pixfit.serve import (
    MALLOC_TUNABLES,
    MULTIPROCESS_ENV,
    OWNER,
    OWNER_ENV,
    TUNABLES_ENV,
    serving_environ,
)
from tests.conftest import shown

START_SECONDS = 20
STOP_SECONDS = 15


def can_bind(host: str) -> bool:
    try:
        with socket.socket() as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


# Linux answers on all of 127/8: binding 127.0.0.2 shows --host is used, not the default.
HOST = "127.0.0.2" if can_bind("127.0.0.2") else "127.0.0.1"


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def pixfit_command() -> list[str]:
    script = Path(sys.executable).with_name("pixfit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pixfit.cli"]


@dataclass(frozen=True)
class Server:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    tmpdir: Path
    photo: bytes

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"pixfit serve exited with {server.process.returncode}:\n{server.output()}")
        try:
            if server.get("/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"pixfit serve did not answer /healthz in {START_SECONDS} s:\n{server.output()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL to the server's own process group if it does not go."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_SECONDS)
        raise


@contextmanager
def started(
    tmp_path: Path,
    *,
    workers: int = 1,
    wrapper: tuple[str, ...] = (),
    files: dict[str, bytes] | None = None,
    environ: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[Server]:
    """`pixfit serve` with `workers`, `settings` as PIXFIT_* variables, stopped at exit.

    The root holds photo.jpg (800x500) and `files`; `wrapper` is a command line that
    `pixfit serve ...` is appended to (a namespace, say); `environ` adds other variables.
    """
    root, tmpdir = tmp_path / "root", tmp_path / "tmp"
    root.mkdir()
    tmpdir.mkdir()
    xy = pyvips.Image.xyz(800, 500)
    image = (xy[0] * 0.3).bandjoin([xy[1] * 0.5, (xy[0] + xy[1]) * 0.2]).cast("uchar")
    photo = bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=85))
    (root / "photo.jpg").write_bytes(photo)
    for name, data in (files or {}).items():
        (root / name).write_bytes(data)
    port = free_port(HOST)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIXFIT_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop(TUNABLES_ENV, None)
    env["TMPDIR"] = str(tmpdir)
    env.update(environ or {})
    env.update({f"PIXFIT_{name.upper()}": value for name, value in settings.items()})
    command = [*wrapper, *pixfit_command(), "serve", "--root", str(root)]
    command += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    running = Server(f"http://{HOST}:{port}", port, process, log, tmpdir, photo)
    try:
        wait_until_ready(running)
        yield running
    finally:
        stop(process)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with started(tmp_path) as running:
        yield running


def test_serve_binds_its_address_answers_images_and_problems_then_stops(server: Server) -> None:
    with socket.create_connection((HOST, server.port), timeout=5):
        pass
    if HOST != "127.0.0.1":  # --host was honoured: nothing listens on the default address
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    status, headers, body = server.get("/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})

    status, headers, body = server.get("/images/photo.jpg?w=200")
    assert status == 200, body[:300]
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(body)
    image = shown(body)
    assert (image.width, image.height, image.get("vips-loader")) == (200, 125, "jpegload_buffer")

    status, headers, body = server.get("/images/photo.jpg")
    assert (status, body) == (200, server.photo)

    status, headers, body = server.get("/images/photo.jpg?w=abc")
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 400 and "'abc'" in problem["detail"] and problem["title"]

    status, headers, body = server.get("/images/nope.jpg")
    assert status == 404 and headers["Content-Type"] == "application/problem+json"

    assert stop(server.process) == 0, server.output()
    # serve's per-run metrics folder goes away with the server.
    assert list(server.tmpdir.glob("pixfit-metrics-*")) == []


FOLDER = {MULTIPROCESS_ENV: "/tmp/metrics", OWNER_ENV: OWNER}
TUNED = {TUNABLES_ENV: MALLOC_TUNABLES}


@pytest.mark.parametrize(
    ("environ", "libc", "added"),
    [
        ({"PATH": "/bin"}, "glibc 2.36", {**TUNED, **FOLDER}),
        ({"PATH": "/bin", TUNABLES_ENV: ""}, "glibc 2.36", FOLDER),  # the operator's: kept
        ({TUNABLES_ENV: "glibc.malloc.arena_max=4"}, "glibc 2.36", FOLDER),
        ({"PATH": "/bin"}, "", FOLDER),  # musl and others: no tunables to set
        ({MULTIPROCESS_ENV: "/srv/metrics"}, "glibc 2.36", TUNED),  # the operator's folder
        ({"PATH": "/bin", **TUNED, **FOLDER}, "glibc 2.36", None),  # already restarted
        ({MULTIPROCESS_ENV: "/srv/metrics"}, "", None),
    ],
)
def test_serve_restarts_once_with_the_malloc_tunables_and_a_metrics_folder(
    environ: dict[str, str], libc: str, added: dict[str, str] | None
) -> None:
    wanted = serving_environ(environ, libc, lambda: "/tmp/metrics")
    assert wanted == (None if added is None else {**environ, **added})


def _tunables_of(pid: int) -> str | None:
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v for v in variables if v.startswith(TUNABLES_ENV.encode() + b"=")]
    return found[0].split(b"=", 1)[1].decode() if found else None


def _workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_the_server_and_its_workers_run_under_the_malloc_tunables(tmp_path: Path) -> None:
    with started(tmp_path, workers=2) as server:
        # gunicorn forks its workers a random fraction of a second apart: wait for both.
        deadline = time.monotonic() + START_SECONDS
        while len(_workers_of(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [server.process.pid, *_workers_of(server.process.pid)]
        assert len(pids) == 3
        for pid in pids:
            tunables = _tunables_of(pid)
            # glibc (2.36 here) may cut the variable at its first ':' once it has read it.
            assert tunables and MALLOC_TUNABLES.startswith(tunables), (pid, tunables)
    (tmp_path / "own").mkdir()
    with started(tmp_path / "own", environ={TUNABLES_ENV: ""}) as server:
        assert _tunables_of(server.process.pid) == ""  # the operator's choice stands


def _cache_lookups(server: Server) -> float:
    status, _, body = server.get("/metrics")
    assert status == 200
    counts = [
        float(line.split()[-1])
        for line in body.decode().splitlines()
        if line.startswith("pixfit_cache_total{")
    ]
    return sum(counts)


def test_metrics_count_every_worker(tmp_path: Path) -> None:
    # The metrics folder must be chosen before prometheus_client is first imported, which
    # the `pixfit` command does before `serve` runs: without the restart, each worker
    # counted alone and /metrics showed whichever worker answered.
    with started(tmp_path, workers=2, cache_kind="memory") as server:
        deadline = time.monotonic() + START_SECONDS
        while len(_workers_of(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(40):  # new connections, spread over both workers by the kernel
            assert server.get("/images/photo.jpg?w=200")[0] == 200
        for _ in range(10):  # every answer, from either worker, counts all 40 lookups
            assert _cache_lookups(server) == 40


def test_a_worker_is_recycled_after_its_renders_and_never_for_hits(tmp_path: Path) -> None:
    recycled, booted = "recycling worker", "Booting worker"
    with started(tmp_path, server_recycle_after_renders="3", cache_kind="memory") as server:

        def log() -> str:
            return server.log.read_text(errors="replace")

        for _ in range(30):  # one render, then 29 hits from the worker's memory cache
            assert server.get("/images/photo.jpg?w=200")[0] == 200
        assert server.get("/images/photo.jpg")[0] == 200  # the original: no render either
        assert recycled not in log()
        for width in (201, 202):  # renders two and three
            assert server.get(f"/images/photo.jpg?w={width}")[0] == 200
        deadline = time.monotonic() + START_SECONDS
        while log().count(booted) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recycled in log() and log().count(booted) == 2
        # The master forked a fresh worker, which serves on.
        assert server.get("/images/photo.jpg?w=203")[0] == 200


def open_slow(port: int, head: bytes, count: int, receive_buffer: int = 0) -> list[socket.socket]:
    """`count` connections that sent `head` and then nothing more."""
    slow = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.sendall(head)
        slow.append(sock)
    return slow


def first_line(sock: socket.socket) -> bytes:
    """The status line the server sent, or b"" if it only closed the connection."""
    with sock:
        return sock.makefile("rb").readline().strip()


@pytest.mark.parametrize("cache", ["memory", "disk"])  # a disk hit goes out by sendfile
def test_slow_clients_hold_no_thread_and_are_cut_at_their_deadline(
    tmp_path: Path, cache: str
) -> None:
    settings = {"server_request_timeout": "3", "cache_kind": cache}
    with started(tmp_path, cache_path=str(tmp_path / "cache"), **settings) as server:
        assert server.get("/images/photo.jpg?w=200")[0] == 200
        hit = server.get("/images/photo.jpg?w=640&q=95")[2]
        # More dribbling connections than the worker has threads (17), of every kind: a
        # request line without its end, a head announcing a body that never comes, and
        # readers that take no byte of a large answer.
        headers = open_slow(server.port, b"GET /images/photo.jpg?w=200 HTTP/1.1\r\nHost: x", 60)
        bodies = open_slow(
            server.port, b"POST /_pixfit/purge HTTP/1.1\r\nContent-Length: 9999\r\n\r\nab", 30
        )
        readers = open_slow(
            server.port, b"GET /images/photo.jpg?w=640&q=95 HTTP/1.1\r\n\r\n" * 3, 30, 16384
        )
        for _ in range(20):  # ordinary requests are answered meanwhile
            status, headers_, body = server.get("/images/photo.jpg?w=200")
            assert status == 200 and headers_["Content-Type"] == "image/jpeg"
            assert pyvips.Image.new_from_buffer(body, "").width == 200
        # The senders get a 408 problem once their deadline passes, and are closed.
        for sock in headers + bodies:
            assert first_line(sock) == b"HTTP/1.1 408 Request Timeout"
        # The readers still hold their answers (cache hits): reading now gets them whole.
        for sock in readers[:3]:
            with sock:
                sock.settimeout(10)
                stream = sock.makefile("rb")
                for _ in range(3):
                    assert stream.readline().strip() == b"HTTP/1.1 200 OK"
                    length = 0
                    while line := stream.readline().strip():
                        name, _, value = line.decode().partition(": ")
                        length = int(value) if name == "Content-Length" else length
                    assert stream.read(length) == hit
        for sock in readers[3:]:
            sock.close()
        status, _, metrics = server.get("/metrics")
        line = next(
            line
            for line in metrics.decode().splitlines()
            if line.startswith('pixfit_slow_clients_total{reason="request_timeout"}')
        )
        assert float(line.split()[-1]) == 90
        assert server.get("/images/photo.jpg?w=200")[0] == 200
