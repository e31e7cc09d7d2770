"""rotate, flip, blur, sharpen and the focal point, end to end through `pixfit.render`.

Every check reads decoded pixels: corner colours, where a marker landed, edge energy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import pyvips

import pixfit
from tests.conftest import (
    BLUE,
    GREEN,
    GREY,
    RED,
    WHITE,
    decoded,
    decoded_output,
    halves,
    near,
    photo,
    pixel,
    quadrants,
    solid,
    with_orientation,
)
from tests.test_pipeline import ORIENTED_CORNERS

Colour = tuple[int, ...]
Corners = tuple[Colour, Colour, Colour, Colour]  # top left, top right, bottom left, bottom right

# ---------------------------------------------------------------------------------------
# rotate and flip: corner colours, after the EXIF orientation


def turned(corners: Corners, rotate: int, flip: str | None) -> Corners:
    """What a viewer sees after turning `corners` clockwise, then mirroring them."""
    for _ in range(rotate // 90):
        top_left, top_right, bottom_left, bottom_right = corners
        # A quarter turn clockwise: the left column becomes the top row.
        corners = (bottom_left, top_left, bottom_right, top_right)
    top_left, top_right, bottom_left, bottom_right = corners
    if flip in ("h", "hv"):
        top_left, top_right, bottom_left, bottom_right = (
            top_right, top_left, bottom_right, bottom_left,
        )  # fmt: skip
    if flip in ("v", "hv"):
        top_left, top_right, bottom_left, bottom_right = (
            bottom_left, bottom_right, top_left, top_right,
        )  # fmt: skip
    return top_left, top_right, bottom_left, bottom_right


def corners_of(image: pyvips.Image) -> list[Colour]:
    return [pixel(image, x, y) for x, y in ((1, 1), (-2, 1), (1, -2), (-2, -2))]


@pytest.mark.parametrize(("orientation", "shown"), ORIENTED_CORNERS)
@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
@pytest.mark.parametrize("flip", [None, "h", "v", "hv"])
def test_rotate_and_flip_apply_after_the_exif_orientation(
    orientation: int, shown: Corners, rotate: int, flip: str | None
) -> None:
    stored = quadrants(60, 40, (RED, GREEN, BLUE, WHITE))
    source = with_orientation(stored, orientation).jpegsave_buffer(Q=95)
    options: dict[str, object] = {"w": 30}
    if rotate:
        options["rotate"] = rotate
    if flip:
        options["flip"] = flip

    image = decoded_output(pixfit.render(source, options))

    # The width asked for is the turned image's: 60x40 shown, 40x60 after a quarter turn.
    sideways = (orientation >= 5) != (rotate in (90, 270))
    assert (image.width, image.height) == ((30, 45) if sideways else (30, 20))
    want = turned(shown, rotate, flip)
    seen = corners_of(image)
    assert all(near(got, w, 40) for got, w in zip(seen, want, strict=True)), (seen, want)


def test_rotate_matches_libvips_clockwise_turn() -> None:
    source = photo(90, 60, seed=5)
    rendered = pixfit.render(bytes(source.pngsave_buffer()), {"rotate": 90, "format": "png"})
    image = decoded_output(rendered)
    assert (image.width, image.height) == (60, 90)
    assert (image - source.rot90()).abs().max() == 0


def test_cover_crops_the_turned_image() -> None:
    # Red left, blue right; turned clockwise, red is on top.
    source = bytes(halves(400, 200, RED, BLUE, vertical=False).pngsave_buffer())
    options = {"w": 100, "h": 50, "fit": "cover", "rotate": 90, "format": "png"}

    image = decoded_output(pixfit.render(source, options))

    assert (image.width, image.height) == (100, 50)
    assert near(pixel(image, 50, 2), RED)
    assert near(pixel(image, 50, -3), BLUE)


# ---------------------------------------------------------------------------------------
# The focal point

MARKER = (255, 0, 0)
BORDER = GREEN


def marked(width: int, height: int, x: float, y: float) -> pyvips.Image:
    """Grey, framed in a 6 px green border, with a 12 px red square centred at (x, y)."""
    image = solid(width, height, BORDER)
    image = image.draw_rect(list(GREY), 6, 6, width - 12, height - 12, fill=True)
    left, top = round(x * width) - 6, round(y * height) - 6
    return image.draw_rect(list(MARKER), left, top, 12, 12, fill=True)


def marker_at(image: pyvips.Image) -> tuple[float, float]:
    """The centre of the red marker's pixels."""
    pixels = image.numpy().astype(int)
    ys, xs = np.nonzero((pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90))
    assert len(xs), "the marker was cropped away"
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5


