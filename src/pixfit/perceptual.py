"""The server's perceptual score: a cheap proxy calibrated onto the SSIMULACRA2 scale.

SSIMULACRA2 itself (XYB, six scales, SSIM and edge maps) ported to libvips operations matched
the `ssimulacra2` package within about 1 point but took about 1 s per 1280x800 pair on one
libvips thread, so the request path cannot afford it. This proxy measures what dominated
SSIMULACRA2's terms on real photos: the error in the detail band (a difference of Gaussians)
of the green channel (most of luma) at 1/2, 1/8 and 1/16 of the display size, normalised by
the reference's local band-pass energy there (SSIM's contrast masking).

libvips halves the image once (a box filter, in 8 bits); numpy does the rest. At these sizes
every libvips operation costs a millisecond or two of set-up (a convolution on 160x100 took
2 ms), against tens of microseconds of arithmetic, so numpy made a 1280x800 score 3-4x cheaper.

A weighted sum of the three errors goes through SSIMULACRA2's own final polynomial. The
weights and the per-format corrections were fitted by bench/proxy_fit.py on 342 candidates
(bench/proxy_calibration.csv: 18 wallpapers; JPEG and WebP q50-95, AVIF 4:4:4 10-bit q15-90
at 1, 0.7 and 0.5 of the width) against the `ssimulacra2` package. Leaving each photo out in
turn: mean absolute error 3.5 points, Spearman 0.977 (0.990 within a photo). The libvips proxy
it replaced (five features, 8-bit band-passes with a dead zone) was 5.8 points off on the same
candidates before its corrections.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from pixfit.registry import ImageFormat

__all__ = [
    "Reference",
    "score",
    "ssimulacra2_polynomial",
]

Plane = npt.NDArray[np.floating[Any]]

# SSIM's C2 (0.0009 on a 0..1 scale) in 8-bit units squared: local band-pass energy below
# this does not mask errors.
MASK_FLOOR = 0.0009 * 255 * 255
# Fitted weights of the masked band-pass error per scale (1 = half the display size, 4 =
# 1/16); the sum is SSIMULACRA2's pre-polynomial error. 1/4 got no weight: it is only the
# step between 1/2 and 1/8.
WEIGHTS: Mapping[int, float] = {1: 20.592, 3: 119.248, 4: 301.331}
IDENTICAL = 100.0
# Per-format corrections onto the reference's scale, as (proxy, SSIMULACRA2) knots joined by
# straight lines, fitted on the same candidates: the proxy reads JPEG about 3 points high,
# WebP about 2, AVIF about right. What is left is mostly per photo (one reads 12 high, one
# 4 low at every quality).
CORRECTIONS: Mapping[ImageFormat, tuple[tuple[float, float], ...]] = {
    ImageFormat.AVIF: ((0, 0), (50, 50.8), (90, 88.0), (100, 100)),
    ImageFormat.WEBP: ((0, 0), (50, 49.7), (90, 87.3), (100, 100)),
    ImageFormat.JPEG: ((0, 0), (50, 47.9), (90, 86.1), (100, 100)),
}
# The detail band is the plane minus its blur by libvips' gaussmat(1.0, min_ampl=0.1); the
# masking energy is the squared band blurred by gaussmat(1.5, min_ampl=0.01).
DETAIL_KERNEL = np.array([3, 12, 20, 12, 3], np.float32) / 50
MASK_KERNEL = np.exp(-(np.arange(-4, 5, dtype=np.float32) ** 2) / (2 * 1.5**2))
MASK_KERNEL /= MASK_KERNEL.sum()


@dataclass(frozen=True, slots=True)
class _Level:
    """The reference at one scale."""

    scale: int
    band_pass: Plane
    # 1 / (local band-pass energy + MASK_FLOOR): errors count less where detail hides them.
    mask: Plane


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference image prepared once, to score many candidates against it."""

    width: int
    height: int
    levels: tuple[_Level, ...]

    @classmethod
    def of(cls, image: pyvips.Image, scales: Collection[int] = tuple(WEIGHTS)) -> Reference:
        """Prepare `image` (any colour space libvips can turn into sRGB) as the reference.

        `scales` are those `errors` measures (1 = half the size); `score` needs WEIGHTS'.
        """
        grey = image.colourspace("srgb").extract_band(1)
        levels = []
        for scale, plane in enumerate(_pyramid(grey, max(scales)), start=1):
            if scale in scales:
                band = _band_pass(plane)
                levels.append(_Level(scale, band, _mask(band)))
        return cls(grey.width, grey.height, tuple(levels))

    def errors(self, candidate: pyvips.Image) -> dict[int, float]:
        """The masked band-pass error at each prepared scale; a smaller candidate is scaled
        up to the reference's size first."""
        grey = candidate.colourspace("srgb").extract_band(1)
        if (grey.width, grey.height) != (self.width, self.height):
            grey = grey.resize(
                self.width / grey.width, vscale=self.height / grey.height, kernel="linear"
            )
        planes = dict(enumerate(_pyramid(grey, self.levels[-1].scale), start=1))
        return {level.scale: _masked_error(level, planes[level.scale]) for level in self.levels}

    def score(self, candidate: pyvips.Image, encoded_as: ImageFormat | None = None) -> float:
        """The candidate's score (SSIMULACRA2 scale).

        `encoded_as` names the format whose artifacts the candidate carries, for its
        correction onto the reference's scale (none: the raw proxy).
        """
        errors = self.errors(candidate)
        raw = ssimulacra2_polynomial(sum(WEIGHTS[scale] * errors[scale] for scale in WEIGHTS))
        knots = CORRECTIONS.get(encoded_as) if encoded_as is not None else None
        return _interpolate(knots, raw) if knots else raw


