"""Decode and resize on libvips: header checks, then a tuple of small steps over one image."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from pixfit.config import LimitsConfig
from pixfit.errors import CorruptImage, Overloaded, TooLarge
from pixfit.formats import sniff
from pixfit.geometry import Geometry, crop_offset
from pixfit.options import RGB, Fit, Gravity
from pixfit.registry import FORMATS, ImageFormat

WHITE: RGB = (255, 255, 255)
# EXIF orientations 5-8 turn the image a quarter, so its displayed width is its stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
# The scale-downs libjpeg can apply while decoding (its scaled IDCT), largest first.
JPEG_SHRINKS = (8, 4, 2)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the header says, read without decoding a pixel."""

    format: ImageFormat
    # Displayed size, after EXIF orientation.
    width: int
    height: int
    has_alpha: bool


@dataclass(frozen=True, slots=True)
class Job:
    """The inputs every step reads: the target geometry and the chosen output."""

    geometry: Geometry
    gravity: Gravity
    output: ImageFormat
    # Letterbox and flatten colour; None is white when flattening, transparent when padding.
    background: RGB | None


Step = Callable[[pyvips.Image, Job], pyvips.Image]


def inspect(data: bytes, limits: LimitsConfig) -> SourceInfo:
    """Sniff the format and read the header; refuse oversized sources before decoding."""
    source_format = sniff(data)
    try:
        header = pyvips.Image.new_from_buffer(data, "", access="sequential")
        orientation = _metadata(header, "orientation", 1)
        pages = _metadata(header, "n-pages", 1)
    except pyvips.Error:
        raise CorruptImage("Expected a readable image header but the data is corrupt") from None
    width, height = header.width, header.height
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_pixels} source pixels but received {width}x{height}"
        )
    if max(width, height) > limits.max_source_edge:
        raise TooLarge(
            f"Expected source edges of at most {limits.max_source_edge} px "
            f"but received {width}x{height}"
        )
    if pages > limits.max_pages:
        raise TooLarge(f"Expected at most {limits.max_pages} frames but received {pages}")
    buffered = _decoded_whole(source_format, header)
    if buffered and width * height > limits.max_buffered_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_buffered_pixels} pixels for a {buffered}, which is "
            f"decoded whole, but received {width}x{height}"
        )
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return SourceInfo(source_format, width, height, header.hasalpha())


def _decoded_whole(source_format: ImageFormat, header: pyvips.Image) -> str | None:
    """What kind of source this is, if libvips must hold all of it to decode it."""
    if source_format == ImageFormat.JPEG and _metadata(header, "jpeg-multiscan", 0):
        return "progressive JPEG"
    if source_format == ImageFormat.PNG and _metadata(header, "interlaced", 0):
        return "interlaced PNG"
    if source_format == ImageFormat.GIF:
        return "GIF"
    if source_format == ImageFormat.AVIF:
        return "AVIF"
    return None


def _metadata(header: pyvips.Image, name: str, default: int) -> int:
    return int(header.get(name)) if header.get_typeof(name) else default


