"""The result cache and conditional requests through the app: both answer before any work."""

import os
from pathlib import Path

import pytest
import pyvips
from flask.testing import FlaskClient

from pixfit.config import Config
from pixfit.web import create_app


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
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
