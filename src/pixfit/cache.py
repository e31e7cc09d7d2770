"""Result caches: rendered variants by key (source identity plus normalised plan)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from pixfit.config import CacheConfig, CacheKind
from pixfit.profiles import NetworkClass
from pixfit.render import Rendered, Timings


class Cache(Protocol):
    """Stores rendered variants; a miss is None, never an error."""

    def get(self, key: str) -> Rendered | None:
        """The variant stored under `key`, if any."""
        ...

    def put(self, key: str, rendered: Rendered) -> None:
        """Store a variant, evicting others to stay within the size bound."""
        ...


class NoCache:
    """Stores nothing."""

    def get(self, key: str) -> Rendered | None:
        """Always a miss."""
        return None

    def put(self, key: str, rendered: Rendered) -> None:
        """Drops the variant."""


class MemoryCache:
    """A per-process LRU bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Rendered | None:
        """The variant, marked most recently used."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, rendered: Rendered) -> None:
        """Store, then evict the least recently used until within the bound."""
        if len(rendered.data) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self.size -= len(old.data) if old else 0
            self._entries[key] = rendered
            self.size += len(rendered.data)
            while self.size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.size -= len(evicted.data)


class DiskCache:
    """Files in one folder, shared by every worker on the host, surviving restarts.

    Each entry is one file: a JSON header line, then the image bytes. Writes go to a
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

    def get(self, key: str) -> Rendered | None:
        """The entry, if a whole one is there."""
        file = self._file(key)
        try:
            with file.open("rb") as handle:
                header = json.loads(handle.readline())
                data = handle.read()
            os.utime(file)
        except (OSError, ValueError):
            return None
        if len(data) != header.get("length"):
            return None
        return _rendered(header, data)

    def put(self, key: str, rendered: Rendered) -> None:
        """Write atomically, then evict the oldest entries if the folder is over the bound."""
        file = self._file(key)
        file.parent.mkdir(exist_ok=True)
        header = json.dumps(_header(rendered)).encode() + b"\n"
        handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(header + rendered.data)
            os.replace(temporary, file)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            return
        with self._lock:
            self._written_since_scan += len(header) + len(rendered.data)
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


def _header(rendered: Rendered) -> dict[str, object]:
    fields = asdict(rendered)
    fields.pop("data")
    fields["length"] = len(rendered.data)
    return fields


def _rendered(header: dict[str, object], data: bytes) -> Rendered:
    timings = header["timings"]
    assert isinstance(timings, dict)
    return Rendered(
        data=data,
        media_type=str(header["media_type"]),
        width=int(str(header["width"])),
        height=int(str(header["height"])),
        network=NetworkClass(str(header["network"])),
        quality=header["quality"] if isinstance(header["quality"], int) else None,
        budget=header["budget"] if isinstance(header["budget"], int) else None,
        budget_met=header["budget_met"] if isinstance(header["budget_met"], bool) else None,
        timings=Timings(**timings),
    )