def decode(data: bytes, info: SourceInfo, job: Job, deadline: float) -> pyvips.Image:
    """Decode at reduced scale, run the steps, and materialise the result in memory."""
    geometry = job.geometry
    crop = (
        str(job.gravity)
        if geometry.fit == Fit.COVER and job.gravity in (Gravity.ENTROPY, Gravity.ATTENTION)
        else "none"
    )
    width, height = (
        (geometry.width, geometry.height)
        if crop != "none"
        else (geometry.resize_width, geometry.resize_height)
    )
    # thumbnail applies the EXIF orientation and imports any embedded ICC profile.
    sizing = {"height": height, "size": "force" if crop == "none" else "both", "crop": crop}
    try:
        shrink = jpeg_shrink(info, width, height) if info.format == ImageFormat.JPEG else 1
        if shrink > 1:
            loaded = pyvips.Image.jpegload_buffer(
                data, shrink=shrink, fail_on="truncated", access="sequential"
            )
            image = loaded.thumbnail_image(width, **sizing)
        else:
            # Through the loader's option string: thumbnail_buffer accepts its own fail_on
            # argument but never passes it on (seen with libvips 8.18.7), so a truncated
            # JPEG would come out with a grey lower part instead of an error.
            image = pyvips.Image.thumbnail_buffer(
                data, width, option_string="fail_on=truncated", **sizing
            )
        for step in STEPS:
            image = step(image, job)
        return _materialise(image, deadline)
    except pyvips.Error as error:
        if "killed" in str(error) or "cancel" in str(error):
            raise Overloaded("The render ran past its deadline; try a smaller size") from None
        raise CorruptImage(
            "Expected a complete image but the data is truncated or corrupt"
        ) from None


def jpeg_shrink(info: SourceInfo, width: int, height: int) -> int:
    """The JPEG decoder's scale-down (1, 2, 4 or 8) for a `width` x `height` result.

    libvips' thumbnail shrinks JPEGs on load too, but stops a factor of two short of the
    target (a 5120 px photo for 800 px decodes at 1/2, 2560 px) to leave the resize some
    smoothing to do. Like Pillow's draft mode and imgproxy, pixfit takes the largest factor
    that still covers the target: 4x fewer pixels through the IDCT, colour conversion and
    resize. Measured on the 8 wallpapers of bench/server.sh to 800 px: 21% less CPU, and
    the two results differ by 45-53 dB PSNR, which no eye sees.
    """
    scale = min(info.width / width, info.height / height)
    return next((factor for factor in JPEG_SHRINKS if scale >= factor), 1)


def to_srgb(image: pyvips.Image, job: Job) -> pyvips.Image:
    """8-bit sRGB, whatever came in: 16-bit, greyscale, CMYK without a profile."""
    if image.interpretation == "srgb" and image.format == "uchar":
        return image
    return image.colourspace("srgb").cast("uchar")


def flatten(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Blend alpha onto the background when the output cannot carry it."""
    if not image.hasalpha() or FORMATS[job.output].alpha:
        return image
    return image.flatten(background=list(job.background or WHITE))


def crop(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Cut the box out of a covering image, at the compass gravity."""
    box_width, box_height = job.geometry.width, job.geometry.height
    if job.geometry.fit != Fit.COVER or (image.width, image.height) == (box_width, box_height):
        return image
    left, top = crop_offset(image.width, image.height, box_width, box_height, job.gravity)
    return image.crop(left, top, min(box_width, image.width), min(box_height, image.height))


def letterbox(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Centre the image on the box, padding with the background."""
    box_width, box_height = job.geometry.width, job.geometry.height
    if job.geometry.fit != Fit.CONTAIN or (image.width, image.height) == (box_width, box_height):
        return image
    if job.background is None and FORMATS[job.output].alpha:
        # No colour asked for and the format has alpha: pad with transparency.
        image = image if image.hasalpha() else image.bandjoin_const([255])
        fill = [0, 0, 0, 0]
    else:
        fill = [*(job.background or WHITE), 255][: image.bands]
    return image.gravity("centre", box_width, box_height, extend="background", background=fill)


STEPS: tuple[Step, ...] = (to_srgb, flatten, crop, letterbox)


def _materialise(image: pyvips.Image, deadline: float) -> pyvips.Image:
    """Run the pipeline into memory, so the budget search can encode it many times.

    The deadline is a timer that kills the evaluation, not a Python handler on libvips'
    eval signal: such a handler runs on libvips' own threads and has to take the GIL on
    every tick, so a render would queue for the GIL behind the worker's other requests.
    """
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), image.set_kill, (True,))
    timer.daemon = True
    timer.start()
    try:
        return image.copy_memory()
    finally:
        timer.cancel()
