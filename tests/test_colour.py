"""Colour management: an embedded ICC profile becomes sRGB numbers, and no profile goes out.

The Adobe RGB, ProPhoto, near-sRGB, grey and CMYK profiles are built here byte by byte
(ICC.1:2001-04, version 2), so no profile file is committed and no system package is
needed; Display P3 and sRGB are libvips' built-in "p3" and "srgb".
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import pyvips

import pixfit
from pixfit.geometry import Geometry
from pixfit.options import Fit, Gravity, OutputFormat
from pixfit.pipeline import Job, to_srgb
from tests.conftest import (
    GREY,
    decoded,
    decoded_output,
    grey16,
    near,
    pixel,
    quadrants,
    solid,
)

# Four flat sRGB patches inside every gamut here: orange, green, blue, a skin tone.
PATCHES = ((200, 100, 50), (40, 160, 60), (40, 70, 190), (225, 180, 150))
# The middle of each 64x64 source quadrant, and of each 32x32 output quadrant.
SOURCE_CENTRES = ((16, 16), (48, 16), (16, 48), (48, 48))
OUTPUT_CENTRES = ((8, 8), (24, 8), (8, 24), (24, 24))

# ---------------------------------------------------------------------------------------
# ICC profiles

D50 = (0.9642, 1.0, 0.8249)  # the profile connection space's white, as XYZ


def _xyz(x: float, y: float, z: float) -> bytes:
    """An XYZType tag of one s15Fixed16 triple."""
    return b"XYZ " + bytes(4) + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))


def _gamma(gamma: float) -> bytes:
    """A curveType tag holding a pure gamma, as u8Fixed8."""
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))


def _description(text: str) -> bytes:
    """A textDescriptionType tag: the ASCII name, then empty Unicode and ScriptCode names."""
    ascii_ = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8 + 3 + 67)


def icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """A version 2 profile: the 128-byte header, the tag table, then 4-byte aligned tags."""
    tags = {
        b"desc": _description(f"pixfit test {space.decode().strip()}"),
        b"cprt": b"text" + bytes(4) + b"No copyright, use freely\0",
        b"wtpt": _xyz(*D50),
        **tags,
    }
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags.items():
        padded = data + bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(padded))
        body += padded
    header = (
        struct.pack(">I", offset + len(body))
        + bytes(4)  # preferred CMM
        + bytes([2, 0x10, 0, 0])  # version 2.1
        + device_class
        + space
        + pcs
        + bytes(12)  # creation date
        + b"acsp"
        + bytes(28)  # platform, flags, device maker and model, attributes, intent
        + _xyz(*D50)[8:]  # illuminant
        + bytes(48)  # creator, profile ID, reserved
    )
    return header + struct.pack(">I", len(tags)) + table + body


def rgb_profile(
    red: tuple[float, float, float],
    green: tuple[float, float, float],
    blue: tuple[float, float, float],
    gamma: float,
) -> bytes:
    """A matrix/TRC display profile: D50-adapted primaries as XYZ and one gamma."""
    curve = _gamma(gamma)
    colorants = {b"rXYZ": _xyz(*red), b"gXYZ": _xyz(*green), b"bXYZ": _xyz(*blue)}
    curves = {b"rTRC": curve, b"gTRC": curve, b"bTRC": curve}
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", colorants | curves)


# Adobe RGB (1998): its primaries adapted to D50 (Bradford), as Adobe's own profile has
# them, and gamma 563/256. ProPhoto (ROMM RGB, ISO 22028-2): D50 primaries, gamma 1.8.
ADOBE_RGB = rgb_profile(
    (0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457), 563 / 256
)
# sRGB's primaries with a plain gamma 2.2 instead of its curve: close, but not sRGB.
SRGB_GAMMA_22 = rgb_profile(
    (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141), 2.2
)
PROPHOTO = rgb_profile((0.7977, 0.2880, 0.0), (0.1352, 0.7119, 0.0), (0.0313, 0.0001, 0.8249), 1.8)
GREY_GAMMA_18 = icc_profile(b"mntr", b"GRAY", b"XYZ ", {b"kTRC": _gamma(1.8)})


def cmyk_profile() -> bytes:
    """A printer profile whose table holds only the 16 CMYK corners, so its colours differ
    from libvips' built-in "cmyk" (a naive ink model: each ink takes away its primary)."""
    corners = [(c, m, y, k) for c in (0, 1) for m in (0, 1) for y in (0, 1) for k in (0, 1)]
    red, green, blue = (
        pyvips.Image.new_from_array([[255 * (1 - inks[band]) * (1 - inks[3]) for inks in corners]])
        for band in range(3)
    )
    lab = red.bandjoin([green, blue]).copy(interpretation="srgb").colourspace("lab")
    table = b""
    for x in range(len(corners)):
        lightness, a, b = lab.getpoint(x, 0)
        # Version 2 Lab in 16 bits: L 0..100 to 0..0xff00, a and b offset by 128, times 256.
        encoded = (lightness * 652.8, (a + 128) * 256, (b + 128) * 256)
        table += struct.pack(">3H", *(min(65535, max(0, round(v))) for v in encoded))
    identity = struct.pack(">9i", *(65536 * (row == col) for row in range(3) for col in range(3)))
    linear = struct.pack(">2H", 0, 65535)
    lut = (
        b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + identity + struct.pack(">2H", 2, 2)
        + linear * 4 + table + linear * 3
    )  # fmt: skip
    # A2B1 is the relative colorimetric table; A2B0, the perceptual one, is required.
    return icc_profile(b"prtr", b"CMYK", b"Lab ", {b"A2B0": lut, b"A2B1": lut})


