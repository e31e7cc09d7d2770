"""Where source bytes come from: a folder on disk or (in `remote.py`) a URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SourceImage:
    """Source bytes plus what identifies this exact version of them."""

    data: bytes
    # A stable string that changes whenever the bytes may have changed (path, size and
    # mtime for files; URL plus upstream ETag or Last-Modified for remote images).
    identity: str
    # When the source last changed; None when it is not known.
    modified: datetime | None


class Source(Protocol):
    """Anything that turns a reference (a path or a URL) into source bytes."""

    def open(self, ref: str) -> SourceImage:
        """Return the bytes for `ref`, or raise a `PixfitError` subclass."""
        ...
