"""`/pixfit.js`, the first-party script that classes the page's link in the browser.

The source (`js/pixfit.js`) is kept readable; what is served is that source minified by
rjsmin once per process, named by a hash of its bytes so that a page can link it with a
versioned URL that browsers and CDNs keep for a year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import rjsmin

__all__ = [
    "IMMUTABLE",
    "SCRIPT_NAME",
    "SCRIPT_SOURCE",
    "LinkScript",
    "link_script",
]

SCRIPT_NAME = "pixfit.js"
SCRIPT_SOURCE = Path(__file__).parent / "js" / SCRIPT_NAME
# For the versioned URL: its bytes never change, since another version gets another URL.
IMMUTABLE = "public, max-age=31536000, immutable"
# For any other URL of the script (no version, or an old one): it changes on upgrades.
REVALIDATE = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class LinkScript:
    """The script as served: minified bytes and the version that names them."""

    body: bytes
    # The first 12 hex digits of the SHA-256 of `body`: the `v` of the versioned URL.
    version: str

    def headers(self, requested_version: str | None) -> dict[str, str]:
        """Response headers for a request that asked for `requested_version` (`v`)."""
        return {
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": IMMUTABLE if requested_version == self.version else REVALIDATE,
            "ETag": f'"{self.version}"',
        }


@cache
def link_script() -> LinkScript:
    """The script, minified and versioned (read once per process)."""
    body = rjsmin.jsmin(SCRIPT_SOURCE.read_text(encoding="utf-8")).encode()
    return LinkScript(body, hashlib.sha256(body).hexdigest()[:12])
