"""Animated GIF and WebP: kept animated where the output can carry it, or sent as a still.

The animations are made here with Pillow; outputs are read back with Pillow (frame count,
delays, loop) and libvips (pixels of every frame).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips
from PIL import Image

import pixfit
import pixfit.web
from pixfit.errors import BadOption, TooLarge
from pixfit.rendering import Animation
from tests import hostile
from tests.conftest import near, pixel, shown

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 20), (200, 40, 200)]
DELAYS = [100, 120, 140, 160, 180]
# Pillow's loop=3 is GIF's NETSCAPE count: 3 repeats after the first showing.
LOOP = 3
WEBP = {"Accept": "image/avif,image/webp,*/*"}


def coloured_gif(width: int = 120, height: int = 80) -> bytes:
    """Five flat frames, one colour each, with a black square in the top-left corner."""
    frames = []
    for colour in COLOURS:
        frame = Image.new("RGB", (width, height), colour)
        frame.paste((0, 0, 0), (0, 0, 10, 10))
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], duration=DELAYS, loop=LOOP
    )
    return buffer.getvalue()


def timeline(data: bytes) -> tuple[int, list[int], int | None]:
    """Frame count, per-frame delays (ms) and loop count, as Pillow reads them."""
    with Image.open(io.BytesIO(data)) as image:
        delays = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()  # WebP reads a frame's duration as it decodes it
            delays.append(image.info["duration"])
        return image.n_frames, delays, image.info.get("loop")


def frames_of(data: bytes) -> list[pyvips.Image]:
    """Every frame of an animation, decoded by libvips."""
    strip = pyvips.Image.new_from_buffer(data, "n=-1")
    height = strip.get("page-height")
    return [strip.crop(0, top, strip.width, height) for top in range(0, strip.height, height)]


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"w": 60}, (60, 40)),
        ({"w": 50, "h": 50, "fit": "cover"}, (50, 50)),
        ({"w": 90, "h": 30, "fit": "fill"}, (90, 30)),
    ],
)
def test_animated_gif_becomes_animated_webp_for_webp_browsers(
    options: dict[str, object], size: tuple[int, int]
) -> None:
    rendered = pixfit.render(coloured_gif(), options, hints=WEBP)
    assert rendered.media_type == "image/webp"
    assert rendered.animation == Animation.ANIMATED
    assert (rendered.width, rendered.height) == size
    count, delays, loop = timeline(rendered.data)
    assert (count, delays) == (len(COLOURS), DELAYS)
    # WebP counts showings, GIF repeats: the same four showings.
    assert loop == LOOP + 1
    for frame, colour in zip(frames_of(rendered.data), COLOURS, strict=True):
        assert (frame.width, frame.height) == size
        assert near(pixel(frame, -3, -3)[:3], colour, 16)


def test_contain_letterboxes_every_frame_the_same_way() -> None:
    rendered = pixfit.render(
        coloured_gif(), {"w": 60, "h": 60, "fit": "contain", "bg": "ffffff"}, hints=WEBP
    )
    frames = frames_of(rendered.data)
    assert len(frames) == len(COLOURS)
    for frame, colour in zip(frames, COLOURS, strict=True):
        assert (frame.width, frame.height) == (60, 60)
        # 120x80 into 60x60: 60x40, with 10 px bands above and below.
        assert near(pixel(frame, 30, 2)[:3], (255, 255, 255), 8)
        assert near(pixel(frame, 30, 30)[:3], colour, 16)
        assert near(pixel(frame, 1, 11)[:3], (0, 0, 0), 24)


def test_rotate_and_flip_turn_every_frame() -> None:
    # 120x80 turned a quarter clockwise is 80x120; w=40 gives 40x60. The black square in the
    # top-left corner goes to the top right, and a left-right mirror brings it back.
    for flip, corner in ((None, (-2, 2)), ("h", (2, 2))):
        options = {"w": 40, "rotate": 90, **({"flip": flip} if flip else {})}
        rendered = pixfit.render(coloured_gif(), options, hints=WEBP)
        assert rendered.animation == Animation.ANIMATED
        frames = frames_of(rendered.data)
        assert len(frames) == len(COLOURS)
        for frame, colour in zip(frames, COLOURS, strict=True):
            assert (frame.width, frame.height) == (40, 60)
            assert near(pixel(frame, *corner)[:3], (0, 0, 0), 40), (flip, colour)
            assert near(pixel(frame, 20, 40)[:3], colour, 16)


@pytest.mark.parametrize(
    ("options", "media_type"),
    [({"w": 60, "format": "gif"}, "image/gif"), ({"w": 60, "format": "original"}, "image/gif")],
)
def test_gif_output_when_asked_for_keeps_frames_delays_and_loop(
    options: dict[str, object], media_type: str
) -> None:
    rendered = pixfit.render(coloured_gif(), options)
    assert (rendered.media_type, rendered.animation) == (media_type, Animation.ANIMATED)
    assert timeline(rendered.data) == (len(COLOURS), DELAYS, LOOP)
    for frame, colour in zip(frames_of(rendered.data), COLOURS, strict=True):
        assert near(pixel(frame, -3, -3)[:3], colour, 16)


@pytest.mark.parametrize(("options", "size"), [({"w": 24}, (24, 16)), ({"rotate": 270}, (32, 48))])
def test_animated_webp_source_stays_animated(
    options: dict[str, object], size: tuple[int, int]
) -> None:
    rendered = pixfit.render(hostile.webp_animated(48, 32, 4), options, hints=WEBP)
    assert (rendered.media_type, rendered.animation) == ("image/webp", Animation.ANIMATED)
    assert (rendered.width, rendered.height) == size
    assert timeline(rendered.data)[:2] == (4, [80] * 4)


@pytest.mark.parametrize(
    ("options", "hints", "media_type"),
    [
        # No WebP in Accept: format=auto has nothing that carries frames, and never picks GIF.
        ({"w": 60}, {"Accept": "image/*"}, "image/png"),
        ({"w": 60, "format": "jpeg"}, WEBP, "image/jpeg"),
        # AVIF as libvips writes it holds one frame.
        ({"w": 60, "format": "avif"}, WEBP, "image/avif"),
        ({"w": 60, "anim": 0}, {"Accept": "image/webp"}, "image/webp"),
    ],
)
def test_a_still_is_frame_zero_and_says_so(
    options: dict[str, object], hints: dict[str, str], media_type: str
) -> None:
    rendered = pixfit.render(coloured_gif(), options, hints=hints)
    assert (rendered.media_type, rendered.animation) == (media_type, Animation.STILL)
    image = shown(rendered.data)
    assert (image.get("n-pages") if image.get_typeof("n-pages") else 1) == 1
    assert near(pixel(image, -3, -3)[:3], COLOURS[0], 16)


def test_page_picks_the_frame_of_the_still() -> None:
    for page, colour in enumerate(COLOURS):
        rendered = pixfit.render(coloured_gif(), {"page": page, "format": "png"})
        assert rendered.animation == Animation.STILL
        assert pixel(shown(rendered.data)[:3], 50, 50) == colour


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"page": 5}, "Expected a frame 0..4 for page but received 5"),
        ({"page": 1, "anim": 1}, "anim=0 or no anim with page"),
        ({"page": "-1"}, "for page but received '-1'"),
        ({"anim": "yes"}, "Expected 0 or 1 for anim"),
    ],
)
def test_bad_page_or_anim_is_a_400_saying_what_was_expected(
    options: dict[str, object], expected: str
) -> None:
    with pytest.raises(BadOption, match=expected):
        pixfit.render(coloured_gif(), options)


def test_a_still_source_refuses_any_page_but_zero() -> None:
    with pytest.raises(BadOption, match=r"frame 0\.\.0 "):
        pixfit.render(hostile.png(), {"page": 1})
    assert pixfit.render(hostile.png(), {"page": 0}).animation is None


def test_an_animation_over_the_budget_becomes_a_still_not_a_smaller_animation() -> None:
    clip = hostile.gif_clip()
    wifi = pixfit.render(clip, {"bw": "wifi"}, hints=WEBP)
    assert (wifi.animation, wifi.budget) == (Animation.ANIMATED, None)
    assert timeline(wifi.data)[0] == 8
    slow = pixfit.render(clip, {"bw": "slow-2g"}, hints=WEBP)
    assert slow.animation == Animation.STILL
    assert (slow.budget, slow.budget_met) == (12_000, True)
    assert len(slow.data) <= 12_000
    # The still is frame 0 at a size the budget pays for, never a shrunk animation.
    assert timeline(slow.data)[0] == 1
    assert (slow.width, slow.height) == (240, 160)


def test_an_animation_within_the_budget_stays_animated_and_meets_it() -> None:
    rendered = pixfit.render(coloured_gif(), {"w": 60, "max_bytes": 20_000}, hints=WEBP)
    assert rendered.animation == Animation.ANIMATED
    assert rendered.budget_met is True and len(rendered.data) <= 20_000


def test_a_pinned_quality_over_max_bytes_becomes_a_still() -> None:
    rendered = pixfit.render(hostile.gif_clip(), {"q": 90, "max_bytes": 3_000}, hints=WEBP)
    assert rendered.animation == Animation.STILL
    assert timeline(rendered.data)[0] == 1


def config(**limits: int) -> pixfit.Config:
    return pixfit.Config().merged({"limits": limits})


@pytest.mark.parametrize(
    ("limits", "options", "message"),
    [
        ({"max_frames": 4}, {}, "Expected at most 4 frames (limits.max_frames) but received 5"),
        ({"max_frames": 4}, {"anim": 0}, "limits.max_frames"),
        (
            {"max_animation_pixels": 47_999},
            {"page": 1},
            "Expected at most 47999 pixels in all frames together "
            "(limits.max_animation_pixels) but received 5 frames of 120x80",
        ),
        (
            # Within the limit as a source, over it once enlarged to 1200x800 a frame.
            {"max_animation_pixels": 1_000_000},
            {"w": 1200, "enlarge": 1},
            "in all output frames together (limits.max_animation_pixels) but 5 frames "
            "of 1200x800 were asked for",
        ),
    ],
)
def test_animation_limits_are_413_naming_the_limit(
    limits: dict[str, int], options: dict[str, object], message: str
) -> None:
    with pytest.raises(TooLarge) as refused:
        pixfit.render(coloured_gif(), options, hints=WEBP, config=config(**limits))
    assert message in str(refused.value)


def test_the_limits_spare_a_still_gif() -> None:
    still = hostile.gif(64, 48)
    tight = config(max_frames=1, max_animation_pixels=1)
    assert pixfit.render(still, {"w": 32}, config=tight).animation is None


def test_http_says_still_and_serves_the_animation_per_accept(tmp_path: Path) -> None:
    (tmp_path / "clip.gif").write_bytes(coloured_gif())
    app = pixfit.web.create_app(pixfit.Config().merged({"source": {"root": str(tmp_path)}}))
    client = app.test_client()
    animated = client.get("/images/clip.gif?w=60", headers={"Accept": "image/webp"})
    assert animated.status_code == 200 and animated.mimetype == "image/webp"
    assert "X-Pixfit-Animation" not in animated.headers
    assert timeline(animated.data)[0] == len(COLOURS)
    still = client.get("/images/clip.gif?w=60", headers={"Accept": "image/png"})
    assert still.status_code == 200 and still.mimetype == "image/png"
    assert still.headers["X-Pixfit-Animation"] == "still"
    assert "Accept" in still.headers["Vary"]
    # A cache hit says it too (the memory cache keeps what the render decided).
    cached = pixfit.web.create_app(
        pixfit.Config().merged({"source": {"root": str(tmp_path)}, "cache": {"kind": "memory"}})
    ).test_client()
    for _ in range(2):
        response = cached.get("/images/clip.gif?w=60&anim=0")
        assert response.headers["X-Pixfit-Animation"] == "still"
    refused = client.get("/images/clip.gif?page=9")
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pixfit.cli", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ},
        check=False,
    )


def test_cli_render_and_batch_keep_the_animation(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "clip.gif").write_bytes(coloured_gif())
    out = tmp_path / "clip.webp"
    result = cli(
        "render", str(source / "clip.gif"), "-o", str(out), "--w", "60", "--format", "webp"
    )
    assert result.returncode == 0, result.stderr
    assert timeline(out.read_bytes())[:2] == (len(COLOURS), DELAYS)
    still = tmp_path / "still.webp"
    result = cli(
        "render", str(source / "clip.gif"), "-o", str(still), "--format", "webp", "--anim", "0"
    )
    assert result.returncode == 0, result.stderr
    assert timeline(still.read_bytes())[0] == 1
    assert b"still" in result.stderr
    result = cli("batch", str(source), str(tmp_path / "out"), "--variants", "w=60;format=webp,gif")
    assert result.returncode == 0, result.stderr
    for name in ("format-webp_w-60.webp", "format-gif_w-60.gif"):
        assert timeline((tmp_path / "out" / "clip" / name).read_bytes())[:2] == (
            len(COLOURS),
            DELAYS,
        )
