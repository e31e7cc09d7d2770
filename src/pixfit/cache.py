"""Result caches: rendered variants by key (source identity plus normalised plan).

A cache knows bytes and a description of them, never pixels: importing it loads no pyvips.

Keys are `SOURCE/VARIANT` (`cache_key`): SOURCE is a short hash of the source's reference
(its path or URL, whatever its version), VARIANT a hash of its version and the plan. So
every variant of one source shares a prefix, and `purge` finds them by it: a folder on
disk, a SCAN pattern in redis, a listing prefix in S3. No index has to be kept in step
with the entries, and a hit costs one more short hash (see bench/purge_keys.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, Protocol, TypeVar

from pixfit.config import CacheConfig, CacheKind, default_cache_path
from pixfit.errors import UpstreamError
from pixfit.logs import APP_LOGGER

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "PAUSE_AFTER_ERROR",
    "Cache",
    "DiskCache",
    "GuardedCache",
    "MemoryCache",
    "NoCache",
    "RedisCache",
    "StoredVariant",
    "cache_key",
    "make_cache",
    "pack",
    "unpack",
    "unpack_header",
]

log = logging.getLogger(APP_LOGGER)


@dataclass(frozen=True, slots=True)
class StoredVariant:
    """A stored answer: the encoded image and what its response headers need of it.

    What the plan decided (class, budget, Vary) is not stored: it comes from the plan of
    the request being answered, which the key already ties to this entry.
    """

    data: bytes
    media_type: str
    # Pixel size of the encoded image.
    width: int
    height: int
    # Encoder quality chosen; None when the source bytes were passed through.
    quality: int | None
    # Whether the plan's byte budget was met; None when there was no budget.
    budget_met: bool | None
    # The server's perceptual score (SSIMULACRA2 scale); None when none was computed.
    score: float | None
    etag: str
    # When the source last changed, for Last-Modified; None when unknown.
    modified: datetime | None
    # Epoch seconds until which the variant may be served without asking the source again.
    # None means for as long as it is stored: file variants are keyed by the file's version.
    fresh_until: float | None
    # "still" when an animated source was sent as one frame, "animated" when it kept them;
    # None for a still source.
    animation: str | None = None

    def is_fresh(self, now: float) -> bool:
        """Whether the variant may be served at `now` without fetching its source."""
        return self.fresh_until is None or now < self.fresh_until

    @property
    def size(self) -> int:
        """The bytes the variant weighs against a cache's bound."""
        return len(self.data)


class Cache(Protocol):
    """Stores rendered variants; a miss is None, never an error."""

    def get(self, key: str) -> StoredVariant | None:
        """The variant stored under `key`, if any."""
        ...

    def put(self, key: str, variant: StoredVariant) -> None:
        """Store a variant, evicting others to stay within the size bound."""
        ...

    def purge(self, source: str) -> int:
        """Remove every variant of one source (keys `cache_key(source, ...)`); how many.

        Unlike get and put, a purge that fails raises `UpstreamError`: the operator must
        know that a changed image may still be served.
        """
        ...


def cache_key(source: str, variant: str) -> str:
    """The key of one variant: its source's tag, then the variant's own hash."""
    return f"{source}/{variant}"


class NoCache:
    """Stores nothing."""

    def get(self, key: str) -> StoredVariant | None:
        """Always a miss."""
        return None

    def put(self, key: str, variant: StoredVariant) -> None:
        """Drops the variant."""

    def purge(self, source: str) -> int:
        """Nothing to remove."""
        return 0


class _Sized(Protocol):
    @property
    def size(self) -> int:
        """Bytes the entry weighs against the bound."""
        ...


Entry = TypeVar("Entry", bound=_Sized)


class BoundedLRU(Generic[Entry]):
    """A per-process LRU bounded in bytes, by each entry's `size`; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        """The entry, marked most recently used."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, entry: Entry) -> None:
        """Store, then evict the least recently used until within the bound."""
        if entry.size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self.size -= old.size if old else 0
            self._entries[key] = entry
            self.size += entry.size
            while self.size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.size -= evicted.size

    def purge(self, source: str) -> int:
        """Drop the source's variants from this process (a scan: purges are rare)."""
        prefix = cache_key(source, "")
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            for key in doomed:
                self.size -= self._entries.pop(key).size
        return len(doomed)


