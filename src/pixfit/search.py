"""The joint width x format x quality search: the smallest image that reaches a perceptual target.

The rule (DESIGN, "Bandwidth profiles"): send the smallest response that reaches `target`; if no
candidate within `budget` reaches it, the best score that fits; if nothing fits, the smallest
output, with `budget_met` False. Every candidate is scored at the display size (the size of
`image`) by `perceptual.Reference.score`, after decoding its own bytes.

Fast mode spends a few encodes: per format, a secant search on quality at one or two widths of a
coarse ladder, the first width predicted from bytes ~ pixels^0.7 (measured: 0.68-0.73 for
AVIF, WebP and JPEG on 6 wallpapers). Exhaustive mode tries every width of a fine ladder with
every encoder and binary-searches quality, for offline pre-rendering.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyvips

from pixfit.budget import fit_budget
from pixfit.formats import Encodes
from pixfit.perceptual import Reference
from pixfit.registry import ImageFormat

__all__ = [
    "MAX_SEARCHED_PIXELS",
    "Candidate",
    "Choice",
    "budget_edge",
    "choose",
    "ladder",
    "start_quality",
]

# Bytes grow about as pixels^0.7 at a fixed quality (fit over 540 encodes of 6 photos).
PIXEL_EXPONENT = 0.7
# log(bytes) per quality step, per format (same fit): the secant's first step.
RATE_SLOPE = {ImageFormat.AVIF: 0.034, ImageFormat.WEBP: 0.019, ImageFormat.JPEG: 0.026}
DEFAULT_RATE_SLOPE = 0.03
# Score points per quality step between targets 60 and 85 (reference SSIMULACRA2 on 12
# wallpapers at 1280x800), for the first step toward a target; later steps use the slope
# measured between two scored encodes.
SCORE_SLOPE = {ImageFormat.AVIF: 0.6, ImageFormat.WEBP: 0.6, ImageFormat.JPEG: 0.7}
DEFAULT_SCORE_SLOPE = 0.6
# The quality a budget should buy at the chosen width: below it, artifacts cost more than the
# lost pixels (measured winners under 12-25 KB: AVIF 4:2:0 q15-60, WebP q15-60). AVIF 4:4:4 at
# 10 bits holds up lower: under 12-25 KB at 1280x800 the full width at q34-54 beat every
# narrower width at its own budget quality by 2-10 points (bench/delivery.py photos).
PIVOT_QUALITY = {ImageFormat.AVIF: 20, ImageFormat.WEBP: 50, ImageFormat.JPEG: 50}
# The first quality tried without a budget: where the reference reached START_SCORE on
# average (WebP and JPEG: 12 wallpapers, WebP 80-95, JPEG 77-92; AVIF 4:4:4 at 10 bits: 10
# others, 59-82). Other targets start SCORE_SLOPE points per quality step away.
START_QUALITY = {ImageFormat.AVIF: 72, ImageFormat.WEBP: 91, ImageFormat.JPEG: 87}
DEFAULT_START_QUALITY = 85
START_SCORE = 85
# Displays larger than this (a 2880x1800 laptop screen) are not searched: each scored step
# would cost over half a second there. They are encoded once at start_quality().
MAX_SEARCHED_PIXELS = 5_300_000
# Below this many bytes per pixel no format holds a photo together, so a budget bounds the
# display size too: 12 KB pays for 0.6 MP, 100 KB for 5 MP. The brute force's winners on the
# bench photos used 0.012-0.1 bytes per pixel (a smooth 1280x800 sky at 12 KB is the low
# end, and a width that gives fewer bytes per pixel never won); at 0.008 an 8000x6000
# source asked for at 3g was searched at 10 MP and took 188 MiB.
MIN_BYTES_PER_PIXEL = 0.02
# ...but never below a 1280x1024 screen: the bound is for huge sources, and the ladder still
# goes narrower where the search finds it better. For 12 KB the brute force's best was 960 px
# or wider on 3 of 8 bench photos, and the proxy misreads narrow candidates scaled back up
# (a 979 px WebP read 57, the reference 14), so the search should see the full width.
MIN_BOUNDED_PIXELS = 1280 * 1024
# Narrowest width worth sending (unless the image itself is narrower).
MIN_WIDTH = 320
# Ladder steps: a width is this fraction of the next wider one.
FAST_STEP = 0.71
EXHAUSTIVE_STEP = 0.9
# Quality searches stop within this many steps: bytes toward a budget; score toward a target
# from below (no budget: the target must be reached) and down from an overshoot (a budget's
# winner that beats the target: what the last step would save is a few percent of bytes).
FAST_ENCODES_PER_WIDTH = 4
FAST_TARGET_ENCODES = 3
FAST_TRIM_ENCODES = 2
# A fitting encode that fills this much of the budget ends the quality search at its width:
# the step above buys about a point. Three encodes and no such stop left 36% of a 100 KB
# budget unused on a busy photo (bench/delivery.py, Path at 3g: q40 for 64 KB where q48 fit).
BUDGET_FILL = 0.9
# ...but where bytes are scarce (SCARCE_BYTES_PER_PIXEL) the last tenth of the budget is
# worth its encodes, which are of narrow widths and cheap: at 12 KB a 320 px WebP at q64
# used 92% of the budget and scored 9 points under q74, which fit (bench/delivery.py,
# EveningGlow at slow-2g).
SCARCE_BUDGET_FILL = 0.97
# From this many bytes per display pixel the target usually costs less than the budget, so
# fast mode tries it first (see `_target_first`): the 3g budget at 1280x800 (0.1) bought JPEG
# q79 where the target wanted q72 (bench/pipeline.py), and 2g's (0.024) rarely reached its
# target at all. The first encode is this many quality steps above the calibrated start, so
# that most photos reach the aim with it and only trim.
AMPLE_BYTES_PER_PIXEL = 0.05
TARGET_FIRST_LIFT = 3
# Below this many bytes per display pixel a second format is tried in fast mode: WebP beat
# AVIF 4:2:0 under 12-25 KB at 1280x800 (0.01-0.02), and cost the same search again. AVIF
# 4:4:4 at 10 bits beat WebP at every width under 25 KB (0.024); under 12 KB (0.012) WebP
# still won where nothing holds together (busy photos at 320 px).
SCARCE_BYTES_PER_PIXEL = 0.015
# Without a budget, fast mode climbs at most this many quality steps above the calibrated
# start for its aim. Where the proxy reads a photo low, climbing on bought a point or two
# for 2-5x the bytes: JPEG went to q94-95 and sent 1.2-5.7x the bytes of q85 on 8
# wallpapers; AVIF went to q94-95 on two busy ones (600-680 KB). The same window under a
# budget cost slow-2g 6 points of gap on the bench (its aims start at AVIF q25). AVIF at 10
# bits spreads wider (q59-82 reached 85), hence 8 steps rather than 4: its window for the
# default wifi aim (q74) then ends at the AVIF ceiling below.
HEADROOM = 8
# The highest quality fast mode uses, with or without a budget: the top of the unbudgeted
# window for the default wifi target, so that a budget never buys a slower class more
# quality than wifi gets. JPEG also stays under q90, where libjpeg stops subsampling chroma
# and the bytes nearly double for a point or two.
QUALITY_CEILING = {ImageFormat.AVIF: 82, ImageFormat.JPEG: 89}
# Score points fast mode aims above the target (see `choose`). Without a budget every point
# costs bytes on the largest responses: there the per-format corrections alone landed AVIF
# picks at a mean of 84.8 for a target of 85 (12 wallpapers, reference SSIMULACRA2), and 2.5
# points more doubled a dark photo's bytes.
FAST_TARGET_MARGIN = 2.5
FAST_UNBUDGETED_MARGIN = 1.0
# Score points above the aim that are worth trading for bytes in fast mode.
TARGET_SLACK = 1.5


@dataclass(frozen=True, slots=True)
class Candidate:
    """One scored encode."""

    data: bytes
    format: ImageFormat
    quality: int
    width: int
    height: int
    # Perceptual score at the display size (SSIMULACRA2 scale; 100 = identical).
    score: float


@dataclass(frozen=True, slots=True)
class Choice:
    """The search's answer and its cost."""

    best: Candidate
    # True or False when there was a budget; None when there was none.
    budget_met: bool | None
    # The best candidate's score reaches the target.
    target_met: bool
    encodes: int
    scored: int


