"""The perceptual proxy on generated images: identity, monotonicity, scaling up."""

from __future__ import annotations

import pytest
import pyvips

from pixfit.perceptual import Reference, score

WIDTH, HEIGHT = 480, 300


@pytest.fixture(scope="module")
def photo() -> pyvips.Image:
    """A smooth colour gradient with texture on top: something like a photo."""
    x = pyvips.Image.xyz(WIDTH, HEIGHT)
    ramp = (x[0] * (255 / WIDTH)).bandjoin([x[1] * (255 / HEIGHT), x[0] * 0 + 96])
    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=18, mean=0, seed=3)
    return (ramp + noise).cast("uchar").copy(interpretation="srgb").copy_memory()


def decoded(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "").copy_memory()


def test_identical_images_score_about_100(photo: pyvips.Image) -> None:
    assert score(photo, photo) > 99


def test_heavier_compression_scores_lower(photo: pyvips.Image) -> None:
    reference = Reference.of(photo)
    scores = [reference.score(decoded(photo.jpegsave_buffer(Q=q))) for q in (95, 75, 50, 25, 8)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] - scores[-1] > 20


def test_a_smaller_candidate_is_scaled_up_and_scores_lower(photo: pyvips.Image) -> None:
    reference = Reference.of(photo)
    half = photo.resize(0.5).copy_memory()
    quarter = photo.resize(0.25).copy_memory()
    assert 100 > reference.score(half) > reference.score(quarter)


def test_score_matches_the_prepared_reference(photo: pyvips.Image) -> None:
    candidate = decoded(photo.webpsave_buffer(Q=40))
    assert score(photo, candidate) == pytest.approx(Reference.of(photo).score(candidate))
