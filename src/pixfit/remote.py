"""URL sources: fetch an image over http(s) without letting the URL reach private networks.

Like imgproxy, the SSRF check happens at connect time: each hop's host is resolved once,
every address is checked, and the connection goes to the very address that was checked,
so DNS rebinding and IPv4-in-IPv6 spellings cannot slip past it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.response import BaseHTTPResponse
from werkzeug.datastructures import ResponseCacheControl
from werkzeug.http import parse_cache_control_header

from pixfit.backoff import HostBackoff
from pixfit.errors import (
    BadOption,
    Forbidden,
    NotFound,
    PrivateAddress,
    TooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from pixfit.sources import SourceImage

__all__ = ["UrlSource", "is_public_address", "shared_max_age"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Teredo hides its IPv4 end behind XOR and a relay we do not control; local-use NAT64
# translates into whatever the operator's network holds. Neither is ever a public target.
_NEVER_PUBLIC = (ipaddress.IPv6Network("2001::/32"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_PART = re.compile(r"(0[xX][0-9a-fA-F]*)|(0[0-7]*)|([1-9][0-9]*)")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
# A DNS name as resolvers take it (RFC 1035 with RFC 1123's digits, and underscores, which
# real hosts use): labels of 1-63 letters, digits, `-` or `_`, not starting or ending in
# `-`, at most 253 characters. Anything else can only fail to resolve, as a slow 502.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?",
    re.IGNORECASE,
)


def is_public_address(ip: IPAddress) -> bool:
    """Whether `ip` is a public unicast address, judging IPv4-in-IPv6 forms by their IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _NEVER_PUBLIC):
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.is_site_local:
            return False
    # `is_global` alone lets multicast through, so every other class is ruled out explicitly.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a mapped, compatible, 6to4 or NAT64 address reaches, else None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ipv4_number(part: str) -> int:
    """One inet_aton component: `0x` hex, leading-zero octal or decimal."""
    match = _IPV4_PART.fullmatch(part)
    if match is None:
        raise ValueError(part)
    hexadecimal, octal, decimal = match.groups()
    if hexadecimal is not None:
        return int(hexadecimal[2:] or "0", 16)
    return int(octal, 8) if octal is not None else int(decimal)


def _literal_ip(host: str) -> IPAddress | None:
    """The address `host` spells, read as a C resolver would (`127.1`, `0x7f000001`)."""
    if ":" in host:
        return ipaddress.IPv6Address(host.split("%", 1)[0])
    parts = host.split(".")
    # As in the WHATWG URL standard: a numeric last label makes the host an IPv4 address
    # (malformed ones are refused) so that no numeric spelling ever reaches DNS.
    if not _NUMERIC_LABEL.fullmatch(parts[-1]):
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]):
        raise ValueError(host)
    tail_bits = 8 * (5 - len(numbers))
    if numbers[-1] >= 1 << tail_bits:
        raise ValueError(host)
    value = 0
    for n in numbers[:-1]:
        value = value * 256 + n
    return ipaddress.IPv4Address((value << tail_bits) | numbers[-1])


def _system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date as an aware datetime, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def shared_max_age(value: str | None) -> float | None:
    """How long the origin's Cache-Control lets a shared cache reuse its answer, if it says."""
    if not value:
        return None
    control = parse_cache_control_header(value, cls=ResponseCacheControl)
    # pixfit is a shared cache: `private` answers are not for it, and `no-store` and
    # `no-cache` ask for a fresh look every time.
    if control.no_store or control.no_cache or control.private:
        return 0.0
    age = control.s_maxage if control.s_maxage is not None else control.max_age
    return float(age) if age is not None else None


class _ConnectFailed(UpstreamError):
    """The host refused or dropped the connection (a 502 that counts toward back-off)."""


