"""An S3-compatible object store as a source of images and as a shared result cache.

boto3 is imported only when a bucket is first used, so that installing pixfit without
the `s3` extra costs nothing. One client per process and store: boto3 clients are
thread-safe, cost about 50 ms to make, and must not cross a fork (gunicorn, Dask).

Status mapping, as for URL sources: a missing key is 404, a store that refuses (bad
credentials, no such bucket, access denied) is 502 with its reason in the log only, and
a store that does not answer in time is 504.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pixfit.backoff import HostBackoff
from pixfit.cache import GuardedCache, StoredVariant, cache_key, pack, unpack
from pixfit.config import CacheConfig, SourceConfig
from pixfit.errors import NotFound, TooLarge, UpstreamError, UpstreamTimeout
from pixfit.logs import APP_LOGGER
from pixfit.remote import shared_max_age
from pixfit.sources import SourceImage, SourceStamp, check_ref

__all__ = [
    "Bucket",
    "S3Cache",
    "S3Source",
    "parse_s3_url",
    "store_errors",
]

log = logging.getLogger(APP_LOGGER)

# Error codes S3 (and the compatible stores) give for a key or object that is not there.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_CHUNK = 64 * 1024
# Connections per client; above gunicorn's threads per worker, so none waits for one.
_POOL = 32


@dataclass(frozen=True, slots=True)
class Bucket:
    """One folder of one bucket in one store: where keys are read and written."""

    name: str
    # A folder in the bucket, without slashes at its ends ("" for the top).
    prefix: str = ""
    # Any S3-compatible endpoint; "" means AWS itself.
    endpoint_url: str = ""
    # "" means the AWS default chain (AWS_REGION, ~/.aws/config).
    region: str = ""
    # Seconds to connect and between bytes.
    timeout: float = 10.0

    @classmethod
    def configured(cls, section: SourceConfig | CacheConfig, timeout: float) -> Bucket:
        """The bucket a `[source]` or `[cache]` section names with its s3_* keys."""
        return cls(
            section.s3_bucket,
            section.s3_prefix.strip("/"),
            section.s3_endpoint_url,
            section.s3_region,
            timeout,
        )

    def key(self, name: str) -> str:
        """The object key of `name` in this bucket's folder."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def name_of(self, key: str) -> str:
        """The name under the folder that `key` stands for (the inverse of `key`)."""
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def client(self) -> Any:
        """This process's boto3 client for the store."""
        return _client(self.endpoint_url, self.region, self.timeout, os.getpid())

    def list(self, folder: str = "") -> Iterator[dict[str, Any]]:
        """The objects under `folder` (a prefix of names), as ListObjectsV2 describes them."""
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.name, Prefix=self.key(folder)):
            yield from page.get("Contents", ())


def parse_s3_url(url: str, *, endpoint_url: str = "", region: str = "") -> Bucket:
    """The bucket and folder of `s3://bucket/folder`."""
    name, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not name:
        raise ValueError(f"Expected s3://BUCKET/FOLDER but received {url!r}")
    return Bucket(name, prefix.strip("/"), endpoint_url, region)


_clients: dict[tuple[str, str, float, int], Any] = {}
_clients_lock = threading.Lock()


def _client(endpoint_url: str, region: str, timeout: float, pid: int) -> Any:
    # Keyed by pid too: a client made before a fork holds the parent's sockets.
    key = (endpoint_url, region, timeout, pid)
    with _clients_lock:
        if key not in _clients:
            import boto3  # noqa: PLC0415 (only kind s3 needs the optional package)
            from botocore.config import Config  # noqa: PLC0415

            settings = Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                # No retries, as for URLs: each would add another timeout to a request.
                retries={"mode": "standard", "total_max_attempts": 1},
                max_pool_connections=_POOL,
            )
            _clients[key] = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region or None,
                config=settings,
            )
        return _clients[key]


