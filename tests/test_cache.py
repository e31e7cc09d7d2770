import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pixfit.cache import (
    Cache,
    DiskCache,
    MemoryCache,
    NoCache,
    StoredVariant,
    cache_key,
    make_cache,
)
from pixfit.config import CacheConfig, CacheKind


def variant(size: int, fill: bytes = b"x") -> StoredVariant:
    return StoredVariant(
        data=fill * size,
        media_type="image/webp",
        width=640,
        height=480,
        quality=62,
        budget_met=True,
        score=71.5,
        etag="e" * 32,
        modified=datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
        fresh_until=1_800_000_000.5,
    )


REPO = Path(__file__).parent.parent


def key(name: str) -> str:
    """A key of the shape the serving core makes: a source's tag, then the variant's hash."""
    return cache_key(name * (16 // len(name)), name * (32 // len(name)))


def assert_purges_one_source(cache: Cache, variants: int) -> None:
    """Fill `cache` with `variants` variants of one source and one of another, purge the
    first source, and check that only its variants went."""
    for number in range(variants):
        cache.put(cache_key("a" * 16, f"{number:032d}"), variant(10))
    cache.put(cache_key("b" * 16, "0" * 32), variant(10))
    assert cache.purge("a" * 16) == variants
    assert cache.get(cache_key("a" * 16, "0" * 32)) is None
    assert cache.get(cache_key("b" * 16, "0" * 32)) == variant(10)
    assert cache.purge("a" * 16) == 0


@pytest.fixture(params=["memory", "disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryCache | DiskCache:
    if request.param == "memory":
        return MemoryCache(max_bytes=10_000)
    return DiskCache(tmp_path / "cache", max_bytes=10_000)


def test_miss_then_hit_returns_the_same_variant(cache: MemoryCache | DiskCache) -> None:
    assert cache.get(key("a")) is None
    cache.put(key("a"), variant(100))
    assert cache.get(key("a")) == variant(100)
    assert cache.get(key("b")) is None


def test_eviction_by_size_drops_the_least_recently_used(cache: MemoryCache | DiskCache) -> None:
    # 4 KB entries in a 10 KB cache: the third write must evict the least recently used.
    cache.put(key("k1"), variant(4000, b"1"))
    time.sleep(0.02)  # distinct mtimes for the disk cache's recency
    cache.put(key("k2"), variant(4000, b"2"))
    time.sleep(0.02)
    assert cache.get(key("k1")) is not None  # k1 is now more recent than k2
    time.sleep(0.02)
    if isinstance(cache, DiskCache):
        cache._written_since_scan = cache.max_bytes  # force this write to re-measure
    cache.put(key("k3"), variant(4000, b"3"))
    assert cache.get(key("k2")) is None
    assert cache.get(key("k1")) is not None
    assert cache.get(key("k3")) is not None


def test_purge_removes_one_source_only(cache: MemoryCache | DiskCache) -> None:
    assert_purges_one_source(cache, 3)


def test_memory_cache_tracks_its_size() -> None:
    cache = MemoryCache(max_bytes=1000)
    cache.put("a", variant(600))
    cache.put("a", variant(300))
    assert cache.size == 300
    cache.put("huge", variant(5000))  # larger than the whole cache: not stored
    assert cache.get("huge") is None and cache.size == 300


def test_disk_cache_survives_a_restart_and_ignores_partial_files(tmp_path: Path) -> None:
    DiskCache(tmp_path, 10_000).put(key("ab"), variant(500))
    reopened = DiskCache(tmp_path, 10_000)
    assert reopened.get(key("ab")) == variant(500)
    # A truncated entry (a crash mid-write of some other writer) reads as a miss.
    # A truncated image file (a crash mid-write of some other writer) reads as a miss, and
    # so does a truncated description.
    (image,) = (tmp_path / "ab" / ("ab" * 8)).glob("*.*")
    image.write_bytes(image.read_bytes()[:-10])
    assert reopened.get(key("ab")) is None
    assert reopened.open(key("ab")) is None
    DiskCache(tmp_path, 10_000).put(key("ab"), variant(500))
    description = tmp_path / "ab" / ("ab" * 8) / ("ab" * 16)
    description.write_bytes(description.read_bytes()[:-10])
    assert reopened.get(key("ab")) is None


def test_a_disk_entry_is_its_description_and_the_image_bytes_alone(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 10_000)
    cache.put(key("ef"), variant(300, b"1"))
    entry = cache.open(key("ef"))
    assert entry is not None
    described, image, length = entry
    with image:
        # The image file holds the bytes and nothing else, for sendfile and X-Sendfile.
        assert Path(str(image.name)).read_bytes() == b"1" * 300 and length == 300
        assert described == replace(variant(300), data=b"")
    # A new version under the same key (a URL whose origin changed) replaces both files.
    cache.put(key("ef"), replace(variant(200, b"2"), etag="f" * 32))
    got = cache.get(key("ef"))
    assert got is not None and got.data == b"2" * 200 and got.etag == "f" * 32
    assert len(list((tmp_path / "ef" / ("ef" * 8)).iterdir())) == 2
    assert cache.purge("ef" * 8) == 1  # one entry, whatever its files


def test_disk_cache_is_shared_between_processes(tmp_path: Path) -> None:
    writer = (
        "import sys; from pixfit.cache import DiskCache; from tests.test_cache import key, variant;"
        "from pathlib import Path;"
        "DiskCache(Path(sys.argv[1]), 10_000).put(key('cd'), variant(700, b'z'))"
    )
    subprocess.run(
        [sys.executable, "-c", writer, str(tmp_path)],
        check=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])},
    )
    assert DiskCache(tmp_path, 10_000).get(key("cd")) == variant(700, b"z")
    assert not list(tmp_path.glob("**/.tmp-*"))  # the atomic write left no temporary


def test_no_cache_stores_nothing() -> None:
    cache = NoCache()
    cache.put("a", variant(10))
    assert cache.get("a") is None


def test_make_cache_follows_the_config(tmp_path: Path) -> None:
    assert isinstance(make_cache(CacheConfig()), NoCache)
    assert isinstance(make_cache(CacheConfig(kind=CacheKind.MEMORY)), MemoryCache)
    disk = make_cache(CacheConfig(kind=CacheKind.DISK, path=str(tmp_path / "d")))
    assert isinstance(disk, DiskCache) and (tmp_path / "d").is_dir()


@pytest.mark.parametrize("module", ["pixfit.cache", "pixfit.service"])
def test_the_cache_and_the_serving_core_load_neither_pyvips_nor_flask(module: str) -> None:
    # A process that only answers hits and 304s must not pay for libvips or Flask.
    check = (
        f"import sys, {module}; "
        "loaded = sorted(m for m in ('pyvips', 'flask') if m in sys.modules); "
        "print(','.join(loaded))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