# ---------------------------------------------------------------------------------------
# Sources

SAVERS: dict[str, Callable[[pyvips.Image], bytes]] = {
    "jpeg": lambda image: image.jpegsave_buffer(Q=95),
    "png": lambda image: image.pngsave_buffer(),
    "webp": lambda image: image.webpsave_buffer(lossless=True),
    "avif": lambda image: image.heifsave_buffer(compression="av1", lossless=True),
}


def profile_name(profile: str, tmp_path: Path) -> str:
    """What icc_transform takes: a built-in name, or a file holding our own profile."""
    built = {"adobe": ADOBE_RGB, "prophoto": PROPHOTO}.get(profile)
    if built is None:
        return profile
    path = tmp_path / f"{profile}.icc"
    path.write_bytes(built)
    return str(path)


def builtin_profile(name: str) -> bytes:
    """The bytes of one of libvips' built-in profiles ("srgb", "p3", "cmyk")."""
    return bytes(solid(1, 1, (0, 0, 0)).icc_transform(name).get("icc-profile-data"))


def tagged(image: pyvips.Image, profile: bytes) -> pyvips.Image:
    """A copy of `image` carrying `profile` as its embedded ICC profile."""
    image = image.copy()
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    return image


def as_srgb(source: bytes) -> pyvips.Image:
    """What libvips itself makes of the source under its embedded profile."""
    loaded = decoded(source)
    assert loaded.get_typeof("icc-profile-data"), "the saver dropped the profile"
    return loaded.icc_transform("srgb", embedded=True, depth=8)


def assert_no_profile(image: pyvips.Image) -> None:
    assert not image.get_typeof("icc-profile-data")


# ---------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("profile", ["p3", "adobe", "prophoto"])
@pytest.mark.parametrize("source_format", list(SAVERS))
@pytest.mark.parametrize(("output", "tolerance"), [("png", 2), ("jpeg", 4)])
def test_wide_gamut_sources_become_srgb_numbers(
    profile: str, source_format: str, output: str, tolerance: int, tmp_path: Path
) -> None:
    srgb = quadrants(64, 64, PATCHES)
    wide = srgb.icc_transform(profile_name(profile, tmp_path), input_profile="srgb")
    source = SAVERS[source_format](wide)
    expected = as_srgb(source)
    # The source's own numbers are far from sRGB's, so passing them on would fail.
    assert not near(pixel(decoded(source), 16, 16), PATCHES[0], 10)

    rendered = pixfit.render(source, {"w": 32, "format": output, "q": 95})

    image = decoded_output(rendered)
    assert_no_profile(image)
    for (x, y), (sx, sy), patch in zip(OUTPUT_CENTRES, SOURCE_CENTRES, PATCHES, strict=True):
        assert near(pixel(image, x, y), pixel(expected, sx, sy), tolerance), (x, y)
        # And near the patch it started as: 8-bit ProPhoto numbers are coarse in dark
        # channels (40 came back as 36), and a JPEG source loses a little more.
        assert near(pixel(image, x, y), patch, 8), (x, y)


def test_display_p3_red_is_sent_as_srgb_red() -> None:
    # The measured bug: P3's 234,51,34 is sRGB's pure red, not a duller one.
    source = solid(16, 16, (255, 0, 0)).icc_transform("p3").jpegsave_buffer(Q=95)
    assert near(pixel(decoded(source), 8, 8), (234, 51, 34), 2)

    image = decoded_output(pixfit.render(source, {"w": 8, "format": "png"}))

    assert near(pixel(image, 4, 4), (255, 0, 0), 3)
    assert_no_profile(image)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: solid(32, 32, GREY[:1]), id="8-bit"),
        pytest.param(lambda: solid(32, 32, GREY[:1]).bandjoin(200), id="8-bit-alpha"),
        pytest.param(lambda: grey16(32, 32), id="16-bit"),
    ],
)
def test_greyscale_with_a_grey_profile(make: Callable[[], pyvips.Image]) -> None:
    source = tagged(make(), GREY_GAMMA_18).pngsave_buffer()
    expected = pixel(as_srgb(source), 16, 16)
    # Gamma 1.8 is lighter than sRGB's curve: level 128 shows as about 147.
    assert near(expected[:3], (147, 147, 147), 2)

    rendered = pixfit.render(source, {"w": 16, "format": "png"})

    image = decoded_output(rendered)
    assert_no_profile(image)
    assert near(pixel(image, 8, 8)[:1], expected[:1], 2)


