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


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 2), (1, 40), (17, 9)])
def test_images_smaller_than_the_coarsest_scale_score_too(
    photo: pyvips.Image, width: int, height: int
) -> None:
    # 1/16 of these is under a pixel, and numpy drops axes of length 1.
    tiny = photo.resize(width / WIDTH, vscale=height / HEIGHT).copy_memory()
    assert (tiny.width, tiny.height) == (width, height)
    assert score(tiny, tiny) == 100
    assert score(photo, tiny) < 60


def test_an_encode_carrying_alpha_or_16_bits_scores_like_its_8_bit_srgb(
    photo: pyvips.Image,
) -> None:
    reference = Reference.of(photo)
    plain = decoded(photo.jpegsave_buffer(Q=60))
    with_alpha = plain.bandjoin(255)
    wide = plain.colourspace("rgb16")
    expected = reference.score(plain)
    assert reference.score(with_alpha) == pytest.approx(expected)
    assert reference.score(wide) == pytest.approx(expected, abs=0.5)
