"""The render memory estimate (memory.py) and the limits built on it (413 before decoding)."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
import pyvips

from pixfit import Config, render
from pixfit.errors import RenderTooLarge
from pixfit.memory import MIB, RenderSize, held_bytes, render_bytes
from pixfit.registry import ImageFormat
from pixfit.web import create_app

DEFAULT_LIMIT = Config().limits.max_render_memory
AVIF, WEBP, JPEG, PNG = ImageFormat.AVIF, ImageFormat.WEBP, ImageFormat.JPEG, ImageFormat.PNG


def estimate(pixels: int, *formats: ImageFormat, held: int = 0, searched: bool = False) -> int:
    return render_bytes(RenderSize(held, pixels, formats, searched))


# (what, estimate in MiB at least, peak RSS measured here in MiB): see memory.py's table.
@pytest.mark.parametrize(
    ("size", "measured_mib"),
    [
        (RenderSize(0, 8192 * 8192, (WEBP,), False), 1219),
        (RenderSize(0, 8000 * 6000, (WEBP,), False), 881),
        (RenderSize(0, 4000 * 4000, (WEBP,), False), 333),
        (RenderSize(0, 3000 * 3000, (AVIF,), False), 394),
        (RenderSize(0, 3000 * 2250, (AVIF,), False), 224),
        (RenderSize(0, 1280 * 960, (AVIF, WEBP, JPEG), True), 118),
        (RenderSize(0, 4000 * 3000, (JPEG,), False), 173),
        (RenderSize(0, 8000 * 6000, (JPEG,), False), 209),
        (RenderSize(0, 8192 * 8192, (PNG,), False), 335),
        (RenderSize(held_bytes(8000, 6000, 3, 1), 800 * 600, (JPEG,), True), 178),
    ],
)
def test_the_estimate_bounds_every_measured_peak(size: RenderSize, measured_mib: int) -> None:
    # An upper bound, and not a wild one (the progressive row counts 4:4:4, so 2.1x).
    assert measured_mib * MIB <= render_bytes(size) <= 2.5 * measured_mib * MIB


def test_the_known_outlier_is_over_the_default_limit_and_everyday_renders_are_under() -> None:
    assert estimate(8192 * 8192, WEBP) > DEFAULT_LIMIT
    assert estimate(8000 * 6000, WEBP) > DEFAULT_LIMIT
    for pixels, formats in [
        (3840 * 2160, (AVIF, WEBP)),  # a 4K screen, searched
        (2560 * 1600, (AVIF, WEBP, JPEG)),
        (8000 * 6000, (JPEG,)),  # a 48 MP camera JPEG re-encoded at full size
        (6000 * 4000, (WEBP,)),
    ]:
        searched = pixels <= 5_300_000
        assert estimate(pixels, *formats, searched=searched) < DEFAULT_LIMIT, (pixels, formats)


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        (estimate(1000 * 1000, JPEG), estimate(2000 * 2000, JPEG)),
        (estimate(2000 * 2000, JPEG), estimate(2000 * 2000, WEBP)),
        (estimate(2000 * 2000, WEBP), estimate(2000 * 2000, AVIF)),
        (estimate(2000 * 2000, JPEG), estimate(2000 * 2000, JPEG, WEBP)),
        (estimate(2000 * 2000, WEBP), estimate(2000 * 2000, WEBP, searched=True)),
        (estimate(800 * 600, JPEG), estimate(800 * 600, JPEG, held=held_bytes(8000, 6000, 3, 1))),
        (held_bytes(100, 100, 3, 1), held_bytes(100, 100, 3, 2)),
        (held_bytes(100, 100, 3, 1), held_bytes(100, 100, 4, 1)),
    ],
)
def test_more_pixels_bands_formats_or_search_never_cost_less(smaller: int, larger: int) -> None:
    assert smaller < larger


def big_alpha_png(width: int, height: int) -> bytes:
    """A smooth RGBA PNG: a few MB of file, width x height pixels once decoded."""
    xy = pyvips.Image.xyz(width, height)
    colour = (xy[0] / 36).bandjoin([xy[1] / 36, (xy[0] + xy[1]) / 72, xy[0] * 0 + 200])
    return bytes(colour.cast("uchar").copy(interpretation="srgb").pngsave_buffer(compression=1))


@pytest.fixture(scope="module")
def png_6000() -> bytes:
    return big_alpha_png(6000, 6000)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_a_render_over_max_render_memory_is_413_naming_the_limit_before_decoding(
    png_6000: bytes,
) -> None:
    before = peak_rss()
    with pytest.raises(RenderTooLarge) as caught:
        render(png_6000, {"format": "webp"})  # 6000x6000 WebP: about 720 MiB
    message = str(caught.value)
    assert caught.value.status == 413
    assert "limits.max_render_memory" in message and "512 MiB" in message
    assert "6000x6000" in message and "WebP" in message
    # Refused from the header: nothing near the 137 MiB of decoded pixels was allocated.
    assert peak_rss() - before < 64 * MIB
    # The same source at a size the budget covers renders, and so does a raised limit.
    small = render(png_6000, {"format": "webp", "w": 1000, "q": 80})
    assert (small.width, small.height, small.media_type) == (1000, 1000, "image/webp")
    roomy = Config().merged({"limits": {"max_render_memory": 2048 * MIB}})
    with pytest.raises(RenderTooLarge, match="max_output_pixels"):
        render(
            png_6000,
            {"format": "webp"},
            config=roomy.merged({"limits": {"max_output_pixels": 30_000_000}}),
        )


def test_max_output_pixels_is_413_naming_the_limit(png_6000: bytes) -> None:
    config = Config().merged({"limits": {"max_output_pixels": 1_000_000}})
    with pytest.raises(RenderTooLarge) as caught:
        render(png_6000, {"w": 1001, "format": "jpeg"}, config=config)
    assert "limits.max_output_pixels" in str(caught.value) and "1001x1001" in str(caught.value)
    ok = render(png_6000, {"w": 1000, "format": "jpeg", "q": 70}, config=config)
    assert (ok.width, ok.height) == (1000, 1000)


def test_a_progressive_source_counts_its_held_coefficients() -> None:
    # 4000x3000 progressive: 72 MB of coefficients held whatever the output size, so a
    # tight limit refuses even a thumbnail, where a baseline JPEG of the same size passes.
    image = pyvips.Image.black(4000, 3000, bands=3).copy(interpretation="srgb")
    progressive = bytes(image.jpegsave_buffer(Q=80, interlace=True))
    baseline = bytes(image.jpegsave_buffer(Q=80))
    config = Config().merged({"limits": {"max_render_memory": 80 * MIB}})
    with pytest.raises(RenderTooLarge, match="max_render_memory"):
        render(progressive, {"w": 200, "q": 70}, config=config)
    assert render(baseline, {"w": 200, "q": 70}, config=config).width == 200


def test_the_web_answer_is_a_413_problem(png_6000: bytes, tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(png_6000)
    config = Config().merged({"source": {"root": str(tmp_path)}})
    client = create_app(config).test_client()
    response = client.get("/images/big.png?format=webp")
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    problem = json.loads(response.data)
    assert problem["title"] == "Render too large"
    assert "limits.max_render_memory" in problem["detail"]
    assert str(tmp_path) not in problem["detail"]
    assert client.get("/images/big.png").data == png_6000  # the original needs no render
