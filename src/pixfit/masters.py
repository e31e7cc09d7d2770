"""Reduced masters: one decode of a JPEG source serves the many variants a page asks for.

A page asks for one photo at several widths and formats (srcset widths times formats times
classes), and each of those variants used to decode the whole source again, which is most
of a render's cost for a large JPEG. The first render of a source decodes it once, shrunk
on load to the size the largest display that `master_edge` allows needs, keeps that image
in memory, and later variants of the same source version resize from it instead.

A variant may use a master only where a decode of its own would have kept at least as many
pixels (the master's shrink factor is at most the one `jpeg_shrink` picks for it), so the
resize after it is never shorter than the one pipeline.jpeg_shrink protects: the output
matches a render from the source (tests/test_masters.py holds it to SSIM >= 0.995).

Masters are held per process, bounded in bytes of pixels, least recently used first out,
and keyed by the source identity (path, size and mtime; URL and version), so a changed
source never meets its old master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pixfit.cache import BoundedLRU

if TYPE_CHECKING:
    import pyvips

__all__ = [
    "Master",
    "Masters",
]


@dataclass(frozen=True, slots=True)
class Master:
    """A source decoded once, at a JPEG shrink-on-load factor, held in memory."""

    # The decoded pixels (orientation not yet applied, as the loader gives them).
    image: pyvips.Image
    # The loader's shrink factor (1, 2, 4 or 8) that made it.
    shrink: int

    @property
    def size(self) -> int:
        """Bytes of pixels held."""
        return int(self.image.width * self.image.height * self.image.bands)


class Masters(BoundedLRU[Master]):
    """Masters by source identity, in a per-process LRU bounded in bytes of pixels."""

    def __init__(self, max_bytes: int, edge: int) -> None:
        super().__init__(max_bytes)
        # The longest display edge (device px) a master serves; a variant with a larger
        # one decodes the source itself. 0, like max_bytes 0, turns masters off.
        self.edge = edge

    @property
    def enabled(self) -> bool:
        """Whether masters are kept at all."""
        return self.max_bytes > 0 and self.edge > 0