class MemoryCache(BoundedLRU[StoredVariant]):
    """Rendered variants in a per-process LRU bounded in bytes."""


class DiskCache:
    """Files in one folder, shared by every worker on the host, surviving restarts.

    Each source has a folder, and each entry two files in it: `VARIANT`, its description
    (the `pack` header line), and `VARIANT.VERSION`, the image bytes alone, which a
    front end can send as they are (sendfile, or Apache's X-Sendfile). Each is written to
    a temporary file in the same folder and renamed into place, the image first, so a
    reader in any process sees a whole entry or none: the description names the image
    file of its own version. A hit refreshes the mtimes, the recency eviction goes by.
    """

    # Re-measure the folder after writing this fraction of the bound since the last scan.
    SCAN_EVERY_FRACTION = 0.1
    # When the disk is full, the oldest entries are evicted down to this fraction of what
    # the folder holds, so that the cache makes room for itself.
    FULL_DISK_KEEP_FRACTION = 0.8
    # Seconds between two warnings about a failing disk; failures in between are debug.
    WARN_EVERY = 60.0

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.path.mkdir(parents=True, exist_ok=True)
        self._written_since_scan = max_bytes  # scan on the first write
        self._lock = threading.Lock()
        self._warned_at: float | None = None

    def get(self, key: str) -> StoredVariant | None:
        """The entry, if a whole one is there."""
        entry = self.open(key)
        if entry is None:
            return None
        variant, handle, _ = entry
        with handle:
            try:
                data = handle.read()
            except OSError:
                return None
        return replace(variant, data=data) if data is not None else None

    def open(self, key: str) -> tuple[StoredVariant, BinaryIO, int] | None:
        """The entry's description (empty `data`), its image file open, and the image's length.

        For `wsgi.file_wrapper`: the bytes go from the file to the socket without passing
        through Python; the file's `name` is its path, for X-Sendfile. The caller closes it.
        """
        header_file = self._file(key)
        try:
            header = unpack_header(header_file.read_bytes())
        except OSError:
            return None
        if header is None:
            return None
        variant, length = header
        body_file = self._body(key, variant.etag)
        try:
            handle = body_file.open("rb", buffering=0)
        except OSError:
            return None
        try:
            whole = os.fstat(handle.fileno()).st_size == length
            os.utime(header_file)
            os.utime(body_file)
        except OSError:
            whole = False
        if not whole:
            handle.close()
            return None
        return variant, handle, length

    def put(self, key: str, variant: StoredVariant) -> None:
        """Write atomically, then evict the oldest entries if the folder is over the bound.

        A cache must never fail a request: when the disk is full the oldest entries make
        room and the write is tried once more, when the folder was deleted it is made
        again, and any other failure drops the entry. One warning per `WARN_EVERY` says so.
        """
        header_file = self._file(key)
        try:
            old = unpack_header(header_file.read_bytes())
        except OSError:
            old = None
        try:
            self._write_entry(key, variant)
        except OSError as error:
            self._warn(error)
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                return
            self._evict(self.FULL_DISK_KEEP_FRACTION)
            try:
                self._write_entry(key, variant)
            except OSError:
                return
        if old is not None and old[0].etag != variant.etag:
            with contextlib.suppress(OSError):
                self._body(key, old[0].etag).unlink(missing_ok=True)
        with self._lock:
            self._written_since_scan += len(variant.data)
            if self._written_since_scan < self.max_bytes * self.SCAN_EVERY_FRACTION:
                return
            self._written_since_scan = 0
        self._evict()

    def purge(self, source: str) -> int:
        """Remove the source's folder, and with it every variant of the source."""
        folder = self._folder(source)
        # Descriptions only: not image files (NAME.VERSION), not writes in progress (.tmp-).
        count = sum(1 for file in folder.glob("[!.]*") if "." not in file.name)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            return 0
        except OSError as error:
            raise UpstreamError("The disk cache could not be purged") from error
        return count

    def _file(self, key: str) -> Path:
        source, _, variant = key.partition("/")
        return self._folder(source) / variant

    def _folder(self, source: str) -> Path:
        # ab/abcd...: one folder per source, spread over 256 parents.
        return self.path / source[:2] / source

    def _body(self, key: str, etag: str) -> Path:
        """The image file of the entry's version `etag`, beside its description."""
        # The ETag is hex (a file's) or quoted text (an upstream's); keep it a file name.
        description = self._file(key)
        return description.with_name(
            f"{description.name}.{hashlib.sha256(etag.encode()).hexdigest()[:16]}"
        )

    def _write_entry(self, key: str, variant: StoredVariant) -> None:
        """The image file, then its description; raises OSError if the disk refuses."""
        header_file = self._file(key)
        # The folder may have been deleted (by hand, or a purge meanwhile): make it again.
        header_file.parent.mkdir(parents=True, exist_ok=True)
        _write(self._body(key, variant.etag), variant.data)
        _write(header_file, _header(variant))

    def _warn(self, error: OSError) -> None:
        now = time.monotonic()
        with self._lock:
            quiet = self._warned_at is not None and now - self._warned_at < self.WARN_EVERY
            if not quiet:
                self._warned_at = now
        # Never the path: the errno says enough.
        message = "disk cache cannot store a variant, serving without it: %s"
        if quiet:
            log.debug(message, error.strerror)
        else:
            log.warning(message, error.strerror)

    def _evict(self, keep_fraction: float | None = None) -> None:
        """Drop whole entries, least recently used first, until the folder fits the bound
        (or, with `keep_fraction`, that fraction of what it holds now: a full disk)."""
        entries: dict[Path, list[tuple[float, int, Path]]] = {}
        for file in self.path.glob("??/*/*"):
            if file.name.startswith(".tmp-"):
                continue
            try:
                stat = file.stat()
            except OSError:  # another worker evicted it first, or the folder went away
                continue
            # An entry's description and its image file share the part before the dot.
            entry = file.with_name(file.name.partition(".")[0])
            entries.setdefault(entry, []).append((stat.st_mtime, stat.st_size, file))
        total = sum(size for files in entries.values() for _, size, _ in files)
        bound = self.max_bytes if keep_fraction is None else total * keep_fraction
        for files in sorted(entries.values(), key=lambda files: max(f[0] for f in files)):
            if total <= bound:
                break
            for _, size, file in files:
                with contextlib.suppress(OSError):
                    file.unlink(missing_ok=True)
                total -= size


