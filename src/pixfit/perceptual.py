"""The server's perceptual score: a cheap libvips proxy calibrated onto the SSIMULACRA2 scale.

SSIMULACRA2 itself (XYB, six scales, SSIM and edge maps) ported to libvips operations matched
the `ssimulacra2` package within about 1 point but took about 1 s per 1280x800 pair on one
libvips thread, so the request path cannot afford it. This proxy measures what dominated
SSIMULACRA2's terms on real photos, on the green channel (most of luma) and with integer
operations where possible:

- detail lost at the display size and at 1/8 of it (mean |difference of Gaussians|);
- the error in that band-pass at 1/4 and 1/8 scale, normalised by the reference's local
  band-pass energy (SSIM's contrast masking);
- the blue-yellow shift at about 40x25 px.

A weighted sum of these five numbers goes through SSIMULACRA2's own final polynomial. The
weights were fitted by non-negative least squares on 540 candidates (6 wallpapers x 5 widths
x 3 formats x 6 qualities) against the package; see bench/delivery.py for the check on other
photos.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import pyvips

from pixfit.registry import ImageFormat

__all__ = [
    "Reference",
    "score",
    "ssimulacra2_polynomial",
]

# SSIM's C2 (0.0009 on a 0..1 scale) in 8-bit units squared: local band-pass energy below
# this does not mask errors.
MASK_FLOOR = 0.0009 * 255 * 255
# Squared band-pass errors up to this many 8-bit levels squared count as none.
DEAD_ZONE = 2
# Scales used: the display size (0), 1/4 (2) and 1/8 (3); 1/2 only links them.
SCALES = 4
# The chroma comparison size: what is left of colour after the eye's low-pass.
CHROMA_WIDTH, CHROMA_HEIGHT = 40, 25
# Fitted weights, in feature order (see _features); the sum is SSIMULACRA2's pre-polynomial
# error. Leave-one-photo-out on the fit set: Spearman 0.987 (0.983-0.997 within a photo),
# mean absolute error 4.3 points.
WEIGHTS = (444.666, 44.481, 65.83, 148.207, 380.262)
IDENTICAL = 100.0
# Per-format corrections onto the reference's scale, as (proxy, SSIMULACRA2) knots joined by
# straight lines. The raw proxy reads AVIF (4:4:4, 10 bits) 6.5 points low above 75, WebP
# about 4.4, JPEG about right. AVIF: 150 candidates (10 wallpapers not in bench/delivery.py's
# set, q15-90 at full width, 0.7x and 0.5x); mean absolute error 7.1 -> 5.0 (leave one photo
# out: 5.7), signed above 75 -6.5 -> -0.2. WebP and JPEG: 360 candidates (12 wallpapers,
# q50-95), pinned to the identity at 60 and 100. What is left is mostly per photo: a grey,
# grainy one reads 6-8 high at every quality, a busy one as much low.
CORRECTIONS: Mapping[ImageFormat, tuple[tuple[float, float], ...]] = {
    ImageFormat.AVIF: ((0, 0), (40, 43.1), (60, 60.7), (70, 72.1), (80, 88.6), (100, 100)),
    ImageFormat.WEBP: ((0, 0), (60, 60), (70, 74.1), (80, 83.1), (90, 88.1), (100, 100)),
    ImageFormat.JPEG: ((0, 0), (60, 60), (70, 70.8), (80, 80.7), (90, 89.4), (100, 100)),
}


def _band_pass(grey: pyvips.Image) -> pyvips.Image:
    """Difference of Gaussians in 8-bit integers: the detail at this scale."""
    return grey - grey.gaussblur(1.0, min_ampl=0.1, precision="integer")


def _stats(image: pyvips.Image) -> tuple[float, float]:
    """Sum and sum of squares of a one-band image."""
    row = image.stats().tolist()[0]
    return float(row[2]), float(row[3])


@dataclass(frozen=True, slots=True)
class _Level:
    """The reference at one scale: only what the features at that scale read."""

    # Mean |band-pass|: how much detail the reference has here (DETAIL_SCALES only).
    detail: float | None
    # The band-pass, and 1 / (local band-pass energy + MASK_FLOOR) (MASKED_SCALES only).
    band_pass: pyvips.Image | None
    mask: pyvips.Image | None


# Which features each scale feeds: detail lost (display size, 1/8), masked band-pass error
# (1/4, 1/8). Nothing else is computed: the float mask at the display size alone was 19 of
# the reference's 66 ms at 1280x800.
DETAIL_SCALES = (0, 3)
MASKED_SCALES = (2, 3)


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference image prepared once, to score many candidates against it."""

    width: int
    height: int
    levels: tuple[_Level, ...]
    chroma: pyvips.Image

    @classmethod
    def of(cls, image: pyvips.Image) -> Reference:
        """Prepare `image` (8-bit sRGB) as the reference."""
        image = image.colourspace("srgb")
        grey = image.extract_band(1)
        levels = []
        for scale in range(SCALES):
            grey = grey.copy_memory()
            detail = band = mask = None
            if scale in DETAIL_SCALES or scale in MASKED_SCALES:
                band = _band_pass(grey).copy_memory()
                detail = band.abs().avg() if scale in DETAIL_SCALES else None
            if band is not None and scale in MASKED_SCALES:
                energy = (
                    (band * band).cast("float").gaussblur(1.5, min_ampl=0.01, precision="float")
                )
                mask = ((energy + MASK_FLOOR) ** -1).copy_memory()
            else:
                band = None
            levels.append(_Level(detail, band, mask))
            grey = grey.shrink(2, 2)
        return cls(image.width, image.height, tuple(levels), _chroma(image).copy_memory())

    def score(self, candidate: pyvips.Image, encoded_as: ImageFormat | None = None) -> float:
        """The candidate's score (SSIMULACRA2 scale); a smaller candidate is scaled up first.

        `encoded_as` names the format whose artifacts the candidate carries, for its
        correction onto the reference's scale (none: the raw proxy).
        """
        features = self._features(candidate.colourspace("srgb"))
        error = sum(w * f for w, f in zip(WEIGHTS, features, strict=True))
        raw = ssimulacra2_polynomial(error)
        knots = CORRECTIONS.get(encoded_as) if encoded_as is not None else None
        return _interpolate(knots, raw) if knots else raw

    def _features(self, candidate: pyvips.Image) -> tuple[float, ...]:
        grey = candidate.extract_band(1)
        if (grey.width, grey.height) != (self.width, self.height):
            grey = grey.resize(
                self.width / grey.width, vscale=self.height / grey.height, kernel="linear"
            )
        lost = []
        masked = []
        for level in self.levels:
            grey = grey.copy_memory()
            band = _band_pass(grey) if level.detail is not None or level.mask is not None else None
            if band is not None and level.detail is not None:
                lost.append(max(0.0, level.detail - band.abs().avg()))
            if band is not None and level.band_pass is not None and level.mask is not None:
                error = band - level.band_pass
                # Errors of a level or two are the 8-bit rounding of any re-encode: invisible.
                squared = error * error - DEAD_ZONE
                _, squares = _stats((squared + squared.abs()) * level.mask * 0.5)
                masked.append((squares / (grey.width * grey.height)) ** 0.5)
            grey = grey.shrink(2, 2)
        shift, _ = _stats((_chroma(candidate) - self.chroma).abs()[2])
        return (
            lost[0] / 255,
            masked[0],
            lost[1] / 255,
            masked[1],
            shift / (CHROMA_WIDTH * CHROMA_HEIGHT) / 100,
        )


