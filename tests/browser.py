"""Debian's Chromium driven by Playwright, and WSGI apps served for it on loopback.

Shared by the page tests (tests/test_playground.py, tests/test_linkscript.py). Importing
this skips the importing test module where Chromium is missing, and fails it under CI.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright
from werkzeug.serving import make_server

from tests.conftest import require_tool

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium's background requests hit this machine's closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
ARTIFACTS = Path(__file__).parent.parent / "artifacts"

require_tool("chromium", CHROMIUM.exists(), module=True)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed at exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` on a free loopback port, in a thread; yields its base URL (no trailing /)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