def _write(file: Path, data: bytes) -> None:
    """Write through a temporary file renamed into place; OSError if the disk refuses."""
    handle, temporary = tempfile.mkstemp(dir=file.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, file)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# Seconds a shared cache is left alone after a failure, so that an outage costs one
# timeout now and then rather than two (get and put) on every request.
PAUSE_AFTER_ERROR = 5.0


class GuardedCache:
    """What a cache on another server shares: its failures are misses, never errors.

    When the server is down, slow or answers nonsense, a get is a miss and a put is
    dropped, one warning is logged, and the server is left alone for `PAUSE_AFTER_ERROR`
    seconds before it is tried again.
    """

    NAME = "shared"
    PAUSE_AFTER_ERROR = PAUSE_AFTER_ERROR
    # What a failing server raises; subclasses set it once their client is imported.
    _errors: tuple[type[BaseException], ...] = ()
    # Monotonic time before which the server is not asked; 0 while it answers.
    _paused_until = 0.0

    def _call(self, command: Callable[..., Any], *args: Any) -> Any:
        """The command's reply, or None while the server fails or is paused after failing."""
        if self._paused_until and time.monotonic() < self._paused_until:
            return None
        try:
            reply = command(*args)
        except self._errors as error:
            # Threads race here at worst into a second warning, which is not worth a lock.
            if not self._paused_until:
                log.warning("%s cache unavailable, serving without it: %s", self.NAME, error)
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_ERROR
            return None
        if self._paused_until:
            log.info("%s cache is back", self.NAME)
            self._paused_until = 0.0
        return reply


