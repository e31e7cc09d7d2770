"""S3Cache against a real moto_server, and one bucket shared by two `pixfit serve` nodes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pixfit.cache import make_cache, pack
from pixfit.config import CacheConfig, CacheKind
from pixfit.errors import UpstreamError
from pixfit.s3 import Bucket, S3Cache
from tests.conftest import decoded, photo
from tests.objectstore import CREDENTIALS, MotoServer, free_port, s3
from tests.test_cache import assert_purges_one_source, variant
from tests.test_serve import started

__all__ = ["s3"]  # the fixture, used by name

BUCKET = "rendered"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def bucket(s3: MotoServer) -> Any:
    return s3.bucket(BUCKET)


def cache_of(s3: MotoServer, prefix: str, max_bytes: int = 10_000_000) -> S3Cache:
    config = CacheConfig(
        kind=CacheKind.S3,
        s3_bucket=BUCKET,
        s3_prefix=prefix,
        s3_endpoint_url=s3.url,
        s3_region="us-east-1",
        max_bytes=max_bytes,
    )
    cache = make_cache(config)
    assert isinstance(cache, S3Cache)
    return cache


def test_miss_then_hit_under_the_prefix(s3: MotoServer, bucket: Any) -> None:
    first, second = cache_of(s3, "variants/"), cache_of(s3, "variants")
    assert first.get("a" * 32) is None
    first.put("a" * 32, variant(300))
    assert second.get("a" * 32) == variant(300)
    keys = [item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"variants/{'a' * 32}" in keys


def test_a_variant_larger_than_max_bytes_is_not_stored(s3: MotoServer, bucket: Any) -> None:
    cache = cache_of(s3, "small", max_bytes=1000)
    cache.put("huge", variant(5000))
    assert cache.get("huge") is None


@pytest.mark.parametrize("value", [b"", b"garbage", pack(variant(100))[:-1]])
def test_a_partial_or_garbage_object_reads_as_a_miss(
    s3: MotoServer, bucket: Any, value: bytes
) -> None:
    bucket.put_object(Bucket=BUCKET, Key="garbage/key", Body=value)
    assert cache_of(s3, "garbage").get("key") is None


def test_a_store_that_is_down_gives_misses_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = S3Cache(Bucket(BUCKET, "", f"http://127.0.0.1:{free_port()}", timeout=0.5), 10_000)
    with caplog.at_level(logging.WARNING, logger="pixfit"):
        for _ in range(3):
            assert cache.get("a" * 32) is None
            cache.put("a" * 32, variant(100))
    warnings = [r for r in caplog.records if "s3 cache unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_two_nodes_share_one_bucket(s3: MotoServer, bucket: Any, tmp_path: Path) -> None:
    bucket.put_object(
        Bucket=BUCKET, Key="originals/photo.jpg", Body=photo(600, 400).jpegsave_buffer(Q=85)
    )
    settings = {
        "source_kind": "s3",
        "source_s3_bucket": BUCKET,
        "source_s3_prefix": "originals",
        "source_s3_endpoint_url": s3.url,
        "cache_kind": "s3",
        "cache_s3_bucket": BUCKET,
        "cache_s3_prefix": "shared",
        "cache_s3_endpoint_url": s3.url,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with started(tmp_path / "a", **settings) as one, started(tmp_path / "b", **settings) as two:
        status, headers, body = one.get("/images/photo.jpg?w=300&format=webp")
        assert status == 200, body[:300]
        assert "decode;" in headers["Server-Timing"]
        status, shared, again = two.get("/images/photo.jpg?w=300&format=webp")
        assert status == 200 and shared["Server-Timing"] == 'cache;desc="hit"'
        assert again == body and shared["ETag"] == headers["ETag"]
        assert decoded(again).width == 300


def test_purge_deletes_the_objects_of_one_source_only(s3: MotoServer, bucket: Any) -> None:
    assert_purges_one_source(cache_of(s3, "purged"), 5)


def test_a_purge_on_a_store_that_is_down_fails_loudly() -> None:
    cache = S3Cache(Bucket(BUCKET, "", f"http://127.0.0.1:{free_port()}", timeout=0.5), 10_000)
    with pytest.raises(UpstreamError):
        cache.purge("a" * 16)
