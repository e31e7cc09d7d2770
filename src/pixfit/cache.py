"""Result caches: rendered variants by key (source identity plus normalised plan)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pixfit.config import CacheConfig, CacheKind
from pixfit.profiles import NetworkClass
from pixfit.render import Rendered, Timings


@dataclass(frozen=True, slots=True)
class Variant:
    """A stored answer: the rendered image plus what its response headers need."""

    rendered: Rendered
    etag: str
    # When the source last changed, for Last-Modified; None when unknown.
    modified: datetime | None
    # Epoch seconds until which the variant may be served without asking the source again.
    # None means for as long as it is stored: file variants are keyed by the file's version.
    fresh_until: float | None

    def is_fresh(self, now: float) -> bool:
        """Whether the variant may be served at `now` without fetching its source."""
        return self.fresh_until is None or now < self.fresh_until

    @property
    def size(self) -> int:
        """The bytes the variant weighs against a cache's bound."""
        return len(self.rendered.data)


class Cache(Protocol):
    """Stores rendered variants; a miss is None, never an error."""

    def get(self, key: str) -> Variant | None:
        """The variant stored under `key`, if any."""
        ...

    def put(self, key: str, variant: Variant) -> None:
        """Store a variant, evicting others to stay within the size bound."""
        ...


class NoCache:
    """Stores nothing."""

    def get(self, key: str) -> Variant | None:
        """Always a miss."""
        return None

    def put(self, key: str, variant: Variant) -> None:
        """Drops the variant."""


class MemoryCache:
    """A per-process LRU bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, Variant] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Variant | None:
        """The variant, marked most recently used."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, variant: Variant) -> None:
        """Store, then evict the least recently used until within the bound."""
        if variant.size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self.size -= old.size if old else 0
            self._entries[key] = variant
            self.size += variant.size
            while self.size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.size -= evicted.size


class DiskCache:
    """Files in one folder, shared by every worker on the host, surviving restarts.

    Each entry is one file in the `pack` layout. Writes go to a
    temporary file in the same folder and are renamed into place, so readers in other
    processes see a whole entry or none. A hit refreshes the file's mtime, which is the
    recency that eviction goes by.
    """

    # Re-measure the folder after writing this fraction of the bound since the last scan.
    SCAN_EVERY_FRACTION = 0.1

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.path.mkdir(parents=True, exist_ok=True)
        self._written_since_scan = max_bytes  # scan on the first write
        self._lock = threading.Lock()

    def get(self, key: str) -> Variant | None:
        """The entry, if a whole one is there."""
        file = self._file(key)
        try:
            entry = file.read_bytes()
            os.utime(file)
        except OSError:
            return None
        return unpack(entry)

    def put(self, key: str, variant: Variant) -> None:
        """Write atomically, then evict the oldest entries if the folder is over the bound."""
        file = self._file(key)
        file.parent.mkdir(exist_ok=True)
        entry = pack(variant)
        handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(entry)
            os.replace(temporary, file)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            return
        with self._lock:
            self._written_since_scan += len(entry)
            if self._written_since_scan < self.max_bytes * self.SCAN_EVERY_FRACTION:
                return
            self._written_since_scan = 0
        self._evict()

    def _file(self, key: str) -> Path:
        return self.path / key[:2] / key

    def _evict(self) -> None:
        entries = []
        for file in self.path.glob("??/*"):
            try:
                stat = file.stat()
            except FileNotFoundError:  # another worker evicted it first
                continue
            entries.append((stat.st_mtime, stat.st_size, file))
        total = sum(size for _, size, _ in entries)
        for _, size, file in sorted(entries, key=lambda entry: entry[0]):
            if total <= self.max_bytes:
                break
            file.unlink(missing_ok=True)
            total -= size


def make_cache(config: CacheConfig) -> Cache:
    """The cache the config names."""
    if config.kind == CacheKind.MEMORY:
        return MemoryCache(config.max_bytes)
    if config.kind == CacheKind.DISK:
        path = Path(config.path) if config.path else Path(tempfile.gettempdir()) / "pixfit-cache"
        return DiskCache(path, config.max_bytes)
    return NoCache()


def pack(variant: Variant) -> bytes:
    """One stored entry: a JSON header line, then the image bytes."""
    header = asdict(variant.rendered)
    header.pop("data")
    header["length"] = len(variant.rendered.data)
    header["etag"] = variant.etag
    header["modified"] = variant.modified.isoformat() if variant.modified else None
    header["fresh_until"] = variant.fresh_until
    return json.dumps(header).encode() + b"\n" + variant.rendered.data


def unpack(entry: bytes) -> Variant | None:
    """The variant `pack` wrote, or None for anything partial or malformed."""
    line, _, data = entry.partition(b"\n")
    try:
        header = json.loads(line)
        if len(data) != header["length"]:
            return None
        modified = header["modified"]
        rendered = Rendered(
            data=data,
            media_type=str(header["media_type"]),
            width=int(header["width"]),
            height=int(header["height"]),
            network=NetworkClass(header["network"]),
            quality=header["quality"],
            budget=header["budget"],
            budget_met=header["budget_met"],
            timings=Timings(**header["timings"]),
        )
        return Variant(
            rendered,
            etag=str(header["etag"]),
            modified=datetime.fromisoformat(modified) if modified else None,
            fresh_until=header["fresh_until"],
        )
    except (ValueError, KeyError, TypeError):
        return None
