"""What a source's header says, and the limits checked against it before any decode."""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from pixfit import gif_header, heic
from pixfit.config import LimitsConfig
from pixfit.errors import CorruptImage, TooLarge
from pixfit.formats import sniff
from pixfit.memory import held_bytes
from pixfit.registry import FORMATS, ImageFormat

__all__ = [
    "SourceInfo",
    "inspect",
    "metadata",
]

# EXIF orientations 5-8 turn the image a quarter, so its displayed width is its stored height.
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the header says, read without decoding a pixel."""

    format: ImageFormat
    # Displayed size, after EXIF orientation; for an animation, one frame's (the canvas).
    width: int
    height: int
    has_alpha: bool
    # Frames (or top-level images) the header declares; 1 for a still.
    frames: int = 1
    # Bytes the decoder holds for the whole source while decoding it (see memory.py);
    # 0 for sources that stream and shrink on load.
    held_bytes: int = 0

    @property
    def animated(self) -> bool:
        """True for an animation (HEIF's extra images are alternatives, not frames)."""
        return self.frames > 1 and FORMATS[self.format].animation


def inspect(data: bytes, limits: LimitsConfig) -> SourceInfo:
    """Sniff the format and read the header; refuse oversized sources before decoding."""
    source_format = sniff(data)
    if FORMATS[source_format].decoder == "pillow-heif":
        heic_header = heic.read_header(data)
        width, height, pages = heic_header.width, heic_header.height, heic_header.images
        orientation, has_alpha = 1, heic_header.has_alpha
        buffered: str | None = "HEIC"
        bands, sample_bytes = 3 + has_alpha, 2  # HEVC may be 10-bit
    else:
        try:
            header = pyvips.Image.new_from_buffer(data, "", access="sequential")
            orientation = metadata(header, "orientation", 1)
            pages = metadata(header, "n-pages", 1)
        except pyvips.Error:
            raise CorruptImage("Expected a readable image header but the data is corrupt") from None
        width, height, has_alpha = header.width, header.height, header.hasalpha()
        buffered = _decoded_whole(source_format, header)
        bands, sample_bytes = header.bands, _SAMPLE_BYTES.get(header.format, 8)
    canvas = (width, height)
    gif = gif_header.declared(data) if source_format == ImageFormat.GIF else None
    if gif is not None:
        canvas = (max(width, gif.width), max(height, gif.height))
        pages = max(pages, gif.frames)
    _check_limits(limits, width, height, buffered)
    _check_animation(limits, canvas, pages)
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    held = held_bytes(width, height, bands, sample_bytes) if buffered else 0
    return SourceInfo(source_format, width, height, has_alpha, pages, held)


# Bytes per sample of libvips' band formats; anything else counts as the widest (double).
_SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4}


def _check_animation(limits: LimitsConfig, canvas: tuple[int, int], frames: int) -> None:
    """Refuse too many frames, or frames holding too many pixels together.

    `canvas` is what every frame is composed on, as large as the file declares it.
    """
    if frames > limits.max_frames:
        raise TooLarge(
            f"Expected at most {limits.max_frames} frames (limits.max_frames) but received {frames}"
        )
    width, height = canvas
    if frames > 1 and width * height * frames > limits.max_animation_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_animation_pixels} pixels in all frames together "
            f"(limits.max_animation_pixels) but received {frames} frames of {width}x{height}"
        )


def _check_limits(limits: LimitsConfig, width: int, height: int, buffered: str | None) -> None:
    """Refuse a source whose header is over a limit; the message names the limit."""
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_pixels} source pixels but received {width}x{height}"
        )
    if max(width, height) > limits.max_source_edge:
        raise TooLarge(
            f"Expected source edges of at most {limits.max_source_edge} px "
            f"but received {width}x{height}"
        )
    if buffered and width * height > limits.max_buffered_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_buffered_pixels} pixels for a {buffered}, which is "
            f"decoded whole, but received {width}x{height}"
        )


def _decoded_whole(source_format: ImageFormat, header: pyvips.Image) -> str | None:
    """What kind of source this is, if libvips must hold all of it to decode it."""
    if source_format == ImageFormat.JPEG and metadata(header, "jpeg-multiscan", 0):
        return "progressive JPEG"
    if source_format == ImageFormat.PNG and metadata(header, "interlaced", 0):
        return "interlaced PNG"
    if source_format == ImageFormat.GIF:
        return "GIF"
    if source_format == ImageFormat.AVIF:
        return "AVIF"
    return None


def metadata(header: pyvips.Image, name: str, default: int) -> int:
    """An integer field of a libvips header, or `default` when it is absent."""
    return int(header.get(name)) if header.get_typeof(name) else default
