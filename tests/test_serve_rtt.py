"""The server's RTT classing under `pixfit serve`: a real gunicorn, real loopback sockets.

The client binds its own loopback source address, so one address can be the configured
proxy and another a stranger.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path

from pixfit.hints import rtt_class
from tests.test_serve import HOST, Server, started

TRUSTED = "127.0.0.3"
STRANGER = "127.0.0.4"
RTT_HEADER = "X-Client-RTT"


def get(
    server: Server, path: str, source: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(
        HOST, server.port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.headers)
    finally:
        connection.close()


def measured_rtt(headers: dict[str, str]) -> float | None:
    found = re.search(r"rtt;dur=([\d.]+)", headers.get("Server-Timing", ""))
    return float(found.group(1)) if found else None


def test_the_trusted_header_and_the_socket_class_hintless_requests(tmp_path: Path) -> None:
    settings = {
        "server_measure_rtt": "true",
        "server_trusted_proxies": f"{TRUSTED},10.0.0.0/8",
        "cache_kind": "memory",
    }
    with started(tmp_path, **settings) as server:
        url = "/images/photo.jpg?w=200"
        # From the proxy: its header (microseconds, as nginx's $tcpinfo_rtt) picks the class.
        for micros, expected in [
            (2_500_000, "slow-2g"),
            (1_500_000, "2g"),
            (500_000, "3g"),
            (100_000, "wifi"),  # under 3g's floor: the default class stands
        ]:
            status, headers = get(server, url, TRUSTED, {RTT_HEADER: str(micros)})
            assert status == 200
            assert headers["X-Pixfit-Class"] == expected, (micros, headers)
            assert measured_rtt(headers) == micros / 1000
            # Classed by something not in the request: no shared cache may keep it.
            assert headers["Cache-Control"] == "private, max-age=86400", headers
        # Again: a hit, answered before Flask by the fast path, classed and private the same.
        status, headers = get(server, url, TRUSTED, {RTT_HEADER: "1500000"})
        assert 'cache;desc="hit"' in headers["Server-Timing"], headers
        assert (headers["X-Pixfit-Class"], headers["X-Pixfit-Budget"]) == ("2g", "25000 met")
        assert headers["Cache-Control"] == "private, max-age=86400"
        assert measured_rtt(headers) == 1500.0

        # A stranger's forged header is ignored; its own socket's RTT (TCP_INFO) is used.
        status, headers = get(server, url, STRANGER, {RTT_HEADER: "2500000"})
        rtt = measured_rtt(headers)
        assert status == 200 and rtt is not None and rtt != 2500.0, headers
        assert headers["X-Pixfit-Class"] == str(rtt_class(rtt) or "wifi")
        assert headers["Cache-Control"].startswith("private")

        # bw= and network hints come first, and those answers stay shareable.
        status, headers = get(server, url + "&bw=3g", TRUSTED, {RTT_HEADER: "2500000"})
        assert (headers["X-Pixfit-Class"], headers["Cache-Control"]) == (
            "3g",
            "public, max-age=86400",
        )
        assert measured_rtt(headers) is None
        status, headers = get(server, url, TRUSTED, {RTT_HEADER: "2500000", "ECT": "4g"})
        assert (headers["X-Pixfit-Class"], headers["Cache-Control"]) == (
            "4g",
            "public, max-age=86400",
        )

        # Malformed values from the proxy are ignored, with one warning for all of them.
        for bad in ("fast", "-1", "1e9", "0x10"):
            status, headers = get(server, url, TRUSTED, {RTT_HEADER: bad})
            assert (status, headers["X-Pixfit-Class"]) == (200, "wifi")
            assert headers["Cache-Control"] == "public, max-age=86400"
        log = server.log.read_text(errors="replace")
        assert log.count(f"ignored the {RTT_HEADER} header") == 1, server.output()


def test_measurement_is_off_by_default(tmp_path: Path) -> None:
    with started(tmp_path, server_trusted_proxies=TRUSTED) as server:
        status, headers = get(server, "/images/photo.jpg?w=200", TRUSTED, {RTT_HEADER: "2500000"})
        assert (status, headers["X-Pixfit-Class"]) == (200, "wifi")
        assert headers["Cache-Control"] == "public, max-age=86400"
        assert measured_rtt(headers) is None
