"""The playground page in a real headless Chromium (Debian's, driven by Playwright)."""

import threading
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright
from werkzeug.serving import make_server

from pixfit.config import SAMPLES_DIR, Config
from pixfit.web import create_app
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

CLASSES = ["slow-2g", "2g", "3g", "4g", "wifi"]


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
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000},
            permissions=["clipboard-read", "clipboard-write"],
        )
        page = context.new_page()
        page.goto(base_url + "/")
        page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
        yield page
        browser.close()


def cards(page: Page) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        ".variant",
        """cards => cards.map(card => ({
            cls: card.dataset.class,
            bytes: card.dataset.bytes,
            shownBytes: card.querySelector('.bytes').textContent,
            natural: card.querySelector('img').naturalWidth,
            src: card.querySelector('img').src,
            dimensions: card.querySelector('.dimensions').textContent,
            budget: card.querySelector('.budget').textContent,
            score: card.querySelector('.score').textContent,
            used: card.querySelector('.class-used').textContent,
            url: card.querySelector('.url').textContent,
            urlFits: card.querySelector('.url').scrollWidth
                <= card.querySelector('.url').clientWidth,
            detail: getComputedStyle(card.querySelector('.detail')),
        })).map(({detail, ...card}) => ({...card, detailImage: detail.backgroundImage,
            detailSize: detail.backgroundSize, detailPosition: detail.backgroundPosition}))""",
    )


def sent_headers(page: Page) -> dict[str, str]:
    """The network headers the page's controls send with every card's request."""
    headers: dict[str, str] = page.evaluate("networkHeaders()")
    return headers


def change(page: Page, action: Callable[[], None]) -> None:
    """Do something that re-renders every card, and wait until they all have."""
    generation = int(page.get_attribute("body", "data-ready") or "0")
    action()
    page.wait_for_selector(f'body[data-ready="{generation + 1}"]', timeout=60_000)


def fetched(url: str, headers: dict[str, str]) -> tuple[bytes, Message]:
    """The response to `url` as the page asked for it (its Accept, its network headers)."""
    request = urllib.request.Request(
        url, headers={"Accept": "image/avif,image/webp,*/*", **headers}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read(), response.headers


def test_every_class_renders_with_true_byte_counts(page: Page) -> None:
    shown = cards(page)
    assert [card["cls"] for card in shown] == [*CLASSES, "headers"]
    headers = sent_headers(page)
    sizes = []
    for card in shown:
        assert int(card["natural"]) > 0, card
        # The figure on the page is the size of the real response for that URL.
        body, response = fetched(card["url"], headers)
        assert int(card["bytes"]) == len(body), card
        assert card["shownBytes"].replace(",", "") == str(len(body))
        # The score and class shown are the server's, from the same response.
        assert card["score"] == response["X-Pixfit-Score"], card
        assert card["used"] == response["X-Pixfit-Class"], card
        sizes.append(len(body))
    classes = sizes[: len(CLASSES)]
    assert classes == sorted(classes), f"bytes must grow from slow-2g to wifi: {classes}"
    assert classes[0] < classes[-1]
    original = (SAMPLES_DIR / "landscape.jpg").stat().st_size
    assert page.text_content("#original") == f"Original: {original:,} bytes"
    assert shown[0]["budget"] == "12000 met"
    assert shown[len(CLASSES) - 1]["budget"] == "none"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)


def test_your_link_line_shows_what_the_script_measured(page: Page) -> None:
    page.wait_for_selector("#your-link[data-class]", timeout=30_000)
    line = page.text_content("#your-link") or ""
    # Loopback, unthrottled: never classed below the default, and the line says from what.
    assert page.get_attribute("#your-link", "data-class") == "fast", line
    assert line.startswith("Your link: 4g or faster"), line
    assert "navigator.connection says 4g" in line, line


def test_the_default_is_this_screen_and_the_classes_differ_at_a_glance(page: Page) -> None:
    screen = page.evaluate("`${screen.width}x${screen.height}`")
    shown = cards(page)[: len(CLASSES)]
    for card in shown:
        query = parse_qs(urlsplit(card["url"]).query)
        assert query["screen"] == [screen] and "w" not in query, card["url"]
    # Fitted to the screen, the classes' budgets buy different sizes, not five alike.
    widths = [int(card["natural"]) for card in shown]
    assert widths == sorted(widths) and widths[0] < widths[-1], widths