def _chroma(image: pyvips.Image) -> pyvips.Image:
    x_factor, y_factor = image.width / CHROMA_WIDTH, image.height / CHROMA_HEIGHT
    if x_factor >= 1 and y_factor >= 1:
        small = image.shrink(x_factor, y_factor)  # a box filter: the cheapest low-pass
    else:  # a candidate smaller than the comparison size (a budget nothing sensible meets)
        small = image.resize(1 / x_factor, vscale=1 / y_factor, kernel="linear")
    return small.colourspace("lab")


def _interpolate(knots: tuple[tuple[float, float], ...], x: float) -> float:
    """The piecewise-linear function through `knots` at `x` (below 0: unchanged)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(knots):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return x


def ssimulacra2_polynomial(error: float) -> float:
    """SSIMULACRA2's final mapping from its weighted error sum to the 100-point scale."""
    x = max(0.0, error) * 0.9562382616834844
    x = 2.326765642916932 * x - 0.020884521182843837 * x * x + 6.248496625763138e-05 * x**3
    return IDENTICAL - 10.0 * x**0.6276336467831387 if x > 0 else IDENTICAL


def score(reference: pyvips.Image, candidate: pyvips.Image) -> float:
    """The perceptual score of `candidate` against `reference` on the SSIMULACRA2 scale."""
    return Reference.of(reference).score(candidate)
