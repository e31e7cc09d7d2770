import dataclasses

import pytest

from pixfit.config import Config
from pixfit.geometry import Caps
from pixfit.hints import ClientHints
from pixfit.options import Fit, Flip, FocalPoint, Options, parse_options
from pixfit.planner import NOT_IN_KEY, Plan, choose_outputs, plan
from pixfit.profiles import NetworkClass as N
from pixfit.registry import ImageFormat as F


def _plan(
    args: dict[str, str], headers: dict[str, str] | None = None, config: Config | None = None
):  # type: ignore[no-untyped-def]
    return plan(parse_options(args), ClientHints.from_headers(headers or {}), config or Config())


@pytest.mark.parametrize(
    ("args", "headers", "box", "caps", "dpr"),
    [
        ({"w": "400"}, {}, (400, None), Caps(None, None, 8192), 1.0),
        ({"w": "400", "dpr": "2"}, {}, (800, None), Caps(None, None, 8192), 2.0),
        ({"w": "400"}, {"Sec-CH-DPR": "3"}, (1200, None), Caps(None, None, 8192), 3.0),
        ({"w": "400", "dpr": "1"}, {"DPR": "3"}, (400, None), Caps(None, None, 8192), 1.0),
        # the profile caps the DPR; the longest edge is only max_output_edge (no fixed
        # per-class edge: the search chooses the width)
        ({"w": "400", "dpr": "3", "bw": "3g"}, {}, (800, None), Caps(None, None, 8192), 2.0),
        ({"w": "400", "dpr": "4", "bw": "slow-2g"}, {}, (400, None), Caps(None, None, 8192), 1.0),
        # screen alone caps at screen x dpr
        ({"screen": "1280x720", "dpr": "2"}, {}, (None, None), Caps(2560, 1440, 8192), 2.0),
        (
            {"screen": "1280x720", "dpr": "2", "bw": "4g"},
            {},
            (None, None),
            Caps(2560, 1440, 8192),
            2.0,
        ),
        # hints: Sec-CH-Width is device pixels, re-scaled to the DPR sent
        ({}, {"Sec-CH-Width": "640", "Sec-CH-DPR": "2"}, (640, None), Caps(None, None, 8192), 2.0),
        (
            {"bw": "2g"},
            {"Sec-CH-Width": "640", "Sec-CH-DPR": "2"},
            (320, None),
            Caps(None, None, 8192),
            1.0,
        ),
        ({}, {"Viewport-Width": "400"}, (None, None), Caps(480, None, 8192), 1.0),
        ({"w": "100", "h": "50", "fit": "cover"}, {}, (100, 50), Caps(None, None, 8192), 1.0),
    ],
)
def test_box_caps_and_dpr(
    args: dict[str, str],
    headers: dict[str, str],
    box: tuple[int | None, int | None],
    caps: Caps,
    dpr: float,
) -> None:
    planned = _plan(args, headers)
    assert (planned.box_width, planned.box_height) == box
    assert planned.caps == caps
    assert planned.dpr == dpr


@pytest.mark.parametrize(
    ("args", "headers", "network", "quality", "budget", "target"),
    [
        ({"w": "1"}, {}, N.WIFI, (30, 95), None, 85),
        ({"bw": "slow-2g"}, {}, N.SLOW_2G, (10, 90), 12_000, 50),
        ({"bw": "2g"}, {}, N.TWO_G, (10, 90), 25_000, 60),
        ({"bw": "3g"}, {}, N.THREE_G, (15, 90), 100_000, 70),
        ({"bw": "4g"}, {}, N.FOUR_G, (20, 95), 400_000, 80),
        ({"w": "1"}, {"ECT": "2g"}, N.TWO_G, (10, 90), 25_000, 60),
        ({"w": "1"}, {"Save-Data": "on"}, N.THREE_G, (15, 90), 100_000, 70),
        # q pins the quality: no search, and the class's budget goes with it
        ({"bw": "3g", "q": "90"}, {}, N.THREE_G, (90, 90), None, None),
        ({"bw": "3g", "max_bytes": "5000"}, {}, N.THREE_G, (15, 90), 5000, 70),
        ({"q": "60", "max_bytes": "5000"}, {}, N.WIFI, (60, 60), 5000, None),
        ({"max_bytes": "5000"}, {}, N.WIFI, (30, 95), 5000, 85),
    ],
)
def test_class_quality_budget_and_target(
    args: dict[str, str],
    headers: dict[str, str],
    network: N,
    quality: tuple[int, int],
    budget: int | None,
    target: float | None,
) -> None:
    planned = _plan(args, headers)
    assert planned.network == network
    assert (planned.quality_min, planned.quality_max) == quality
    assert planned.budget == budget
    assert planned.target == target


