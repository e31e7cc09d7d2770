"""Tests for web.py (and wsgi.py) through Flask's test client, against files under a tmp root
and a real upstream HTTP server on 127.0.0.1 (never anything else)."""

from __future__ import annotations

import http.server
import importlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client, TestResponse

import pixfit
import pixfit.web
from pixfit.config import Config
from pixfit.linkscript import link_script
from pixfit.profiles import DEFAULT_PROFILES, NetworkClass
from tests.conftest import FAKE_PUBLIC_IP, serving, shown

# Every connection urllib3 makes in this file goes through the `dialled` guard.
pytestmark = pytest.mark.usefixtures("dialled")

UPSTREAM_ETAG = '"upstream-v1"'
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


# ---------------------------------------------------------------------------------------
# Images and apps


def photo_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG: smooth colour gradients under per-channel grain."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    base = (x * (255 / width)).bandjoin([y * (255 / height), (x + y) * (127 / (width + height))])
    grain = pyvips.Image.gaussnoise(width, height, sigma=18 + seed, mean=0)
    noise = grain.bandjoin([grain.rot180().flip("horizontal"), grain.flip("vertical")])
    image = (base + noise).gaussblur(0.6).cast("uchar").copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=90))


def alpha_png(width: int = 400, height: int = 300) -> bytes:
    xy = pyvips.Image.xyz(width, height)
    colour = (xy[0] * (255 / width)).bandjoin([xy[1] * (255 / height), xy[0] * 0 + 90])
    alpha = xy[0] * (255 / width)
    image = colour.bandjoin(alpha).cast("uchar").copy(interpretation="srgb")
    return bytes(image.pngsave_buffer())


def small_gif(width: int = 64, height: int = 48) -> bytes:
    xy = pyvips.Image.xyz(width, height)
    image = (xy[0] * 4).bandjoin([xy[1] * 5, xy[0] * 2]).cast("uchar").copy(interpretation="srgb")
    return bytes(image.gifsave_buffer())


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60">'
    b'<rect width="80" height="60"/></svg>'
)


