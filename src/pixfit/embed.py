"""Helpers for pages that embed pixfit images: URLs, `srcset` strings and the markup that
`/pixfit.js` completes, signed when needed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import quote, urlencode

from markupsafe import Markup

from pixfit.config import Config
from pixfit.signing import sign_url

__all__ = [
    "DEFAULT_WIDTHS",
    "SCRIPT_FALLBACK",
    "image_url",
    "script_attribute",
    "script_tag",
    "srcset",
    "template_helpers",
]

DEFAULT_WIDTHS = (320, 640, 960, 1280, 1920)

# What a page does when /pixfit.js cannot load (blocked, offline, 404): the same URLs
# without bw=, so the images load at the server's class. Written into the tag's onerror;
# it runs again once the page is parsed, for the images after the tag.
SCRIPT_FALLBACK = (
    "(function f(){document.querySelectorAll('[data-pixfit-src],[data-pixfit-srcset]')"
    ".forEach(function(e){var s=e.getAttribute('data-pixfit-srcset'),"
    "u=e.getAttribute('data-pixfit-src');e.removeAttribute('data-pixfit-srcset');"
    "e.removeAttribute('data-pixfit-src');if(s)e.srcset=s;if(u)e.src=u});"
    "if(document.readyState=='loading')document.addEventListener('DOMContentLoaded',f)})()"
)


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


def script_attribute(name: str, value: str) -> Markup:
    """`data-pixfit-<name>="value"`: an attribute that /pixfit.js turns into `name`."""
    return Markup('data-pixfit-{}="{}"').format(name, value)


def script_tag(url: str) -> Markup:
    """The tag that loads /pixfit.js from `url` without making the page wait for it."""
    return Markup('<script src="{}" async onerror="{}"></script>').format(url, SCRIPT_FALLBACK)


def template_helpers(config: Config, prefix: str, script_url: str) -> dict[str, Callable[..., str]]:
    """The Jinja globals `pixfit_url`, `pixfit_srcset` and `pixfit_script`.

    With `script=True`, `pixfit_url` and `pixfit_srcset` write the whole attribute for
    /pixfit.js (`data-pixfit-src="..."`, `data-pixfit-srcset="..."`) instead of a URL.
    """

    def pixfit_url(path: str, *, script: bool = False, **options: object) -> str:
        url = image_url(path, config=config, prefix=prefix, **options)
        return script_attribute("src", url) if script else url

    def pixfit_srcset(
        path: str,
        widths: Iterable[int] = DEFAULT_WIDTHS,
        *,
        script: bool = False,
        **options: object,
    ) -> str:
        value = srcset(path, widths, config=config, prefix=prefix, **options)
        return script_attribute("srcset", value) if script else value

    def pixfit_script() -> str:
        return script_tag(script_url)

    return {
        "pixfit_url": pixfit_url,
        "pixfit_srcset": pixfit_srcset,
        "pixfit_script": pixfit_script,
    }


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