def test_each_url_is_shown_whole_and_copies(page: Page) -> None:
    shown = cards(page)
    for card in shown:
        assert (
            card["url"].startswith("http://127.0.0.1:") and "/images/landscape.jpg?" in card["url"]
        )
        assert card["urlFits"], card["url"]
    page.locator(".variant[data-class='3g'] .copy-url").click()
    page.wait_for_function("document.querySelector(\".variant[data-class='3g'] .copy-url\")"
                           ".textContent === 'Copied'")  # fmt: skip
    assert page.evaluate("navigator.clipboard.readText()") == shown[2]["url"]


def test_each_card_has_a_detail_at_display_size(page: Page) -> None:
    shown = cards(page)
    dpr = float(page.input_value('select[name="dpr"]'))
    widest = max(int(card["natural"]) for card in shown) / dpr
    for card in shown:
        # The card's own image, every one at the same display width: 1:1 for the widest.
        assert card["detailImage"] == f'url("{card["src"]}")', card
        assert card["detailSize"].split()[0] == f"{widest:g}px", card
    # A click on an image moves every card's detail to that point.
    page.locator(".variant[data-class='wifi'] .frame img").click(position={"x": 5, "y": 5})
    moved = cards(page)
    for before, after in zip(shown, moved, strict=True):
        assert after["detailPosition"] != before["detailPosition"], after


def test_ect_and_save_data_controls_change_the_class(page: Page) -> None:
    change(page, lambda: page.select_option('select[name="ect"]', "2g"))
    shown = {card["cls"]: card for card in cards(page)}
    assert shown["headers"]["used"] == "2g" and "bw=" not in shown["headers"]["url"]
    assert shown["wifi"]["used"] == "wifi"  # bw= in the URL beats ECT
    assert sent_headers(page) == {"ECT": "2g"}

    change(page, lambda: page.check('input[name="save_data"]'))
    shown = {card["cls"]: card for card in cards(page)}
    # Save-Data lowers every class by one, and to 3g at most.
    used = {cls: shown[cls]["used"] for cls in [*CLASSES, "headers"]}
    assert used == {"slow-2g": "slow-2g", "2g": "slow-2g", "3g": "2g", "4g": "3g", "wifi": "3g",
                    "headers": "slow-2g"}  # fmt: skip
    body, response = fetched(shown["wifi"]["url"], sent_headers(page))
    assert int(shown["wifi"]["bytes"]) == len(body) and response["X-Pixfit-Class"] == "3g"
    assert sent_headers(page) == {"ECT": "2g", "Save-Data": "on"}
    change(page, lambda: page.uncheck('input[name="save_data"]'))


def test_changing_the_width_re_renders(page: Page) -> None:
    before = {card["cls"]: card["dimensions"] for card in cards(page)}
    change(page, lambda: page.select_option('select[name="w"]', "240"))
    after = {card["cls"]: card["dimensions"] for card in cards(page)}
    assert after["wifi"].startswith("240 ")
    assert after["wifi"] != before["wifi"]
    assert "w=240" in cards(page)[0]["url"]
    assert "w=240" in page.text_content("#snippet")


def test_operations_are_controls(page: Page) -> None:
    before = {card["cls"]: card["dimensions"] for card in cards(page)}
    width, height = (int(side) for side in before["wifi"].split(" \u00d7 "))
    assert width > height  # the landscape sample
    change(page, lambda: page.select_option('select[name="rotate"]', "90"))
    change(page, lambda: page.select_option('select[name="blur"]', "3"))
    shown = cards(page)
    wifi = next(card for card in shown if card["cls"] == "wifi")
    turned_width, turned_height = (int(side) for side in wifi["dimensions"].split(" \u00d7 "))
    # The same width asked for, now of the turned image: portrait.
    assert turned_width == width
    assert turned_height > turned_width
    for card in shown:
        assert "rotate=90" in card["url"] and "blur=3" in card["url"], card
    assert "rotate=90" in page.text_content("#snippet")
    for name in ("flip", "sharpen", "pos"):
        assert page.locator(f'select[name="{name}"] option').count() > 2
