"""RedisCache against a real redis-server, started on a free port for each test."""

import logging
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from pixfit.cache import RedisCache, make_cache, pack
from pixfit.config import CacheConfig, CacheKind, Config
from pixfit.errors import UpstreamError
from pixfit.web import create_app
from tests.conftest import photo, require_tool, serving
from tests.test_cache import assert_purges_one_source, variant

REDIS_SERVER = shutil.which("redis-server")

require_tool("redis-server", REDIS_SERVER is not None, module=True)


@dataclass
class RedisServer:
    """A redis-server process of this test's own."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> None:
        """Start, and wait until it answers PING. It keeps nothing on disk and evicts by
        LRU past 4 MB, as the README advises."""
        assert REDIS_SERVER is not None
        log = self.folder / "redis.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
                 "--dir", str(self.folder), "--save", "", "--appendonly", "no",
                 "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"redis-server did not start:\n{log.read_text()}")
                    time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = RedisServer(tmp_path, port)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_miss_then_hit_returns_an_equal_variant(server: RedisServer) -> None:
    cache = make_cache(CacheConfig(kind=CacheKind.REDIS, url=server.url))
    assert isinstance(cache, RedisCache)
    assert cache.get("a" * 32) is None
    cache.put("a" * 32, variant(100))
    assert cache.get("a" * 32) == variant(100)
    assert cache.get("b" * 32) is None


def test_two_hosts_share_entries_under_a_prefix(server: RedisServer) -> None:
    first, second = RedisCache(server.url, 10_000), RedisCache(server.url, 10_000)
    first.put("ab" * 16, variant(500, b"1"))
    second.put("cd" * 16, variant(600, b"2"))
    assert second.get("ab" * 16) == variant(500, b"1")
    assert first.get("cd" * 16) == variant(600, b"2")
    with server.client() as client:
        assert sorted(client.keys()) == [b"pixfit:" + b"ab" * 16, b"pixfit:" + b"cd" * 16]


def test_a_variant_larger_than_max_bytes_is_not_stored(server: RedisServer) -> None:
    cache = RedisCache(server.url, max_bytes=1000)
    cache.put("huge", variant(5000))
    assert cache.get("huge") is None


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        b"\xff\xfe\n\x00",
        b"[]\n",
        b'{"length": 3}\nabc',
        b"[" * 100_000 + b"\n",  # too deep for the JSON parser
        pack(variant(100))[:-1],  # cut short
        pack(variant(100)) + b"x",
    ],
)
def test_a_partial_or_garbage_value_reads_as_a_miss(server: RedisServer, value: bytes) -> None:
    with server.client() as client:
        client.set("pixfit:key", value)
    assert RedisCache(server.url, 10_000).get("key") is None


def test_a_full_redis_evicts_by_itself(server: RedisServer) -> None:
    cache = RedisCache(server.url, 10_000_000)
    for number in range(20):  # 10 MB into a 4 MB server
        cache.put(f"k{number}", variant(500_000, b"%d" % (number % 10)))
    assert cache.get("k19") == variant(500_000, b"9")
    assert cache.get("k0") is None
    with server.client() as client:
        assert client.dbsize() < 20


def test_a_stopped_server_gives_misses_and_drops_puts(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(server.url, 10_000)
    cache.put("a" * 32, variant(100))
    assert cache.get("a" * 32) is not None
    server.stop()
    with caplog.at_level(logging.WARNING, logger="pixfit"):
        for _ in range(5):
            assert cache.get("a" * 32) is None
            cache.put("b" * 32, variant(100))
        RedisCache(server.url, 10_000).put("c" * 32, variant(100))  # a put that tries
    warnings = [r for r in caplog.records if r.name == "pixfit" and "redis" in r.message]
    assert len(warnings) == 2  # one per cache, not one per request


def test_the_cache_comes_back_with_redis(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(server.url, 10_000)
    cache.PAUSE_AFTER_ERROR = 0  # try redis on every call, to see it back at once
    server.stop()
    with caplog.at_level(logging.INFO, logger="pixfit"):
        for _ in range(3):
            cache.put("a" * 32, variant(100))
        server.start()
        cache.put("a" * 32, variant(100))
    assert cache.get("a" * 32) == variant(100)
    messages = [r.message for r in caplog.records if r.name == "pixfit"]
    assert len(messages) == 2 and messages[1] == "redis cache is back"


class Impostor(socketserver.ThreadingTCPServer):
    """Takes redis connections and answers every command with `reply`, or never (None)."""

    daemon_threads = True

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), _ImpostorHandler)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.server_address[1]}/0"


class _ImpostorHandler(socketserver.BaseRequestHandler):
    server: Impostor

    def handle(self) -> None:
        while self.request.recv(65536):
            if self.server.reply is None:
                self.server.stop.wait()
                return
            self.request.sendall(self.server.reply)


@pytest.mark.parametrize(
    "reply",
    [
        None,  # accepts, then never answers
        b"?what\r\n",  # no such reply type
        b":abc\r\n",  # a number that is not one
        b"$abc\r\n",  # a length that is not one
        b"$100\r\nshort",  # a value cut short
        b"*2\r\n:1\r\n",  # an array cut short
    ],
)
def test_a_server_that_hangs_or_answers_garbage_gives_misses(reply: bytes | None) -> None:
    with serving(Impostor(reply)) as impostor:
        cache = RedisCache(impostor.url, 10_000)
        assert cache.get("a" * 32) is None
        cache.put("a" * 32, variant(100))
        assert RedisCache(impostor.url, 10_000).get("a" * 32) is None


def test_the_app_serves_a_hit_rendered_by_another_host(server: RedisServer, tmp_path: Path) -> None:
    photo(320, 200).jpegsave(str(tmp_path / "photo.jpg"), Q=90)
    config = Config().merged(
        {"source": {"root": str(tmp_path)}, "cache": {"kind": "redis", "url": server.url}}
    )
    first = create_app(config).test_client().get("/images/photo.jpg?w=100&bw=3g")
    assert first.status_code == 200 and "decode;dur" in first.headers["Server-Timing"]
    second = create_app(config).test_client().get("/images/photo.jpg?w=100&bw=3g")
    assert second.status_code == 200
    assert second.headers["Server-Timing"] == 'cache;desc="hit"'
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]


def test_purge_deletes_the_keys_of_one_source_only(server: RedisServer) -> None:
    # More variants than one SCAN batch and one UNLINK batch.
    assert_purges_one_source(RedisCache(server.url, 1_000_000), 1200)


def test_a_purge_on_a_stopped_server_fails_loudly(server: RedisServer) -> None:
    cache = RedisCache(server.url, 1_000_000)
    server.stop()
    with pytest.raises(UpstreamError):
        cache.purge("a" * 16)
