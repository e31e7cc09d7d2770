"""A render's peak memory, estimated from the header and the plan before any pixel is decoded.

The figures are upper bounds fitted to the peak RSS of single renders measured here
(libvips 8.18 from the pyvips-binary wheel, each render in a fresh process; `bench/memory.py`
prints this table again):

| render                                          | measured | estimated |
|-------------------------------------------------|----------|-----------|
| 9000x9000 RGBA PNG -> 8192x8192 WebP            | 1219 MiB | 1312 MiB  |
| 8000x6000 JPEG -> 8000x6000 WebP (noisy)        |  881 MiB |  947 MiB  |
| 9000x9000 RGBA PNG -> 4000x4000 WebP            |  333 MiB |  337 MiB  |
| 9000x9000 RGBA PNG -> 3000x3000 AVIF            |  394 MiB |  418 MiB  |
| 8000x6000 JPEG -> 3000x2250 AVIF                |  224 MiB |  321 MiB  |
| 8000x6000 JPEG -> 4000x3000 JPEG                |  173 MiB |  180 MiB  |
| 8000x6000 JPEG -> 8000x6000 JPEG                |  209 MiB |  215 MiB  |
| 9000x9000 RGBA PNG -> 8192x8192 PNG             |  335 MiB |  416 MiB  |
| 8000x6000 progressive JPEG -> 800x600 JPEG      |  178 MiB |  364 MiB  |
| 8000x6000 JPEG -> 1280x960 at 3g (searched)     |  118 MiB |  142 MiB  |

The progressive row is high on purpose: its coefficients are counted at 4:4:4, the worst
a header can hide.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixfit.registry import ImageFormat

__all__ = [
    "BASE_BYTES",
    "ENCODE_BYTES_PER_PIXEL",
    "MIB",
    "SEARCH_BASE_BYTES",
    "SEARCH_BYTES_PER_PIXEL",
    "RenderSize",
    "held_bytes",
    "render_bytes",
]

MIB = 1024 * 1024
# What any render costs beyond its pixels: codec state, libvips' buffers and thread stacks.
BASE_BYTES = 32 * MIB
# Bytes per output pixel while encoding, the materialised display image included (it is
# held in memory, 3 or 4 bytes a pixel, for the whole search). libwebp converts to YUV and
# keeps its token buffers for the whole picture (18-20 B/px measured, with or without
# alpha); libaom's AV1 encoder is the heaviest (40-44 B/px at 3000x3000); mozjpeg with
# optimised Huffman tables buffers its coefficients (13 B/px at 12 MP), which formats.py
# turns off above 16 MP (4 B/px at 48 MP); zlib streams, leaving the image and its output.
ENCODE_BYTES_PER_PIXEL = {
    ImageFormat.AVIF: 45.0,
    ImageFormat.WEBP: 20.0,
    ImageFormat.JPEG: 13.0,
    ImageFormat.PNG: 6.0,
}
UNBUFFERED_JPEG_BYTES_PER_PIXEL = 4.0
# Mirrors formats._BUFFERED_JPEG_MAX_PIXELS: above it JPEG is encoded without buffering.
BUFFERED_JPEG_MAX_PIXELS = 16_000_000
# The search's reference image, masks and decoded candidates at the display size, on top of
# the encode (an unsearched 2000x2000 WebP would cost 20 B/px; searched it took 27), and
# what the perceptual scorer and a second encoder cost whatever the size.
SEARCH_BYTES_PER_PIXEL = 8.0
SEARCH_BASE_BYTES = 48 * MIB


@dataclass(frozen=True, slots=True)
class RenderSize:
    """What a render's memory depends on, all known from the header and the plan."""

    # Bytes the decoder holds for the whole source (progressive JPEG coefficients, an
    # interlaced PNG, a GIF canvas, an AVIF picture); 0 when the source streams.
    held_source_bytes: int
    # The display image that is materialised and encoded, in pixels.
    output_pixels: int
    # The formats the search may encode, best first; the peak is the costliest one's.
    formats: tuple[ImageFormat, ...]
    # Whether the perceptual search runs (it holds a reference image and candidates).
    searched: bool


def render_bytes(size: RenderSize) -> int:
    """An upper estimate of the render's peak memory above the idle process, in bytes."""
    per_pixel = max(_encode_bytes_per_pixel(f, size.output_pixels) for f in size.formats)
    base = BASE_BYTES
    if size.searched:
        per_pixel += SEARCH_BYTES_PER_PIXEL
        base += SEARCH_BASE_BYTES
    return base + size.held_source_bytes + round(per_pixel * size.output_pixels)


def _encode_bytes_per_pixel(output: ImageFormat, pixels: int) -> float:
    if output == ImageFormat.JPEG and pixels > BUFFERED_JPEG_MAX_PIXELS:
        return UNBUFFERED_JPEG_BYTES_PER_PIXEL
    return ENCODE_BYTES_PER_PIXEL.get(output, max(ENCODE_BYTES_PER_PIXEL.values()))


def held_bytes(width: int, height: int, bands: int, sample_bytes: int) -> int:
    """Bytes a decoder holds to decode a whole `width` x `height` source.

    Twice the decoded pixels: libjpeg keeps 2-byte coefficients per sample of a
    progressive JPEG (at 4:4:4, the worst case), and the other whole-image decoders keep
    their own buffer beside the image libvips copies out of it.
    """
    return 2 * width * height * bands * sample_bytes
