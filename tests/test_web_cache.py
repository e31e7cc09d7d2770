"""The result cache and conditional requests through the app: both answer before any work."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from pixfit.config import Config
from pixfit.web import create_app
from tests.conftest import serving
from tests.test_web import Upstream


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return noise_photo(tmp_path / "photo.jpg")


def noise_photo(path: Path) -> Path:
    """A 320x200 grey-noise JPEG at `path`: it compresses badly, so variants differ."""
    noise = pyvips.Image.gaussnoise(320, 200, sigma=40, mean=128).cast("uchar")
    noise.bandjoin([noise, noise]).copy(interpretation="srgb").jpegsave(str(path), Q=90)
    return path


def client_for(photo: Path, kind: str) -> FlaskClient:
    config = Config().merged(
        {
            "source": {"root": str(photo.parent)},
            "cache": {"kind": kind, "path": str(photo.parent / "cache")},
        }
    )
    return create_app(config).test_client()


def garble_keeping_stamp(path: Path) -> None:
    """Overwrite the bytes but keep size and mtime: only a reader would notice."""
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_hit_is_served_without_reading_the_source(photo: Path, kind: str) -> None:
    client = client_for(photo, kind)
    first = client.get("/images/photo.jpg?w=100&bw=3g")
    assert first.status_code == 200 and "decode;dur" in first.headers["Server-Timing"]
    garble_keeping_stamp(photo)
    second = client.get("/images/photo.jpg?w=100&bw=3g")
    assert second.status_code == 200
    assert second.headers["Server-Timing"] == 'cache;desc="hit"'
    assert second.data == first.data
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["X-Pixfit-Budget"] == first.headers["X-Pixfit-Budget"]
    # Another variant of the same (now garbled) source misses and has to decode.
    assert client.get("/images/photo.jpg?w=101&bw=3g").status_code == 415


def test_not_modified_is_answered_from_the_stamp_alone(photo: Path) -> None:
    client = client_for(photo, "none")
    first = client.get("/images/photo.jpg?w=100")
    garble_keeping_stamp(photo)
    again = client.get("/images/photo.jpg?w=100", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == first.headers["ETag"]


def test_a_changed_source_makes_a_new_key(photo: Path) -> None:
    client = client_for(photo, "memory")
    first = client.get("/images/photo.jpg?w=100")
    pyvips.Image.black(320, 200).jpegsave(str(photo))
    os.utime(photo, (1, 1))  # a different mtime, whatever the clock's resolution
    second = client.get("/images/photo.jpg?w=100")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert "cache" not in second.headers["Server-Timing"]
    assert pyvips.Image.new_from_buffer(second.data, "").avg() < 5  # the new, black image
    stale = client.get("/images/photo.jpg?w=100", headers={"If-None-Match": first.headers["ETag"]})
    assert stale.status_code == 200


def test_passthrough_is_not_cached(photo: Path) -> None:
    client = client_for(photo, "memory")
    assert client.get("/images/photo.jpg").data == photo.read_bytes()
    garble_keeping_stamp(photo)
    assert client.get("/images/photo.jpg").status_code == 415


def test_metrics_count_hits_and_misses(photo: Path) -> None:
    client = client_for(photo, "memory")
    client.get("/images/photo.jpg?w=50")
    client.get("/images/photo.jpg?w=50")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'pixfit_cache_total{result="hit"}' in text
    assert 'pixfit_requests_total{network_class="wifi",status="200"}' in text
    assert "pixfit_render_seconds_bucket" in text


# ---------------------------------------------------------------------------------------
# URL sources: variants are stored under the URL and trusted for `cache.url_max_age`


@pytest.fixture
def origin(photo: Path) -> Iterator[Upstream]:
    with serving(Upstream(photo.read_bytes())) as server:
        yield server


def url_client(
    photo: Path, url_max_age: int, kind: str = "memory", allowed: tuple[str, ...] = ("127.0.0.1",)
) -> FlaskClient:
    config = Config().merged(
        {
            "source": {
                "root": str(photo.parent),
                "allowed_hosts": list(allowed),
                "allow_private_networks": True,
            },
            "cache": {
                "kind": kind,
                "path": str(photo.parent / "cache"),
                "url_max_age": url_max_age,
            },
        }
    )
    return create_app(config).test_client()


def get_url(client: FlaskClient, origin: Upstream, **headers: str) -> TestResponse:
    query = {"url": origin.url("/img.jpg"), "w": "100"}
    return client.get("/images/", query_string=query, headers=headers)


def test_a_fresh_url_variant_is_served_without_fetching(photo: Path, origin: Upstream) -> None:
    client = url_client(photo, url_max_age=3600)
    first = get_url(client, origin)
    assert first.status_code == 200 and "decode;dur" in first.headers["Server-Timing"]
    second = get_url(client, origin)
    assert second.headers["Server-Timing"] == 'cache;desc="hit"'
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    revalidated = get_url(client, origin, **{"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert origin.seen == ["/img.jpg"]  # one fetch for three answers


def test_a_stale_url_variant_is_reused_while_the_origin_is_unchanged(
    photo: Path, origin: Upstream
) -> None:
    client = url_client(photo, url_max_age=0)
    first = get_url(client, origin)
    second = get_url(client, origin)
    assert second.headers["Server-Timing"].endswith('cache;desc="revalidated"')
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    assert origin.seen == ["/img.jpg"] * 2  # fetched again, but not decoded again


def test_a_changed_origin_gives_a_new_variant(photo: Path, origin: Upstream) -> None:
    client = url_client(photo, url_max_age=0)
    first = get_url(client, origin)
    origin.photo = pyvips.Image.black(320, 200).jpegsave_buffer()
    origin.etag = '"upstream-v2"'
    second = get_url(client, origin)
    assert second.headers["ETag"] != first.headers["ETag"]
    assert "decode;dur" in second.headers["Server-Timing"]
    assert pyvips.Image.new_from_buffer(second.data, "").avg() < 5


@pytest.mark.parametrize("cache_control", ["no-cache", "private", "max-age=0", "no-store"])
def test_the_origin_can_forbid_serving_without_a_fetch(
    photo: Path, origin: Upstream, cache_control: str
) -> None:
    origin.cache_control = cache_control
    client = url_client(photo, url_max_age=3600)
    get_url(client, origin)
    assert get_url(client, origin).status_code == 200
    assert origin.seen == ["/img.jpg"] * 2


def test_the_origin_max_age_shortens_ours(photo: Path, origin: Upstream) -> None:
    origin.cache_control = "public, max-age=1"
    client = url_client(photo, url_max_age=3600)
    get_url(client, origin)
    assert get_url(client, origin).headers["Server-Timing"] == 'cache;desc="hit"'
    time.sleep(1.1)
    get_url(client, origin)
    assert origin.seen == ["/img.jpg"] * 2


def test_a_stored_url_variant_is_not_served_where_the_url_is_refused(
    photo: Path, origin: Upstream
) -> None:
    # Two hosts share a disk cache; the second does not allow URL sources at all.
    allowing = url_client(photo, url_max_age=3600, kind="disk")
    assert get_url(allowing, origin).status_code == 200
    refusing = url_client(photo, url_max_age=3600, kind="disk", allowed=())
    assert get_url(refusing, origin).status_code == 403
    other_host = url_client(photo, url_max_age=3600, kind="disk", allowed=("images.example",))
    assert get_url(other_host, origin).status_code == 403
    assert get_url(allowing, origin).headers["Server-Timing"] == 'cache;desc="hit"'
    assert origin.seen == ["/img.jpg"]


def test_a_revalidated_variant_is_fresh_again(photo: Path, origin: Upstream) -> None:
    origin.cache_control = "max-age=1"
    client = url_client(photo, url_max_age=3600)
    etag = get_url(client, origin).headers["ETag"]
    time.sleep(1.1)  # stale now: the next request asks the origin again
    assert get_url(client, origin, **{"If-None-Match": etag}).status_code == 304
    assert get_url(client, origin).headers["Server-Timing"] == 'cache;desc="hit"'
    assert origin.seen == ["/img.jpg"] * 2