class RedisCache(GuardedCache):
    """Entries in a redis server, shared by every worker of every host that names it.

    Each entry is one string value in the `pack` layout, under "pixfit:" and the key, so
    the server can hold other things too. Redis bounds its own size: give it a
    `maxmemory` and `maxmemory-policy allkeys-lru`, and it evicts the least recently used
    keys of all its clients, which pixfit cannot do as well from outside. `max_bytes` only
    turns away a single variant larger than it. A failing redis costs misses only.
    """

    PREFIX = "pixfit:"
    NAME = "redis"
    # Seconds to connect and to wait for a reply. A nearby redis answers in about a
    # millisecond; past this a render is often as quick. redis-py's own defaults (no
    # timeout in 5.x; 5 s and 10 retries in 8.x) let a dead or firewalled server hold a
    # request thread for seconds or for ever.
    TIMEOUT = 0.25

    def __init__(self, url: str, max_bytes: int) -> None:
        import redis  # noqa: PLC0415 (only this kind needs the optional package)
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        self.max_bytes = max_bytes
        # No connection is opened here, and redis-py's pool notices a fork (it compares
        # the pid) and drops inherited connections, so each worker gets its own sockets
        # whether the app is made before the fork (mod_wsgi, gunicorn --preload) or after.
        self._client: Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=self.TIMEOUT,
            socket_timeout=self.TIMEOUT,
            retry=Retry(NoBackoff(), retries=0),  # each retry would add another timeout
        )
        # What a failing server raises: redis-py's errors, and ValueError from its parser
        # when a reply is garbage where it expects a number.
        self._errors = (redis.RedisError, ValueError)

    def get(self, key: str) -> StoredVariant | None:
        """The entry, if a whole one is there and redis answers in time."""
        entry = self._call(self._client.get, self.PREFIX + key)
        return unpack(entry) if isinstance(entry, bytes) else None

    def put(self, key: str, variant: StoredVariant) -> None:
        """Store the entry, or drop it if redis does not take it in time."""
        if variant.size <= self.max_bytes:
            self._call(self._client.set, self.PREFIX + key, pack(variant))

    def purge(self, source: str) -> int:
        """Delete the source's keys, found by SCAN (which never blocks redis as KEYS does)."""
        pattern = self.PREFIX + cache_key(source, "*")  # the tag is hex: no glob characters
        removed = 0
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    removed += int(self._client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(self._client.unlink(*batch))
        except self._errors as error:
            log.warning("redis cache purge failed: %s", error)
            raise UpstreamError("The redis cache did not answer; purge again") from None
        return removed


def make_cache(config: CacheConfig) -> Cache:
    """The cache the config names."""
    if config.kind == CacheKind.MEMORY:
        return MemoryCache(config.max_bytes)
    if config.kind == CacheKind.DISK:
        return DiskCache(Path(config.path or default_cache_path()), config.max_bytes)
    if config.kind == CacheKind.REDIS:
        return RedisCache(config.url, config.max_bytes)
    if config.kind == CacheKind.S3:
        from pixfit.s3 import Bucket, S3Cache  # noqa: PLC0415 (s3.py builds on this module)

        return S3Cache(Bucket.configured(config, S3Cache.TIMEOUT), config.max_bytes)
    return NoCache()


def pack(variant: StoredVariant) -> bytes:
    """One stored entry: a JSON header line, then the image bytes."""
    return _header(variant) + b"\n" + variant.data


def _header(variant: StoredVariant) -> bytes:
    """The entry's description, one line of JSON (with the image's length)."""
    header = asdict(variant)
    header.pop("data")
    header["length"] = len(variant.data)
    header["modified"] = variant.modified.isoformat() if variant.modified else None
    return json.dumps(header).encode()


def unpack(entry: bytes) -> StoredVariant | None:
    """The variant `pack` wrote, or None for anything partial or malformed."""
    line, _, data = entry.partition(b"\n")
    header = unpack_header(line)
    if header is None or len(data) != header[1]:
        return None
    return replace(header[0], data=data)


def unpack_header(line: bytes) -> tuple[StoredVariant, int] | None:
    """The description `pack` wrote on an entry's first line (with empty `data`), and the
    length of the image bytes that follow it; None if the line is malformed."""
    try:
        header = json.loads(line)
        modified = header["modified"]
        return StoredVariant(
            data=b"",
            media_type=str(header["media_type"]),
            width=int(header["width"]),
            height=int(header["height"]),
            quality=header["quality"],
            budget_met=header["budget_met"],
            score=header["score"],
            etag=str(header["etag"]),
            modified=datetime.fromisoformat(modified) if modified else None,
            fresh_until=header["fresh_until"],
            animation=header.get("animation"),
        ), int(header["length"])
    except (ValueError, KeyError, TypeError, RecursionError):  # deep JSON: RecursionError
        return None