def edge_is_border(image: pyvips.Image, side: str) -> bool:
    """True when that edge of the output is the source's green frame."""
    x, y = {"left": (0, None), "right": (-1, None), "top": (None, 0), "bottom": (None, -1)}[side]
    middle = (image.width // 2, image.height // 2)
    point = (middle[0] if x is None else x, middle[1] if y is None else y)
    return near(pixel(image, *point), BORDER, 40)


@pytest.mark.parametrize(
    ("x", "y", "box"),
    [
        (0.6, 0.5, (100, 100)),  # room all round: centred exactly
        (0.35, 0.3, (120, 60)),
        (0.08, 0.5, (100, 100)),  # near the left edge: the crop stops at it
        (0.95, 0.9, (100, 100)),
        (0.5, 0.04, (50, 90)),
        (0.2, 0.7, (30, 30)),
    ],
)
def test_focal_point_is_kept_as_near_the_centre_as_the_crop_allows(
    x: float, y: float, box: tuple[int, int]
) -> None:
    source = bytes(marked(400, 200, x, y).pngsave_buffer())
    options = {"w": box[0], "h": box[1], "fit": "cover", "pos": f"fp:{x},{y}", "format": "png"}

    image = decoded_output(pixfit.render(source, options))

    assert (image.width, image.height) == box
    found = marker_at(image)
    for axis, (low, high) in enumerate((("left", "right"), ("top", "bottom"))):
        centre = box[axis] / 2
        off = found[axis] - centre
        if abs(off) > 1.5:
            # Off centre only where the crop already reaches that side of the source.
            assert edge_is_border(image, low if off < 0 else high), (found, box)


@pytest.mark.parametrize(
    ("options", "turn", "turned_point"),
    [
        # The point (0.3, 0.6) of the source, once the source itself is turned by hand.
        ({"rotate": 90}, lambda image: image.rot90(), (0.4, 0.3)),
        ({"rotate": 270}, lambda image: image.rot270(), (0.6, 0.7)),
        ({"rotate": 180, "flip": "h"}, lambda image: image.rot180().fliphor(), (0.3, 0.4)),
        ({"flip": "v"}, lambda image: image.flipver(), (0.3, 0.4)),
        ({"flip": "hv"}, lambda image: image.rot180(), (0.7, 0.4)),
    ],
)
def test_focal_point_names_the_source_whatever_the_turn(
    options: dict[str, object],
    turn: Callable[[pyvips.Image], pyvips.Image],
    turned_point: tuple[float, float],
) -> None:
    source = marked(400, 300, 0.3, 0.6)
    box = {"w": 50, "h": 30, "fit": "cover", "format": "png"}

    image = decoded_output(
        pixfit.render(bytes(source.pngsave_buffer()), {**box, **options, "pos": "fp:0.3,0.6"})
    )
    by_hand = decoded_output(
        pixfit.render(
            bytes(turn(source).pngsave_buffer()),
            {**box, "pos": f"fp:{turned_point[0]},{turned_point[1]}"},
        )
    )

    assert marker_at(image) == marker_at(by_hand)
    # The same crop; only the resampling's rounding differs (it runs before the turn).
    assert (image - by_hand).abs().max() <= 8


def test_focal_point_is_of_the_image_as_shown_after_exif_orientation() -> None:
    shown = marked(400, 200, 0.3, 0.5)
    # Stored turned back a quarter: orientation 6 tells viewers to turn it clockwise.
    source = with_orientation(shown.rot270(), 6).jpegsave_buffer(Q=95)
    options = {"w": 80, "h": 80, "fit": "cover", "pos": "fp:0.3,0.5", "format": "png"}

    image = decoded_output(pixfit.render(source, options))

    found = marker_at(image)
    assert abs(found[0] - 40) <= 1.5, found
    assert abs(found[1] - 40) <= 1.5, found


def test_a_centre_crop_would_have_lost_the_marker() -> None:
    """The focal point is what kept the marker: the same crop at the centre loses it."""
    source = bytes(marked(400, 200, 0.1, 0.5).pngsave_buffer())
    options = {"w": 50, "h": 100, "fit": "cover", "format": "png"}
    centred = decoded_output(pixfit.render(source, options))
    with pytest.raises(AssertionError, match="cropped away"):
        marker_at(centred)
    focused = decoded_output(pixfit.render(source, {**options, "pos": "fp:0.1,0.5"}))
    assert marker_at(focused)


# ---------------------------------------------------------------------------------------
# blur and sharpen


def edge_energy(image: pyvips.Image) -> float:
    """Mean absolute difference between neighbouring pixels: high-frequency energy."""
    pixels = image.numpy().astype(float)
    return float(np.abs(np.diff(pixels, axis=0)).mean() + np.abs(np.diff(pixels, axis=1)).mean())


@pytest.fixture(scope="module")
def busy_png() -> bytes:
    return bytes(photo(240, 160, seed=7).gaussblur(1.2).pngsave_buffer())


def test_blur_lowers_and_sharpen_raises_high_frequency_energy(busy_png: bytes) -> None:
    def energy(extra: dict[str, object]) -> float:
        options = {"w": 200, "format": "png", **extra}
        return edge_energy(decoded_output(pixfit.render(busy_png, options)))

    plain = energy({})
    assert energy({"blur": 2}) < 0.7 * plain
    assert energy({"blur": 8}) < energy({"blur": 2})
    assert energy({"sharpen": 1.5}) > 1.1 * plain
    assert energy({"sharpen": 3}) > plain


def test_blur_keeps_transparent_pixels_from_darkening_the_edge() -> None:
    # Opaque red beside transparent black: blurred straight, the edge would turn dark.
    transparent = solid(100, 100, (0, 0, 0, 0))
    source = transparent.join(solid(100, 100, (*RED, 255)), "horizontal")
    options = {"blur": 4, "format": "png"}

    image = decoded_output(pixfit.render(bytes(source.pngsave_buffer()), options))

    assert image.bands == 4
    for x in range(92, 108):
        red, green, blue, alpha = pixel(image, x, 50)
        if alpha > 8:
            assert near((red, green, blue), RED, 6), (x, red, green, blue, alpha)
    assert pixel(image, 80, 50)[3] < pixel(image, 99, 50)[3] < pixel(image, 120, 50)[3]


def test_filters_leave_the_letterbox_bars_sharp() -> None:
    source = bytes(halves(400, 200, RED, BLUE, vertical=False).pngsave_buffer())
    options = {"w": 100, "h": 100, "fit": "contain", "bg": "00ff00", "format": "png"}

    for extra in ({"blur": 5}, {"sharpen": 5}):
        image = decoded_output(pixfit.render(source, {**options, **extra}))
        # The bars (rows 0-24 and 75-99) are exactly the background, up to the image.
        assert pixel(image, 50, 24) == GREEN
        assert pixel(image, 50, 75) == GREEN
        assert pixel(image, 10, 0) == GREEN


def test_blur_is_in_output_pixels() -> None:
    # The same sigma blurs a small output as much, relative to its pixels, as a large one.
    source = bytes(halves(400, 400, RED, BLUE, vertical=False).pngsave_buffer())
    widths = []
    for size in (100, 400):
        image = decoded_output(pixfit.render(source, {"w": size, "blur": 4, "format": "png"}))
        row = image.numpy()[size // 2, :, 0].astype(int)
        widths.append(int(((row > 25) & (row < 230)).sum()))
    assert widths[0] == pytest.approx(widths[1], abs=2)
    assert widths[0] >= 6


def test_decoded_helper_reads_rendered_bytes(busy_png: bytes) -> None:
    rendered = pixfit.render(busy_png, {"sharpen": 1, "format": "webp", "q": 80})
    assert decoded(rendered.data).get("vips-loader").startswith("webpload")


@pytest.mark.parametrize("pos", ["entropy", "attention"])
def test_smart_crops_give_the_turned_box(pos: str) -> None:
    # libvips' thumbnail makes these crops before the turn, so it is asked for the box on
    # its side.
    source = bytes(photo(300, 200, seed=4).jpegsave_buffer())
    options = {"w": 100, "h": 60, "fit": "cover", "pos": pos, "rotate": 90}

    image = decoded_output(pixfit.render(source, options))

    assert (image.width, image.height) == (100, 60)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        # Shrunk on load (jpegload with shrink=2), then turned.
        ("jpeg", {"w": 700, "rotate": 90}),
        ("jpeg", {"w": 700, "flip": "v"}),
        ("jpeg", {"w": 1200, "rotate": 270, "flip": "hv"}),  # no shrink on load
        ("png", {"rotate": 180}),
        ("png", {"w": 500, "h": 500, "fit": "cover", "flip": "v", "pos": "fp:0.1,0.9"}),
    ],
)
def test_large_sources_turn_whatever_the_decode_path(kind: str, options: dict[str, object]) -> None:
    # Large enough that libvips decodes sequentially and cannot re-read earlier rows.
    source = photo(2600, 1700, seed=9)
    data = source.jpegsave_buffer(Q=85) if kind == "jpeg" else source.pngsave_buffer()

    image = decoded_output(pixfit.render(bytes(data), options))

    assert image.width > 0
    if options.get("rotate") in (90, 270):
        assert image.height > image.width
