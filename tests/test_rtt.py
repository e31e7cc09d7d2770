"""The server's own round-trip measurement: TCP_INFO of real sockets, the trusted header."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixfit.hints import rtt_class
from pixfit.profiles import NetworkClass
from pixfit.rtt import RttMeter, socket_rtt_ms

REPOSITORY = Path(__file__).parent.parent


@pytest.fixture
def loopback_pair() -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """A real TCP connection on loopback: (server side, client side, server port)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
        with server, client:
            server.sendall(b"x" * 4000)  # acknowledged data gives the kernel RTT samples
            received = 0
            while received < 4000:
                received += len(client.recv(8192))
            yield server, client, listener.getsockname()[1]


def test_tcp_info_gives_the_kernels_smoothed_rtt(
    loopback_pair: tuple[socket.socket, socket.socket, int],
) -> None:
    server, _, port = loopback_pair
    rtt = socket_rtt_ms(server)
    assert rtt is not None and rtt > 0
    ss = shutil.which("ss")
    if ss is None:
        pytest.fail("ss (iproute2) is needed to check TCP_INFO against the kernel's own report")
    # ss reads the same struct through netlink; an idle socket's srtt does not move.
    report = subprocess.run(
        [ss, "-tin", "state", "established", f"sport = :{port}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    (reported,) = re.findall(r"\brtt:([\d.]+)/", report)
    assert rtt == pytest.approx(float(reported), abs=0.0015)


def test_what_is_not_a_tcp_socket_has_no_rtt() -> None:
    left, right = socket.socketpair()  # AF_UNIX
    with left, right:
        assert socket_rtt_ms(left) is None
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.close()
    assert socket_rtt_ms(udp) is None
    assert socket_rtt_ms(None) is None
    assert socket_rtt_ms("not a socket") is None


@pytest.mark.parametrize(
    ("rtt_ms", "expected"),
    [
        (0.02, None),
        (269.9, None),  # under 3g's floor: the measurement cannot tell 4g from wifi
        (270, NetworkClass.THREE_G),
        (1399, NetworkClass.THREE_G),
        (1400, NetworkClass.TWO_G),
        (1999, NetworkClass.TWO_G),
        (2000, NetworkClass.SLOW_2G),
        (60_000, NetworkClass.SLOW_2G),
    ],
)
def test_rtt_maps_to_a_class_by_the_network_information_thresholds(
    rtt_ms: float, expected: NetworkClass | None
) -> None:
    assert rtt_class(rtt_ms) == expected


def test_the_header_counts_only_from_a_trusted_proxy(
    loopback_pair: tuple[socket.socket, socket.socket, int],
) -> None:
    server, _, _ = loopback_pair
    meter = RttMeter("X-Client-RTT", ("10.1.2.0/24", "::1"))
    forged = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_CLIENT_RTT": "1500000"}
    assert meter.rtt_ms(forged) is None  # no socket: nothing known, the header ignored
    direct = {**forged, "gunicorn.socket": server}
    assert meter.rtt_ms(direct) == socket_rtt_ms(server)  # the socket's, not the header's
    proxied = {"REMOTE_ADDR": "10.1.2.7", "HTTP_X_CLIENT_RTT": "1500000", "gunicorn.socket": server}
    assert meter.rtt_ms(proxied) == 1500.0  # the proxy's socket tells nothing of the client
    assert meter.rtt_ms({**proxied, "REMOTE_ADDR": "::1"}) == 1500.0
    assert meter.rtt_ms({"REMOTE_ADDR": "10.1.2.7", "gunicorn.socket": server}) is None
    assert meter.rtt_ms({**proxied, "HTTP_X_CLIENT_RTT": "0"}) is None  # nginx: unknown


def test_a_malformed_header_is_ignored_with_one_warning_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    meter = RttMeter("X-Client-RTT", ("127.0.0.1",), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="pixfit")
    for bad in ("abc", "-5", "1.5e6", "99999999999", "", "12 34", "\uff11\uff12\uff13"):
        assert meter.rtt_ms({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_CLIENT_RTT": bad}) is None
    assert len(caplog.records) == 1
    assert "X-Client-RTT" in caplog.text and "'abc'" in caplog.text
    now[0] += 59
    meter.rtt_ms({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_CLIENT_RTT": "abc"})
    assert len(caplog.records) == 1
    now[0] += 1
    meter.rtt_ms({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_CLIENT_RTT": "abc"})
    assert len(caplog.records) == 2
    assert "7 more ignored" in caplog.records[1].getMessage()


# The token bucket's queue latency: every packet waits about this long on the loopback.
QUEUE_LATENCY_MS = 700


def test_real_latency_on_a_loopback_link_is_measured_under_pixfit_serve(tmp_path: Path) -> None:
    tools = [shutil.which(name) for name in ("unshare", "tc", "ip")]
    if os.geteuid() != 0 or None in tools:
        message = "needs root and iproute2 (tc, ip) for a network namespace with a tbf qdisc"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    setup = (
        "ip link set lo up && "
        "tc qdisc add dev lo root tbf rate 256kbit burst 4kb "
        f"latency {QUEUE_LATENCY_MS}ms && "
        f"exec {shlex.quote(sys.executable)} -m tests.netns_latency {shlex.quote(str(tmp_path))}"
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", setup],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    timing = re.search(r"rtt;dur=([\d.]+)", answer["Server-Timing"])
    assert answer["status"] == 200 and timing, answer
    rtt = float(timing.group(1))
    # The queue held the handshake both ways: the kernel saw a real, long round trip...
    assert rtt >= QUEUE_LATENCY_MS, answer
    # ...and the class is the one its thresholds give, sent privately.
    assert answer["X-Pixfit-Class"] == str(rtt_class(rtt)), answer
    assert answer["Cache-Control"].startswith("private"), answer