@pytest.mark.parametrize(
    ("args", "accept", "source", "alpha", "expected"),
    [
        # AUTO: AVIF and WebP, searched, when Accept lists them; else JPEG, or PNG with alpha
        ({"w": "1"}, "image/avif,image/webp,*/*", F.JPEG, False, (F.AVIF, F.WEBP)),
        ({"w": "1"}, "image/avif,image/webp,*/*", F.PNG, True, (F.AVIF, F.WEBP)),
        ({"w": "1"}, "image/webp,*/*", F.PNG, True, (F.WEBP,)),
        ({"w": "1"}, "*/*", F.PNG, False, (F.JPEG,)),
        ({"w": "1"}, "*/*", F.PNG, True, (F.PNG,)),
        ({"w": "1"}, "", F.GIF, True, (F.PNG,)),
        # an explicit format is kept: JPEG flattens alpha
        ({"w": "1", "format": "jpeg"}, "image/avif", F.PNG, True, (F.JPEG,)),
        ({"w": "1", "format": "webp"}, "", F.JPEG, False, (F.WEBP,)),
        ({"w": "1", "format": "png"}, "image/avif", F.JPEG, False, (F.PNG,)),
        # original: the source's own format; GIF is written as PNG
        ({"format": "original"}, "image/webp", F.JPEG, False, (F.JPEG,)),
        ({"format": "original"}, "image/webp", F.GIF, True, (F.PNG,)),
        ({"format": "original"}, "", F.AVIF, False, (F.AVIF,)),
    ],
)
def test_choose_outputs_finishes_the_choice(
    args: dict[str, str], accept: str, source: F, alpha: bool, expected: tuple[F, ...]
) -> None:
    assert choose_outputs(_plan(args, {"Accept": accept}), source, alpha) == expected


@pytest.mark.parametrize(
    ("args", "palette", "progressive"),
    [
        ({"w": "1"}, False, False),  # wifi: no budget, so no palette
        ({"bw": "slow-2g"}, True, True),
        ({"bw": "2g"}, True, True),
        ({"bw": "3g"}, True, False),
        ({"bw": "4g"}, True, False),
        ({"bw": "2g", "q": "50"}, False, True),  # a fixed quality has no budget
        ({"max_bytes": "5000"}, True, False),
    ],
)
def test_encoder_policy_comes_from_the_profile(
    args: dict[str, str], palette: bool, progressive: bool
) -> None:
    planned = _plan(args)
    assert (planned.palette, planned.progressive) == (palette, progressive)


def test_profile_policy_is_configurable() -> None:
    config = Config().merged({"profiles": {"3g": {"progressive": True, "palette": False}}})
    planned = _plan({"bw": "3g"}, config=config)
    assert (planned.palette, planned.progressive) == (False, True)


def test_passthrough_only_without_options_or_rendering_hints() -> None:
    assert _plan({}).passthrough
    assert _plan({}, {"Accept": "image/webp", "DPR": "2"}).passthrough
    assert not _plan({}, {"ECT": "2g"}).passthrough
    assert not _plan({"format": "auto"}).passthrough
    assert not _plan({"w": "10"}).passthrough


def test_profiles_come_from_config() -> None:
    config = Config().merged(
        {"profiles": {"3g": {"budget": 50_000, "max_edge": 900}}, "default_class": "3g"}
    )
    planned = plan(Options(width=2000), ClientHints(), config)
    assert planned.network == N.THREE_G
    assert planned.budget == 50_000
    assert planned.caps.max_edge == 900


def test_key_names_the_variant() -> None:
    assert _plan({"w": "400"}).key != _plan({"w": "401"}).key
    assert _plan({"w": "400"}).key != _plan({"w": "400"}, {"Accept": "image/webp"}).key
    assert _plan({"w": "400", "bw": "3g"}).key != _plan({"w": "400", "bw": "4g"}).key
    assert _plan({"w": "400"}).key == _plan({"width": "400"}).key
    assert _plan({}).key == "original"


@pytest.mark.parametrize(
    "other",
    [
        {"rotate": "90"}, {"rotate": "270"}, {"flip": "h"}, {"flip": "hv"}, {"blur": "2"},
        {"blur": "2.5"}, {"sharpen": "1"}, {"pos": "fp:0.5,0.5"}, {"pos": "fp:0.5,0.25"},
    ],
)  # fmt: skip
def test_operations_and_focal_points_change_the_key(other: dict[str, str]) -> None:
    base = {"w": "400", "h": "300", "fit": "cover"}
    keys = {_plan(base).key, _plan({**base, **other}).key}
    assert len(keys) == 2
    # One spelling per value: the same point or sigma written differently is one variant.
    respelled = {key: value.replace("0.5", ".50") for key, value in other.items()}
    assert _plan({**base, **respelled}).key == _plan({**base, **other}).key


# A value unlike the base plan's for every Plan field; a new field must be added here.
_OTHER_VALUES = {
    "box_width": 401,
    "box_height": 300,
    "fit": Fit.COVER,
    "gravity": FocalPoint(0.25, 0.75),
    "enlarge": True,
    "caps": Caps(640, None, 8192),
    "formats": (F.WEBP, F.JPEG, F.PNG),
    "quality_max": 84,
    "quality_min": 80,
    "budget": 5000,
    "target": 55.0,
    "palette": True,
    "progressive": True,
    "background": (255, 0, 0),
    "animate": False,
    "page": 2,
    "network": N.FOUR_G,
    "exhaustive": True,
    "rotate": 90,
    "flip": Flip.H,
    "blur": 2.0,
    "sharpen": 1.0,
}


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(Plan)])
def test_key_changes_with_every_field_not_excluded(field: str) -> None:
    base = _plan({"w": "400"})
    assert not base.passthrough
    if field == "passthrough":
        assert dataclasses.replace(base, passthrough=True).key == "original"
    elif field in NOT_IN_KEY:
        other = {"dpr": 3.0, "vary": (), "measured_rtt": 1500.0}[field]
        assert dataclasses.replace(base, **{field: other}).key == base.key
    else:
        assert getattr(base, field) != _OTHER_VALUES[field]
        assert dataclasses.replace(base, **{field: _OTHER_VALUES[field]}).key != base.key
