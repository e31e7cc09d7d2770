"""The client's round-trip time as the server measures it, for clients that send no hints.

Two sources, and a request only ever uses one:
- from an address in `server.trusted_proxies`, the header `server.rtt_header` that the
  proxy sets from its own socket (nginx: `proxy_set_header X-Client-RTT $tcpinfo_rtt;`,
  in microseconds), since the socket pixfit sees is the proxy's;
- from any other address, the kernel's smoothed RTT of the client's TCP socket itself
  (`TCP_INFO`, Linux), which gunicorn (`pixfit serve`) and werkzeug put in the WSGI
  environ. A header from such an address is ignored: anyone can forge it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pixfit.logs import APP_LOGGER

__all__ = [
    "SOCKET_ENVIRON_KEYS",
    "RttMeter",
    "parse_networks",
    "socket_rtt_ms",
]

log = logging.getLogger(APP_LOGGER)

# Where WSGI servers put the client's socket: gunicorn, then werkzeug's dev server.
SOCKET_ENVIRON_KEYS = ("gunicorn.socket", "werkzeug.socket")
# struct tcp_info (linux/tcp.h): eight u8 fields, then u32s; tcpi_rtt, the smoothed RTT
# in microseconds, is the 16th u32 (after rto, ato, the MSSs, the counters, the four
# last-sent/received times, pmtu and rcv_ssthresh).
_TCPI_RTT_OFFSET = 68
_TCP_INFO_SIZE = 104
# The proxy's header: whole microseconds, as nginx's $tcpinfo_rtt; a minute at most.
_MICROSECONDS = re.compile(r"[0-9]{1,8}")
_MAX_RTT_US = 60_000_000
WARN_EVERY_SECONDS = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def socket_rtt_ms(sock: Any) -> float | None:
    """The kernel's smoothed RTT of a TCP socket in ms; None off Linux, or not TCP, or unknown."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None or sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO_SIZE)
    except (OSError, AttributeError, ValueError):
        return None  # a Unix socket, a closed one, or something that is not a socket
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    (micros,) = struct.unpack_from("I", info, _TCPI_RTT_OFFSET)
    return micros / 1000 if micros else None


def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses or CIDR networks (`10.0.0.7`, `10.0.0.0/8`, `::1`); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"expected an IP address or network, got {value!r}") from None
    return tuple(networks)


@dataclass(slots=True)
class _OncePer:
    """Lets a message through at most once per `seconds` (others are counted, not logged)."""

    seconds: float
    clock: Callable[[], float]
    _last: float | None = None
    _skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        """The number of messages skipped since the last one, or None to skip this one."""
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.seconds:
                self._skipped += 1
                return None
            self._last, skipped, self._skipped = now, self._skipped, 0
            return skipped


class RttMeter:
    """Reads a request's round-trip time from its WSGI environ (see the module's docstring)."""

    def __init__(
        self,
        header: str,
        trusted_proxies: tuple[str, ...],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.header = header
        self.proxies = parse_networks(trusted_proxies)
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")
        self._warnings = _OncePer(WARN_EVERY_SECONDS, clock)

    def rtt_ms(self, environ: Mapping[str, Any]) -> float | None:
        """The client's round trip in ms, or None when it cannot be known."""
        peer = environ.get("REMOTE_ADDR", "")
        if self._trusted(peer):
            return self._from_header(environ.get(self._environ_key), peer)
        sock = next((environ[k] for k in SOCKET_ENVIRON_KEYS if environ.get(k)), None)
        return socket_rtt_ms(sock)

    def _trusted(self, peer: str) -> bool:
        if not self.proxies or not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def _from_header(self, value: str | None, peer: str) -> float | None:
        if value is None:
            return None
        text = value.strip()
        if _MICROSECONDS.fullmatch(text) and int(text) <= _MAX_RTT_US:
            return int(text) / 1000 or None  # nginx says 0 when it has no measurement
        skipped = self._warnings.take()
        if skipped is not None:
            log.warning(
                "ignored the %s header %r from trusted proxy %s: expected whole "
                "microseconds up to %d, as nginx's $tcpinfo_rtt (%d more ignored since "
                "the last warning)",
                self.header,
                value[:40],
                peer,
                _MAX_RTT_US,
                skipped,
            )
        return None