def test_16_bit_png_with_a_profile_and_alpha() -> None:
    wide = solid(32, 32, PATCHES[0]).icc_transform("p3").bandjoin(128)
    source16 = (wide.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
    source = tagged(source16, wide.get("icc-profile-data")).pngsave_buffer()
    assert decoded(source).format == "ushort"

    image = decoded_output(pixfit.render(source, {"w": 16, "format": "png"}))

    assert image.format == "uchar"
    assert_no_profile(image)
    assert near(pixel(image, 8, 8), (*PATCHES[0], 128), 2)


def test_cmyk_jpeg_renders_through_its_embedded_profile(caplog: pytest.LogCaptureFixture) -> None:
    inks = quadrants(64, 64, ((0, 0, 0, 0), (200, 40, 0, 0), (0, 160, 200, 30), (60, 0, 120, 0)))
    source = tagged(inks.copy(interpretation="cmyk"), cmyk_profile()).jpegsave_buffer(Q=95)
    expected = as_srgb(source)
    built_in = decoded(source).copy()
    built_in.remove("icc-profile-data")
    built_in = built_in.icc_transform("srgb", input_profile="cmyk")
    # The two profiles disagree, so the output shows which one was used.
    assert not near(pixel(expected, 48, 16), pixel(built_in, 48, 16), 20)

    with caplog.at_level(logging.WARNING, logger="pyvips"):
        rendered = pixfit.render(source, {"w": 32, "format": "png"})

    image = decoded_output(rendered)
    assert (image.bands, image.interpretation) == (3, "srgb")
    assert_no_profile(image)
    for (x, y), (sx, sy) in zip(OUTPUT_CENTRES, SOURCE_CENTRES, strict=True):
        assert near(pixel(image, x, y), pixel(expected, sx, sy), 2), (x, y)
    # thumbnail has converted CMYK already; the profile left on it is not applied twice.
    assert not [record.message for record in caplog.records if record.name == "pyvips"]


@pytest.mark.parametrize("source_format", ["jpeg", "png"])
def test_an_srgb_profile_keeps_the_numbers(source_format: str) -> None:
    source = SAVERS[source_format](quadrants(64, 64, PATCHES).icc_transform("srgb"))

    image = decoded_output(pixfit.render(source, {"w": 32, "format": "png"}))

    assert_no_profile(image)
    for (x, y), patch in zip(OUTPUT_CENTRES, PATCHES, strict=True):
        assert near(pixel(image, x, y), patch, 2), (x, y)


# What the to_srgb step is handed besides the image (it reads none of it).
JOB = Job(Geometry(64, 64, 64, 64, Fit.INSIDE), Gravity.CENTRE, OutputFormat.PNG, None)


@pytest.mark.parametrize(
    ("profile", "left_alone"),
    [
        pytest.param(lambda: builtin_profile("srgb"), True, id="srgb"),
        pytest.param(lambda: SRGB_GAMMA_22, False, id="srgb-primaries-gamma-2.2"),
        pytest.param(lambda: builtin_profile("p3"), False, id="p3"),
    ],
)
def test_the_colour_step_skips_only_srgb_profiles(
    profile: Callable[[], bytes], left_alone: bool
) -> None:
    # An sRGB profile changes nothing, and converting through it cost 5-20 ms a render.
    image = tagged(quadrants(64, 64, PATCHES), profile())

    converted = to_srgb(image, JOB)

    assert (converted is image) == left_alone
    expected = image.icc_transform("srgb", embedded=True)
    for x, y in SOURCE_CENTRES:
        assert near(pixel(converted, x, y), pixel(expected, x, y), 1), (x, y)


def test_a_corrupt_rgb_profile_is_ignored() -> None:
    # An RGB header over garbage: savers drop such a profile, but a decoder may not.
    garbage = bytes(16) + b"RGB XYZ " + bytes(range(256)) * 8
    image = tagged(quadrants(64, 64, PATCHES), garbage)

    converted = to_srgb(image, JOB)

    for (x, y), patch in zip(SOURCE_CENTRES, PATCHES, strict=True):
        assert pixel(converted, x, y) == patch, (x, y)
