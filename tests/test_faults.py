"""Faults while serving: the disk cache's disk fills up or its folder goes away, a worker is
killed mid-render, an origin trickles or is down. Real servers on 127.0.0.1 throughout."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pyvips
from flask.testing import FlaskClient

import pixfit.web
from pixfit.cache import DiskCache
from pixfit.config import Config
from pixfit.errors import UpstreamTimeout
from tests import hostile
from tests.test_serve import HOST, START_SECONDS, started

# A hang guard, not a timing assertion: every request here ends well within it.
HANG_SECONDS = 60.0


def is_hit(headers: dict[str, str]) -> bool:
    return 'cache;desc="hit"' in headers.get("Server-Timing", "")


def assert_jpeg(status: int, body: bytes, width: int) -> None:
    assert status == 200, body[:300]
    assert pyvips.Image.new_from_buffer(body, "").width == width


# ---------------------------------------------------------------------------------------
# The disk cache


def test_the_cache_folder_deleted_while_serving_comes_back_by_itself(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with started(tmp_path, cache_kind="disk", cache_path=str(cache)) as server:
        status, _, body = server.get("/images/photo.jpg?w=100")
        assert_jpeg(status, body, 100)
        assert is_hit(server.get("/images/photo.jpg?w=100")[1])
        shutil.rmtree(cache)
        status, headers, body = server.get("/images/photo.jpg?w=100")  # a render again
        assert_jpeg(status, body, 100)
        assert not is_hit(headers)
        status, headers, body = server.get("/images/photo.jpg?w=100")
        assert_jpeg(status, body, 100)
        assert is_hit(headers) and cache.is_dir()
        assert "unhandled" not in server.output()


def test_a_full_disk_costs_the_cache_not_the_answers_and_the_cache_makes_room(
    tmp_path: Path,
) -> None:
    # The server runs in a mount namespace of its own with a 400 KiB tmpfs as the cache
    # folder (`unshare` needs no privilege where user namespaces are allowed).
    cache = tmp_path / "cache"
    cache.mkdir()
    mount = f'mount -t tmpfs -o size=400k tmpfs {cache} && exec "$@"'
    wrapper = ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh")
    big = hostile.jpeg(1200, 900, seed=5)
    with started(
        tmp_path, wrapper=wrapper, files={"big.jpg": big}, cache_kind="disk", cache_path=str(cache)
    ) as server:
        warning = "disk cache cannot store a variant"
        widths = range(400, 440)  # each variant 50-60 KB: the disk is full after seven
        for width in widths:
            status, _, body = server.get(f"/images/big.jpg?w={width}&q=90")
            assert_jpeg(status, body, width)
        # One warning per minute, however many writes failed.
        log = server.log.read_text(errors="replace")
        assert log.count(warning) == 1, [ln for ln in log.splitlines() if "GET" not in ln]
        # A full disk evicts the oldest entries and writes again: new variants are stored.
        for width in range(500, 505):
            assert not is_hit(server.get(f"/images/big.jpg?w={width}&q=90")[1])
            assert is_hit(server.get(f"/images/big.jpg?w={width}&q=90")[1]), server.output()
        assert "unhandled" not in server.output()


# ---------------------------------------------------------------------------------------
# A worker killed mid-render


def workers_of(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def settle(workers: list[int]) -> None:
    """Wait until no worker spends CPU (a new one may still be importing), so that the CPU
    the render then spends tells which worker took it."""
    deadline = time.monotonic() + START_SECONDS
    ticks = {pid: cpu_ticks(pid) for pid in workers}
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = {pid: cpu_ticks(pid) for pid in workers}
        if now == ticks:
            return
        ticks = now


def worker_at_work(ticks: dict[int, int], request: threading.Thread) -> int:
    """The worker that has spent 50 ms of CPU since `ticks` (an idle worker spends none),
    polled so that the kill lands early in the render however fast the machine is."""
    deadline = time.monotonic() + HANG_SECONDS
    while True:
        busy = max(ticks, key=lambda pid: cpu_ticks(pid) - ticks[pid])
        done = not request.is_alive() or time.monotonic() > deadline
        if cpu_ticks(busy) - ticks[busy] >= 5 or done:
            return busy
        time.sleep(0.01)


def assert_only_whole_entries(cache: Path) -> None:
    """Whatever a dead worker left in the cache folder is never a readable entry under a
    key: only whole files were ever renamed into place, the image before its description."""
    store = DiskCache(cache, 10**9)
    for file in cache.glob("??/*/*"):
        if "." not in file.name:  # a description, not an image file or a .tmp- write
            assert store.get(f"{file.parent.name}/{file.name}") is not None, file


def test_a_worker_killed_mid_render_is_replaced_and_leaves_no_partial_entry(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    slow = hostile.jpeg(6000, 4000, seed=2)  # noise to AVIF at 4000 px: over a second of work
    slow_path = "/images/slow.jpg?w=4000&format=avif"
    with started(
        tmp_path, workers=2, files={"slow.jpg": slow}, cache_kind="disk", cache_path=str(cache)
    ) as server:
        deadline = time.monotonic() + START_SECONDS
        while len(workers_of(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = workers_of(server.process.pid)
        settle(before)
        outcome: list[object] = []

        def render() -> None:
            connection = http.client.HTTPConnection(HOST, server.port, timeout=HANG_SECONDS)
            try:
                connection.request("GET", slow_path)
                outcome.append(connection.getresponse().status)
            except (OSError, http.client.HTTPException) as error:
                outcome.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=render)
        ticks = {pid: cpu_ticks(pid) for pid in before}
        thread.start()
        busy = worker_at_work(ticks, thread)
        assert thread.is_alive(), outcome  # still rendering
        os.kill(busy, signal.SIGKILL)
        thread.join(HANG_SECONDS)
        # The client saw its connection end, not a half image.
        assert outcome and not isinstance(outcome[0], int), outcome
        # The other worker answers meanwhile, and the master forks a replacement.
        status, _, body = server.get("/images/photo.jpg?w=90")
        assert_jpeg(status, body, 90)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            now = workers_of(server.process.pid)
            if len(now) == 2 and busy not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and busy not in now and set(now) & set(before)
        assert_only_whole_entries(cache)
        connection = http.client.HTTPConnection(HOST, server.port, timeout=HANG_SECONDS)
        try:
            connection.request("GET", slow_path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200
        image = pyvips.Image.new_from_buffer(body, "")
        assert (image.width, image.get("vips-loader")) == (4000, "heifload_buffer")
        assert server.process.poll() is None


# ---------------------------------------------------------------------------------------
# Origins that trickle or are down


@contextmanager
def origin(behaviour: str) -> Iterator[tuple[int, list[int]]]:
    """A TCP origin on 127.0.0.1: `trickle` sends headers then a byte a second; `silent`
    accepts and never answers. Yields its port and a list that counts connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            held.append(conn)
            if behaviour == "trickle":
                threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        try:
            conn.sendall(head)
            while not stop.wait(1.0):
                conn.sendall(b"\xff")
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def url_client(tmp_path: Path, fetch_timeout: float) -> FlaskClient:
    (tmp_path / "photo.jpg").write_bytes(hostile.jpeg(400, 300))
    config = Config().merged(
        {
            "source": {
                "root": str(tmp_path),
                "allowed_hosts": ["127.0.0.1"],
                "allow_private_networks": True,
                "fetch_timeout": fetch_timeout,
            },
            # One render at a time and no queue: a slot still held would show as a 503.
            "limits": {"max_concurrent": 1, "max_queue": 0},
        }
    )
    return pixfit.web.create_app(config).test_client()


