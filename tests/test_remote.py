"""Tests for remote.py, against real upstream servers on 127.0.0.1 (never anything else)."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

import pytest

from pixfit.errors import (
    Forbidden,
    NotFound,
    PrivateAddress,
    TooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from pixfit.remote import UrlSource, is_public_address
from tests.conftest import FAKE_PUBLIC_IP, serving

# Every connection urllib3 makes in this file goes through the `dialled` guard.
pytestmark = pytest.mark.usefixtures("dialled")

PNG = b"\x89PNG\r\n\x1a\n" + b"not really a png, remote.py does not decode"
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
MAX_BYTES = 1000


class Upstream(http.server.ThreadingHTTPServer):
    """A local image server that records each request it receives."""

    daemon_threads = False  # server_close() then joins handler threads: none outlive a test

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up mid-body on purpose (size cap, timeout)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        path, _, query = self.path.partition("?")
        big = b"x" * (MAX_BYTES * 100)
        if path == "/img.png":
            self._reply(200, PNG, {"ETag": ETAG, "Last-Modified": LAST_MODIFIED})
        elif path == "/plain.png":
            self._reply(200, PNG)
        elif path == "/exact.png":
            self._chunked(b"x" * MAX_BYTES)
        elif path in ("/missing", "/gone", "/error", "/teapot"):
            status = {"/missing": 404, "/gone": 410, "/error": 500, "/teapot": 418}[path]
            self._reply(status, b"no")
        elif path == "/slow":
            self.server.stop.wait(5)  # set at teardown, so the thread ends with the test
            self._reply(200, PNG)
        elif path == "/big-length":
            self._reply(200, big)
        elif path == "/big-stream":
            self._reply(200, big, length=False)  # no length: the body ends when we close
        elif path == "/big-chunked":
            self._chunked(big)
        elif path == "/redirect":
            self._reply(302, headers={"Location": "/img.png"})
        elif path.startswith("/chain/"):
            self._reply(302, headers={"Location": f"/chain/{int(path[7:]) + 1}"})
        elif path == "/redirect-to":
            self._reply(302, headers={"Location": parse_qs(query)["to"][0]})
        else:
            self._reply(404)

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        length: bool = True,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for start in range(0, len(body), 256):
            piece = body[start : start + 256]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serving(Upstream()) as server:
        yield server


def fake_dns(table: dict[str, list[str]], calls: list[str] | None = None) -> Callable[..., Any]:
    """A resolver that answers from `table`, records each lookup, and fails on other names."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return table[host]

    return resolve


def source(**overrides: Any) -> UrlSource:
    settings: dict[str, Any] = {"allowed_hosts": ("*",), "max_bytes": MAX_BYTES, "timeout": 2.0}
    return UrlSource(**(settings | overrides))


def test_fetches_bytes_identity_modified_and_sends_user_agent(upstream: Upstream) -> None:
    url = upstream.url("/img.png")
    image = source(allowed_hosts=("127.0.0.1",), allow_private_networks=True).open(url)
    assert image.data == PNG
    assert image.identity == f"url:{url}|{ETAG}"
    assert image.modified == datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    [(path, headers)] = upstream.seen
    assert path == "/img.png"
    assert headers["User-Agent"] == "pixfit/0.1 (+image server)"
    assert headers["Host"] == f"127.0.0.1:{upstream.port}"


def test_identity_falls_back_to_a_hash_of_the_body(upstream: Upstream) -> None:
    url = upstream.url("/plain.png")
    image = source(allow_private_networks=True).open(url)
    assert image.identity.startswith(f"url:{url}|") and len(image.identity.split("|")[1]) == 64
    assert image.modified is None


def test_guarded_fetch_connects_to_the_address_it_checked(
    upstream: Upstream, dialled: list[str]
) -> None:
    lookups: list[str] = []
    dns = fake_dns({"images.example.com": [FAKE_PUBLIC_IP]}, lookups)
    url = upstream.url("/img.png", host="images.example.com")
    image = source(allowed_hosts=("images.example.com",), resolver=dns).open(url)
    assert image.data == PNG
    assert lookups == ["images.example.com"]  # resolved once, and never again by urllib3
    assert dialled == [FAKE_PUBLIC_IP]
    assert upstream.seen[0][1]["Host"] == f"images.example.com:{upstream.port}"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[2002:7f00:1::]",
        "[64:ff9b::7f00:1]",
        "[fe80::1]",
        "[fc00::1]",
        "0x7f000001",
        "2130706433",
        "127.1",
        "0177.0.0.1",
    ],
)
def test_refuses_non_public_targets_before_connecting(
    upstream: Upstream, dialled: list[str], host: str
) -> None:
    dns = fake_dns({"localhost": ["127.0.0.1"]})
    with pytest.raises(PrivateAddress):
        source(resolver=dns).open(upstream.url("/img.png", host=host))
    assert upstream.seen == [] and dialled == []


