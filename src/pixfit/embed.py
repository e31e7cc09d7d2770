"""Helpers for pages that embed pixfit images: URLs and `srcset` strings, signed when needed."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlencode

from pixfit.config import Config
from pixfit.signing import sign_url

__all__ = [
    "DEFAULT_WIDTHS",
    "image_url",
    "srcset",
]

DEFAULT_WIDTHS = (320, 640, 960, 1280, 1920)


def image_url(
    path: str, *, config: Config | None = None, prefix: str | None = None, **options: object
) -> str:
    """The URL of `path` with `options` (as in the URL API), signed with the first key if any.

    `prefix` defaults to the config's `server.prefix`; pass the mount point where the
    images are served from somewhere else (e.g. "/media" or a CDN origin).
    """
    config = config or Config()
    base = config.server.prefix if prefix is None else prefix
    query = urlencode({key: _text(value) for key, value in options.items() if value is not None})
    url = f"{base}/{quote(path.lstrip('/'))}" + (f"?{query}" if query else "")
    keys = config.security.signing_keys
    return sign_url(url, keys[0]) if keys else url


def srcset(
    path: str,
    widths: Iterable[int] = DEFAULT_WIDTHS,
    *,
    config: Config | None = None,
    prefix: str | None = None,
    **options: object,
) -> str:
    """A `srcset` value listing `path` at each width, e.g. "/images/a.jpg?w=320 320w, ..."."""
    return ", ".join(
        f"{image_url(path, config=config, prefix=prefix, **{**options, 'w': width})} {width}w"
        for width in sorted(set(widths))
    )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