@dataclass(frozen=True)
class Tree:
    """The tmp folders: `root` is served; `outside` must never be."""

    base: Path
    root: Path
    outside: Path
    photo: bytes
    png: bytes
    gif: bytes
    secret: bytes


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    base = tmp_path_factory.mktemp("web")
    root, outside = base / "root", base / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    photo, png, gif = photo_jpeg(1600, 1000), alpha_png(), small_gif()
    secret = photo_jpeg(200, 100, seed=3)
    (root / "photo.jpg").write_bytes(photo)
    (root / "alpha.png").write_bytes(png)
    (root / "anim.gif").write_bytes(gif)
    (root / "sub" / "nested.jpg").write_bytes(secret)
    (root / "text.jpg").write_bytes(b"this is plain text, not a JPEG at all\n" * 20)
    (root / "vector.svg").write_bytes(SVG)
    (root / "truncated.jpg").write_bytes(photo[: len(photo) // 2])
    (outside / "secret.jpg").write_bytes(secret)
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    (root / "alias.jpg").symlink_to(root / "photo.jpg")
    return Tree(base, root, outside, photo, png, gif, secret)


def config_for(tree: Tree, root: Path | None = None, **sections: dict[str, Any]) -> Config:
    """The config of every app here: `root` served, logs to files, `sections` on top."""
    data: dict[str, Any] = {
        "source": {"root": str(root or tree.root)},
        "log": {"file": str(tree.base / "app.log"), "access_file": str(tree.base / "access.log")},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Config().merged(data)


def app_for(tree: Tree, root: Path | None = None, **sections: dict[str, Any]) -> Flask:
    return pixfit.web.create_app(config_for(tree, root, **sections))


@pytest.fixture(scope="module")
def client(tree: Tree) -> FlaskClient:
    return app_for(tree).test_client()


def decoded(response: TestResponse) -> pyvips.Image:
    return shown(response.get_data())


def loader(response: TestResponse) -> str:
    return str(decoded(response).get("vips-loader"))


def assert_problem(
    response: TestResponse, status: int, tree: Tree, *, may_name: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A problem+json error with status, title and detail that leaks nothing internal.

    `may_name` lists what the client itself sent (its URL), which the detail may quote.
    """
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json"
    body = json.loads(text)
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert response.headers["Cache-Control"] == "no-store"
    for sent in may_name:
        text = text.replace(json.dumps(sent)[1:-1], "")
    for secret in (str(tree.base), str(tree.base.resolve()), "Traceback", 'File "'):
        assert secret not in text
    assert not IPV4.search(text), text
    assert "::1" not in text
    return body


# ---------------------------------------------------------------------------------------
# A real upstream for URL sources


class Upstream(http.server.ThreadingHTTPServer):
    """An image server on 127.0.0.1 that records each request."""

    daemon_threads = False  # server_close() joins handler threads: none outlive a test

    def __init__(self, photo: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.photo = photo
        # What /img.jpg answers with; tests change them to play a changing origin.
        self.etag = UPSTREAM_ETAG
        self.cache_control: str | None = None
        self.seen: list[str] = []
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hangs up on /slow on purpose


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        path, _, query = self.path.partition("?")
        if path == "/img.jpg":
            headers = {"ETag": self.server.etag}
            if self.server.cache_control:
                headers["Cache-Control"] = self.server.cache_control
            self._reply(200, self.server.photo, headers)
        elif path == "/error":
            self._reply(500, b"upstream broke")
        elif path == "/slow":
            self.server.stop.wait(5)  # set at teardown, so the thread ends with the test
            self._reply(200, self.server.photo)
        elif path == "/redirect-to":
            self._reply(302, headers={"Location": parse_qs(query)["to"][0]})
        else:
            self._reply(404, b"no such thing")

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream(tree: Tree) -> Iterator[Upstream]:
    with serving(Upstream(tree.photo)) as server:
        yield server


def url_app(tree: Tree, **source: Any) -> FlaskClient:
    return app_for(tree, source=source).test_client()


def fetch_url(client: FlaskClient, url: str, **options: str) -> TestResponse:
    return client.get("/images/", query_string={"url": url, **options})


# ---------------------------------------------------------------------------------------
# 200 and passthrough


def test_resizes_a_file_under_the_root(client: FlaskClient) -> None:
    response = client.get("/images/photo.jpg?w=400")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    image = decoded(response)
    assert (image.width, image.height, image.get("vips-loader")) == (400, 250, "jpegload_buffer")
    assert response.content_length == len(response.get_data())
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert response.last_modified is not None


def test_nested_paths_and_symlinks_inside_the_root_are_served(client: FlaskClient) -> None:
    assert decoded(client.get("/images/sub/nested.jpg?w=100")).width == 100
    assert decoded(client.get("/images/alias.jpg?h=100")).height == 100


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("photo.jpg", "image/jpeg"), ("alpha.png", "image/png"), ("anim.gif", "image/gif")],
)
def test_no_options_and_no_hints_pass_the_source_through_untouched(
    client: FlaskClient, tree: Tree, name: str, media_type: str
) -> None:
    # A browser always sends Accept; it is not a client hint and must not force a render.
    for headers in ({}, {"Accept": "image/avif,image/webp,*/*"}):
        response = client.get(f"/images/{name}", headers=headers)
        assert response.status_code == 200
        assert response.get_data() == (tree.root / name).read_bytes()
        assert response.mimetype == media_type
        assert response.content_length == len(response.get_data())
        assert response.headers["X-Pixfit-Quality"] == "original"


# ---------------------------------------------------------------------------------------
# Error statuses, local files


def test_bad_option_value_names_option_value_and_expectation(
    client: FlaskClient, tree: Tree
) -> None:
    body = assert_problem(client.get("/images/photo.jpg?w=abc"), 400, tree)
    assert "w" in body["detail"] and "'abc'" in body["detail"]
    assert "Expected an integer 1..8192" in body["detail"]
    body = assert_problem(client.get("/images/photo.jpg?fit=squash"), 400, tree)
    assert "fit" in body["detail"] and "'squash'" in body["detail"] and "cover" in body["detail"]


def test_unknown_option_is_refused(client: FlaskClient, tree: Tree) -> None:
    body = assert_problem(client.get("/images/photo.jpg?w=100&widht=200"), 400, tree)
    assert "'widht'" in body["detail"]


@pytest.mark.parametrize(
    "query", ["w=1&w=2", "w=100&w=100", "w=100&width=200", "f=webp&format=png"]
)
def test_repeated_option_is_refused(client: FlaskClient, tree: Tree, query: str) -> None:
    body = assert_problem(client.get(f"/images/photo.jpg?{query}"), 400, tree)
    assert "w" in body["detail"] or "f" in body["detail"]


@pytest.mark.parametrize("query", ["w=²", "h=²", "q=²", "max_bytes=²", "w=" + "1" * 5000])
def test_odd_digits_in_integer_options_are_400(client: FlaskClient, tree: Tree, query: str) -> None:
    assert_problem(client.get(f"/images/photo.jpg?{query}"), 400, tree)


def test_unknown_options_pass_when_strict_options_is_off(tree: Tree) -> None:
    lenient = app_for(tree, security={"strict_options": False}).test_client()
    assert decoded(lenient.get("/images/photo.jpg?w=100&widht=200")).width == 100


def test_missing_file_is_404(client: FlaskClient, tree: Tree) -> None:
    assert_problem(client.get("/images/nope.jpg"), 404, tree)
    assert_problem(client.get("/images/nope.jpg?w=100"), 404, tree)
    assert_problem(client.get("/images/sub"), 404, tree)  # a folder is no image


def test_unknown_route_is_a_problem_404(client: FlaskClient, tree: Tree) -> None:
    assert_problem(client.get("/no/such/route"), 404, tree)


def test_wrong_method_is_a_problem_405_with_allow(client: FlaskClient, tree: Tree) -> None:
    response = client.post("/images/photo.jpg")
    assert_problem(response, 405, tree)
    assert "GET" in response.headers.get("Allow", "")


def test_source_over_max_source_bytes_is_413(tree: Tree) -> None:
    small = app_for(tree, source={"max_source_bytes": len(tree.photo) - 1}).test_client()
    assert_problem(small.get("/images/photo.jpg?w=100"), 413, tree)
    assert_problem(small.get("/images/photo.jpg"), 413, tree)
    assert small.get("/images/alpha.png?w=100").status_code == 200


def test_source_over_max_pixels_is_413(tree: Tree) -> None:
    small = app_for(tree, limits={"max_pixels": 1600 * 1000 - 1}).test_client()
    assert_problem(small.get("/images/photo.jpg?w=100"), 413, tree)
    assert small.get("/images/alpha.png?w=100").status_code == 200


@pytest.mark.parametrize("query", ["?w=100", ""])
@pytest.mark.parametrize("name", ["text.jpg", "vector.svg"])
def test_what_is_not_an_image_pixfit_reads_is_415(
    client: FlaskClient, tree: Tree, name: str, query: str
) -> None:
    # Without options too: an SVG passed through untouched would be script on our origin.
    assert_problem(client.get(f"/images/{name}{query}"), 415, tree)


def test_truncated_jpeg_is_422(client: FlaskClient, tree: Tree) -> None:
    assert_problem(client.get("/images/truncated.jpg?w=100"), 422, tree)


def test_full_render_slots_answer_503_with_retry_after(tree: Tree) -> None:
    app = app_for(tree, limits={"max_concurrent": 1, "max_queue": 0})
    service = app.extensions["pixfit"]
    assert isinstance(service, pixfit.web.ImageService)
    busy = app.test_client()
    with service.slots.slot():  # another render holds the only slot; nobody may queue
        response = busy.get("/images/photo.jpg?w=100")
        assert_problem(response, 503, tree)
        assert int(response.headers["Retry-After"]) >= 1
    assert busy.get("/images/photo.jpg?w=100").status_code == 200


# ---------------------------------------------------------------------------------------
# Paths that try to leave the root


TRAVERSALS = [
    "../outside/secret.jpg",
    "..%2foutside%2fsecret.jpg",
    "%2e%2e/outside/secret.jpg",
    "%2e%2e%2foutside%2fsecret.jpg",
    "%252e%252e/outside/secret.jpg",
    "%252e%252e%252foutside%252fsecret.jpg",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "a/../../outside/secret.jpg",
    "sub/../../outside/secret.jpg",
    "./../outside/secret.jpg",
    "..\\outside\\secret.jpg",
    "..%5coutside%5csecret.jpg",
    "photo.jpg%00",
    "%00/../outside/secret.jpg",
    "escape.jpg",
    "linkdir/secret.jpg",
    "sub/../escape.jpg",
]


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize("query", ["", "?w=50"])
def test_paths_outside_the_root_are_refused(
    client: FlaskClient, tree: Tree, path: str, query: str
) -> None:
    response = client.get(f"/images/{path}{query}", follow_redirects=True)
    assert response.status_code in (403, 404), response.get_data(as_text=True)
    assert_problem(response, response.status_code, tree)
    text = response.get_data(as_text=True)
    assert "/etc" not in text and "root:" not in text
    assert tree.secret not in response.get_data()
    for earlier in response.history:  # any redirect stays under the prefix and names no path
        assert earlier.headers["Location"].startswith(("/images/", "http://localhost/images/"))
        assert str(tree.base) not in earlier.get_data(as_text=True)


def test_an_absolute_path_to_a_real_image_outside_the_root_is_refused(
    client: FlaskClient, tree: Tree
) -> None:
    secret = quote(str(tree.outside / "secret.jpg"))
    for path in (f"/images/{secret}", f"/images/{secret.replace('/', '%2f')}"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code in (403, 404)
        assert_problem(response, response.status_code, tree)


@pytest.mark.parametrize(
    "path",
    [
        "//etc/passwd",
        "/images//etc/passwd",
        "/images/%2fetc%2fpasswd",
        "/images//photo.jpg",
        "/images/sub//photo.jpg",
        "/images/photo.jpg/",
        "/images/photo.jpg//",
        "/images/photo.jpg%2f",
    ],
)
def test_doubled_encoded_and_trailing_slashes_are_404_problems_not_redirects(
    client: FlaskClient, tree: Tree, path: str
) -> None:
    # werkzeug's defaults answer doubled slashes with an HTML 308 and let `a.jpg/` serve
    # `a.jpg`; neither is a file name, so both are the contract's 404.
    for query in ("", "?w=50"):
        response = client.get(path + query)
        assert_problem(response, 404, tree)
        assert "Location" not in response.headers
        assert "root:" not in response.get_data(as_text=True)
    assert client.get("/images/photo.jpg?w=50").status_code == 200


def test_symlink_out_of_the_root_is_403(client: FlaskClient, tree: Tree) -> None:
    assert_problem(client.get("/images/escape.jpg"), 403, tree)
    assert_problem(client.get("/images/linkdir/secret.jpg?w=50"), 403, tree)


def test_symlink_loop_is_404_not_500(tree: Tree, tmp_path: Path) -> None:
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    client = app_for(tree, root=tmp_path).test_client()
    for url in ("/images/loop.jpg", "/images/a.jpg?w=10"):
        response = client.get(url)
        assert response.status_code in (403, 404)
        assert_problem(response, response.status_code, tree)


def test_overlong_file_name_is_a_client_error(client: FlaskClient, tree: Tree) -> None:
    response = client.get("/images/" + "a" * 300 + ".jpg")
    assert response.status_code in (400, 404, 414)
    assert_problem(response, response.status_code, tree)


# ---------------------------------------------------------------------------------------
# ETag, 304, HEAD


def test_etag_round_trip_gives_304_without_body(client: FlaskClient) -> None:
    for url in ("/images/photo.jpg?w=300", "/images/photo.jpg"):
        first = client.get(url)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.get_data() == b""
        assert again.headers["ETag"] == etag
        other = client.get(url, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200 and other.get_data() == first.get_data()


def test_a_different_option_gives_a_different_etag(client: FlaskClient) -> None:
    etags = {
        client.get(f"/images/photo.jpg{query}").headers["ETag"]
        for query in ("", "?w=300", "?w=301", "?w=300&bw=3g", "?w=300&format=webp")
    }
    assert len(etags) == 5


def test_changing_the_source_changes_the_etag(tree: Tree, tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(tree.photo)
    client = app_for(tree, root=tmp_path).test_client()
    first = client.get("/images/p.jpg?w=200").headers["ETag"]
    assert client.get("/images/p.jpg?w=200").headers["ETag"] == first  # stable
    stat = (tmp_path / "p.jpg").stat()
    os.utime(tmp_path / "p.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = client.get("/images/p.jpg?w=200", headers={"If-None-Match": first})
    assert touched.status_code == 200
    assert touched.headers["ETag"] != first
    (tmp_path / "p.jpg").write_bytes(photo_jpeg(800, 500, seed=1))
    rewritten = client.get("/images/p.jpg?w=200")
    assert rewritten.headers["ETag"] not in (first, touched.headers["ETag"])
    assert decoded(rewritten).height == 125


@pytest.mark.parametrize("url", ["/images/photo.jpg?w=300", "/images/anim.gif"])
def test_head_has_the_headers_of_get_and_no_body(client: FlaskClient, url: str) -> None:
    get = client.get(url)
    head = client.head(url)
    assert head.status_code == 200
    assert head.get_data() == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Vary", "Cache-Control"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["Content-Length"]) == len(get.get_data())


# ---------------------------------------------------------------------------------------
# Vary, Accept-CH and format negotiation


def header_set(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def test_vary_lists_accept_when_the_format_is_negotiated(client: FlaskClient) -> None:
    vary = header_set(client.get("/images/photo.jpg?w=300").headers["Vary"])
    assert {"accept", "save-data", "ect", "sec-ch-dpr"} <= vary


def test_vary_is_only_save_data_when_every_option_is_explicit(client: FlaskClient) -> None:
    response = client.get("/images/photo.jpg?format=webp&bw=3g&dpr=2&w=300&screen=1280x720")
    assert response.status_code == 200
    assert response.headers["Vary"] == "Save-Data"


def test_accept_ch_lists_the_hints_pixfit_uses(client: FlaskClient) -> None:
    for url in ("/images/photo.jpg?w=300", "/"):
        response = client.get(url)
        accept_ch = header_set(response.headers["Accept-CH"])
        assert {"sec-ch-dpr", "sec-ch-width", "sec-ch-viewport-width"} <= accept_ch
        # Critical-CH beside it: the hints a navigation is retried for, never one not asked.
        assert header_set(response.headers["Critical-CH"]) <= accept_ch
    image = client.get("/images/photo.jpg?w=300").headers
    assert {"ect", "downlink", "rtt", "save-data"} <= header_set(image["Accept-CH"])
    assert {"ect", "sec-ch-dpr"} <= header_set(image["Critical-CH"])
    # The playground sets the network hints with its own controls: asking Chromium for
    # them would make it replace the page's ECT with its own.
    page = header_set(client.get("/").headers["Accept-CH"])
    assert not {"ect", "downlink", "rtt", "save-data"} & page


def test_the_script_is_served_at_the_root_and_under_the_prefix(client: FlaskClient) -> None:
    version = link_script().version
    for url in ("/pixfit.js", "/images/pixfit.js"):
        plain = client.get(url)
        assert plain.status_code == 200
        assert plain.mimetype == "text/javascript"
        assert plain.headers["Cache-Control"] == "public, max-age=300"
        assert plain.get_data() == link_script().body
        versioned = client.get(f"{url}?v={version}")
        assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = client.get(f"{url}?v={version}", headers={"If-None-Match": f'"{version}"'})
        assert again.status_code == 304
    # The playground links the versioned URL.
    assert f"/images/pixfit.js?v={version}" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("name", "accept", "media_type", "vips_loader"),
    [
        ("photo.jpg", "image/avif,image/webp,*/*", "image/avif", "heifload_buffer"),
        ("photo.jpg", "image/webp,*/*", "image/webp", "webpload_buffer"),
        ("photo.jpg", "image/avif;q=0,image/webp,*/*", "image/webp", "webpload_buffer"),
        ("photo.jpg", "*/*", "image/jpeg", "jpegload_buffer"),
        ("photo.jpg", "image/*", "image/jpeg", "jpegload_buffer"),
        ("alpha.png", "*/*", "image/png", "pngload_buffer"),
        ("alpha.png", "image/webp,*/*", "image/webp", "webpload_buffer"),
    ],
)
def test_format_follows_accept(
    client: FlaskClient, name: str, accept: str, media_type: str, vips_loader: str
) -> None:
    response = client.get(f"/images/{name}?w=200", headers={"Accept": accept})
    assert response.mimetype == media_type
    image = decoded(response)
    assert (image.width, image.get("vips-loader")) == (200, vips_loader)
    if media_type == "image/avif":
        assert response.get_data()[4:12] == b"ftypavif"
    if name == "alpha.png":
        assert image.hasalpha()


def test_explicit_format_beats_accept(client: FlaskClient) -> None:
    response = client.get("/images/photo.jpg?w=200&format=png", headers={"Accept": "image/avif"})
    assert (response.mimetype, loader(response)) == ("image/png", "pngload_buffer")


# ---------------------------------------------------------------------------------------
# Network hints and budgets


def test_ect_2g_lowers_the_class_and_fits_its_budget(client: FlaskClient) -> None:
    plain = client.get("/images/photo.jpg?w=800")
    slow = client.get("/images/photo.jpg?w=800", headers={"ECT": "2g"})
    assert plain.headers["X-Pixfit-Class"] == "wifi"
    assert slow.headers["X-Pixfit-Class"] == "2g"
    assert slow.headers["X-Pixfit-Budget"] == "25000 met"
    assert len(slow.get_data()) <= 25_000 < len(plain.get_data())
    assert max(decoded(slow).width, decoded(slow).height) <= 800  # the box, never more


def test_a_network_hint_alone_is_enough_to_render(client: FlaskClient, tree: Tree) -> None:
    response = client.get("/images/photo.jpg", headers={"ECT": "2g"})
    assert response.headers["X-Pixfit-Class"] == "2g"
    assert len(response.get_data()) <= 25_000 and response.get_data() != tree.photo


@pytest.mark.parametrize(
    ("query", "headers", "width"),
    [
        ("", {"Sec-CH-Width": "300"}, 320),  # a hint alone renders, snapped up the ladder
        ("?w=300", {"Sec-CH-DPR": "2"}, 600),
        ("?w=300", {"DPR": "2"}, 600),
        ("?w=300&dpr=1", {"Sec-CH-DPR": "2"}, 300),
        ("?w=300&bw=2g", {"Sec-CH-DPR": "2"}, 300),  # 2g's max_dpr is 1
        ("?w=400&screen=200x200", {}, 200),
        ("?screen=200x100", {}, 160),
    ],
)
def test_box_from_hints_dpr_and_screen(
    client: FlaskClient, query: str, headers: dict[str, str], width: int
) -> None:
    response = client.get(f"/images/photo.jpg{query}", headers=headers)
    assert response.status_code == 200
    assert decoded(response).width == width


@pytest.mark.parametrize(
    ("query", "headers", "network"),
    [
        ("", {"Save-Data": "on"}, "3g"),
        ("&bw=wifi", {"Save-Data": "on"}, "3g"),
        ("&bw=3g", {"Save-Data": "on"}, "2g"),
        ("", {"Downlink": "0.06"}, "2g"),
        ("", {"Downlink": "0.05"}, "slow-2g"),
        ("", {"Downlink": "0.5"}, "3g"),
        ("", {"Downlink": "10"}, "4g"),
        ("", {"ECT": "4g"}, "4g"),
        ("&bw=4g", {"ECT": "2g"}, "4g"),
        ("&bw=slow-2g", {"ECT": "4g"}, "slow-2g"),
    ],
)
def test_network_class_from_hints_and_bw(
    client: FlaskClient, query: str, headers: dict[str, str], network: str
) -> None:
    response = client.get(f"/images/photo.jpg?w=300{query}", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-Pixfit-Class"] == network


@pytest.mark.parametrize("bw", ["slow-2g", "2g", "3g"])
def test_budget_quality_and_score_headers(client: FlaskClient, bw: str) -> None:
    profile = DEFAULT_PROFILES[NetworkClass(bw)]
    response = client.get(f"/images/photo.jpg?w=600&bw={bw}")
    assert response.headers["X-Pixfit-Budget"] == f"{profile.budget} met"
    assert profile.quality_min <= int(response.headers["X-Pixfit-Quality"])
    assert int(response.headers["X-Pixfit-Quality"]) <= profile.quality_max
    assert profile.budget is not None and len(response.get_data()) <= profile.budget
    assert float(response.headers["X-Pixfit-Score"]) <= 100


def test_wifi_has_no_budget_and_searches_quality_for_its_target(client: FlaskClient) -> None:
    response = client.get("/images/photo.jpg?w=600&bw=wifi")
    assert response.headers["X-Pixfit-Budget"] == "none"
    wifi = DEFAULT_PROFILES[NetworkClass.WIFI]
    assert wifi.quality_min <= int(response.headers["X-Pixfit-Quality"]) <= wifi.quality_max
    assert "X-Pixfit-Score" in response.headers
    pinned = client.get("/images/photo.jpg?w=600&bw=wifi&q=85")
    assert pinned.headers["X-Pixfit-Quality"] == "85" and "X-Pixfit-Score" not in pinned.headers


def test_impossible_budget_sends_the_smallest_output_and_says_so(client: FlaskClient) -> None:
    response = client.get("/images/photo.jpg?w=600&max_bytes=50")
    assert response.status_code == 200
    assert response.headers["X-Pixfit-Budget"] == "50 exceeded"
    image = decoded(response)
    assert image.get("vips-loader") == "jpegload_buffer" and image.width < 600


def test_server_timing_names_the_stages(client: FlaskClient) -> None:
    timing = client.get("/images/photo.jpg?w=300").headers["Server-Timing"]
    metrics = {part.split(";")[0].strip(): part for part in timing.split(",")}
    assert {"fetch", "decode", "encode"} <= set(metrics)
    for part in metrics.values():
        assert re.search(r";dur=\d+(\.\d+)?", part), part


def test_server_timing_reports_decode_and_resize_as_one_pass(client: FlaskClient) -> None:
    # libvips decodes with shrink-on-load and resizes in one lazy pass, so one entry
    # covers both, and says so.
    timing = client.get("/images/photo.jpg?w=300").headers["Server-Timing"]
    assert "decode;dur=" in timing and 'desc="decode+resize"' in timing


# ---------------------------------------------------------------------------------------
# URL sources


def test_url_source_fetches_from_an_allowed_host(tree: Tree, upstream: Upstream) -> None:
    client = url_app(tree, allowed_hosts=["127.0.0.1"], allow_private_networks=True)
    url = upstream.url("/img.jpg")
    response = fetch_url(client, url, w="320")
    assert response.status_code == 200
    assert (decoded(response).width, decoded(response).height) == (320, 200)
    etag = response.headers["ETag"]
    assert etag
    assert fetch_url(client, url, w="320").headers["ETag"] == etag
    assert fetch_url(client, url).get_data() == tree.photo  # passthrough from a URL too
    assert upstream.seen == ["/img.jpg"] * 3


def test_url_sources_are_off_by_default(tree: Tree, upstream: Upstream) -> None:
    client = app_for(tree).test_client()
    url = upstream.url("/img.jpg")
    assert_problem(fetch_url(client, url, w="100"), 403, tree, may_name=(url,))
    assert upstream.seen == []


def test_host_not_on_the_allowlist_is_403(tree: Tree, upstream: Upstream) -> None:
    client = url_app(tree, allowed_hosts=["images.example.com"], allow_private_networks=True)
    url = upstream.url("/img.jpg")
    assert_problem(fetch_url(client, url), 403, tree, may_name=(url,))
    assert upstream.seen == []


def test_private_address_is_403_before_any_connection(
    tree: Tree, upstream: Upstream, dialled: list[str]
) -> None:
    client = url_app(tree, allowed_hosts=["*"], allow_private_networks=False)
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"):
        url = upstream.url("/img.jpg", host=host)
        assert_problem(fetch_url(client, url, w="100"), 403, tree, may_name=(url,))
    assert upstream.seen == [] and dialled == []


def test_guarded_fetch_from_a_public_host_works(
    tree: Tree, upstream: Upstream, dialled: list[str]
) -> None:
    client = url_app(tree, allowed_hosts=["*"], allow_private_networks=False)
    response = fetch_url(client, upstream.url("/img.jpg", host=FAKE_PUBLIC_IP), w="160")
    assert response.status_code == 200 and decoded(response).width == 160
    assert dialled == [FAKE_PUBLIC_IP]


def test_redirect_chain_ending_on_loopback_is_403(
    tree: Tree, upstream: Upstream, dialled: list[str]
) -> None:
    client = url_app(tree, allowed_hosts=["*"], allow_private_networks=False)
    last = upstream.url("/img.jpg")
    middle = upstream.url(f"/redirect-to?to={quote(last, safe='')}", host=FAKE_PUBLIC_IP)
    first = upstream.url(f"/redirect-to?to={quote(middle, safe='')}", host=FAKE_PUBLIC_IP)
    assert_problem(fetch_url(client, first, w="100"), 403, tree, may_name=(first,))
    assert len(upstream.seen) == 2
    assert all(path.startswith("/redirect-to") for path in upstream.seen)
    assert dialled == [FAKE_PUBLIC_IP, FAKE_PUBLIC_IP]


@pytest.mark.parametrize(
    ("path", "status"), [("/missing.jpg", 404), ("/error", 502)], ids=["404", "500"]
)
def test_upstream_failures(tree: Tree, upstream: Upstream, path: str, status: int) -> None:
    client = url_app(tree, allowed_hosts=["127.0.0.1"], allow_private_networks=True)
    url = upstream.url(path)
    assert_problem(fetch_url(client, url, w="100"), status, tree, may_name=(url,))


def test_upstream_timeout_is_504(tree: Tree, upstream: Upstream) -> None:
    client = url_app(
        tree, allowed_hosts=["127.0.0.1"], allow_private_networks=True, fetch_timeout=0.5
    )
    url = upstream.url("/slow")
    assert_problem(fetch_url(client, url, w="100"), 504, tree, may_name=(url,))


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("a" * 1000 + ".example.com", "a" * 60 + "... (1012 characters)"),
        ("a" * 64 + ".example.com", "a" * 64 + ".example.com"),
        ("a..example.com", "a..example.com"),
        ("-a.example.com", "-a.example.com"),
        ("a$b.example.com", "a$b.example.com"),
    ],
)
def test_an_invalid_host_name_is_a_400_that_names_it(
    tree: Tree, upstream: Upstream, dialled: list[str], host: str, shown: str
) -> None:
    client = url_app(tree, allowed_hosts=["*"])
    url = f"http://{host}/img.jpg"
    body = assert_problem(fetch_url(client, url, w="100"), 400, tree)
    assert body["detail"] == f"Expected a valid host name for url but received {shown!r}"
    assert dialled == [] and upstream.seen == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "file://localhost/etc/passwd", "gopher://127.0.0.1/x"]
)
def test_non_http_urls_are_403(tree: Tree, upstream: Upstream, url: str) -> None:
    client = url_app(tree, allowed_hosts=["*"], allow_private_networks=True)
    response = fetch_url(client, url)
    assert_problem(response, 403, tree, may_name=(url,))
    assert "root:" not in response.get_data(as_text=True)
    assert upstream.seen == []


# ---------------------------------------------------------------------------------------
# Other routes and ways to mount the app


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_home_page_lists_the_images_and_nothing_outside(client: FlaskClient, tree: Tree) -> None:
    for url in ("/", "/images/"):
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "text/html"
        html = response.get_data(as_text=True)
        for name in ("photo.jpg", "alpha.png", "anim.gif", "sub/nested.jpg"):
            assert name in html
        for hidden in ("escape.jpg", "secret.jpg", "vector.svg", str(tree.base)):
            assert hidden not in html


def test_blueprint_mounts_in_another_app(tree: Tree) -> None:
    host = Flask("host")
    host.register_blueprint(pixfit.web.blueprint(config_for(tree)), url_prefix="/media")
    client = host.test_client()
    response = client.get("/media/photo.jpg?w=100")
    assert response.status_code == 200
    assert (decoded(response).width, loader(response)) == (100, "jpegload_buffer")
    assert_problem(client.get("/media/nope.jpg"), 404, tree)
    index = client.get("/media/")
    assert index.status_code == 200 and index.mimetype == "text/html"
    assert "photo.jpg" in index.get_data(as_text=True) and "/media/" in index.get_data(as_text=True)
    assert_problem(client.get("/media/photo.jpg?w=0"), 400, tree)


def test_blueprint_leaves_the_host_logging_alone(tree: Tree) -> None:
    loggers = [logging.getLogger(name) for name in ("pixfit", "pixfit.access")]
    before = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    config = config_for(tree).merged({"log": {"file": str(tree.base / "host.log")}})
    host = Flask("host")
    host.register_blueprint(pixfit.web.blueprint(config), url_prefix="/media")
    assert host.test_client().get("/media/photo.jpg?w=10").status_code == 200
    after = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    assert after == before
    assert not (tree.base / "host.log").exists()


def test_package_exports_the_wsgi_entry_points() -> None:
    assert pixfit.create_app is pixfit.web.create_app
    assert pixfit.blueprint is pixfit.web.blueprint


def test_wsgi_module_serves_from_the_environment(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIXFIT_CONFIG", raising=False)
    monkeypatch.setenv("PIXFIT_SOURCE_ROOT", str(tree.root))
    monkeypatch.setenv("PIXFIT_LOG_FILE", str(tree.base / "app.log"))
    monkeypatch.setenv("PIXFIT_LOG_ACCESS_FILE", str(tree.base / "access.log"))
    # A fresh import that reads the environment; teardown puts back any earlier module.
    monkeypatch.delitem(sys.modules, "pixfit.wsgi", raising=False)
    monkeypatch.delattr(pixfit, "wsgi", raising=False)
    wsgi = importlib.import_module("pixfit.wsgi")
    client = Client(wsgi.application)
    response = client.get("/images/photo.jpg?w=50")
    assert response.status_code == 200
    assert (decoded(response).width, decoded(response).height) == (50, 31)
    assert client.get("/images/photo.jpg").get_data() == tree.photo
