"""Run inside a fresh network namespace whose loopback has a `tbf` qdisc (see test_rtt.py).

`pixfit serve` starts with `server.measure_rtt` on; then a UDP flood fills the token
bucket's queue, so every packet on the loopback, the handshake's included, waits in it: a
real round-trip time of about twice the queue's latency, which this kernel cannot add
with netem. One HEAD request on a new connection then prints its answer as JSON.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from pathlib import Path

from tests.test_serve import HOST, started

FLOOD_SECONDS = 60.0


def flood(target: tuple[str, int], stop: threading.Event) -> None:
    """Datagrams far past the bucket's rate, until `stop` (or FLOOD_SECONDS) ends it."""
    deadline = time.monotonic() + FLOOD_SECONDS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                sender.sendto(b"z" * 1000, target)
            except OSError:  # the queue is full: the kernel says so; try again soon
                time.sleep(0.001)


def main(tmp_path: Path) -> None:
    with (
        started(tmp_path, server_measure_rtt="true") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
    ):
        sink.bind(("127.0.0.1", 0))
        stop = threading.Event()
        flooder = threading.Thread(target=flood, args=(sink.getsockname(), stop))
        flooder.start()
        try:
            time.sleep(1.0)  # the queue fills
            connection = http.client.HTTPConnection(HOST, server.port, timeout=50)
            connection.request("HEAD", "/images/photo.jpg?w=200")
            response = connection.getresponse()
            answer = {"status": response.status, **dict(response.headers)}
            connection.close()
        finally:
            stop.set()
            flooder.join()
    print(json.dumps(answer))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
