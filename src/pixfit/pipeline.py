"""Decode and resize on libvips: a tuple of small steps over one image (each frame alike).

The header checks that come first are in headers.py (`inspect`, re-exported here).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pyvips

from pixfit import heic
from pixfit.errors import CorruptImage, Overloaded
from pixfit.geometry import Geometry, crop_offset
from pixfit.headers import SourceInfo, inspect, metadata
from pixfit.masters import Master, Masters
from pixfit.options import RGB, Fit, Flip, Gravity, Position
from pixfit.registry import FORMATS, ImageFormat

__all__ = [
    "COARSE_DECODE_QUALITY",
    "COARSE_RESIZE",
    "FINE_RESIZE",
    "JPEG_SHRINKS",
    "STEPS",
    "WHITE",
    "Job",
    "SourceInfo",
    "Step",
    "blur",
    "crop",
    "decode",
    "decode_animation",
    "flatten",
    "flip",
    "inspect",
    "jpeg_shrink",
    "letterbox",
    "rotate",
    "sharpen",
    "to_srgb",
]

WHITE: RGB = (255, 255, 255)
# The scale-downs libjpeg can apply while decoding (its scaled IDCT), largest first.
JPEG_SHRINKS = (8, 4, 2)


@dataclass(frozen=True, slots=True)
class Job:
    """The inputs every step reads: the target geometry and the chosen output."""

    # In the frame of the output: after `rotate` and `flip` (see geometry.oriented).
    geometry: Geometry
    gravity: Position
    output: ImageFormat
    # Letterbox and flatten colour; None is white when flattening, transparent when padding.
    background: RGB | None
    # Clockwise degrees after EXIF orientation (0 none), then a mirror (None none).
    rotate: int = 0
    flip: Flip | None = None
    # Gaussian blur and unsharp-mask sigmas in output pixels; None means none.
    blur: float | None = None
    sharpen: float | None = None
    # Whether a JPEG may be decoded closer to the display size (see jpeg_shrink): True for
    # a lossy output at a pinned quality low enough for the encoder's loss to hide it.
    coarse_decode: bool = False

    @property
    def turns_sideways(self) -> bool:
        """True when `rotate` swaps width and height."""
        return self.rotate in (90, 270)


Step = Callable[[pyvips.Image, Job], pyvips.Image]


def decode(
    data: bytes,
    info: SourceInfo,
    job: Job,
    deadline: float,
    masters: Masters | None = None,
    identity: str = "",
    page: int = 0,
) -> pyvips.Image:
    """Decode at reduced scale, run the steps, and materialise the result in memory.

    With `masters` and the source's `identity`, a JPEG is decoded once into a reduced
    master that later variants of the same source resize from (see masters.py). `page` is
    the frame of an animation to decode.
    """
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
    if job.turns_sideways:
        # The geometry is of the turned output; thumbnail works before the turn.
        width, height = height, width
    # thumbnail applies the EXIF orientation; the to_srgb step applies any ICC profile.
    sizing = {"height": height, "size": "force" if crop == "none" else "both", "crop": crop}
    with _decoding():
        shrink = (
            jpeg_shrink(info, width, height, coarse=job.coarse_decode)
            if info.format == ImageFormat.JPEG
            else 1
        )
        reduced = _master(data, info, shrink, masters, identity, deadline)
        if reduced is not None:
            image = reduced.thumbnail_image(width, **sizing)
        else:
            image = _load(data, info, width, sizing, shrink, page)
        image = _in_order(image, job, deadline)
        for step in STEPS:
            image = step(image, job)
        return _without_opaque_alpha(_materialise(image, deadline))


def _in_order(image: pyvips.Image, job: Job, deadline: float) -> pyvips.Image:
    """The image, held in memory first when the steps will read it out of order.

    A turn or a vertical mirror reads its input out of order, which a sequential decode
    cannot serve ("out of order read" on a 2560x1600 JPEG shrunk on load): the decoded,
    already shrunk image is materialised first, under the deadline.
    """
    if job.rotate or job.flip in (Flip.V, Flip.HV):
        return _materialise(image, deadline)
    return image


def _without_opaque_alpha(image: pyvips.Image) -> pyvips.Image:
    """The image without its alpha band when every pixel is opaque.

    GIF frames, and many PNGs, carry an alpha band that hides nothing. Encoders then spend
    bytes on it (AVIF codes it as a second image), and WebP drops it by itself, so its
    candidates decoded with fewer bands than the reference and could not be scored (the
    perceptual proxy cannot subtract a 3-band image from a 4-band one: an opaque RGBA PNG
    asked for as WebP was a 500). One pass over the image in memory: 0.2 ms a megapixel.
    """
    if not image.hasalpha() or image[image.bands - 1].min() < 255:
        return image
    return image.extract_band(0, n=image.bands - 1)


def _load(
    data: bytes,
    info: SourceInfo,
    width: int,
    sizing: dict[str, int | str],
    shrink: int,
    page: int,
) -> pyvips.Image:
    """The source at `width` (and `sizing`), shrunk by `shrink` while decoding (JPEG)."""
    if FORMATS[info.format].decoder == "pillow-heif":
        return heic.decode_heic(data).thumbnail_image(width, **sizing)
    if shrink > 1:
        loaded = pyvips.Image.jpegload_buffer(
            data, shrink=shrink, fail_on="truncated", access="sequential"
        )
        return loaded.thumbnail_image(width, **sizing)
    # Through the loader's option string: thumbnail_buffer accepts its own fail_on
    # argument but never passes it on (seen with libvips 8.18.7), so a truncated JPEG
    # would come out with a grey lower part instead of an error.
    options = f"fail_on=truncated,page={page}" if page else "fail_on=truncated"
    return pyvips.Image.thumbnail_buffer(data, width, option_string=options, **sizing)


def decode_animation(data: bytes, info: SourceInfo, job: Job, deadline: float) -> pyvips.Image:
    """Every frame resized, cropped and fitted the same way, joined with its delays and loop.

    libvips' thumbnail resizes the frames of an animation together (its crop would cut the
    joined strip, not each frame), so the steps then run on each frame alone. `entropy` and
    `attention` crop at the centre here: chosen per frame, the crop would jump about.
    """
    width, height = job.geometry.resize_width, job.geometry.resize_height
    if job.turns_sideways:
        # The geometry is of the turned output; thumbnail works before the turn.
        width, height = height, width
    if job.gravity in (Gravity.ENTROPY, Gravity.ATTENTION):
        job = replace(job, gravity=Gravity.CENTRE)
    with _decoding():
        strip = pyvips.Image.thumbnail_buffer(
            data, width, height=height, size="force", option_string="fail_on=truncated,n=-1"
        )
        strip = _in_order(strip, job, deadline)
        frame_height = metadata(strip, "page-height", strip.height)
        frames = []
        for top in range(0, strip.height - frame_height + 1, frame_height):
            frame = strip.crop(0, top, strip.width, frame_height)
            for step in STEPS:
                frame = step(frame, job)
            frames.append(frame)
        joined = pyvips.Image.arrayjoin(frames, across=1).copy()
        joined.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
        joined.set_type(pyvips.GValue.gint_type, "loop", metadata(strip, "loop", 0))
        if strip.get_typeof("delay"):
            joined.set_type(pyvips.GValue.array_int_type, "delay", strip.get("delay"))
        return _without_opaque_alpha(_materialise(joined, deadline))


@contextlib.contextmanager
def _decoding() -> Iterator[None]:
    """Turn libvips' failures into the errors pixfit reports."""
    try:
        yield
    except pyvips.Error as error:
        if "killed" in str(error) or "cancel" in str(error):
            raise Overloaded("The render ran past its deadline; try a smaller size") from None
        raise CorruptImage(
            "Expected a complete image but the data is truncated or corrupt"
        ) from None