class _PastDeadline(Exception):
    """The deadline passed."""


@dataclass(slots=True)
class _Run:
    """Mutable bookkeeping of one search: the reference, sizes, counters, best so far."""

    image: pyvips.Image
    reference: Reference
    budget: int | None
    target: float
    deadline: float
    sizes: dict[int, pyvips.Image]
    encodes: int = 0
    scored: int = 0
    best: Candidate | None = None

    def resized(self, width: int) -> pyvips.Image:
        if width not in self.sizes:
            scale = width / self.image.width
            self.sizes[width] = self.image.resize(scale).copy_memory()
        return self.sizes[width]

    def encode(self, encoder: Encodes, width: int, quality: int) -> bytes:
        if self.best is not None and time.monotonic() > self.deadline:
            raise _PastDeadline
        self.encodes += 1
        return encoder.encode(self.resized(width), quality)

    def candidate(self, encoder: Encodes, quality: int, data: bytes) -> Candidate:
        """Score `data` at the display size and remember the best candidate so far."""
        self.scored += 1
        decoded = pyvips.Image.new_from_buffer(data, "")
        score = self.reference.score(decoded, encoder.format)
        found = Candidate(data, encoder.format, quality, decoded.width, decoded.height, score)
        if self.best is None or _rank(found, self) > _rank(self.best, self):
            self.best = found
        return found

    def fits(self, size: int) -> bool:
        return self.budget is None or size <= self.budget


