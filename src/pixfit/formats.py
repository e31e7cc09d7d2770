"""Formats through libvips: sniff what a source is, and encode an output by its registry row."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import pyvips

from pixfit.errors import UnsupportedImage
from pixfit.registry import FORMATS, INPUTS, LOADERS, ImageFormat, Setting, guess, listed

__all__ = [
    "Encoder",
    "Encodes",
    "sniff",
]

# Above this many output pixels, progressive JPEG and optimised Huffman tables make
# libjpeg buffer the whole image (about 300 MiB at 48 MP), so they are turned off.
_BUFFERED_JPEG_MAX_PIXELS = 16_000_000


def sniff(data: bytes) -> ImageFormat:
    """The format of `data` by its content, or `UnsupportedImage`."""
    # Sniffing the loader before decoding is the allowlist: bytes no registry row's
    # loader claims never reach a decoder, whatever their file name says.
    loader = pyvips.vips_lib.vips_foreign_find_load_buffer(data, len(data)) if data else None
    if not loader:
        pyvips.vips_lib.vips_error_clear()
        raise UnsupportedImage(f"Expected image data ({listed(INPUTS)})")
    name = pyvips.ffi.string(loader).decode()
    if name not in LOADERS:
        kind = name.removeprefix("VipsForeignLoad").removesuffix("Buffer") or "this"
        raise UnsupportedImage(
            f"Expected {listed(INPUTS)} but received {kind} data, which is not served"
        )
    rows = LOADERS[name]
    if len(rows) == 1:
        return rows[0].name
    # One loader for several rows (libheif reads AVIF and HEIC): the magic decides, and
    # anything else it claims (a JPEG-coded HEIF, say) is not served.
    named = guess(data)
    if named is None or named not in {row.name for row in rows}:
        raise UnsupportedImage(
            f"Expected {listed(INPUTS)} but received a container of another kind"
        )
    return named


class Encodes(Protocol):
    """An encoder for one output format (`formats.Encoder` satisfies it)."""

    @property
    def format(self) -> ImageFormat:
        """The format it writes."""
        ...

    def encode(self, image: pyvips.Image, quality: int) -> bytes:
        """The encoded bytes at `quality`."""
        ...


@dataclass(frozen=True, slots=True)
class Encoder:
    """Encodes one output format at a chosen quality, with the plan's policy."""

    format: ImageFormat
    # Quantise PNG to a palette, steered by the quality (the plan asks for it under a budget).
    palette: bool = False
    # Progressive JPEG: shows a coarse image early on slow links, but costs about twice the
    # encode time (measured: 18.5 ms against 9.3 ms at 1280x800), so only where it helps.
    progressive: bool = False

    def encode(self, image: pyvips.Image, quality: int) -> bytes:
        """The encoded bytes; metadata is never kept (colour is already sRGB)."""
        row = FORMATS[self.format]
        if row.saver is None:
            raise ValueError(f"pixfit does not write {row.label}")
        per_encode = _PER_ENCODE.get(self.format, _quality)(self, image, quality)
        save = getattr(image, f"{row.saver}_buffer")
        return bytes(save(keep="none", **row.settings, **per_encode))


# The saver arguments that depend on the image or the policy, beyond the row's settings.
PerEncode = Callable[[Encoder, pyvips.Image, int], Mapping[str, Setting]]


def _quality(encoder: Encoder, image: pyvips.Image, quality: int) -> Mapping[str, Setting]:
    return {"Q": quality}


def _jpeg(encoder: Encoder, image: pyvips.Image, quality: int) -> Mapping[str, Setting]:
    small = image.width * image.height <= _BUFFERED_JPEG_MAX_PIXELS
    return {"Q": quality, "optimize_coding": small, "interlace": small and encoder.progressive}


def _no_quality(encoder: Encoder, image: pyvips.Image, quality: int) -> Mapping[str, Setting]:
    return {}


def _png(encoder: Encoder, image: pyvips.Image, quality: int) -> Mapping[str, Setting]:
    # zlib has no quality; with a palette, the quality steers libimagequant.
    return {"palette": True, "Q": quality} if encoder.palette else {}


_PER_ENCODE: Mapping[ImageFormat, PerEncode] = {
    ImageFormat.JPEG: _jpeg,
    ImageFormat.PNG: _png,
    # gifsave has no quality: libimagequant picks each frame's palette.
    ImageFormat.GIF: _no_quality,
}