def _master(
    data: bytes,
    info: SourceInfo,
    shrink: int,
    masters: Masters | None,
    identity: str,
    deadline: float,
) -> pyvips.Image | None:
    """The source's reduced master, brought to this variant's shrink; None if it cannot serve.

    A variant may use the master where its own decode would have shrunk at least as much.
    The rest of its own shrink is a box average of the master, which is close to what the
    decoder's scaled DCT gives (SSIM 0.9994 against it, before any encode, where resizing
    the master straight to the display gave 0.9986), so outputs match renders from the
    source, and the resize that follows is as long as theirs.
    """
    if masters is None or not masters.enabled or not identity or info.format != ImageFormat.JPEG:
        return None
    master = masters.get(identity)
    if master is None:
        # Decoded for the largest display a master serves; a larger display decodes alone.
        edge_shrink = _shrink_for(max(info.width, info.height) / masters.edge)
        if edge_shrink > shrink:
            return None
        loaded = pyvips.Image.jpegload_buffer(
            data, shrink=edge_shrink, fail_on="truncated", access="sequential"
        )
        master = Master(_materialise(loaded, deadline), edge_shrink)
        masters.put(identity, master)
    if master.shrink > shrink:
        return None
    rest = shrink // master.shrink
    return master.image.shrink(rest, rest) if rest > 1 else master.image