@pytest.mark.parametrize("spelling", ["0x7f000001", "2130706433", "127.1", "0177.0.0.1"])
def test_odd_ipv4_spellings_mean_what_a_c_resolver_reads(upstream: Upstream, spelling: str) -> None:
    # The allowlist names 127.0.0.1, so only a correct normalisation lets this through.
    allowed = source(allowed_hosts=("127.0.0.1",), allow_private_networks=True)
    assert allowed.open(upstream.url("/img.png", host=spelling)).data == PNG


def test_dns_rebinding_to_loopback_is_refused(upstream: Upstream, dialled: list[str]) -> None:
    lookups: list[str] = []
    dns = fake_dns({"images.example.com": ["127.0.0.1"]}, lookups)
    url = upstream.url("/img.png", host="images.example.com")
    with pytest.raises(PrivateAddress):
        source(allowed_hosts=("images.example.com",), resolver=dns).open(url)
    assert lookups == ["images.example.com"]
    assert upstream.seen == [] and dialled == []


@pytest.mark.parametrize(
    "answers", [[FAKE_PUBLIC_IP, "127.0.0.1"], ["10.0.0.1", FAKE_PUBLIC_IP]], ids=str
)
def test_any_private_answer_refuses_the_host(
    upstream: Upstream, dialled: list[str], answers: list[str]
) -> None:
    dns = fake_dns({"images.example.com": answers})
    with pytest.raises(PrivateAddress):
        source(resolver=dns).open(upstream.url("/img.png", host="images.example.com"))
    assert upstream.seen == [] and dialled == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.127.255.255", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("::7f00:1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:a9fe:a9fe::", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b:1::808:808", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("2001:db8::1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# Every hop must pass the whole check again. To show it without a test-only path in the
# product, the first hop is a "public" host whose fake address passes the real guard and
# which the `dialled` fixture routes to the local upstream at the socket layer; that
# upstream then redirects somewhere forbidden. Only a re-check on the second hop can
# refuse it, and the upstream must see the redirect request alone.
@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("http://127.0.0.1:{port}/img.png", PrivateAddress),
        ("http://[::ffff:127.0.0.1]:{port}/img.png", PrivateAddress),
        ("http://[::ffff:127.0.0.1]/", PrivateAddress),
        ("http://0x7f000001:{port}/img.png", PrivateAddress),
        ("http://10.0.0.1/", PrivateAddress),
        ("http://rebind.test:{port}/img.png", PrivateAddress),
        ("file:///etc/passwd", Forbidden),
        ("http://user@public.test:{port}/img.png", Forbidden),
        ("http://elsewhere.test:{port}/img.png", Forbidden),
        ("http://bad..public.test/img.png", UpstreamError),  # the origin's fault: not a 400
    ],
)
def test_every_redirect_hop_is_checked_again(
    upstream: Upstream, dialled: list[str], target: str, error: type[Exception]
) -> None:
    dns = fake_dns({"public.test": [FAKE_PUBLIC_IP], "rebind.test": ["127.0.0.1"]})
    allowed = ("public.test", "rebind.test", "127.0.0.1", "::ffff:7f00:1", "10.0.0.1")
    to = quote(target.format(port=upstream.port), safe="")
    url = upstream.url(f"/redirect-to?to={to}", host="public.test")
    with pytest.raises(error) as caught:
        source(allowed_hosts=allowed, resolver=dns).open(url)
    assert upstream.paths == [f"/redirect-to?to={to}"]
    assert dialled == [FAKE_PUBLIC_IP]
    public_part = str(caught.value).replace(url, "")  # the client's own URL may be named
    for internal in ("127.0.0.1", "10.0.0.1", FAKE_PUBLIC_IP, "rebind"):
        assert internal not in public_part


def test_redirect_to_a_host_off_the_allowlist_is_refused(upstream: Upstream) -> None:
    lookups: list[str] = []
    url = upstream.url(f"/redirect-to?to={quote(upstream.url('/img.png', host='localhost'))}")
    dns = fake_dns({"localhost": ["127.0.0.1"]}, lookups)
    allowed = source(allowed_hosts=("127.0.0.1",), allow_private_networks=True, resolver=dns)
    with pytest.raises(Forbidden):
        allowed.open(url)
    assert len(upstream.seen) == 1
    assert lookups == []  # the allowlist is checked before any DNS lookup


