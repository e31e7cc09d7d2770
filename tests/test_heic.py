"""HEIC input: decoded by pillow-heif, limits from the HEIF header, one rotation, sRGB out.

Every HEIC here is made by pillow-heif's own HEVC encoder in the test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
import pytest
import pyvips
from PIL import Image

import pixfit
import pixfit.web
from pixfit.errors import BadOption, CorruptImage, TooLarge
from pixfit.formats import sniff
from pixfit.registry import ImageFormat
from tests.conftest import BLUE, RED, decoded_output, near, pixel, quadrants, solid

PATCHES = ((200, 100, 50), (40, 160, 60), (40, 70, 190), (225, 180, 150))


def heic(image: pyvips.Image, *extra: pyvips.Image, **save: object) -> bytes:
    """`image` (and `extra` top-level images) as HEIC, lossless unless `save` says otherwise."""
    heif = pillow_heif.HeifFile()
    for each in (image, *extra):
        mode = "RGBA" if each.bands == 4 else "RGB"
        heif.add_frombytes(mode, (each.width, each.height), each.write_to_memory())
    buffer = io.BytesIO()
    heif.save(buffer, **{"quality": -1, **save})
    return buffer.getvalue()


def marked(width: int = 64, height: int = 32) -> pyvips.Image:
    """Red with a blue 8x8 square in the top-left corner."""
    return solid(width, height, RED).insert(solid(8, 8, BLUE), 0, 0)


def test_heic_is_decoded_resized_and_never_written() -> None:
    source = heic(marked())
    rendered = pixfit.render(source, {"w": 32})
    assert rendered.media_type == "image/jpeg"
    image = decoded_output(rendered)
    assert (image.width, image.height) == (32, 16)
    assert near(pixel(image, 1, 1), BLUE, 40) and near(pixel(image, -2, -2), RED, 16)
    # format=original writes JPEG, the row's original_output: browsers cannot show HEIC.
    assert pixfit.render(source, {"format": "original"}).media_type == "image/jpeg"
    with pytest.raises(BadOption, match="for format but received 'heic'"):
        pixfit.render(source, {"format": "heic"})


def test_heic_with_alpha_keeps_it_where_the_output_can() -> None:
    image = marked().bandjoin(solid(64, 32, (0,)).insert(solid(32, 32, (255,)), 32, 0))
    rendered = pixfit.render(heic(image), {"w": 64, "format": "png"})
    decoded = decoded_output(rendered)
    assert decoded.hasalpha()
    assert pixel(decoded, 2, 2)[3] == 0 and pixel(decoded, -2, -2)[3] == 255


def test_the_heif_rotation_is_applied_once_though_exif_still_says_six() -> None:
    # pillow-heif writes EXIF orientation 6 as a HEIF rotation (irot) and keeps the EXIF
    # tag, as iPhones do: rotating by both would turn the image twice.
    exif = Image.Exif()
    exif[0x0112] = 6
    source = heic(marked(), exif=exif.tobytes())
    opened = pillow_heif.open_heif(source)
    kept = Image.Exif()
    kept.load(opened.info["exif"])
    assert kept[0x0112] == 6 and opened.size == (32, 64)

    rendered = pixfit.render(source, {"w": 32, "format": "png"})

    image = decoded_output(rendered)
    # 64x32 turned a quarter clockwise: 32x64, the top-left corner now at the top right.
    assert (image.width, image.height) == (32, 64)
    assert near(pixel(image, -2, 2), BLUE, 8)
    assert near(pixel(image, 2, 2), RED, 8) and near(pixel(image, 2, -2), RED, 8)


@pytest.mark.parametrize("profile", ["p3", "srgb"])
def test_an_embedded_profile_becomes_srgb_numbers(profile: str) -> None:
    srgb = quadrants(64, 64, PATCHES)
    wide = srgb.icc_transform(profile, input_profile="srgb")
    source = heic(wide, icc_profile=bytes(wide.get("icc-profile-data")))
    assert pillow_heif.open_heif(source).info["icc_profile"]
    # What libvips itself makes of these numbers under their profile.
    expected = wide.icc_transform("srgb", embedded=True, depth=8)

    rendered = pixfit.render(source, {"w": 32, "format": "png"})

    image = decoded_output(rendered)
    assert not image.get_typeof("icc-profile-data")
    for (x, y), patch in zip(((8, 8), (24, 8), (8, 24), (24, 24)), PATCHES, strict=True):
        assert near(pixel(image, x, y), pixel(expected, 2 * x, 2 * y), 2)
        assert near(pixel(image, x, y), patch, 3)


def test_an_nclx_display_p3_source_becomes_srgb_numbers() -> None:
    # Colour signalled by an nclx box (primaries 12, Display P3) instead of an ICC profile.
    wide = solid(16, 16, (255, 0, 0)).icc_transform("p3", input_profile="srgb")
    nclx = {
        "color_primaries": 12,
        "transfer_characteristics": 13,
        "matrix_coefficients": 0,
        "full_range_flag": 1,
    }
    source = heic(wide, save_nclx_profile=True, **{"nclx_profile": nclx})
    info = pillow_heif.open_heif(source).info
    assert not info.get("icc_profile") and info["nclx_profile"]["color_primaries"] == 12

    image = decoded_output(pixfit.render(source, {"w": 8, "format": "png"}))

    assert near(pixel(image, 4, 4), RED, 3)


def test_limits_are_checked_from_the_heif_header() -> None:
    source = heic(marked(), marked(32, 16), marked(16, 8))
    assert len(pillow_heif.open_heif(source)) == 3
    tight = pixfit.Config().merged({"limits": {"max_frames": 2}})
    with pytest.raises(TooLarge, match=r"limits\.max_frames\) but received 3"):
        pixfit.render(source, {"w": 16}, config=tight)
    small = pixfit.Config().merged({"limits": {"max_pixels": 2000}})
    with pytest.raises(TooLarge, match="but received 64x32"):
        pixfit.render(source, {"w": 16}, config=small)
    buffered = pixfit.Config().merged({"limits": {"max_buffered_pixels": 2000}})
    with pytest.raises(TooLarge, match="for a HEIC, which is decoded whole"):
        pixfit.render(source, {"w": 16}, config=buffered)
    # Only the primary image is rendered, and the extra ones are not frames.
    rendered = pixfit.render(source, {"w": 16})
    assert (rendered.width, rendered.animation) == (16, None)
    with pytest.raises(BadOption, match=r"frame 0\.\.0 "):
        pixfit.render(source, {"page": 1})


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_a_truncated_heic_is_a_422(cut: float) -> None:
    source = heic(quadrants(64, 64, PATCHES), quality=80)
    with pytest.raises(CorruptImage):
        pixfit.render(source[: int(len(source) * cut)], {"w": 32})


def test_served_over_http_from_a_heic_file(tmp_path: Path) -> None:
    source = heic(marked())
    (tmp_path / "photo.heic").write_bytes(source)
    app = pixfit.web.create_app(pixfit.Config().merged({"source": {"root": str(tmp_path)}}))
    client = app.test_client()
    response = client.get("/images/photo.heic?w=32", headers={"Accept": "image/webp"})
    assert response.status_code == 200 and response.mimetype == "image/webp"
    assert pyvips.Image.new_from_buffer(response.data, "").width == 32
    # No options and no hints: the original bytes, with their own type.
    original = client.get("/images/photo.heic")
    assert (original.data, original.mimetype) == (source, "image/heic")


def test_the_sniffer_tells_heic_from_avif() -> None:
    avif = quadrants(64, 64, PATCHES).heifsave_buffer(compression="av1", Q=60, effort=0)
    assert pixfit.render(avif, {"w": 32}).media_type == "image/jpeg"
    assert sniff(heic(marked())) == ImageFormat.HEIC
    assert sniff(bytes(avif)) == ImageFormat.AVIF