def jpeg_shrink(info: SourceInfo, width: int, height: int, *, coarse: bool = False) -> int:
    """The JPEG decoder's scale-down (1, 2, 4 or 8) for a `width` x `height` result.

    The largest factor that still leaves the resize at least a factor of two, as libvips'
    own thumbnail does. Taking the largest factor that merely covers the target (Pillow's
    draft mode, and pixfit until issue 11) saved 21% CPU to 800 px, but where the factor
    lands on the target the decoder's DCT scaling is the only filter: a 2560x1600 photo
    decoded at 1/2 straight to 1280x800 scored 82.5-95.1 SSIMULACRA2 (mean 88.6 on 8
    wallpapers) against libvips' thumbnail of it, with no encode at all, where this factor
    scores 100. PSNR (45-53 dB) had hidden it.

    `coarse` leaves the resize only 1.5x, never less, for outputs whose encoder loses far
    more than that (see COARSE_DECODE_QUALITY): on 10 wallpapers to 800 px at JPEG q80
    (bench/shrink.py) it cost 10% less CPU and 1.6% fewer bytes, for 0.4 SSIMULACRA2
    points of the q80 output (75.1 -> 74.7; worst photo 1.2), the loss q80 -> q79 would
    give for 3% of the bytes: the same rate-distortion curve, reached for less work.
    """
    scale = min(info.width / width, info.height / height)
    return _shrink_for(scale, COARSE_RESIZE if coarse else FINE_RESIZE)


# The least resize jpeg_shrink leaves after the decoder's scale-down (see there).
FINE_RESIZE = 2.0
COARSE_RESIZE = 1.5
# The highest pinned quality of a lossy output that decodes coarsely: measured at q80,
# where the encoder alone costs about 25 SSIMULACRA2 points. A searched quality aims at a
# perceptual target and keeps the fine decode.
COARSE_DECODE_QUALITY = 80


def _shrink_for(scale: float, resize: float = FINE_RESIZE) -> int:
    """The largest decoder scale-down that leaves a reduction by `scale` a resize of `resize`."""
    return next((factor for factor in JPEG_SHRINKS if scale >= resize * factor), 1)


def to_srgb(image: pyvips.Image, job: Job) -> pyvips.Image:
    """8-bit sRGB numbers, whatever came in: an ICC profile, 16-bit, greyscale, CMYK.

    Outputs carry no profile (keep="none"), so a browser reads their numbers as sRGB.
    """
    profile = _own_profile(image)
    if profile is not None and not _is_srgb(profile):
        # Relative colorimetric, libvips' default and the intent thumbnail used for CMYK:
        # colours inside sRGB keep their exact values and only those outside are clipped.
        # The matrix profiles that phones and cameras embed (Display P3, Adobe RGB,
        # ProPhoto) hold no perceptual table, and lcms then uses the matrix for every
        # intent: all four gave the same numbers (libvips 8.18). Only table profiles
        # differ, and there perceptual would shift colours sRGB could show exactly.
        return image.icc_transform("srgb", embedded=True, intent="relative", depth=8)
    if image.interpretation == "srgb" and image.format == "uchar":
        return image
    return image.colourspace("srgb").cast("uchar")


# The colour space field of an ICC header (bytes 16-19), and the colour bands it covers.
_PROFILE_BANDS = {b"RGB ": 3, b"GRAY": 1}


