"""Where source bytes come from: a folder on disk or (in `remote.py`) a URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import Protocol

from pixfit.errors import Forbidden, NotFound, TooLarge
from pixfit.registry import INPUTS

__all__ = [
    "IMAGE_SUFFIXES",
    "LocalSource",
    "Source",
    "SourceImage",
    "SourceStamp",
    "check_ref",
]


@dataclass(frozen=True, slots=True)
class SourceImage:
    """Source bytes plus what identifies this exact version of them."""

    data: bytes
    # A stable string that changes whenever the bytes may have changed (path, size and
    # mtime for files; URL plus upstream ETag or Last-Modified for remote images).
    identity: str
    # When the source last changed; None when it is not known.
    modified: datetime | None
    # Seconds the origin lets a shared cache reuse these bytes without asking again (its
    # Cache-Control); None when it does not say.
    max_age: float | None = None


@dataclass(frozen=True, slots=True)
class SourceStamp:
    """What identifies a source's current version, known without reading its bytes."""

    identity: str
    modified: datetime | None
    # Seconds the origin lets a shared cache reuse these bytes without asking again;
    # None when it does not say.
    max_age: float | None = None


class Source(Protocol):
    """Anything that turns a reference (a path, an object key or a URL) into source bytes."""

    def identify(self, ref: str) -> SourceStamp | None:
        """The stamp `open` would give, if it can be known cheaply; else None."""
        ...

    def check(self, ref: str) -> SourceStamp | None:
        """The current stamp by asking the origin (one HEAD); None when only `open` knows."""
        ...

    def open(self, ref: str) -> SourceImage:
        """Return the bytes for `ref`, or raise a `PixfitError` subclass."""
        ...


class LocalSource:
    """Files under one root folder; nothing outside it is ever opened or named."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root.resolve()
        self.max_bytes = max_bytes
        # Paths are handled as strings: this is the hot path of every cache hit and 304,
        # and pathlib's parsing cost more than the system calls.
        self._root = str(self.root)

    def identify(self, ref: str) -> SourceStamp:
        """The file's stamp from its metadata alone (path, size and mtime)."""
        path = self._locate(ref)
        try:
            return self._stamp(path, os.stat(path), ref)
        except PermissionError:
            raise Forbidden(f"Image {ref!r} is not readable") from None
        except OSError:  # missing, not a directory, a name too long...
            raise NotFound(f"No image named {ref!r}") from None

    def check(self, ref: str) -> SourceStamp:
        """The same as `identify`: a file's stamp is always cheap."""
        return self.identify(ref)

    def open(self, ref: str) -> SourceImage:
        """Read `ref`, a relative URL path, refusing any way out of the root."""
        path = self._locate(ref)
        try:
            with open(path, "rb") as handle:
                stamp = self._stamp(path, os.fstat(handle.fileno()), ref)
                data = handle.read(self.max_bytes + 1)
        except PermissionError:
            raise Forbidden(f"Image {ref!r} is not readable") from None
        except OSError:
            raise NotFound(f"No image named {ref!r}") from None
        return SourceImage(data, stamp.identity, stamp.modified)

    def _stamp(self, path: str, stat: os.stat_result, ref: str) -> SourceStamp:
        if not S_ISREG(stat.st_mode):
            raise NotFound(f"No image named {ref!r}")
        if stat.st_size > self.max_bytes:
            raise TooLarge(f"Expected at most {self.max_bytes} source bytes but {ref!r} is larger")
        relative = path[len(self._root) + 1 :]
        return SourceStamp(
            identity=f"file:{relative}|{stat.st_size}|{stat.st_mtime_ns}",
            modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def _locate(self, ref: str) -> str:
        """The real path of `ref`, which must lie under the root."""
        # The spellings of escape are refused before the disk is touched; then symlinks
        # are resolved and the real path checked.
        parts = check_ref(ref)
        joined = f"{self._root}/{ref}"
        if self._plain(parts):
            return joined  # no symlink on the way: the joined path is the real one
        real = os.path.realpath(joined)
        if not real.startswith(f"{self._root}/"):
            raise Forbidden("Expected a path inside the image root")
        return real

    def _plain(self, parts: list[str]) -> bool:
        """Whether every component of the path below the (resolved) root exists and none
        is a symlink, so the path needs no resolving. One lstat per component, where
        realpath would also walk the root's own components on every request."""
        path = self._root
        for part in parts:
            path = f"{path}/{part}"
            try:
                if S_ISLNK(os.lstat(path).st_mode):
                    return False
            except OSError:  # missing, unreadable, too long: realpath and stat decide
                return False
        return True

    def names(self) -> list[str]:
        """Relative paths of the image files under the root, for index pages."""
        found = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                inside = path.is_file() and path.resolve().is_relative_to(self.root)
            except (OSError, RuntimeError):  # a symlink loop or a dangling link
                inside = False
            if inside:
                found.append(path.relative_to(self.root).as_posix())
        return found


def check_ref(ref: str) -> list[str]:
    """The segments of `ref`, a path under a root or a bucket folder.

    Refuses the spellings of escape however the web layer decoded them (NUL bytes,
    backslashes, which are Windows separators, and any `..` or `.` segment) with
    `Forbidden`, and empty segments with `NotFound`.
    """
    parts = ref.split("/")
    if not ref or "\x00" in ref or "\\" in ref or any(part in ("..", ".") for part in parts):
        raise Forbidden("Expected a path inside the image root")
    if "" in parts:
        # Doubled, leading or trailing slashes: no file is named like that, and a path
        # resolver would quietly merge them (`a.jpg/` would serve `a.jpg`).
        raise NotFound("Expected a path without empty segments (doubled or trailing slashes)")
    return parts


# File suffixes the index pages list: those of every format pixfit reads.
IMAGE_SUFFIXES = frozenset(f".{ext}" for row in INPUTS for ext in row.extensions)