@dataclass(frozen=True, slots=True)
class _Hop:
    """One checked request: where to connect and what to say once connected."""

    scheme: str
    name: str  # host as the URL names it: IDNA in lower case, or canonical IP text
    address: IPAddress  # the address that passed the check; the only one we connect to
    port: int
    target: str  # path and query for the request line
    host_header: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlSource:
    """A `Source` that fetches http(s) URLs from allowed, public hosts."""

    # Exact host names, `.example.com` or `*.example.com` for any subdomain, `*` for any
    # public host; empty turns URL sources off.
    allowed_hosts: tuple[str, ...]
    # Largest body accepted, in bytes.
    max_bytes: int
    # True skips the public-address check (tests, intranets); every other check stays.
    allow_private_networks: bool = False
    # Seconds for each connect and each read, and for the whole download.
    timeout: float = 10.0
    # Redirects followed before giving up; 0 follows none.
    max_redirects: int = 5
    user_agent: str = "pixfit/0.1 (+image server)"
    # Maps (host, port) to IP address strings; None uses socket.getaddrinfo.
    resolver: Resolver | None = None
    # Consecutive connect failures and timeouts per host, and the back-off they earn.
    backoff: HostBackoff = field(default_factory=HostBackoff)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.timeout <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes and timeout must be positive, max_redirects >= 0")

    def identify(self, ref: str) -> None:
        """Refuse a URL the rules forbid; its version is unknown until fetched.

        Checked here, before any cache lookup, so that a variant stored earlier (or by
        another host sharing the cache) is never served for a URL this config refuses.
        Only the address check waits for the fetch: it needs DNS, and a hit connects nowhere.
        """
        self._allowed(ref, ref)

    def check(self, ref: str) -> None:
        """None: a URL's version is only known from a full fetch (`open`)."""

    def open(self, ref: str) -> SourceImage:
        """Fetch `ref`, checking scheme, host and address again on every redirect."""
        deadline = time.monotonic() + self.timeout
        url = ref
        for _ in range(self.max_redirects + 1):
            hop = self._check(url, ref)
            host = f"{hop.name}:{hop.port}"
            self.backoff.check(host, f"the host of URL {ref!r}")
            try:
                reply = self._fetch(hop, ref, deadline)
            except (UpstreamTimeout, _ConnectFailed) as error:
                self.backoff.failed(host, type(error))
                raise
            self.backoff.succeeded(host)  # it answered, whatever it said
            if isinstance(reply, SourceImage):
                return reply
            url = urljoin(url, reply)
        raise UpstreamError(f"URL {ref!r} redirected more than {self.max_redirects} times")

    def _check(self, url: str, origin: str) -> _Hop:
        """Parse `url` and return its hop, or raise if any rule forbids connecting."""
        parts, name, literal, where = self._allowed(url, origin)
        default_port = _DEFAULT_PORTS[parts.scheme]
        port = default_port if parts.port is None else parts.port
        addresses = [literal] if literal is not None else self._resolve(name, port, where)
        if not self.allow_private_networks and not all(map(is_public_address, addresses)):
            raise PrivateAddress(f"{where} leads to a private or loopback address")
        bracketed = f"[{name}]" if ":" in name else name
        return _Hop(
            scheme=parts.scheme,
            name=name,
            address=addresses[0],
            port=port,
            target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            host_header=bracketed if port == default_port else f"{bracketed}:{port}",
        )

    def _allowed(self, url: str, origin: str) -> tuple[SplitResult, str, IPAddress | None, str]:
        """The rules that need no DNS: scheme, credentials, host and the allowlist.

        Returns the parsed URL, the host name (a literal address in canonical form), the
        literal address if the host is one, and how messages name the URL.
        """
        # Messages name only the client's URL: a redirect target may name internal hosts.
        where = f"URL {origin!r}" if url == origin else f"a redirect from URL {origin!r}"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (read for its ValueError on a port out of range)
            host = parts.hostname or ""
            host = (host if host.isascii() else host.encode("idna").decode()).removesuffix(".")
            literal = _literal_ip(host) if host else None
        except (ValueError, UnicodeError):
            raise Forbidden(f"{where} is not a valid URL") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise Forbidden(f"Expected http or https for {where} but received {parts.scheme!r}")
        if "@" in parts.netloc:
            raise Forbidden(f"{where} contains credentials, which are not allowed")
        if not host:
            raise Forbidden(f"{where} has no host")
        if literal is None and not _HOST_NAME.fullmatch(host):
            # The client's own URL is a bad option; a redirect's is the origin's fault.
            if url != origin:
                raise UpstreamError(f"{where} leads to an invalid host name")
            shown = host if len(host) <= 80 else f"{host[:60]}... ({len(host)} characters)"
            raise BadOption(f"Expected a valid host name for url but received {shown!r}")
        name = str(literal) if literal is not None else host
        if not self._host_allowed(name):
            raise Forbidden(f"the host of {where} is not on the allowed list")
        return parts, name, literal, where

    def _host_allowed(self, name: str) -> bool:
        """Whether `name` matches the allowlist (case-insensitive, suffix entries included)."""
        for raw in self.allowed_hosts:
            entry = raw.lower().removesuffix(".")
            if entry in ("*", name):
                return True
            suffix = entry.removeprefix("*")
            if suffix.startswith(".") and name.endswith(suffix):
                return True
        return False

    def _resolve(self, name: str, port: int, where: str) -> list[IPAddress]:
        """Resolve `name` exactly once; the result is both checked and connected to."""
        try:
            found = (self.resolver or _system_resolver)(name, port)
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        except (OSError, UnicodeError, ValueError):
            raise UpstreamError(f"the host of {where} could not be resolved") from None
        if not addresses:
            raise UpstreamError(f"the host of {where} could not be resolved")
        return addresses

    def _fetch(self, hop: _Hop, origin: str, deadline: float) -> SourceImage | str:
        """GET one hop and return its image, or the Location it redirects to."""
        timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        pool: urllib3.HTTPConnectionPool
        if hop.scheme == "https":
            # Connect to the checked IP while TLS still verifies the name in the URL.
            pool = urllib3.HTTPSConnectionPool(
                str(hop.address),
                hop.port,
                timeout=timeout,
                cert_reqs="CERT_REQUIRED",
                server_hostname=hop.name,
                assert_hostname=hop.name,
            )
        else:
            pool = urllib3.HTTPConnectionPool(str(hop.address), hop.port, timeout=timeout)
        headers = {"Host": hop.host_header, "User-Agent": self.user_agent}
        try:
            with pool:
                response = pool.urlopen(
                    "GET",
                    hop.target,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                )
                try:
                    return self._read(response, origin, deadline)
                finally:
                    response.close()  # drops the connection; unread bytes stay unread
        except NewConnectionError:  # a subclass of urllib3's timeout error, so it comes first
            raise _ConnectFailed(f"could not connect to the host of URL {origin!r}") from None
        except Urllib3Timeout:
            raise UpstreamTimeout(f"URL {origin!r} did not answer in time") from None
        except HTTPError:
            raise UpstreamError(f"fetching URL {origin!r} failed") from None

    def _read(self, response: BaseHTTPResponse, origin: str, deadline: float) -> SourceImage | str:
        """Turn one response into an image (body capped) or a Location, or raise by status."""
        status = response.status
        if status in _REDIRECTS:
            location = response.headers.get("Location")
            if not location:
                raise UpstreamError(f"URL {origin!r} redirected without a Location")
            return location
        if status in (404, 410):
            raise NotFound(f"URL {origin!r} answered {status}")
        if not 200 <= status < 300:
            raise UpstreamError(f"URL {origin!r} answered {status}")
        too_large = f"URL {origin!r} is over {self.max_bytes} bytes"
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise TooLarge(too_large)
        chunks: list[bytes] = []
        total = 0
        # read1, not stream(): stream's reads wait until the whole chunk has arrived, so a
        # body trickling a byte a second passed the deadline by 18 hours. read1 returns
        # what one socket read gives, and the deadline is checked after each.
        while chunk := response.read1(min(_CHUNK, self.max_bytes + 1)):
            total += len(chunk)
            if total > self.max_bytes:
                raise TooLarge(too_large)
            if time.monotonic() > deadline:  # a trickling body never trips the read timeout
                raise UpstreamTimeout(f"URL {origin!r} did not finish in time")
            chunks.append(chunk)
        data = b"".join(chunks)
        last_modified = response.headers.get("Last-Modified")
        version = response.headers.get("ETag") or last_modified or hashlib.sha256(data).hexdigest()
        return SourceImage(
            data,
            f"url:{origin}|{version}",
            _parse_http_date(last_modified),
            shared_max_age(response.headers.get("Cache-Control")),
        )
