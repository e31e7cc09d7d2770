"""Ordinary requests while slow clients hold `pixfit serve`'s connections (a bench, not a test).

    .venv/bin/python bench/slowloris.py [--connections 1000] [--seconds 20] [--workers 2]
                                        [--worker-class pixfit|gthread]

1. Starts `pixfit serve` (a memory cache, so ordinary requests are cache hits of a small
   image, as in issue 13) on a free port of 127.0.0.1 and warms it.
2. Idle: two client threads ask for the cached image for `--seconds`, each on a new
   connection with a 10 s timeout, and the p50, p99 and failures are recorded.
3. Then, for each kind of slow client, `--connections` connections are opened and kept open
   (re-opened as the server closes them, as a slowloris does) while the same ordinary load
   runs again:
   - headers: a request line, then one header byte every 3 s;
   - body: a whole head announcing a 100 KB body, then one body byte every 3 s;
   - read: a whole request for the cached image, then one byte read every 3 s;
   - read-big: the same for a 1.6 MB original, which no kernel buffer takes whole.
4. Prints each phase's p50 and p99, its ratio to the idle p50 measured in the same run,
   failures, and how many slow connections the server closed. The goal (issue 13): p50
   within 1.5x of idle and 0 failures. The machine is shared, so ratios near 1 are noise.

`--worker-class gthread` runs gunicorn's plain gthread worker instead, for comparison.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests import hostile  # noqa: E402

GOOD_PATH = "/images/small.jpg?w=320"
BIG_PATH = "/images/big.jpg"  # the original bytes: no render, 1.6 MB to send
DRIBBLE_SECONDS = 3.0
GOOD_TIMEOUT = 10.0
LAUNCH = """
import sys
from pixfit.config import Config
from pixfit.serve import PixfitServer, gunicorn_settings, run_server
import pixfit.serve as serve

config = Config.load({**__import__("os").environ})
if sys.argv[1] == "gthread":
    original = serve.gunicorn_settings
    def plain(config):
        settings = original(config)
        settings.update(worker_class="gthread", worker_connections=1000, sendfile=None)
        return settings
    serve.gunicorn_settings = plain
run_server(config)
"""


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(root: Path, port: int, workers: int, worker_class: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXFIT_", "PROMETHEUS"))}
    env.update(
        PIXFIT_SOURCE_ROOT=str(root),
        PIXFIT_SERVER_PORT=str(port),
        PIXFIT_SERVER_WORKERS=str(workers),
        PIXFIT_CACHE_KIND="memory",
        PIXFIT_LOG_ACCESS_FILE=os.devnull,
        PYTHONPATH=str(HERE.parent / "src"),
    )
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, worker_class],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GOOD_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ordinary_load(port: int, seconds: float, phase: Phase, threads: int = 2) -> None:
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                status, _ = get(port, GOOD_PATH)
            except OSError:
                status = 0
            if status == 200:
                phase.latencies.append(time.perf_counter() - started)
            else:
                phase.failures += 1
            time.sleep(0.05)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


class SlowClients:
    """`count` connections of one kind, kept open and dribbling from a process of their own
    (so that they take no GIL from the threads measuring the ordinary requests)."""

    def __init__(self, port: int, kind: str, count: int, path: str | None = None) -> None:
        self.port, self.kind, self.count = port, kind, count
        self.path = path or {"read-big": BIG_PATH}.get(kind, GOOD_PATH)
        self.stop = multiprocessing.Event()
        self.ready = multiprocessing.Event()
        self.held = multiprocessing.Value("i", 0)
        self.closed = multiprocessing.Value("i", 0)
        self.process = multiprocessing.Process(target=self._main)

    def __enter__(self) -> SlowClients:
        self.process.start()
        self.ready.wait(60)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.process.join(30)

    @property
    def closed_by_server(self) -> int:
        return int(self.closed.value)

    @property
    def open_count(self) -> int:
        return int(self.held.value)

    def _main(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.open: set[socket.socket] = set()
        for _ in range(self.count):
            self._connect()
        self.ready.set()
        self._run()
        for sock in self.open:
            sock.close()

    def _connect(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            return
        if self.kind.startswith("read"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = {
            "headers": f"GET {self.path} HTTP/1.1\r\nHost: x\r\n",
            "body": f"POST {self.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
            "read": f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n",
            "read-big": f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n",
        }[self.kind]
        try:
            sock.sendall(head.encode())
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        self.open.add(sock)
        if not self.kind.startswith("read"):
            self.selector.register(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        while not self.stop.is_set():
            tick = time.monotonic() + DRIBBLE_SECONDS
            for sock in list(self.open):
                if not self._dribble(sock):
                    self._close(sock)
                    self.closed.value += 1
            # Whatever the server answered a dribbler (408) means it closed the connection.
            for key, _ in self.selector.select(timeout=0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in self.open:
                    self._close(sock)
                    self.closed.value += 1
            while len(self.open) < self.count and not self.stop.is_set():
                self._connect()
            self.held.value = len(self.open)
            self.stop.wait(max(0.0, tick - time.monotonic()))

    def _dribble(self, sock: socket.socket) -> bool:
        try:
            if self.kind.startswith("read"):
                return sock.recv(1) != b""
            sock.send(b"x")
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def _close(self, sock: socket.socket) -> None:
        self.open.discard(sock)
        if not self.kind.startswith("read"):
            self.selector.unregister(sock)
        sock.close()


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=("pixfit", "gthread"), default="pixfit")
    parser.add_argument("--kinds", default="headers,body,read,read-big")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pixfit-slowloris-") as folder:
        root = Path(folder)
        (root / "small.jpg").write_bytes(hostile.jpeg(1200, 800))
        (root / "big.jpg").write_bytes(hostile.jpeg(2400, 1600, seed=3))
        port = free_port()
        server = start_server(root, port, args.workers, args.worker_class)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if get(port, GOOD_PATH)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the server did not start")
                    return 1
                time.sleep(0.2)
            for _ in range(20):  # every worker's memory cache holds the image
                get(port, GOOD_PATH)
            print(
                f"pixfit serve, {args.workers} workers, worker class {args.worker_class}; "
                f"{args.connections} slow connections per phase; {args.seconds:.0f} s per phase"
            )
            idle = Phase("idle")
            ordinary_load(port, args.seconds, idle)
            phases = [idle]
            for kind in args.kinds.split(","):
                phase = Phase(kind)
                with SlowClients(port, kind, args.connections) as slow:
                    time.sleep(DRIBBLE_SECONDS)
                    ordinary_load(port, args.seconds, phase)
                    held = slow.open_count
                phases.append(phase)
                phase.name = f"{kind} ({held} open, {slow.closed_by_server} closed by server)"
            base = statistics.median(idle.latencies) if idle.latencies else float("nan")
            heading = f"{'requests':>8} {'fail':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/idle':>8}"
            print(f"{'phase':48} {heading}")
            for phase in phases:
                median = p(phase.latencies, 0.5)
                print(
                    f"{phase.name:48} {len(phase.latencies) + phase.failures:8} {phase.failures:5} "
                    f"{median * 1000:8.1f} {p(phase.latencies, 0.99) * 1000:8.1f} "
                    f"{median / base:8.2f}"
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
