"""The byte-budget search: the best quality, then the largest size, that fits the budget."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pyvips

from pixfit.formats import Encodes

__all__ = [
    "Encoded",
    "Searched",
    "fit_budget",
]

# Prior for the first correction: encoded size falls by about 3.5% per quality step in
# the range the profiles search (JPEG q80 -> q60 halves a photo). Later steps use the
# slope measured between two real encodes instead.
PRIOR_SLOPE = 0.035
# Aim a little under the budget so the predicted quality usually fits first time.
AIM = 0.97
# Encodes per size before settling on the best fit found. Measured on 63 budgets over
# three textured images: with 6 the chosen JPEG or WebP quality is at most 1 step under
# the best that fits (with 5, up to 3).
MAX_ENCODES_PER_SIZE = 6
# Smallest long edge worth sending; below it the search stops shrinking.
MIN_EDGE = 16
MAX_SHRINKS = 8


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encode: its bytes and what produced them."""

    data: bytes
    quality: int
    width: int
    height: int

    @property
    def size(self) -> int:
        """Encoded length in bytes."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Searched:
    """The search's answer."""

    best: Encoded
    # True or False when there was a budget; None when there was none.
    budget_met: bool | None
    # How many encodes the search took (its cost).
    encodes: int


def fit_budget(
    image: pyvips.Image,
    encoder: Encodes,
    quality_max: int,
    quality_min: int,
    budget: int | None,
    *,
    deadline: float = math.inf,
) -> Searched:
    """Search quality, then shrink the image, until the encode fits `budget`.

    Past `deadline` (a `time.monotonic()` value) no new size is tried: the smallest
    encode so far is the answer, so a hopeless budget cannot hold a worker for long.
    """
    if budget is None:
        return Searched(_encode(image, encoder, quality_max), None, 1)
    fitting, smallest, encodes = _search_quality(image, encoder, quality_max, quality_min, budget)
    current = image
    for _ in range(MAX_SHRINKS):
        if fitting is not None:
            return Searched(fitting, True, encodes)
        # Bytes scale roughly with pixel count, so scale each edge by the root of the excess.
        scale = max(0.3, min(0.9, math.sqrt(AIM * budget / smallest.size)))
        if max(current.width, current.height) * scale < MIN_EDGE or time.monotonic() > deadline:
            break
        current = current.resize(scale).copy_memory()
        # The scale aims the floor quality just under the budget, so one encode at the
        # floor settles each smaller size; a second quality search would rarely gain a step.
        trial = _encode(current, encoder, quality_min)
        encodes += 1
        if trial.size <= budget:
            fitting = trial
        elif trial.size < smallest.size:
            smallest = trial
    if fitting is not None:
        return Searched(fitting, True, encodes)
    return Searched(smallest, False, encodes)


def _search_quality(
    image: pyvips.Image, encoder: Encodes, quality_max: int, quality_min: int, budget: int
) -> tuple[Encoded | None, Encoded, int]:
    """The best quality in range that fits, if any; also the lowest-quality encode made."""
    first = _encode(image, encoder, quality_max)
    if first.size <= budget:
        return first, first, 1
    fits: Encoded | None = None
    fails = first
    # The failing encode before `fails`, for the slope while nothing fits yet.
    above: Encoded | None = None
    predicted = quality_max - math.log(first.size / (AIM * budget)) / PRIOR_SLOPE
    encodes = 1
    while encodes < MAX_ENCODES_PER_SIZE:
        low_bound = fits.quality + 1 if fits else quality_min
        quality = max(low_bound, min(fails.quality - 1, math.floor(predicted)))
        if quality >= fails.quality or (fits and quality <= fits.quality):
            break
        trial = _encode(image, encoder, quality)
        encodes += 1
        if trial.size <= budget:
            fits = trial
        else:
            above, fails = fails, trial
        if fits is None and fails.quality == quality_min:
            break
        predicted = _interpolate(fits, fails, above, budget, quality_min)
    return fits, fits or fails, encodes


def _interpolate(
    fits: Encoded | None, fails: Encoded, above: Encoded | None, budget: int, quality_min: int
) -> float:
    """Quality where log(size) crosses the aimed budget, by the secant through two encodes."""
    if fits is None:
        # Extrapolate down along the slope of the last two failures. The prior alone
        # overstates the slope at low qualities, so the steps fell short and the search
        # shrank the image while quality_min at full size would have fitted.
        slope = PRIOR_SLOPE
        if above is not None:
            slope = (math.log(above.size) - math.log(fails.size)) / (above.quality - fails.quality)
        if slope <= 0:
            return quality_min  # quality does not buy bytes here (a PNG palette): try the floor
        return fails.quality - math.log(fails.size / (AIM * budget)) / slope
    if fails.quality - fits.quality <= 1:
        return fits.quality
    slope = (math.log(fails.size) - math.log(fits.size)) / (fails.quality - fits.quality)
    if slope <= 0:
        return fits.quality + 1
    # Aim at the budget itself here: the bracket already holds a fitting encode.
    return max(quality_min, fits.quality + math.log(budget / fits.size) / slope)


def _encode(image: pyvips.Image, encoder: Encodes, quality: int) -> Encoded:
    return Encoded(encoder.encode(image, quality), quality, image.width, image.height)
