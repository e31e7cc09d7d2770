"""The playground page in a real headless Chromium (Debian's, driven by Playwright)."""

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from werkzeug.serving import make_server

from pixfit.config import SAMPLES_DIR, Config
from pixfit.web import create_app
from tests.conftest import require_tool

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium's background requests hit this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
CLASSES = ["slow-2g", "2g", "3g", "4g", "wifi"]

require_tool("chromium", CHROMIUM.exists(), module=True)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(Config()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base_url + "/")
        page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
        yield page
        browser.close()


def cards(page: Page) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        ".variant",
        """cards => cards.map(card => ({
            cls: card.dataset.class,
            bytes: card.dataset.bytes,
            shownBytes: card.querySelector('.bytes').textContent,
            natural: card.querySelector('img').naturalWidth,
            dimensions: card.querySelector('.dimensions').textContent,
            budget: card.querySelector('.budget').textContent,
            score: card.querySelector('.score').textContent,
            url: card.querySelector('.url').value,
        }))""",
    )


def test_every_class_renders_with_true_byte_counts(page: Page) -> None:
    shown = cards(page)
    assert [card["cls"] for card in shown] == CLASSES
    sizes = []
    for card in shown:
        assert int(card["natural"]) > 0, card
        # The figure on the page is the size of the real response for that URL.
        request = urllib.request.Request(
            card["url"], headers={"Accept": "image/avif,image/webp,*/*"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        assert int(card["bytes"]) == len(body), card
        assert card["shownBytes"].replace(",", "") == str(len(body))
        # The score shown beside the bytes is the server's, from the same response.
        assert card["score"] == response.headers["X-Pixfit-Score"], card
        sizes.append(len(body))
    assert sizes == sorted(sizes), f"bytes must grow from slow-2g to wifi: {sizes}"
    assert sizes[0] < sizes[-1]
    original = (SAMPLES_DIR / "landscape.jpg").stat().st_size
    assert page.text_content("#original") == f"Original: {original:,} bytes"
    assert shown[0]["budget"] == "12000 met"
    assert shown[-1]["budget"] == "none"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)


def test_changing_the_width_re_renders(page: Page) -> None:
    before = {card["cls"]: card["dimensions"] for card in cards(page)}
    page.select_option('select[name="w"]', "240")
    page.wait_for_selector('body[data-ready="2"]', timeout=60_000)
    after = {card["cls"]: card["dimensions"] for card in cards(page)}
    assert after["wifi"].startswith("240 ")
    assert after["wifi"] != before["wifi"]
    assert "w=240" in cards(page)[0]["url"]
    assert "w=240" in page.text_content("#snippet")


def test_operations_are_controls(page: Page) -> None:
    before = {card["cls"]: card["dimensions"] for card in cards(page)}
    width, height = (int(side) for side in before["wifi"].split(" \u00d7 "))
    assert width > height  # the landscape sample
    page.select_option('select[name="rotate"]', "90")
    page.wait_for_selector('body[data-ready="3"]', timeout=60_000)
    page.select_option('select[name="blur"]', "3")
    page.wait_for_selector('body[data-ready="4"]', timeout=60_000)
    shown = cards(page)
    turned_width, turned_height = (int(side) for side in shown[-1]["dimensions"].split(" \u00d7 "))
    # The same width asked for, now of the turned image: portrait.
    assert turned_width == width
    assert turned_height > turned_width
    for card in shown:
        assert "rotate=90" in card["url"] and "blur=3" in card["url"], card
    assert "rotate=90" in page.text_content("#snippet")
    for name in ("flip", "sharpen", "pos"):
        assert page.locator(f'select[name="{name}"] option').count() > 2