def _pyramid(grey: pyvips.Image, depth: int) -> Iterator[Plane]:
    """The one-band `grey` at 1/2, 1/4, ... 1/2**depth of its size."""
    # The one libvips step: the only plane big enough for libvips to be worth its set-up.
    half = grey.shrink(2, 2)
    # numpy() drops axes of length 1; a 1-pixel-high image is still a plane.
    plane: Plane = half.numpy().astype(np.float32).reshape(half.height, half.width)
    yield plane
    for _ in range(depth - 1):
        plane = _halve(plane)
        yield plane


def _halve(plane: Plane) -> Plane:
    """A 2x2 box average; an odd last row or column is repeated, as libvips' shrink does."""
    height, width = plane.shape
    if height % 2 or width % 2:
        plane = np.pad(plane, ((0, height % 2), (0, width % 2)), mode="edge")
    total = plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]
    return total * np.float32(0.25)


def _blur(plane: Plane, kernel: Plane) -> Plane:
    """A separable convolution by a symmetric `kernel`, edges repeated.

    In place where it can be: at a 5 MP display size each plane is 5 MB, and temporaries
    added 10 MiB to a render's peak (bench/pipeline.py, section 3).
    """
    radius = len(kernel) // 2
    height, width = plane.shape
    padded: Plane = np.pad(plane, radius, mode="edge")
    rows = padded[:, radius : radius + width] * kernel[radius]
    pair = np.empty_like(rows)
    for i in range(radius):
        np.add(padded[:, i : i + width], padded[:, 2 * radius - i :][:, :width], out=pair)
        pair *= kernel[i]
        rows += pair
    del padded
    out: Plane = rows[radius : radius + height] * kernel[radius]
    pair = pair[:height]
    for i in range(radius):
        np.add(rows[i : i + height], rows[2 * radius - i :][:height], out=pair)
        pair *= kernel[i]
        out += pair
    return out


def _band_pass(plane: Plane) -> Plane:
    """Difference of Gaussians: the detail at this scale."""
    blurred = _blur(plane, DETAIL_KERNEL)
    return np.subtract(plane, blurred, out=blurred)


def _mask(band: Plane) -> Plane:
    """1 / (local band-pass energy + MASK_FLOOR)."""
    energy = _blur(band * band, MASK_KERNEL)
    energy += MASK_FLOOR
    return np.reciprocal(energy, out=energy)


def _masked_error(level: _Level, plane: Plane) -> float:
    """Root mean square of the band-pass error squared and weighted by the reference's mask."""
    error = _band_pass(plane)
    error -= level.band_pass
    error *= error
    error *= level.mask
    np.square(error, out=error)
    return math.sqrt(float(error.sum(dtype=np.float64)) / error.size)


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