def fetch(client: FlaskClient, url: str) -> tuple[int, dict[str, Any]]:
    """GET the URL source in a thread, failing (not hanging) if it never answers."""
    answers: list[tuple[int, dict[str, Any]]] = []

    def run() -> None:
        response = client.get("/images/", query_string={"url": url, "w": "100"})
        answers.append((response.status_code, json.loads(response.data)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_SECONDS)
    assert answers, f"no answer to {url} within {HANG_SECONDS} s"
    return answers[0]


def test_an_origin_trickling_a_byte_a_second_gets_504_and_frees_the_slot(
    tmp_path: Path,
) -> None:
    client = url_client(tmp_path, fetch_timeout=2.0)
    with origin("trickle") as (port, accepted):
        status, problem = fetch(client, f"http://127.0.0.1:{port}/img.jpg")
        assert status == 504 and "did not finish in time" in str(problem["detail"])
        assert accepted == [1]
    response = client.get("/images/photo.jpg?w=120")
    assert response.status_code == 200
    assert pyvips.Image.new_from_buffer(response.data, "").width == 120


@pytest.mark.parametrize("behaviour", ["silent", "closed"])
def test_an_origin_that_is_down_is_not_asked_again_for_a_while(
    tmp_path: Path, behaviour: str
) -> None:
    client = url_client(tmp_path, fetch_timeout=0.5)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = probe.getsockname()[1]  # nothing listens here afterwards: refused
    with origin("silent") as (silent, accepted):
        url = f"http://127.0.0.1:{silent if behaviour == 'silent' else closed}/img.jpg"
        expected = 504 if behaviour == "silent" else 502
        answers = [fetch(client, url) for _ in range(8)]
        assert [status for status, _ in answers] == [expected] * 8
        # The first three paid the timeout (or the refusal); the rest were answered at
        # once from the back-off, without a connection.
        assert "retrying in" not in str(answers[2][1]["detail"])
        assert all("failed 3 times in a row" in str(p["detail"]) for _, p in answers[3:])
        if behaviour == "silent":
            assert len(accepted) == 3
        # Local images are served all along.
        assert client.get("/images/photo.jpg?w=80").status_code == 200


def test_an_object_store_that_is_down_is_not_asked_again_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pixfit.s3 import Bucket, S3Source  # noqa: PLC0415 (boto3 comes with the s3 extra)

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with origin("silent") as (port, accepted):
        source = S3Source(Bucket("originals", "", f"http://127.0.0.1:{port}", timeout=0.5), 10**6)
        messages = []
        for _ in range(6):
            with pytest.raises(UpstreamTimeout) as caught:
                source.open("a.jpg")
            messages.append(str(caught.value))
        assert all("failed 3 times in a row" in m for m in messages[3:]), messages
        assert len(accepted) == 3
