"""/pixfit.js in a real Chromium (Debian's, driven by Playwright), on the example site.

The browser is made to look like Firefox or Safari: a route handler strips every
client-hint header from its requests and navigator.connection is hidden, so the only
way the server can learn the link is the class the script writes into the image URLs.
The link is throttled through the DevTools protocol.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, Route

from pixfit.linkscript import link_script
from pixfit.profiles import NetworkClass
from tests.browser import ARTIFACTS, chromium, served

EXAMPLE = Path(__file__).parent.parent / "examples" / "flask_embed.py"
IMAGES_ON_PAGE = 4
# A 2g link by the Network Information API's thresholds (64 kbps is under 70). DevTools'
# "Regular 2G" (300 ms, 250 kbps) would be 3g by them.
TWO_G = {"offline": False, "latency": 800, "downloadThroughput": 8000, "uploadThroughput": 8000}
# Every header a browser sends only after Accept-CH, plus Save-Data: what Firefox and
# Safari never send. The route handler strips them all, but Chromium adds the Sec-CH-*
# ones (DPR, widths, UA) after the route stage, so those still reach the server; they
# change sizes, never the class. The network hints, which decide the class, do not.
HINT_HEADERS = ("ect", "rtt", "downlink", "save-data", "dpr", "width", "viewport-width")
NETWORK_HINTS = ("ect", "rtt", "downlink", "save-data")
HIDE_CONNECTION = (
    "Object.defineProperty(Navigator.prototype, 'connection', {get: () => undefined});"
)
SLOW = (NetworkClass.SLOW_2G, NetworkClass.TWO_G)


def test_the_script_is_small_and_cached_for_a_year_under_its_versioned_url() -> None:
    script = link_script()
    assert len(script.body) < 3000, len(script.body)
    assert len(gzip.compress(script.body)) < 1500
    assert script.headers(script.version)["Cache-Control"] == (
        "public, max-age=31536000, immutable"
    )
    assert "immutable" not in script.headers("0ld")["Cache-Control"]
    assert "immutable" not in script.headers(None)["Cache-Control"]


# What the server received: (path, the hint headers among the request's), in order.
Received = list[tuple[str, dict[str, str]]]
RECEIVED: Received = []


def recording(app: Any) -> Any:
    """`app`, noting the hint headers of every request it gets in RECEIVED."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        hints = {
            key[5:].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
            and (
                key[5:].lower().replace("_", "-") in HINT_HEADERS or key.startswith("HTTP_SEC_CH_")
            )
        }
        RECEIVED.append((environ["PATH_INFO"], hints))
        return app(environ, start_response)

    return wsgi


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The example site, with a memory cache so that reloads do not re-render."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXFIT_CACHE_KIND", "memory")
        spec = importlib.util.spec_from_file_location("flask_embed_live", EXAMPLE)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    with served(recording(module.app)) as base_url:
        yield base_url + "/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def strip_hints(route: Route) -> None:
    headers = route.request.headers
    kept = {k: v for k, v in headers.items() if k.lower() not in HINT_HEADERS}
    kept = {k: v for k, v in kept.items() if not k.lower().startswith("sec-ch-")}
    route.continue_(headers=kept)


@dataclass
class Visit:
    """One page load: each image response's URL and X-Pixfit-Class, in arrival order."""

    images: list[tuple[str, str]]
    link: dict[str, object]
    # What the server received: (path, hint headers).
    received: Received

    @property
    def hintless(self) -> bool:
        """Whether the server saw no network hint at all (the route handler's work)."""
        sent = [name for _, hints in self.received for name in hints if name in NETWORK_HINTS]
        return bool(self.received) and not sent


def hintless_context(browser: Browser, *, javascript: bool = True) -> BrowserContext:
    """A fresh context (empty cache and session) that sends no client hints."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, java_script_enabled=javascript
    )
    context.add_init_script(HIDE_CONNECTION)
    context.route("**/*", strip_hints)  # routing also turns the HTTP cache off
    return context


def visit(page: Page, url: str, shot: Path) -> Visit:
    images: list[tuple[str, str]] = []

    def record(response: Response) -> None:
        if "/media/" in response.url and "pixfit.js" not in response.url:
            images.append((response.url, response.headers.get("x-pixfit-class", "")))

    page.on("response", record)
    RECEIVED.clear()
    page.goto(url)
    page.wait_for_function(
        "n => [...document.images].filter(i => i.complete && i.naturalWidth > 0).length >= n",
        arg=IMAGES_ON_PAGE,
        timeout=120_000,
    )
    page.remove_listener("response", record)
    page.screenshot(path=str(shot), full_page=True)
    return Visit(images, page.evaluate("window.pixfit || {}"), list(RECEIVED))


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"linkscript-{name}.png"


def test_a_throttled_hintless_browser_gets_2g_or_slower_images(browser: Browser, site: str) -> None:
    context = hintless_context(browser)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", TWO_G)
    try:
        first = visit(page, site, shot_path("2g"))
        again = visit(page, site, shot_path("2g-second-page"))
    finally:
        context.close()
    assert len(first.images) == IMAGES_ON_PAGE, first
    assert first.hintless and again.hintless, (first.received, again.received)
    for url, network in first.images[1:] + again.images:
        assert network in SLOW, (url, network, first.link)
        assert "bw=" in url


def test_an_unthrottled_hintless_browser_is_never_classed_slow(browser: Browser, site: str) -> None:
    misclassified = []
    for load in range(20):
        context = hintless_context(browser)
        try:
            seen = visit(context.new_page(), site, shot_path(f"fast-{load:02d}"))
        finally:
            context.close()
        assert len(seen.images) == IMAGES_ON_PAGE, seen
        assert seen.hintless, seen.received
        misclassified += [
            (load, url, network, seen.link) for url, network in seen.images if network != "wifi"
        ]
    assert misclassified == []


def test_images_load_without_javascript_and_when_the_script_fails(
    browser: Browser, site: str
) -> None:
    context = hintless_context(browser, javascript=False)
    try:
        seen = visit(context.new_page(), site, shot_path("no-javascript"))
    finally:
        context.close()
    assert len(seen.images) == IMAGES_ON_PAGE
    context = hintless_context(browser)
    context.route("**/pixfit.js*", lambda route: route.abort())
    try:
        seen = visit(context.new_page(), site, shot_path("script-blocked"))
    finally:
        context.close()
    assert [network for _, network in seen.images] == ["wifi"] * IMAGES_ON_PAGE


def test_critical_ch_brings_chromiums_hints_to_the_first_image(browser: Browser, site: str) -> None:
    """A Chromium that may send hints: Critical-CH retries the first navigation with them."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        seen = visit(context.new_page(), site, shot_path("chromium-with-hints"))
    finally:
        context.close()
    received = seen.received
    documents = [hints for path, hints in received if path == "/"]
    images = [hints for path, hints in received if path.startswith("/media/") and ".js" not in path]
    # The first request went out bare; the retry, and so every image, carried the hints.
    assert len(documents) == 2 and "ect" not in documents[0] and "ect" in documents[1], received
    assert len(images) == IMAGES_ON_PAGE
    assert all("ect" in hints and "sec-ch-dpr" in hints for hints in images), received