def _own_profile(image: pyvips.Image) -> bytes | None:
    """The image's ICC profile, if it is one for its own colour bands (RGB or grey).

    libvips' thumbnail (8.18) leaves RGB and grey pixels in their embedded profile's
    space, but turns CMYK into sRGB itself, through the embedded CMYK profile, and then
    leaves that profile attached; converting again would only warn and copy. A profile
    that does not fit the bands (or is garbage) is ignored, as browsers ignore it.
    """
    if not image.get_typeof("icc-profile-data"):
        return None
    profile = bytes(image.get("icc-profile-data"))
    colour_bands: int = image.bands - image.hasalpha()
    return profile if _PROFILE_BANDS.get(profile[16:20]) == colour_bands else None


# sRGB profiles run from 0.5 to 7 KB (the IEC 61966-2.1 one that Photoshop embeds is
# 3144 bytes); bigger ones hold tables. The bound also caps what the cache below holds.
_SRGB_PROFILE_MAX_BYTES = 16_384
# 16 levels a channel (0, 17 ... 255): 4096 colours.
_PROBE_LEVELS = range(0, 256, 17)


def _is_srgb(profile: bytes) -> bool:
    """True for an RGB profile that moves no colour of a 16-level cube by over 2 levels.

    Many photos carry an sRGB profile, and transforming through it changed nothing yet
    cost 5 ms at 800 px and 20 ms at 1920 px (bench/colour.py). The sRGB profiles seen
    moved colours by 0-2 levels (rounding in their curves); a gamma 2.2 curve on sRGB's
    primaries moves them by 9 and is converted.
    """
    rgb = profile[16:20] == b"RGB "
    return rgb and len(profile) <= _SRGB_PROFILE_MAX_BYTES and _behaves_as_srgb(profile)


@functools.lru_cache(maxsize=32)
def _behaves_as_srgb(profile: bytes) -> bool:
    # Cached: a site's photos share a few profiles, and a probe costs about 5 ms.
    cube = [(r, g, b) for r in _PROBE_LEVELS for g in _PROBE_LEVELS for b in _PROBE_LEVELS]
    channels = [pyvips.Image.new_from_array([[rgb[band] for rgb in cube]]) for band in range(3)]
    probe = channels[0].bandjoin(channels[1:]).cast("uchar").copy(interpretation="srgb")
    tagged = probe.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    moved = tagged.icc_transform("srgb", embedded=True, intent="relative") - probe
    return bool(moved.abs().max() <= 2)


def flatten(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Blend alpha onto the background when the output cannot carry it."""
    if not image.hasalpha() or FORMATS[job.output].alpha:
        return image
    return image.flatten(background=list(job.background or WHITE))


def rotate(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Turn clockwise; thumbnail has already applied the EXIF orientation."""
    return image.rot(f"d{job.rotate}") if job.rotate else image


def flip(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Mirror the turned image left-right, top-bottom, or both."""
    if job.flip in (Flip.H, Flip.HV):
        image = image.fliphor()
    if job.flip in (Flip.V, Flip.HV):
        image = image.flipver()
    return image


def crop(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Cut the box out of a covering image, at the compass gravity or the focal point."""
    box_width, box_height = job.geometry.width, job.geometry.height
    if job.geometry.fit != Fit.COVER or (image.width, image.height) == (box_width, box_height):
        return image
    left, top = crop_offset(image.width, image.height, box_width, box_height, job.gravity)
    return image.crop(left, top, min(box_width, image.width), min(box_height, image.height))


def blur(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Gaussian blur at the output size, before letterboxing so the bars keep their edges."""
    if job.blur is None:
        return image
    if not image.hasalpha():
        return image.gaussblur(job.blur)
    # Premultiplied, or the colour of transparent pixels (often black) bleeds into the
    # visible ones as a dark fringe.
    blurred = image.premultiply().gaussblur(job.blur).unpremultiply()
    return blurred.cast("uchar").copy(interpretation=image.interpretation)


def sharpen(image: pyvips.Image, job: Job) -> pyvips.Image:
    """Unsharp mask at the output size, on lightness only (libvips' sharpen works in LabS)."""
    return image if job.sharpen is None else image.sharpen(sigma=job.sharpen)


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


# Turns come before the crop, whose box is in the output's frame; filters work on the
# cropped output only, and before the letterbox bars.
STEPS: tuple[Step, ...] = (to_srgb, flatten, rotate, flip, crop, blur, sharpen, letterbox)


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
