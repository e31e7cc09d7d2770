"""The playground page in a real headless Chromium (Debian's, driven by Playwright)."""

import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from pixfit.config import SAMPLES_DIR, Config
from pixfit.web import create_app
from tests.browser import ARTIFACTS, chromium, served

CLASSES = ["slow-2g", "2g", "3g", "4g", "wifi"]


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with served(create_app(Config())) as base_url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base_url + "/")
        page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
        yield page


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


def test_your_link_line_shows_what_the_script_measured(page: Page) -> None:
    page.wait_for_selector("#your-link[data-class]", timeout=30_000)
    line = page.text_content("#your-link") or ""
    # Loopback, unthrottled: never classed below the default, and the line says from what.
    assert page.get_attribute("#your-link", "data-class") == "fast", line
    assert line.startswith("Your link: 4g or faster"), line
    assert "navigator.connection says 4g" in line, line


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
