"""Image formats: which sources pixfit decodes, and how each output format is encoded."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyvips

from pixfit.errors import UnsupportedImage
from pixfit.options import OutputFormat


class SourceFormat(StrEnum):
    """The formats pixfit decodes; everything else (SVG, PDF, TIFF, Magick...) is refused."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    GIF = "gif"
    HEIF = "heif"  # AVIF and HEIC share libheif's loader


# libvips' buffer loaders, by the class name vips_foreign_find_load_buffer reports.
# Sniffing the loader before decoding is the allowlist: bytes no listed loader claims
# never reach a decoder, whatever their file name says.
_LOADERS = {
    "VipsForeignLoadJpegBuffer": SourceFormat.JPEG,
    "VipsForeignLoadPngBuffer": SourceFormat.PNG,
    "VipsForeignLoadWebpBuffer": SourceFormat.WEBP,
    "VipsForeignLoadNsgifBuffer": SourceFormat.GIF,
    "VipsForeignLoadHeifBuffer": SourceFormat.HEIF,
}

MEDIA_TYPES = {
    SourceFormat.JPEG: "image/jpeg",
    SourceFormat.PNG: "image/png",
    SourceFormat.WEBP: "image/webp",
    SourceFormat.GIF: "image/gif",
    SourceFormat.HEIF: "image/avif",
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.PNG: "image/png",
    OutputFormat.WEBP: "image/webp",
    OutputFormat.AVIF: "image/avif",
}

# What `format=original` writes for each source format (GIF output is not worth an
# encoder of its own: PNG keeps its palette look and its transparency).
_ORIGINAL_OUTPUT = {
    SourceFormat.JPEG: OutputFormat.JPEG,
    SourceFormat.PNG: OutputFormat.PNG,
    SourceFormat.WEBP: OutputFormat.WEBP,
    SourceFormat.GIF: OutputFormat.PNG,
    SourceFormat.HEIF: OutputFormat.AVIF,
}

# Above this many output pixels, progressive JPEG and optimised Huffman tables make
# libjpeg buffer the whole image (about 300 MiB at 48 MP), so they are turned off.
_BUFFERED_JPEG_MAX_PIXELS = 16_000_000

# AV1 is slow, and its effort buys little here. Measured on a 480x300 photo at Q60
# (concurrency 2): effort 0 53 ms / 23.0 KB, 1 145 ms / 22.0 KB, 2 242 ms / 22.1 KB,
# 4 2958 ms / 22.6 KB. A budget search encodes several times, so effort 0 it is.
AVIF_EFFORT = 0
# bench/encoders.py, 18 photos at 1280 and 800 px, WebP Q80: effort 3 and 4 cost the same
# (47 ms at 800 px), effort 2 takes half the time for 4-9% more bytes, 6 twice the time for
# 3-4% fewer.
WEBP_EFFORT = 4
# The libjpeg in pyvips-binary is mozjpeg; its table 3 (N. Robidoux's, mozjpeg's own
# default) costs no time and gave 6-8% fewer bytes at the same Q with 0.2 dB more PSNR
# (bench/encoders.py). Trellis quantisation took 5x the time for no gain at equal PSNR.
JPEG_QUANT_TABLE = 3


def sniff(data: bytes) -> SourceFormat:
    """The format of `data` by its content, or `UnsupportedImage`."""
    loader = pyvips.vips_lib.vips_foreign_find_load_buffer(data, len(data)) if data else None
    if not loader:
        pyvips.vips_lib.vips_error_clear()
        raise UnsupportedImage("Expected image data (JPEG, PNG, WebP, GIF or AVIF)")
    name = pyvips.ffi.string(loader).decode()
    if name not in _LOADERS:
        kind = name.removeprefix("VipsForeignLoad").removesuffix("Buffer") or "this"
        raise UnsupportedImage(
            f"Expected JPEG, PNG, WebP, GIF or AVIF but received {kind} data, which is not served"
        )
    return _LOADERS[name]


def choose_output(requested: OutputFormat, source: SourceFormat, has_alpha: bool) -> OutputFormat:
    """A concrete output format: AUTO is JPEG, or PNG for images with alpha."""
    if requested == OutputFormat.ORIGINAL:
        return _ORIGINAL_OUTPUT[source]
    if requested == OutputFormat.AUTO:
        return OutputFormat.PNG if has_alpha else OutputFormat.JPEG
    return requested


def keeps_alpha(output: OutputFormat) -> bool:
    """True when `output` can carry transparency."""
    return output != OutputFormat.JPEG


@dataclass(frozen=True, slots=True)
class Encoder:
    """Encodes one output format at a chosen quality."""

    format: OutputFormat
    # Under a byte budget: quantise PNG to a palette, steered by the quality.
    compact: bool
    # Progressive JPEG: shows a coarse image early on slow links, but costs about twice the
    # encode time (measured: 18.5 ms against 9.3 ms at 1280x800), so only where it helps.
    progressive: bool = False

    def encode(self, image: pyvips.Image, quality: int) -> bytes:
        """The encoded bytes; metadata is never kept (colour is already sRGB)."""
        if self.format == OutputFormat.JPEG:
            small = image.width * image.height <= _BUFFERED_JPEG_MAX_PIXELS
            data = image.jpegsave_buffer(
                Q=quality,
                keep="none",
                optimize_coding=small,
                interlace=small and self.progressive,
                quant_table=JPEG_QUANT_TABLE,
            )
        elif self.format == OutputFormat.WEBP:
            data = image.webpsave_buffer(Q=quality, keep="none", effort=WEBP_EFFORT)
        elif self.format == OutputFormat.AVIF:
            data = image.heifsave_buffer(
                Q=quality, keep="none", compression="av1", effort=AVIF_EFFORT
            )
        elif self.compact:
            # Under a byte budget a PNG is quantised to a palette; quality steers libimagequant.
            data = image.pngsave_buffer(keep="none", palette=True, Q=quality, effort=4)
        else:
            data = image.pngsave_buffer(keep="none", compression=6)
        return bytes(data)