def _rank(candidate: Candidate, run: _Run) -> tuple[int, float]:
    """Order by the rule: fitting and on target (smaller wins), fitting (score wins), smaller."""
    size = len(candidate.data)
    if not run.fits(size):
        return (0, -size)
    if candidate.score >= run.target:
        return (2, -size)
    return (1, candidate.score)


def choose(
    image: pyvips.Image,
    encoders: Sequence[Encodes],
    *,
    budget: int | None,
    target: float,
    quality_min: int = 10,
    quality_max: int = 95,
    exhaustive: bool = False,
    deadline: float = math.inf,
) -> Choice:
    """The best candidate by the rule, over widths, `encoders` and qualities."""
    if not encoders:
        raise ValueError("Expected at least one encoder")
    # Fast mode aims a little above the target: the proxy's error on one photo is about
    # 4-5 points either way, and a pick trimmed to the target itself missed it half the time.
    margin = FAST_TARGET_MARGIN if budget is not None else FAST_UNBUDGETED_MARGIN
    aim = target if exhaustive else min(100.0, target + margin)
    run = _Run(image, Reference.of(image), budget, aim, deadline, {image.width: image})
    strategy: Callable[[_Run, Sequence[Encodes], int, int], None] = (
        _exhaustive if exhaustive else _fast
    )
    with contextlib.suppress(_PastDeadline):
        strategy(run, encoders, quality_min, quality_max)
        if budget is not None and run.best is not None and not run.fits(len(run.best.data)):
            _shrink_until_fits(run, encoders[0], quality_min)
    assert run.best is not None  # the first encode ignores the deadline
    best = run.best
    return Choice(
        best,
        None if budget is None else len(best.data) <= budget,
        best.score >= target,
        run.encodes,
        run.scored,
    )


def start_quality(format: ImageFormat, target: float) -> int:
    """The quality that reached `target` on average for `format` on the calibration photos."""
    anchor = START_QUALITY.get(format, DEFAULT_START_QUALITY)
    slope = SCORE_SLOPE.get(format, DEFAULT_SCORE_SLOPE)
    return round(anchor + (target - START_SCORE) / slope)


def budget_edge(budget: int, width: int, height: int) -> int:
    """The longest edge a `width` x `height` image may keep so that `budget` still pays for it."""
    pixels = max(budget / MIN_BYTES_PER_PIXEL, MIN_BOUNDED_PIXELS)
    return max(1, math.floor(math.sqrt(pixels * max(width, height) / min(width, height))))


def ladder(width: int, step: float) -> list[int]:
    """Widths from `width` down by `step` to MIN_WIDTH (just `width` if it is narrower)."""
    widths = [width]
    while widths[-1] * step >= MIN_WIDTH:
        widths.append(round(widths[-1] * step))
    return widths


# --- fast ----------------------------------------------------------------------------------