class S3Source:
    """Objects under one bucket's folder, named by the same rules as files under a root."""

    def __init__(self, bucket: Bucket, max_bytes: int) -> None:
        self.bucket = bucket
        self.max_bytes = max_bytes
        # A store that is down is asked again only after a short back-off (backoff.py).
        self.backoff = HostBackoff()
        self._store = bucket.endpoint_url or "aws"

    def identify(self, ref: str) -> None:
        """Refuse a bad key; the version needs a request, so it is left to `check`."""
        check_ref(ref)

    def check(self, ref: str) -> SourceStamp:
        """The object's current version, from one HEAD."""
        head = self._call(ref, "head_object", Bucket=self.bucket.name, Key=self.bucket.key(ref))
        self._check_size(ref, head)
        return self._stamp(ref, head)

    def open(self, ref: str) -> SourceImage:
        """The object's bytes, read under `max_bytes` as they stream in."""
        check_ref(ref)
        deadline = time.monotonic() + self.bucket.timeout
        reply = self._call(ref, "get_object", Bucket=self.bucket.name, Key=self.bucket.key(ref))
        body = reply["Body"]
        try:
            self._check_size(ref, reply)
            with store_errors(self.bucket.name, ref):
                data = self._read(ref, body, deadline)
        finally:
            body.close()
        stamp = self._stamp(ref, reply)
        return SourceImage(data, stamp.identity, stamp.modified, stamp.max_age)

    def _read(self, ref: str, body: Any, deadline: float) -> bytes:
        chunks: list[bytes] = []
        total = 0
        for chunk in body.iter_chunks(min(_CHUNK, self.max_bytes + 1)):
            total += len(chunk)
            if total > self.max_bytes:  # a store may not send Content-Length
                raise TooLarge(
                    f"Expected at most {self.max_bytes} source bytes but {ref!r} is larger"
                )
            if time.monotonic() > deadline:  # a trickling body never trips the read timeout
                raise UpstreamTimeout(f"The object store did not send {ref!r} in time")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_size(self, ref: str, reply: dict[str, Any]) -> None:
        if int(reply.get("ContentLength", 0)) > self.max_bytes:
            raise TooLarge(f"Expected at most {self.max_bytes} source bytes but {ref!r} is larger")

    def _stamp(self, ref: str, reply: dict[str, Any]) -> SourceStamp:
        # The ETag changes with the bytes (Last-Modified only has whole seconds).
        version = reply.get("ETag") or str(reply.get("LastModified"))
        return SourceStamp(
            identity=f"s3:{self.bucket.name}/{self.bucket.key(ref)}|{version}",
            modified=reply.get("LastModified"),
            max_age=shared_max_age(reply.get("CacheControl")),
        )

    def _call(self, ref: str, operation: str, **kwargs: Any) -> Any:
        from botocore import exceptions  # noqa: PLC0415

        self.backoff.check(self._store, "The object store")
        with store_errors(self.bucket.name, ref):
            try:
                result = getattr(self.bucket.client(), operation)(**kwargs)
            except (exceptions.ReadTimeoutError, exceptions.ConnectTimeoutError):
                self.backoff.failed(self._store, UpstreamTimeout)
                raise
            except exceptions.EndpointConnectionError:
                self.backoff.failed(self._store, UpstreamError)
                raise
            except exceptions.ClientError:
                self.backoff.succeeded(self._store)  # it answered, if only to refuse
                raise
        self.backoff.succeeded(self._store)
        return result


@contextmanager
def store_errors(bucket: str, ref: str) -> Iterator[None]:
    """Turn the store's failures in the block into pixfit's errors (see the top)."""
    from botocore import exceptions  # noqa: PLC0415

    try:
        yield
    except exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _MISSING:
            raise NotFound(f"No image named {ref!r}") from None
        # The reason (AccessDenied, InvalidAccessKeyId, NoSuchBucket...) names the
        # operator's set-up, so it goes to the log and not to the client.
        log.warning("object store refused %s of %r: %s", bucket, ref, error)
        raise UpstreamError(f"The object store failed for {ref!r}") from None
    except (exceptions.ReadTimeoutError, exceptions.ConnectTimeoutError):
        raise UpstreamTimeout(f"The object store did not answer in time for {ref!r}") from None
    except exceptions.BotoCoreError as error:  # no credentials, no connection...
        log.warning("object store failed for %s of %r: %s", bucket, ref, error)
        raise UpstreamError(f"The object store failed for {ref!r}") from None


class S3Cache(GuardedCache):
    """Entries in an S3-compatible bucket, shared by every node that names it.

    Each entry is one object in the `pack` layout under the bucket's folder; a PUT
    replaces an object whole, so readers never see half of one. The bucket bounds its
    own size: give it a lifecycle rule that expires objects some days after they were
    written. As with redis, a failing store costs misses and dropped writes only.
    """

    NAME = "s3"
    # Seconds to connect and between bytes. A store on the same network answers a small
    # GET in a few milliseconds; a cache that takes seconds is worse than a render.
    TIMEOUT = 1.0

    def __init__(self, bucket: Bucket, max_bytes: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        self.bucket = bucket
        self.max_bytes = max_bytes
        self._errors = (BotoCoreError, ClientError)

    def get(self, key: str) -> StoredVariant | None:
        """The entry, or None when absent, partial or while the store fails."""
        entry = self._call(self._read, key)
        return unpack(entry) if isinstance(entry, bytes) else None

    def put(self, key: str, variant: StoredVariant) -> None:
        """Store the entry, or drop it if the store does not take it."""
        if variant.size <= self.max_bytes:
            self._call(self._write, key, pack(variant))

    def purge(self, source: str) -> int:
        """Delete the objects under the source's prefix, a thousand per request."""
        removed = 0
        try:
            keys = [item["Key"] for item in self.bucket.list(cache_key(source, ""))]
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": key} for key in keys[start : start + 1000]]
                reply = self.bucket.client().delete_objects(
                    Bucket=self.bucket.name, Delete={"Objects": chunk, "Quiet": True}
                )
                if reply.get("Errors"):
                    raise UpstreamError(f"The s3 cache kept {len(reply['Errors'])} variants")
                removed += len(chunk)
        except self._errors as error:
            log.warning("s3 cache purge failed: %s", error)
            raise UpstreamError("The s3 cache did not answer; purge again") from None
        return removed

    def _read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            reply = self.bucket.client().get_object(
                Bucket=self.bucket.name, Key=self.bucket.key(key)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in _MISSING:
                return None  # a plain miss, not a failing store
            raise
        with reply["Body"] as body:
            return bytes(body.read())

    def _write(self, key: str, entry: bytes) -> None:
        self.bucket.client().put_object(
            Bucket=self.bucket.name, Key=self.bucket.key(key), Body=entry
        )
