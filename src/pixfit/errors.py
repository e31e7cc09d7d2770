"""Every failure pixfit reports, each carrying its HTTP status and a public message.

    PixfitError                      500 (never raised directly: a 500 is a bug)
    ├── BadOption                    400  a malformed, out-of-range or unknown option
    ├── Forbidden                    403  source not allowed, path outside the root, bad signature
    │   └── PrivateAddress           403  the URL resolves to a loopback or private address
    ├── NotFound                     404  no such image (locally or upstream)
    ├── TooLarge                     413  source over max_source_bytes or max_pixels
    │   └── RenderTooLarge           413  render over max_render_memory or max_output_pixels
    ├── UnsupportedImage             415  not an image format pixfit decodes
    ├── CorruptImage                 422  truncated or corrupt image data
    ├── UpstreamError                502  the remote server failed
    ├── UpstreamTimeout              504  the remote server was too slow
    └── Overloaded                   503  too many renders queued, or a render ran past its deadline

The message of each exception is public: it reaches the client as the problem's
`detail`, so it must never hold a filesystem path, a traceback or an internal address.
"""

from __future__ import annotations

__all__ = [
    "BadOption",
    "CorruptImage",
    "Forbidden",
    "NotFound",
    "Overloaded",
    "PixfitError",
    "PrivateAddress",
    "RenderTooLarge",
    "TooLarge",
    "UnsupportedImage",
    "UpstreamError",
    "UpstreamTimeout",
]


class PixfitError(Exception):
    """Base of every pixfit error; `status` is the HTTP status it maps to."""

    status = 500
    title = "Internal error"


class BadOption(PixfitError):
    """An option was malformed, out of range or unknown."""

    status = 400
    title = "Bad option"


class Forbidden(PixfitError):
    """The source is not allowed, or the signature is wrong."""

    status = 403
    title = "Forbidden"


class PrivateAddress(Forbidden):
    """A URL source resolved to an address that is not public."""


class NotFound(PixfitError):
    """The image does not exist."""

    status = 404
    title = "Not found"


class TooLarge(PixfitError):
    """The source is over a byte or pixel limit."""

    status = 413
    title = "Source too large"


class RenderTooLarge(TooLarge):
    """The render asked for would need more memory or output pixels than allowed."""

    title = "Render too large"


class UnsupportedImage(PixfitError):
    """The bytes are not an image format pixfit decodes."""

    status = 415
    title = "Unsupported image"


class CorruptImage(PixfitError):
    """The image is truncated or corrupt."""

    status = 422
    title = "Corrupt image"


class UpstreamError(PixfitError):
    """The remote server answered with an error or broke the connection."""

    status = 502
    title = "Upstream failed"


class UpstreamTimeout(PixfitError):
    """The remote server did not answer in time."""

    status = 504
    title = "Upstream timeout"


class Overloaded(PixfitError):
    """Too much work is queued, or one render ran past its deadline."""

    status = 503
    title = "Overloaded"
    retry_after_seconds = 1
