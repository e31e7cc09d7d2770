"""The serving core on its own: plain request values in, plain response values out, no Flask.

Its collaborators are real and small: a folder source, a memory cache, real render slots.
"""

from pathlib import Path

import pytest

from pixfit.cache import MemoryCache
from pixfit.config import Config
from pixfit.errors import BadOption, NotFound, Overloaded
from pixfit.limiter import RenderSlots
from pixfit.remote import UrlSource
from pixfit.service import (
    ImageRequest,
    ImageResponse,
    ImageService,
    SourceKind,
    Sources,
    private,
)
from pixfit.sources import LocalSource
from tests.conftest import decoded, photo

BROWSER_ACCEPT = "image/avif,image/webp,*/*"


@pytest.fixture
def service(tmp_path: Path) -> ImageService:
    photo(400, 300).jpegsave(str(tmp_path / "a.jpg"), Q=90)
    config = Config().merged({"source": {"root": str(tmp_path)}})
    return ImageService(
        config,
        sources=Sources(
            paths=LocalSource(tmp_path, 10_000_000),
            urls=UrlSource(allowed_hosts=(), max_bytes=10_000_000),
        ),
        cache=MemoryCache(10_000_000),
        slots=RenderSlots(1, 0, 1.0),
    )


def get(service: ImageService, query: dict[str, str], **headers: str) -> ImageResponse:
    return service.handle(ImageRequest(SourceKind.PATH, "a.jpg", query, headers))


def header(response: ImageResponse, name: str) -> str:
    return dict(response.headers)[name]


def test_a_render_answers_with_the_plan_headers_and_is_then_a_hit(service: ImageService) -> None:
    first = get(service, {"w": "200", "bw": "3g"}, Accept=BROWSER_ACCEPT)
    assert first.status == 200 and first.rendered and first.media_type == "image/avif"
    assert decoded(first.body).width == 200
    assert header(first, "X-Pixfit-Class") == "3g"
    assert header(first, "X-Pixfit-Budget") == "100000 met"
    assert header(first, "Vary").startswith("Accept")
    second = get(service, {"w": "200", "bw": "3g"}, Accept=BROWSER_ACCEPT)
    assert header(second, "Server-Timing") == 'cache;desc="hit"' and not second.rendered
    assert second.body == first.body and header(second, "ETag") == header(first, "ETag")


def test_if_none_match_gets_a_304_with_the_validators(service: ImageService) -> None:
    etag = header(get(service, {"w": "120"}), "ETag")
    again = get(service, {"w": "120"}, **{"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert header(again, "ETag") == etag and "Last-Modified" in dict(again.headers)


def test_no_options_passes_the_original_through_without_a_slot(service: ImageService) -> None:
    original = get(service, {})
    assert original.body == (Path(service.config.source.root) / "a.jpg").read_bytes()
    assert original.media_type == "image/jpeg" and not original.rendered
    assert header(original, "X-Pixfit-Quality") == "original"


def test_a_held_slot_refuses_a_render_but_not_a_hit(service: ImageService) -> None:
    get(service, {"w": "100"})
    with service.slots.slot():
        assert get(service, {"w": "100"}).status == 200  # a hit needs no slot
        with pytest.raises(Overloaded):
            get(service, {"w": "99"})


@pytest.mark.parametrize(
    ("ref", "query", "error"),
    [("a.jpg", {"w": "abc"}, BadOption), ("missing.jpg", {"w": "10"}, NotFound)],
)
def test_refusals_are_pixfit_errors(
    service: ImageService, ref: str, query: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        service.handle(ImageRequest(SourceKind.PATH, ref, query, {}))


def test_a_measured_round_trip_classes_a_hintless_request_privately(
    service: ImageService,
) -> None:
    def measured(rtt_ms: float, query: dict[str, str], **headers: str) -> ImageResponse:
        request = ImageRequest(SourceKind.PATH, "a.jpg", query, headers, rtt_ms=rtt_ms)
        return service.handle(request)

    # Off by default: the measurement is not even looked at.
    off = measured(1500.0, {"w": "200"})
    assert (header(off, "X-Pixfit-Class"), header(off, "Cache-Control")) == (
        "wifi",
        "public, max-age=86400",
    )
    service.config = service.config.merged({"server": {"measure_rtt": True}})
    for _ in range(2):  # a render, then a hit: both private
        slow = measured(1500.0, {"w": "200"})
        assert header(slow, "X-Pixfit-Class") == "2g"
        assert header(slow, "Cache-Control") == "private, max-age=86400"
        assert "rtt;dur=1500.0" in header(slow, "Server-Timing")
    revalidated = measured(1500.0, {"w": "200"}, **{"If-None-Match": header(slow, "ETag")})
    assert revalidated.status == 304
    assert header(revalidated, "Cache-Control") == "private, max-age=86400"
    fast = measured(20.0, {"w": "200"})
    assert (header(fast, "X-Pixfit-Class"), header(fast, "Cache-Control")) == (
        "wifi",
        "private, max-age=86400",
    )
    hinted = measured(1500.0, {"w": "200"}, ECT="3g")
    assert (header(hinted, "X-Pixfit-Class"), header(hinted, "Cache-Control")) == (
        "3g",
        "public, max-age=86400",
    )


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("public, max-age=86400", "private, max-age=86400"),
        ("max-age=600, s-maxage=86400, public", "private, max-age=600"),
        ("private, no-cache", "private, no-cache"),
        ("no-store", "private, no-store"),
    ],
)
def test_private_keeps_the_browsers_rules_and_drops_the_shared_ones(
    configured: str, sent: str
) -> None:
    assert private(configured) == sent