def _fast(run: _Run, encoders: Sequence[Encodes], quality_min: int, quality_max: int) -> None:
    widths = ladder(run.image.width, FAST_STEP)
    if run.budget is None:
        encoder = encoders[0]
        start = start_quality(encoder.format, run.target)
        ceiling = _window_top(encoder, run.target, quality_min, quality_max)
        _toward_target(run, encoder, widths[0], start, quality_min, ceiling)
        return
    pixels = run.image.width * run.image.height
    known: dict[tuple[int, int], bytes] = {}
    if run.budget >= pixels * AMPLE_BYTES_PER_PIXEL and _target_first(
        run, encoders[0], widths[0], quality_min, quality_max, known
    ):
        return
    # A second format only where bytes are scarce (see SCARCE_BYTES_PER_PIXEL).
    scarce = run.budget < pixels * SCARCE_BYTES_PER_PIXEL
    fits = [
        _fast_budget(
            run, encoder, widths, quality_min, _ceiling(encoder, quality_min, quality_max),
            scarce, known if i == 0 else {},
        )
        for i, encoder in enumerate(encoders[: 2 if scarce else 1])
    ]  # fmt: skip
    best = run.best
    if scarce and best is not None and run.fits(len(best.data)) and best.score < run.target:
        # Where nothing holds together, fewer pixels at a higher quality often look better:
        # at 12 KB the brute force's best was 320 px on busy photos, where the prediction
        # stopped at 909 px and scored 5-7 points lower (bench/delivery.py, FallenLeaf and
        # Path at slow-2g). Not where a format reaches the target: narrower loses detail
        # there, and walking from the full width cost 1-2 fixed renders a format.
        for fit in fits:
            _narrower(run, fit, widths, quality_min, quality_max)
    # Then, once, for the winner only: no byte more than the target needs.
    best = run.best
    if best is not None and run.fits(len(best.data)) and best.score >= run.target + TARGET_SLACK:
        encoder = next(e for e in encoders if e.format == best.format)
        _toward_target(
            run, encoder, best.width, best.quality, quality_min, best.quality,
            seed=best, encodes=FAST_TRIM_ENCODES,
        )  # fmt: skip


def _target_first(
    run: _Run,
    encoder: Encodes,
    width: int,
    quality_min: int,
    quality_max: int,
    known: dict[tuple[int, int], bytes],
) -> bool:
    """Where the budget is ample, try the target before the budget: one encode a little above
    the quality that reaches it on average, then a secant on the score toward the target.

    False when that encode does not fit, or the climb meets the budget before the target
    (the first encode stays in `known` for the budget's secant). Filling an ample budget
    first and trimming back cost 4-6 encodes a render.
    """
    ceiling = _ceiling(encoder, quality_min, quality_max)
    start = start_quality(encoder.format, run.target) + TARGET_FIRST_LIFT
    quality = _clamp(start, quality_min, ceiling)
    data = run.encode(encoder, width, quality)
    known[(width, quality)] = data
    if not run.fits(len(data)):
        return False
    found = run.candidate(encoder, quality, data)
    if found.score >= run.target + TARGET_SLACK:  # trim
        _toward_target(
            run, encoder, width, quality, quality_min, quality,
            seed=found, encodes=FAST_TRIM_ENCODES,
        )  # fmt: skip
    elif found.score < run.target:  # climb, within the budget
        _toward_target(run, encoder, width, quality, quality, ceiling, seed=found)
        best = run.best
        # An encode over the budget ends the climb: the budget binds after all, so fit it.
        return best is not None and best.score >= run.target and run.fits(len(best.data))
    return True


@dataclass(frozen=True, slots=True)
class _Fit:
    """One format's budget fit: its first candidate, the encodes made by (width, quality) for
    later secants to start from, and the share of the budget that ends a secant."""

    encoder: Encodes
    first: Candidate
    known: dict[tuple[int, int], bytes]
    fill: float


