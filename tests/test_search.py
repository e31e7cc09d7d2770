"""The joint search on generated images: the rule, budgets, auto quality, exhaustive, deadline."""

from __future__ import annotations

import pytest
import pyvips

from pixfit.formats import Encoder
from pixfit.perceptual import Reference
from pixfit.registry import ImageFormat
from pixfit.search import (
    AMPLE_BYTES_PER_PIXEL,
    FAST_TARGET_ENCODES,
    FAST_UNBUDGETED_MARGIN,
    HEADROOM,
    MIN_BOUNDED_PIXELS,
    MIN_BYTES_PER_PIXEL,
    budget_edge,
    choose,
    start_quality,
)

WIDTH, HEIGHT = 480, 300
ENCODERS = [Encoder(ImageFormat.AVIF, palette=True), Encoder(ImageFormat.WEBP, palette=True)]


def _srgb(image: pyvips.Image) -> pyvips.Image:
    return image.cast("uchar").copy(interpretation="srgb").copy_memory()


@pytest.fixture(scope="module")
def gradient() -> pyvips.Image:
    x = pyvips.Image.xyz(WIDTH, HEIGHT)
    return _srgb((x[0] * (255 / WIDTH)).bandjoin([x[1] * (255 / HEIGHT), x[0] * 0 + 96]))


@pytest.fixture(scope="module")
def noise() -> pyvips.Image:
    return _srgb(
        pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=50, mean=128, seed=1).bandjoin([128, 128])
    )


@pytest.fixture(scope="module")
def photo(gradient: pyvips.Image) -> pyvips.Image:
    return _srgb(gradient + pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=14, mean=0, seed=2))


def test_a_smooth_gradient_reaches_the_target_in_fewer_bytes_than_noise(
    gradient: pyvips.Image, noise: pyvips.Image
) -> None:
    smooth = choose(gradient, ENCODERS, budget=None, target=70)
    busy = choose(noise, ENCODERS, budget=None, target=70)
    assert smooth.target_met
    assert len(smooth.best.data) < len(busy.best.data)


@pytest.mark.parametrize("budget", [1_500, 4_000, 12_000, 40_000])
def test_the_budget_is_never_exceeded_when_it_can_be_met(photo: pyvips.Image, budget: int) -> None:
    choice = choose(photo, ENCODERS, budget=budget, target=90)
    assert choice.budget_met is True
    assert len(choice.best.data) <= budget


def test_an_impossible_budget_gives_the_smallest_output(photo: pyvips.Image) -> None:
    choice = choose(photo, ENCODERS, budget=10, target=50)
    assert choice.budget_met is False
    assert not choice.target_met


def test_no_budget_gives_the_lowest_quality_reaching_the_target(photo: pyvips.Image) -> None:
    choice = choose(photo, ENCODERS[:1], budget=None, target=75, exhaustive=True)
    best = choice.best
    assert choice.budget_met is None and choice.target_met and best.score >= 75
    image = photo.resize(best.width / WIDTH).copy_memory()
    lower = ENCODERS[0].encode(image, best.quality - 1)
    # Scored as the search scores: corrected for the format's artifacts.
    assert Reference.of(photo).score(pyvips.Image.new_from_buffer(lower, ""), best.format) < 75


def test_without_a_budget_fast_mode_climbs_only_within_its_calibrated_window(
    gradient: pyvips.Image, photo: pyvips.Image
) -> None:
    # A smooth image reaches the target inside the window.
    smooth = choose(gradient, ENCODERS, budget=None, target=75)
    assert smooth.target_met and smooth.budget_met is None
    # Noise needs far more than photos do; rather than spend 2-5x the bytes for the last
    # points, the climb stops at the window's top (the calibrated start plus the headroom).
    noisy = choose(photo, ENCODERS, budget=None, target=75)
    aim = 75 + FAST_UNBUDGETED_MARGIN
    assert noisy.best.quality == start_quality(ImageFormat.AVIF, aim) + HEADROOM
    assert not noisy.target_met


def test_an_ample_budget_is_searched_for_the_target_not_filled(photo: pyvips.Image) -> None:
    jpeg = [Encoder(ImageFormat.JPEG)]
    budget = round(WIDTH * HEIGHT * AMPLE_BYTES_PER_PIXEL * 10)
    ample = choose(photo, jpeg, budget=budget, target=60)
    assert ample.budget_met and ample.target_met
    # The target costs far less than the budget: one encode near it and a secant on the
    # score, never the budget's fill (a probe, 2-4 encodes toward 90% of it) and a trim back.
    assert len(ample.best.data) < 0.9 * budget
    assert ample.encodes <= 1 + FAST_TARGET_ENCODES
    tight = choose(photo, jpeg, budget=len(ample.best.data) // 2, target=60)
    assert tight.budget_met and len(tight.best.data) <= len(ample.best.data) // 2


def test_exhaustive_scores_at_least_as_well_as_fast(photo: pyvips.Image) -> None:
    # An unreachable target: the rule then asks for the best score that fits.
    fast = choose(photo, ENCODERS, budget=6_000, target=99)
    full = choose(photo, ENCODERS, budget=6_000, target=99, exhaustive=True)
    assert full.budget_met and fast.budget_met
    assert full.best.score >= fast.best.score
    assert full.encodes > fast.encodes


def test_a_passed_deadline_returns_the_first_candidate(photo: pyvips.Image) -> None:
    choice = choose(photo, ENCODERS, budget=6_000, target=99, exhaustive=True, deadline=0.0)
    assert choice.scored == 1
    assert choice.encodes <= 12


def test_the_image_is_never_enlarged(photo: pyvips.Image) -> None:
    choice = choose(photo, ENCODERS, budget=None, target=100, exhaustive=False)
    assert choice.best.width <= WIDTH and choice.best.height <= HEIGHT
    assert not choice.target_met


@pytest.mark.parametrize(
    ("budget", "width", "height", "edge"),
    [(12_000, 1280, 800, 1448), (100_000, 5120, 2880, 2981), (12_000, 800, 1280, 1448)],
)
def test_a_budget_bounds_the_display_edge(budget: int, width: int, height: int, edge: int) -> None:
    assert budget_edge(budget, width, height) == edge
    kept = edge * edge * min(width, height) / max(width, height)
    assert kept <= max(budget / MIN_BYTES_PER_PIXEL, MIN_BOUNDED_PIXELS) * 1.001


@pytest.mark.parametrize(
    ("format", "target", "quality"),
    [(ImageFormat.AVIF, 85, 72), (ImageFormat.JPEG, 85, 87), (ImageFormat.AVIF, 70, 47)],
)
def test_start_quality_follows_the_calibration(
    format: ImageFormat, target: float, quality: int
) -> None:
    assert start_quality(format, target) == quality
