"""The render pipeline end to end, through `pixfit.render`, on images generated here.

Every check reads the output back as pixels: decoded size, loader, colours, byte counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pytest
import pyvips

import pixfit
from pixfit.errors import CorruptImage, TooLarge, UnsupportedImage
from pixfit.formats import Encoder
from pixfit.perceptual import Reference
from pixfit.pipeline import SourceInfo, jpeg_shrink
from pixfit.registry import ImageFormat
from tests.conftest import (
    BLUE,
    GREEN,
    GREY,
    RED,
    WHITE,
    decoded,
    decoded_output,
    grey16,
    halves,
    near,
    photo,
    pixel,
    quadrants,
    shown,
    solid,
    with_orientation,
)

Colour = tuple[int, ...]

# ---------------------------------------------------------------------------------------
# EXIF orientation

# A 60x40 source whose stored corners are red, green / blue, white. Each row is what a
# viewer shows for that EXIF orientation, as (top left, top right, bottom left, bottom right):
# 2 mirrors left-right, 3 turns 180, 4 mirrors top-bottom, 5 transposes (mirror along
# the main diagonal), 6 turns 90 clockwise, 7 mirrors along the other diagonal, 8 turns
# 90 anticlockwise. 5-8 also swap width and height.
ORIENTED_CORNERS = [
    (1, (RED, GREEN, BLUE, WHITE)),
    (2, (GREEN, RED, WHITE, BLUE)),
    (3, (WHITE, BLUE, GREEN, RED)),
    (4, (BLUE, WHITE, RED, GREEN)),
    (5, (RED, BLUE, GREEN, WHITE)),
    (6, (BLUE, RED, WHITE, GREEN)),
    (7, (WHITE, GREEN, BLUE, RED)),
    (8, (GREEN, WHITE, RED, BLUE)),
]


@pytest.mark.parametrize(("orientation", "corners"), ORIENTED_CORNERS)
def test_exif_orientation_is_applied(orientation: int, corners: tuple[Colour, ...]) -> None:
    stored = quadrants(60, 40, (RED, GREEN, BLUE, WHITE))
    source = with_orientation(stored, orientation).jpegsave_buffer(Q=95)
    assert decoded(source).get("orientation") == orientation

    rendered = pixfit.render(source, {"w": 30})

    image = decoded_output(rendered)
    assert (image.width, image.height) == ((30, 45) if orientation >= 5 else (30, 20))
    seen = [pixel(image, x, y) for x, y in ((1, 1), (-2, 1), (1, -2), (-2, -2))]
    assert all(near(got, want, 40) for got, want in zip(seen, corners, strict=True)), seen


# ---------------------------------------------------------------------------------------
# Colour: CMYK, 16-bit, greyscale, alpha

ORANGE = (200, 100, 50)


@pytest.mark.parametrize("keep_profile", [True, False], ids=["profile", "no-profile"])
def test_cmyk_jpeg_becomes_srgb_of_the_same_colour(keep_profile: bool) -> None:
    cmyk = solid(64, 64, ORANGE).icc_transform("cmyk")
    if not keep_profile:
        cmyk = cmyk.copy()
        cmyk.remove("icc-profile-data")
    source = cmyk.jpegsave_buffer(Q=95)
    loaded = decoded(source)
    assert (loaded.get("vips-loader"), loaded.interpretation, loaded.bands) == (
        "jpegload_buffer",
        "cmyk",
        4,
    )
    assert bool(loaded.get_typeof("icc-profile-data")) == keep_profile

    rendered = pixfit.render(source, {"w": 32})

    image = decoded_output(rendered)
    assert rendered.media_type == "image/jpeg"
    assert (image.bands, image.interpretation) == (3, "srgb")
    assert near(pixel(image, 16, 16), ORANGE), pixel(image, 16, 16)


def rgba16_source() -> bytes:
    """An 80x40 16-bit RGBA PNG: opaque green on the left half, transparent on the right."""
    colour = pyvips.Image.black(80, 40).cast("ushort").new_from_image([0, 65535, 0])
    opaque = pyvips.Image.black(40, 40) + 65535
    alpha = opaque.join(pyvips.Image.black(40, 40), "horizontal").cast("ushort")
    data = bytes(colour.bandjoin(alpha).copy(interpretation="rgb16").pngsave_buffer())
    loaded = decoded(data)
    assert (loaded.format, loaded.interpretation, loaded.bands) == ("ushort", "rgb16", 4)
    assert loaded.getpoint(0, 0) == [0, 65535, 0, 65535]
    return data


def test_16_bit_png_with_alpha_becomes_8_bit_png_keeping_alpha() -> None:
    rendered = pixfit.render(rgba16_source(), {"w": 40})

    image = decoded_output(rendered)
    assert rendered.media_type == "image/png"
    assert image.get("vips-loader") == "pngload_buffer"
    assert (image.format, image.bands, image.width, image.height) == ("uchar", 4, 40, 20)
    assert near(pixel(image, 5, 10), (*GREEN, 255))
    assert pixel(image, 35, 10)[3] == 0


@pytest.mark.parametrize(
    ("options", "background"),
    [({"bg": "ff0000"}, RED), ({"bg": "00f"}, BLUE), ({}, WHITE)],
    ids=["red", "blue", "default-white"],
)
def test_alpha_is_flattened_onto_the_background_for_jpeg(
    options: Mapping[str, str], background: Colour
) -> None:
    rendered = pixfit.render(rgba16_source(), {"w": 40, "format": "jpeg", **options})

    image = decoded_output(rendered)
    assert rendered.media_type == "image/jpeg"
    assert (image.get("vips-loader"), image.bands) == ("jpegload_buffer", 3)
    assert near(pixel(image, 5, 10), GREEN)
    assert near(pixel(image, 35, 10), background)


@pytest.mark.parametrize(
    ("make", "loader"),
    [
        pytest.param(
            lambda: solid(50, 30, GREY[:1]).jpegsave_buffer(), "jpegload_buffer", id="jpeg"
        ),
        pytest.param(lambda: solid(50, 30, GREY[:1]).pngsave_buffer(), "pngload_buffer", id="png"),
        pytest.param(lambda: grey16(50, 30).pngsave_buffer(), "pngload_buffer", id="png-16-bit"),
    ],
)
def test_greyscale_sources_render(make: Callable[[], bytes], loader: str) -> None:
    source = make()
    loaded = decoded(source)
    assert (loaded.get("vips-loader"), loaded.bands) == (loader, 1)

    rendered = pixfit.render(source, {"w": 20})

    image = decoded_output(rendered)
    assert rendered.media_type == "image/jpeg"
    assert (image.get("vips-loader"), image.width, image.height) == ("jpegload_buffer", 20, 12)
    assert near(pixel(image, 10, 6)[:3], GREY, 3)


# ---------------------------------------------------------------------------------------
# Extreme shapes

TEAL = (10, 120, 130)


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"w": 100}, (1, 1)),
        ({"w": 100, "enlarge": 1}, (100, 100)),
        ({"w": 1, "h": 1, "fit": "cover"}, (1, 1)),
        ({"format": "png"}, (1, 1)),
    ],
)
def test_one_pixel_image(options: Mapping[str, object], size: tuple[int, int]) -> None:
    rendered = pixfit.render(solid(1, 1, TEAL).pngsave_buffer(), options)

    image = decoded_output(rendered)
    assert (image.width, image.height) == size
    assert near(pixel(image, 0, 0)[:3], TEAL, 4)


@pytest.mark.parametrize(
    ("source_size", "options", "size"),
    [
        ((1, 4000), {"w": 300}, (1, 4000)),  # narrower than the box already
        ((1, 4000), {"h": 300}, (1, 300)),
        ((1, 4000), {"w": 300, "enlarge": 1}, (2, 8192)),  # max_output_edge stops it
        ((4000, 1), {"w": 300}, (300, 1)),  # 0.075 px high rounds up to 1
        ((4000, 1), {"h": 300, "enlarge": 1}, (8192, 2)),
    ],
)
def test_thin_strips_keep_their_ratio_and_a_pixel(
    source_size: tuple[int, int], options: Mapping[str, object], size: tuple[int, int]
) -> None:
    source_width, source_height = source_size
    source = solid(source_width, source_height, TEAL).pngsave_buffer()

    image = decoded_output(pixfit.render(source, options))

    width, height = image.width, image.height
    assert (width, height) == size
    assert min(width, height) >= 1
    # inside keeps the aspect ratio within a pixel on the side that was derived
    assert (
        abs(width - height * source_width / source_height) <= 1
        or abs(height - width * source_height / source_width) <= 1
    )


# ---------------------------------------------------------------------------------------
# Fit, position, enlarge


def red_blue_source(*, vertical: bool = False) -> bytes:
    """400x200 red | blue, or 200x400 red over blue when `vertical`."""
    size = (200, 400) if vertical else (400, 200)
    return bytes(halves(*size, RED, BLUE, vertical=vertical).pngsave_buffer())


@pytest.mark.parametrize(
    ("fit", "size"),
    [
        ("inside", (100, 50)),
        ("cover", (100, 100)),
        ("contain", (100, 100)),
        ("fill", (100, 100)),
        ("outside", (200, 100)),
    ],
)
def test_fit_modes_on_a_wide_source(fit: str, size: tuple[int, int]) -> None:
    rendered = pixfit.render(red_blue_source(), {"w": 100, "h": 100, "fit": fit})

    image = decoded_output(rendered)
    assert (image.width, image.height) == size
    # Nothing is mirrored or lost on the sides: red stays left, blue right.
    assert near(pixel(image, 2, image.height // 2), RED)
    assert near(pixel(image, -3, image.height // 2), BLUE)


def test_fill_stretches_the_whole_source_into_the_box() -> None:
    image = decoded_output(pixfit.render(red_blue_source(), {"w": 100, "h": 100, "fit": "fill"}))
    # Squashed, not cropped: each half is 50 px wide.
    assert near(pixel(image, 45, 50), RED)
    assert near(pixel(image, 54, 50), BLUE)


@pytest.mark.parametrize(
    ("options", "bar"),
    [
        ({"bg": "00ff00"}, (*GREEN,)),
        ({"bg": "00ff00", "format": "png"}, (*GREEN,)),  # opaque bars need no alpha
        ({}, (*WHITE,)),
        ({"format": "png"}, (0, 0, 0, 0)),  # no colour asked and alpha available: clear
    ],
    ids=["green", "green-png", "white", "transparent-png"],
)
def test_contain_letterboxes_with_the_background(options: Mapping[str, str], bar: Colour) -> None:
    rendered = pixfit.render(red_blue_source(), {"w": 100, "h": 100, "fit": "contain", **options})

    image = decoded_output(rendered)
    assert (image.width, image.height) == (100, 100)
    # The 100x50 picture sits in the middle, with 25 px bars above and below.
    assert near(pixel(image, 50, 5), bar), pixel(image, 50, 5)
    assert near(pixel(image, 50, 94), bar), pixel(image, 50, 94)
    assert near(pixel(image, 10, 50)[:3], RED)
    assert near(pixel(image, 89, 50)[:3], BLUE)


@pytest.mark.parametrize(
    ("vertical", "pos", "first", "last"),
    [
        (True, "north", RED, RED),
        (True, "south", BLUE, BLUE),
        (True, "centre", RED, BLUE),
        (True, "northwest", RED, RED),
        (True, "southeast", BLUE, BLUE),
        (False, "west", RED, RED),
        (False, "east", BLUE, BLUE),
        (False, "center", RED, BLUE),
        (False, "southwest", RED, RED),
        (False, "northeast", BLUE, BLUE),
    ],
)
def test_cover_position_chooses_the_kept_part(
    vertical: bool, pos: str, first: Colour, last: Colour
) -> None:
    rendered = pixfit.render(
        red_blue_source(vertical=vertical), {"w": 100, "h": 100, "fit": "cover", "pos": pos}
    )

    image = decoded_output(rendered)
    assert (image.width, image.height) == (100, 100)
    # first: the top (vertical source) or left edge; last: the bottom or right edge
    start, end = ((50, 3), (50, 96)) if vertical else ((3, 50), (96, 50))
    assert near(pixel(image, *start), first), pixel(image, *start)
    assert near(pixel(image, *end), last), pixel(image, *end)


@pytest.fixture(scope="module")
def busy_jpeg() -> bytes:
    return bytes(photo(300, 200, seed=3).jpegsave_buffer())


@pytest.mark.parametrize("pos", ["entropy", "attention"])
@pytest.mark.parametrize("box", [(100, 100), (150, 40), (60, 120), (17, 93)])
def test_smart_crops_give_the_exact_box(busy_jpeg: bytes, pos: str, box: tuple[int, int]) -> None:
    options = {"w": box[0], "h": box[1], "fit": "cover", "pos": pos}

    image = decoded_output(pixfit.render(busy_jpeg, options))

    assert (image.width, image.height) == box


@pytest.mark.parametrize("busy_on_left", [True, False], ids=["busy-left", "busy-right"])
def test_entropy_crop_keeps_the_detailed_half(busy_on_left: bool) -> None:
    # Only entropy has a plain meaning to check; attention weighs edges, saturation and
    # skin tones, and may well settle on the edge between the halves.
    busy, flat = photo(200, 200, seed=3), solid(200, 200, GREY)
    source = busy.join(flat, "horizontal") if busy_on_left else flat.join(busy, "horizontal")
    options = {"w": 100, "h": 100, "fit": "cover", "pos": "entropy"}

    image = decoded_output(pixfit.render(source.pngsave_buffer(), options))

    # A centre crop would show the flat grey half on one side (deviation near 0).
    assert image.crop(0, 0, 10, 100).deviate() > 10
    assert image.crop(90, 0, 10, 100).deviate() > 10


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"w": 400}, (100, 50)),
        ({"w": 400, "enlarge": 0}, (100, 50)),
        ({"w": 400, "enlarge": 1}, (400, 200)),
        ({"w": 400, "h": 400, "fit": "cover"}, (50, 50)),  # the box shrinks, keeping 1:1
        ({"w": 400, "h": 400, "fit": "cover", "enlarge": 1}, (400, 400)),
    ],
)
def test_enlarge(options: Mapping[str, object], size: tuple[int, int]) -> None:
    source = halves(100, 50, RED, BLUE, vertical=False).pngsave_buffer()

    image = decoded_output(pixfit.render(source, options))

    assert (image.width, image.height) == size
    assert near(pixel(image, 1, 1), RED)
    assert near(pixel(image, -2, -2), BLUE)


# ---------------------------------------------------------------------------------------
# Formats and negotiation

PLAIN = (200, 50, 50)


def plain_jpeg() -> bytes:
    return bytes(solid(120, 80, PLAIN).jpegsave_buffer(Q=95))


@pytest.mark.parametrize(
    ("format_", "media_type", "loader"),
    [
        ("jpeg", "image/jpeg", "jpegload_buffer"),
        ("jpg", "image/jpeg", "jpegload_buffer"),
        ("png", "image/png", "pngload_buffer"),
        ("webp", "image/webp", "webpload_buffer"),
        ("avif", "image/avif", "heifload_buffer"),
    ],
)
def test_requested_format_is_written(format_: str, media_type: str, loader: str) -> None:
    rendered = pixfit.render(plain_jpeg(), {"w": 60, "format": format_})

    image = decoded_output(rendered)
    assert rendered.media_type == media_type
    assert image.get("vips-loader") == loader
    if format_ == "avif":
        assert image.get("heif-compression") == "av1"  # AVIF, not HEIC
    assert (image.width, image.height) == (60, 40)
    assert near(pixel(image, 30, 20)[:3], PLAIN)


@pytest.mark.parametrize(
    ("accept", "media_type", "loader"),
    [
        ("image/avif,image/webp,*/*", "image/avif", "heifload_buffer"),
        ("image/webp,*/*", "image/webp", "webpload_buffer"),
        ("image/avif;q=0,image/webp,*/*", "image/webp", "webpload_buffer"),
        ("*/*", "image/jpeg", "jpegload_buffer"),
        ("", "image/jpeg", "jpegload_buffer"),
    ],
)
def test_auto_format_follows_accept(accept: str, media_type: str, loader: str) -> None:
    rendered = pixfit.render(plain_jpeg(), {"w": 60}, hints={"Accept": accept})

    assert rendered.media_type == media_type
    assert decoded_output(rendered).get("vips-loader") == loader


def test_auto_format_keeps_alpha_in_png() -> None:
    source = solid(120, 80, (*PLAIN, 128)).pngsave_buffer()

    rendered = pixfit.render(source, {"w": 60}, hints={"Accept": "*/*"})

    image = decoded_output(rendered)
    assert rendered.media_type == "image/png"
    assert (image.get("vips-loader"), image.bands) == ("pngload_buffer", 4)
    assert near(pixel(image, 30, 20), (*PLAIN, 128), 2)


@pytest.mark.parametrize(
    ("save", "media_type", "loader"),
    [
        ("jpegsave_buffer", "image/jpeg", "jpegload_buffer"),
        ("pngsave_buffer", "image/png", "pngload_buffer"),
        ("webpsave_buffer", "image/webp", "webpload_buffer"),
    ],
)
def test_original_format_keeps_the_source_format(save: str, media_type: str, loader: str) -> None:
    source = getattr(solid(120, 80, PLAIN), save)()

    rendered = pixfit.render(source, {"w": 60, "format": "original"})

    assert rendered.media_type == media_type
    assert decoded_output(rendered).get("vips-loader") == loader


@pytest.mark.parametrize(
    ("save", "media_type"),
    [
        ("jpegsave_buffer", "image/jpeg"),
        ("pngsave_buffer", "image/png"),
        ("webpsave_buffer", "image/webp"),
    ],
)
@pytest.mark.parametrize("options", [None, {}])
def test_no_options_passes_the_source_through(
    save: str, media_type: str, options: Mapping[str, object] | None
) -> None:
    source = bytes(getattr(photo(120, 80), save)())

    rendered = pixfit.render(source, options)

    assert rendered.data == source
    assert rendered.media_type == media_type
    assert (rendered.width, rendered.height) == (120, 80)
    assert (rendered.quality, rendered.budget, rendered.budget_met) == (None, None, None)


# ---------------------------------------------------------------------------------------
# Metadata


@pytest.mark.parametrize("format_", ["jpeg", "png", "webp", "avif"])
def test_metadata_is_stripped(format_: str) -> None:
    tagged = with_orientation(solid(120, 80, PLAIN), 6)
    tagged.set_type(pyvips.GValue.gstr_type, "exif-ifd0-ImageDescription", "secret place")
    source = tagged.jpegsave_buffer()
    loaded = decoded(source)
    assert loaded.get_typeof("exif-data") != 0
    assert "secret place" in loaded.get("exif-ifd0-ImageDescription")

    rendered = pixfit.render(source, {"w": 40, "format": format_})

    image = decoded_output(rendered)
    assert (image.width, image.height) == (40, 60)  # the orientation was applied, then dropped
    assert image.get_typeof("exif-data") == 0
    assert image.get_typeof("orientation") == 0
    for name in ("xmp-data", "iptc-data", "icc-profile-data"):
        assert image.get_typeof(name) == 0, name
    assert not [field for field in image.get_fields() if field.startswith("exif-")]
    assert b"secret place" not in rendered.data


# ---------------------------------------------------------------------------------------
# Errors


def truncated_jpeg() -> bytes:
    data = photo(800, 600).jpegsave_buffer(Q=90)
    return bytes(data[: len(data) * 6 // 10])


TEXT = b"just some text, not an image\n" * 20
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60"><rect/></svg>'
TINY_PIXELS = {"limits": {"max_pixels": 1000}}


def small_png() -> bytes:
    return bytes(solid(100, 100, PLAIN).pngsave_buffer())


# `None` options render nothing (passthrough); the checks must hold there too.
@pytest.mark.parametrize(
    ("make", "options", "config", "error"),
    [
        pytest.param(lambda: b"", {"w": 100}, {}, UnsupportedImage, id="empty"),
        pytest.param(lambda: b"", None, {}, UnsupportedImage, id="empty-passthrough"),
        pytest.param(lambda: TEXT, {"w": 100}, {}, UnsupportedImage, id="text"),
        pytest.param(lambda: SVG, {"w": 100}, {}, UnsupportedImage, id="svg"),
        pytest.param(lambda: SVG, None, {}, UnsupportedImage, id="svg-passthrough"),
        pytest.param(truncated_jpeg, {"w": 100}, {}, CorruptImage, id="truncated-jpeg"),
        pytest.param(small_png, {"w": 10}, TINY_PIXELS, TooLarge, id="over-max-pixels"),
        pytest.param(small_png, None, TINY_PIXELS, TooLarge, id="over-max-pixels-passthrough"),
    ],
)
def test_bad_sources_raise_the_right_error(
    make: Callable[[], bytes],
    options: Mapping[str, object] | None,
    config: Mapping[str, object],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        pixfit.render(make(), options, config=pixfit.Config().merged(config))


def test_max_pixels_is_checked_before_decoding() -> None:
    # A PNG cut after its header: decoding it fails, but the pixel count is refused first.
    whole = photo(400, 300).pngsave_buffer()
    header_only = bytes(whole[: len(whole) // 3])
    with pytest.raises(CorruptImage):
        pixfit.render(header_only, {"w": 10})
    with pytest.raises(TooLarge, match="400x300"):
        pixfit.render(header_only, {"w": 10}, config=pixfit.Config().merged(TINY_PIXELS))


# ---------------------------------------------------------------------------------------
# Caps


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"screen": "320x240", "dpr": "2"}, (640, 320)),
        ({"screen": "320x240"}, (320, 160)),
        ({"screen": "320x240", "dpr": "2", "w": 1000}, (640, 320)),
        ({"screen": "100x400", "dpr": "3"}, (300, 150)),
    ],
)
def test_screen_caps_the_output_in_device_pixels(
    options: Mapping[str, object], size: tuple[int, int]
) -> None:
    source = halves(2000, 1000, RED, BLUE, vertical=False).jpegsave_buffer()

    image = decoded_output(pixfit.render(source, options))

    assert (image.width, image.height) == size
    assert abs(image.width / image.height - 2) < 0.01


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"format": "jpeg"}, (500, 250)),
        ({"w": 400, "h": 400, "fit": "outside"}, (500, 250)),
        ({"w": 500, "enlarge": 1}, (500, 250)),
        ({"h": 400}, (500, 250)),
    ],
)
def test_max_output_edge_caps_every_render(
    options: Mapping[str, object], size: tuple[int, int]
) -> None:
    source = halves(2000, 1000, RED, BLUE, vertical=False).jpegsave_buffer()
    config = pixfit.Config().merged({"limits": {"max_output_edge": 500}})

    image = decoded_output(pixfit.render(source, options, config=config))

    assert (image.width, image.height) == size


# ---------------------------------------------------------------------------------------
# JPEG shrink-on-load


@pytest.mark.parametrize(
    ("source", "target", "shrink"),
    [
        ((5120, 2880), (800, 450), 2),  # 6.4x: 1/2 leaves 3.2x to resize, 1/4 only 1.6x
        ((5120, 2880), (640, 360), 4),  # 8x: 1/4 leaves exactly 2x
        ((5120, 2880), (300, 300), 4),  # a cover crop: the short side decides
        ((5120, 2880), (1000, 2880), 1),
        ((2560, 1600), (1280, 800), 1),  # exactly 2x: the resize does it all
        ((2560, 1600), (640, 400), 2),
        ((100, 100), (200, 200), 1),  # enlarging
    ],
)
def test_jpeg_shrink_leaves_the_resize_a_factor_of_two(
    source: tuple[int, int], target: tuple[int, int], shrink: int
) -> None:
    info = SourceInfo(ImageFormat.JPEG, *source, has_alpha=False)
    assert jpeg_shrink(info, *target) == shrink


@pytest.mark.parametrize(
    ("source", "target", "shrink"),
    [
        ((5120, 2880), (800, 450), 4),  # 6.4x: 1/4 leaves 1.6x
        ((2560, 1600), (800, 500), 2),  # 3.2x: 1/2 leaves 1.6x
        ((3200, 2000), (800, 500), 2),  # 4x: 1/4 would land on the target, the DCT alone
        ((2560, 1600), (1280, 800), 1),
        ((5120, 2880), (300, 300), 4),  # 9.6x: 1/8 would leave 1.2x
    ],
)
def test_a_coarse_jpeg_shrink_leaves_the_resize_one_and_a_half(
    source: tuple[int, int], target: tuple[int, int], shrink: int
) -> None:
    info = SourceInfo(ImageFormat.JPEG, *source, has_alpha=False)
    assert jpeg_shrink(info, *target, coarse=True) == shrink


def _made_at(source: bytes, shrink: int, output: ImageFormat, quality: int | None) -> pyvips.Image:
    """The 500x312 render of `source` decoded at 1/`shrink`, encoded as pixfit encodes."""
    loaded = pyvips.Image.jpegload_buffer(source, shrink=shrink)
    image = loaded.thumbnail_image(500, height=312, size="force").copy_memory()
    if quality is None:
        return image
    return shown(Encoder(output).encode(image, quality))


@pytest.mark.parametrize(
    ("query", "output", "shrink"),
    [
        ({"q": 80, "format": "jpeg"}, ImageFormat.JPEG, 2),  # pinned and lossy: 1.6x left
        ({"q": 60, "format": "webp"}, ImageFormat.WEBP, 2),
        ({"q": 90, "format": "jpeg"}, ImageFormat.JPEG, 1),  # above COARSE_DECODE_QUALITY
        ({"format": "png"}, ImageFormat.PNG, 1),  # lossless
        ({"format": "jpeg"}, ImageFormat.JPEG, 1),  # searched: it aims at a perceptual score
    ],
)
def test_only_a_pinned_low_lossy_quality_decodes_coarsely(
    query: Mapping[str, object], output: ImageFormat, shrink: int
) -> None:
    # 1600 -> 500 is 3.2x: the fine rule decodes whole, the coarse one at 1/2.
    source = bytes(photo(1600, 1000, seed=7).jpegsave_buffer(Q=90))
    rendered = pixfit.render(source, {"w": 500, **query})
    assert (rendered.width, rendered.height) == (500, 312)
    quality = None if output == ImageFormat.PNG else rendered.quality
    expected = _made_at(source, shrink, output, quality)
    other = _made_at(source, 3 - shrink, output, quality)
    shown_pixels = decoded_output(rendered)
    assert (shown_pixels - expected).abs().max() == 0
    assert (shown_pixels - other).abs().max() > 0


def test_shrink_on_load_looks_like_a_full_decode() -> None:
    source = bytes(photo(1600, 1000).jpegsave_buffer(Q=90))
    rendered = decoded_output(pixfit.render(source, {"w": 400, "q": 100}))  # decoded at 1/2
    reference = pyvips.Image.thumbnail_buffer(source, 400, size="force", height=250)
    assert (rendered.width, rendered.height) == (reference.width, reference.height)
    difference = rendered.cast("float") - reference.cast("float")
    mean_square = (difference * difference).avg()
    assert 10 * math.log10(255**2 / mean_square) > 35  # dB PSNR: the same picture


def test_a_display_size_decode_scores_as_libvips_thumbnail_does() -> None:
    # 2x down: a decoder-only shrink here lost up to 17 SSIMULACRA2 points before any encode.
    source = bytes(photo(2560, 1600, seed=4).jpegsave_buffer(Q=95))
    rendered = pixfit.render(source, {"screen": "1280x800", "format": "png"})
    reference = pyvips.Image.thumbnail_buffer(source, 1280, height=800).copy_memory()
    assert Reference.of(reference).score(decoded_output(rendered)) > 97