def _fast_budget(
    run: _Run,
    encoder: Encodes,
    widths: list[int],
    quality_min: int,
    quality_max: int,
    scarce: bool,
    known: dict[tuple[int, int], bytes],
) -> _Fit:
    """Fit the budget at the predicted width, and at one neighbour if the quality hit an end.

    `known` holds this format's encodes so far, by (width, quality), and gains the new ones."""
    assert run.budget is not None
    pivot = PIVOT_QUALITY.get(encoder.format, 50)
    probe_width = widths[min(len(widths) - 1, len(widths) // 2)]
    probe = run.encode(encoder, probe_width, pivot)
    # bytes(width, q) ~ probe * (pixels ratio)^0.7 * exp(slope * (q - pivot)): the widest
    # width whose budget quality is at least the pivot.
    index = len(widths) - 1
    for i, width in enumerate(widths):
        predicted = len(probe) * (width / probe_width) ** (2 * PIXEL_EXPONENT)
        if predicted <= run.budget:
            index = i
            break
    known[(probe_width, pivot)] = probe
    fill = SCARCE_BUDGET_FILL if scarce else BUDGET_FILL

    def fitted(width: int) -> Candidate:
        return _fit_quality(run, encoder, width, quality_min, quality_max, known, fill)

    first = fitted(widths[index])
    # A neighbour when the quality hit an end of its range: at the floor the width is too
    # large for the budget, at the ceiling the budget could pay for more pixels.
    if first.quality == quality_min and index + 1 < len(widths):
        fitted(widths[index + 1])
    elif first.quality == quality_max and index > 0:
        fitted(widths[index - 1])
    return _Fit(encoder, first, known, fill)


def _narrower(run: _Run, fit: _Fit, widths: list[int], quality_min: int, quality_max: int) -> None:
    """Fit the budget at ladder widths narrower than `fit`'s while the score rises."""
    best = fit.first
    top = _ceiling(fit.encoder, quality_min, quality_max)
    for width in (w for w in widths if w < best.width):
        found = _fit_quality(run, fit.encoder, width, quality_min, top, fit.known, fit.fill)
        if found.score <= best.score:
            return
        best = found


def _fit_quality(
    run: _Run,
    encoder: Encodes,
    width: int,
    quality_min: int,
    quality_max: int,
    known: dict[tuple[int, int], bytes],
    fill: float,
) -> Candidate:
    """The highest quality that fits the budget at `width`, by a secant on log(bytes), stopping
    once a fitting encode fills `fill` of the budget."""
    assert run.budget is not None
    slope = RATE_SLOPE.get(encoder.format, DEFAULT_RATE_SLOPE)
    nearest = min(known, key=lambda k: abs(k[0] - width))
    base = len(known[nearest]) * (width / nearest[0]) ** (2 * PIXEL_EXPONENT)
    quality = _clamp(
        nearest[1] + math.log(0.95 * run.budget / base) / slope, quality_min, quality_max
    )
    fits: tuple[int, bytes] | None = None
    fails: tuple[int, bytes] | None = None
    for _ in range(FAST_ENCODES_PER_WIDTH):
        data = known.get((width, quality)) or run.encode(encoder, width, quality)
        known[(width, quality)] = data
        if len(data) <= run.budget:
            fits = (quality, data) if fits is None or quality > fits[0] else fits
        else:
            fails = (quality, data) if fails is None or quality < fails[0] else fails
        if fails is not None and fails[0] == quality_min:
            break
        if fits is not None and (
            fits[0] == quality_max
            or len(fits[1]) >= fill * run.budget
            or (fails and fails[0] - fits[0] <= 1)
        ):
            break
        quality = _next_quality(fits, fails, run.budget, slope, quality_min, quality_max)
        if (fits and quality <= fits[0]) or (fails and quality >= fails[0]):
            break
    chosen = fits or fails
    assert chosen is not None
    return run.candidate(encoder, chosen[0], chosen[1])


def _next_quality(
    fits: tuple[int, bytes] | None,
    fails: tuple[int, bytes] | None,
    budget: int,
    slope: float,
    quality_min: int,
    quality_max: int,
) -> int:
    points = [p for p in (fits, fails) if p is not None]
    if len(points) == 2 and fits and fails:
        measured = (math.log(len(fails[1])) - math.log(len(fits[1]))) / (fails[0] - fits[0])
        slope = measured if measured > 0 else slope
        quality = fits[0] + math.log(budget / len(fits[1])) / slope
        return _clamp(quality, fits[0] + 1, fails[0] - 1)
    quality, data = points[0]
    return _clamp(quality + math.log(0.95 * budget / len(data)) / slope, quality_min, quality_max)


def _toward_target(
    run: _Run,
    encoder: Encodes,
    width: int,
    start: int,
    quality_min: int,
    quality_max: int,
    *,
    seed: Candidate | None = None,
    encodes: int = FAST_TARGET_ENCODES,
) -> None:
    """The lowest quality at `width` that reaches the target (and fits), by a secant on score.

    `seed` is a candidate already scored at this width, which the secant starts from
    instead of encoding `start`.
    """
    low: Candidate | None = None  # highest quality known to miss the target
    high: Candidate | None = None  # lowest quality known to reach it
    if seed is not None:
        high = seed if seed.score >= run.target and run.fits(len(seed.data)) else None
        low = None if high is not None else seed
        start = round(seed.quality + (run.target - seed.score) / _score_slope(encoder))
    quality = _clamp(start, quality_min, quality_max)
    for _ in range(encodes):
        if (high and quality >= high.quality) or (low and quality <= low.quality):
            break
        data = run.encode(encoder, width, quality)
        found = run.candidate(encoder, quality, data)
        if found.score >= run.target and run.fits(len(data)):
            high = found if high is None or quality < high.quality else high
        else:
            low = found if low is None or quality > low.quality else low
        if high and low and high.quality - low.quality <= 2:
            break
        if high and high.score < run.target + TARGET_SLACK:
            break
        if high and low:
            step = (high.score - low.score) / max(1, high.quality - low.quality)
            guess = low.quality + (run.target - low.score) / max(step, 0.1)
            quality = _clamp(guess, low.quality + 1, high.quality - 1)
        else:
            point = high or low
            assert point is not None
            quality = _clamp(
                point.quality + (run.target - point.score) / _score_slope(encoder),
                quality_min,
                quality_max,
            )


def _shrink_until_fits(run: _Run, encoder: Encodes, quality_min: int) -> None:
    """Below the ladder: nothing sensible fits, so give up pixels, at the floor, until it does."""
    assert run.budget is not None
    smallest = run.sizes[min(run.sizes)]
    fitted = fit_budget(
        smallest, encoder, quality_min, quality_min, run.budget, deadline=run.deadline
    ).best
    run.encodes += 1
    run.candidate(encoder, fitted.quality, fitted.data)


def _ceiling(encoder: Encodes, quality_min: int, quality_max: int) -> int:
    """The highest quality fast mode spends under a budget (QUALITY_CEILING)."""
    return max(quality_min, min(quality_max, QUALITY_CEILING.get(encoder.format, quality_max)))


def _window_top(encoder: Encodes, aim: float, quality_min: int, quality_max: int) -> int:
    """The highest quality fast mode spends on `aim` without a budget: the calibrated start
    plus the headroom, and never past the format's ceiling."""
    top = _ceiling(encoder, quality_min, quality_max)
    return max(quality_min, min(top, start_quality(encoder.format, aim) + HEADROOM))


def _score_slope(encoder: Encodes) -> float:
    return SCORE_SLOPE.get(encoder.format, DEFAULT_SCORE_SLOPE)


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


# --- exhaustive ----------------------------------------------------------------------------


def _exhaustive(run: _Run, encoders: Sequence[Encodes], quality_min: int, quality_max: int) -> None:
    """Every width x encoder; the highest fitting quality, then the lowest reaching the target."""
    # The fast ladder's widths too, so exhaustive mode sees every candidate fast mode can.
    widths = {*ladder(run.image.width, EXHAUSTIVE_STEP), *ladder(run.image.width, FAST_STEP)}
    for width in sorted(widths, reverse=True):
        for encoder in encoders:
            top = _highest_fitting(run, encoder, width, quality_min, quality_max)
            found = run.candidate(encoder, top[0], top[1])
            if found.score < run.target or not run.fits(len(found.data)):
                continue
            low, high = quality_min, found.quality
            while high - low > 1:
                middle = (low + high) // 2
                trial = run.candidate(encoder, middle, run.encode(encoder, width, middle))
                if trial.score >= run.target:
                    high = middle
                else:
                    low = middle


def _highest_fitting(
    run: _Run, encoder: Encodes, width: int, quality_min: int, quality_max: int
) -> tuple[int, bytes]:
    """Binary search on real encodes; the floor's encode when nothing fits."""
    top = run.encode(encoder, width, quality_max)
    if run.fits(len(top)):
        return quality_max, top
    floor = run.encode(encoder, width, quality_min)
    if not run.fits(len(floor)):
        return quality_min, floor
    low, high, best = quality_min, quality_max, floor
    while high - low > 1:
        middle = (low + high) // 2
        data = run.encode(encoder, width, middle)
        if run.fits(len(data)):
            low, best = middle, data
        else:
            high = middle
    return low, best