def test_follows_a_redirect_to_a_good_path(upstream: Upstream) -> None:
    url = upstream.url("/redirect")
    image = source(allow_private_networks=True).open(url)
    assert image.data == PNG and image.identity == f"url:{url}|{ETAG}"
    assert upstream.paths == ["/redirect", "/img.png"]


@pytest.mark.parametrize("limit", [0, 3])
def test_too_many_redirects_is_an_upstream_error(upstream: Upstream, limit: int) -> None:
    with pytest.raises(UpstreamError, match="redirected more than"):
        source(allow_private_networks=True, max_redirects=limit).open(upstream.url("/chain/0"))
    assert len(upstream.seen) == limit + 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/img.png",
        "gopher://127.0.0.1:70/_x",
        "data:image/png;base64,iVBORw0KGgo=",
        "//127.0.0.1/img.png",
        "http:///img.png",
        "http://",
        "http://user@127.0.0.1:{port}/img.png",
        "http://user:secret@127.0.0.1:{port}/img.png",
        "http://127.0.0.1\\@127.0.0.1:{port}/img.png",
        "http://127.0.0.1:99999/img.png",
        "http://1.2.3.4.5/img.png",
        "http://256.0.0.1/img.png",
        "http://[::1/img.png",
    ],
)
def test_refuses_bad_schemes_and_urls(upstream: Upstream, url: str) -> None:
    with pytest.raises(Forbidden) as caught:
        source(allow_private_networks=True).open(url.format(port=upstream.port))
    assert caught.type is Forbidden
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("allowed_hosts", "host", "ok"),
    [
        ((), "127.0.0.1", False),
        (("127.0.0.1",), "127.0.0.1", True),
        (("images.example.com",), "IMAGES.Example.COM", True),
        (("images.example.com",), "images.example.com.evil.test", False),
        (("images.example.com",), "other.example.com", False),
        ((".example.com",), "a.example.com", True),
        (("*.example.com",), "a.b.example.com", True),
        (("*.example.com",), "example.com", False),
        (("*.example.com",), "badexample.com", False),
        (("*",), "anything.test", True),
    ],
)
def test_allowlist(upstream: Upstream, allowed_hosts: tuple[str, ...], host: str, ok: bool) -> None:
    dns = fake_dns({host.lower(): ["127.0.0.1"]})
    remote = source(allowed_hosts=allowed_hosts, allow_private_networks=True, resolver=dns)
    url = upstream.url("/img.png", host=host)
    if ok:
        assert remote.open(url).data == PNG
    else:
        with pytest.raises(Forbidden):
            remote.open(url)
        assert upstream.seen == []


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/missing", NotFound),
        ("/gone", NotFound),
        ("/error", UpstreamError),
        ("/teapot", UpstreamError),
        ("/big-length", TooLarge),
        ("/big-stream", TooLarge),
        ("/big-chunked", TooLarge),
    ],
)
def test_upstream_failures_map_to_errors(
    upstream: Upstream, path: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        source(allow_private_networks=True).open(upstream.url(path))


def test_body_of_exactly_max_bytes_is_accepted(upstream: Upstream) -> None:
    image = source(allow_private_networks=True).open(upstream.url("/exact.png"))
    assert len(image.data) == MAX_BYTES


def test_slow_upstream_times_out(upstream: Upstream) -> None:
    start = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        source(allow_private_networks=True, timeout=0.5).open(upstream.url("/slow"))
    assert time.monotonic() - start < 4  # the origin would answer at 5 s


def test_refused_connection_and_failed_dns_are_upstream_errors(upstream: Upstream) -> None:
    with socket.socket() as probe:  # a port that nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dns = fake_dns({"public.test": [FAKE_PUBLIC_IP]})
    with pytest.raises(UpstreamError) as caught:
        source(resolver=dns).open(f"http://public.test:{closed_port}/img.png")
    assert FAKE_PUBLIC_IP not in str(caught.value)
    with pytest.raises(UpstreamError):
        source(resolver=dns).open("http://unknown.test/img.png")


def test_https_verifies_tls_and_fails_cleanly(upstream: Upstream) -> None:
    # The upstream speaks plain HTTP, so the handshake fails: the TLS path is wired and
    # refuses to fall back to plain text.
    url = upstream.url("/img.png").replace("http://", "https://")
    with pytest.raises(UpstreamError):
        source(allow_private_networks=True).open(url)
    assert upstream.seen == []
