"""HEIC input through pillow-heif: the header for the limits, then the pixels into libvips.

The libvips wheel's libheif reads HEIF containers but has no HEVC decoder ("Support for this
compression format has not been built in: HEVC"); pillow-heif's wheels bundle libde265.
"""

from __future__ import annotations

from dataclasses import dataclass

import pillow_heif
import pyvips

from pixfit.errors import CorruptImage

__all__ = [
    "HeicHeader",
    "decode_heic",
    "read_header",
]

# nclx colour primaries (ITU-T H.273 table 2) that need a conversion to reach sRGB, and the
# libvips built-in profile that describes them: 12 is Display P3 (SMPTE EG 432-1), which
# phones write when they signal colour by nclx instead of an ICC profile.
_NCLX_PROFILES = {12: "p3"}
# nclx transfer characteristics of sRGB's curve (13, IEC 61966-2-1), which "p3" shares.
_SRGB_TRANSFER = 13


@dataclass(frozen=True, slots=True)
class HeicHeader:
    """What the HEIF boxes say, read without decoding a pixel."""

    # Displayed size: libheif applies the HEIF rotation and mirror (irot, imir) itself.
    width: int
    height: int
    has_alpha: bool
    # Top-level images in the file; only the primary one is rendered.
    images: int


def read_header(data: bytes) -> HeicHeader:
    """The primary image's header; `CorruptImage` if the boxes cannot be parsed."""
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        width, height = heif.size
        return HeicHeader(width, height, heif.has_alpha, len(heif))
    # pillow-heif raises its documented ValueError, EOFError, SyntaxError, RuntimeError and
    # OSError on bad data, and more that fuzzing found (IndexError for a file listing no
    # image): whatever it raises while reading a source means the source is corrupt.
    except Exception:
        raise CorruptImage("Expected a readable HEIC header but the data is corrupt") from None


def decode_heic(data: bytes) -> pyvips.Image:
    """The primary image as 8-bit RGB(A) in libvips, with its colour profile attached.

    The HEIF rotation is applied once, by libheif. The EXIF orientation that iPhones also
    write describes the same turn (HEIF readers must ignore it), so no EXIF is carried
    over and nothing downstream rotates again.
    """
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        primary = heif[heif.primary_index]
        # "RGB", "RGBA", "L"...: one letter a band (8-bit, as asked above).
        bands = len(primary.mode.split(";")[0])
        stride, (width, height) = primary.stride, primary.size
        rows = bytes(primary.data)
    except Exception:  # as in read_header
        raise CorruptImage(
            "Expected a complete HEIC image but the data is truncated or corrupt"
        ) from None
    if stride != width * bands:
        # libheif pads rows to an alignment; the padding is cut off here.
        padded = pyvips.Image.new_from_memory(rows, stride, height, 1, "uchar")
        rows = padded.crop(0, 0, width * bands, height).write_to_memory()
    image = pyvips.Image.new_from_memory(rows, width, height, bands, "uchar")
    image = image.copy(interpretation="srgb" if bands >= 3 else "b-w")
    profile = primary.info.get("icc_profile")
    if isinstance(profile, bytes) and profile:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    else:
        builtin = _nclx_profile(primary.info.get("nclx_profile"))
        if builtin is not None:
            image = image.icc_transform("srgb", input_profile=builtin, intent="relative")
            image = image.cast("uchar")
    return image


def _nclx_profile(nclx: object) -> str | None:
    """The libvips built-in profile an nclx colour box describes, when it is not sRGB."""
    if not isinstance(nclx, dict):
        return None
    name = _NCLX_PROFILES.get(int(nclx.get("color_primaries", 1)))
    if name is None or int(nclx.get("transfer_characteristics", 0)) != _SRGB_TRANSFER:
        return None
    return name
