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


def probe(port: int, attempts: int = 4) -> dict[str, object]:
    """One HEAD on a new connection; a full queue drops packets (a SYN, a request), so a
    stalled attempt is given up and another made on a fresh connection."""
    for attempt in range(attempts):
        connection = http.client.HTTPConnection(HOST, port, timeout=15)
        try:
            connection.request("HEAD", "/images/photo.jpg?w=200")
            response = connection.getresponse()
            return {"status": response.status, **dict(response.headers)}
        except OSError:
            if attempt == attempts - 1:
                raise
        finally:
            connection.close()
    raise AssertionError("unreachable")


def main(tmp_path: Path) -> None:
    with (
        # A flooded link drops packets and TCP backs off: give the request time to arrive.
        started(tmp_path, server_measure_rtt="true", server_request_timeout="60") as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
    ):
        sink.bind(("127.0.0.1", 0))
        stop = threading.Event()
        flooder = threading.Thread(target=flood, args=(sink.getsockname(), stop))
        flooder.start()
        try:
            time.sleep(1.0)  # the queue fills
            answer = probe(server.port)
        finally:
            stop.set()
            flooder.join()
    print(json.dumps(answer))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
