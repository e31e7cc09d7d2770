import re

import pytest

from pixfit.errors import BadOption
from pixfit.options import Fit, Flip, FocalPoint, Gravity, Options, parse_options
from pixfit.profiles import NetworkClass
from pixfit.registry import OutputFormat


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, Options()),
        ({"w": "800"}, Options(width=800)),
        ({"width": "800"}, Options(width=800)),
        ({"h": "600"}, Options(height=600)),
        ({"height": "600"}, Options(height=600)),
        ({"w": "1", "h": "8192"}, Options(width=1, height=8192)),
        ({"fit": "cover"}, Options(fit=Fit.COVER)),
        ({"fit": "CONTAIN"}, Options(fit=Fit.CONTAIN)),
        ({"fit": "outside"}, Options(fit=Fit.OUTSIDE)),
        ({"forcefit": "1"}, Options(fit=Fit.FILL)),
        ({"forcefit": "0"}, Options()),
        ({"forcefit": "1", "fit": "fill"}, Options(fit=Fit.FILL)),
        ({"pos": "north"}, Options(gravity=Gravity.NORTH)),
        ({"pos": "center"}, Options(gravity=Gravity.CENTRE)),
        ({"pos": "attention"}, Options(gravity=Gravity.ATTENTION)),
        ({"pos": "southwest"}, Options(gravity=Gravity.SOUTHWEST)),
        ({"enlarge": "1"}, Options(enlarge=True)),
        ({"enlarge": "0"}, Options(enlarge=False)),
        ({"screen": "1280x720"}, Options(screen=(1280, 720))),
        ({"dpr": "2"}, Options(dpr=2.0)),
        ({"dpr": "1.5"}, Options(dpr=1.5)),
        ({"bw": "slow-2g"}, Options(network=NetworkClass.SLOW_2G)),
        ({"bw": "wifi"}, Options(network=NetworkClass.WIFI)),
        ({"q": "1"}, Options(quality=1)),
        ({"q": "100"}, Options(quality=100)),
        ({"max_bytes": "30000"}, Options(max_bytes=30000)),
        ({"format": "webp"}, Options(format=OutputFormat.WEBP)),
        ({"f": "avif"}, Options(format=OutputFormat.AVIF)),
        ({"format": "jpg"}, Options(format=OutputFormat.JPEG)),
        ({"format": "original"}, Options(format=OutputFormat.ORIGINAL)),
        ({"bg": "ff8800"}, Options(background=(255, 136, 0))),
        ({"bg": "#F80"}, Options(background=(255, 136, 0))),
        ({"pos": "fp:0.25,0.75"}, Options(gravity=FocalPoint(0.25, 0.75))),
        ({"pos": "FP:0,1"}, Options(gravity=FocalPoint(0.0, 1.0))),
        ({"pos": "fp:.5,1.0"}, Options(gravity=FocalPoint(0.5, 1.0))),
        ({"pos": "fp:0.123456,0.5"}, Options(gravity=FocalPoint(0.1235, 0.5))),
        ({"rotate": "90"}, Options(rotate=90)),
        ({"rotate": "180"}, Options(rotate=180)),
        ({"rotate": "270"}, Options(rotate=270)),
        ({"flip": "h"}, Options(flip=Flip.H)),
        ({"flip": "V"}, Options(flip=Flip.V)),
        ({"flip": "hv"}, Options(flip=Flip.HV)),
        ({"flip": "vh"}, Options(flip=Flip.HV)),
        ({"blur": "0.3"}, Options(blur=0.3)),
        ({"blur": "100"}, Options(blur=100.0)),
        ({"blur": "2.555"}, Options(blur=2.56)),
        ({"sharpen": "0.3"}, Options(sharpen=0.3)),
        ({"sharpen": "10"}, Options(sharpen=10.0)),
    ],
)
def test_parses_every_option_and_alias(args: dict[str, str], expected: Options) -> None:
    assert parse_options(args) == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"w": "abc"}, "Expected an integer 1..8192 for w but received 'abc'"),
        ({"w": "0"}, "for w but received '0'"),
        ({"w": "-5"}, "for w"),
        ({"w": "8193"}, "1..8192 for w"),
        ({"width": "1.5"}, "for width but received '1.5'"),
        ({"h": ""}, "for h"),
        ({"fit": "stretch"}, "one of inside, cover, contain, fill, outside for fit"),
        ({"pos": "up"}, "for pos but received 'up'"),
        ({"enlarge": "yes"}, "Expected 0 or 1 for enlarge"),
        ({"screen": "1280"}, "WIDTHxHEIGHT"),
        ({"screen": "0x720"}, "for screen"),
        ({"screen": "99999x1"}, "for screen"),
        ({"dpr": "0.5"}, "a number 1..4 for dpr"),
        ({"dpr": "5"}, "for dpr"),
        ({"dpr": "nan"}, "for dpr"),
        ({"dpr": "inf"}, "for dpr"),
        ({"bw": "5g"}, "one of slow-2g, 2g, 3g, 4g, wifi for bw"),
        ({"q": "0"}, "an integer 1..100 for q"),
        ({"q": "101"}, "for q"),
        ({"max_bytes": "lots"}, "for max_bytes"),
        ({"format": "bmp"}, "for format"),
        ({"f": "heic"}, "for f but received 'heic'"),
        ({"bg": "red"}, "hex colour"),
        ({"bg": "12345"}, "for bg"),
        ({"forcefit": "2"}, "for forcefit"),
        ({"forcefit": "1", "fit": "cover"}, "forcefit"),
        ({"w": "10", "width": "20"}, "given twice"),
        ({"wdith": "10"}, "Unknown option 'wdith'"),
        (
            {"pos": "fp:1.5,0.5"},
            "Expected fp:X,Y with X and Y fractions 0..1 of the source for pos",
        ),
        ({"pos": "fp:0.5"}, "fractions 0..1 of the source for pos but received 'fp:0.5'"),
        ({"pos": "fp:-0.1,0.5"}, "fp:X,Y with X and Y fractions 0..1"),
        ({"pos": "fp:0.5,0.5,0.5"}, "fp:X,Y"),
        ({"pos": "fp:nan,0.5"}, "fp:X,Y"),
        ({"pos": "fp:1e-1,0.5"}, "fp:X,Y"),
        ({"pos": "fp:"}, "fp:X,Y"),
        ({"pos": "middle"}, "northwest, entropy, attention, or fp:X,Y (fractions 0..1 of the"),
        ({"rotate": "45"}, "Expected one of 90, 180 or 270 (clockwise degrees) for rotate but"),
        ({"rotate": "0"}, "for rotate but received '0'"),
        ({"rotate": "-90"}, "for rotate"),
        ({"rotate": "90.0"}, "for rotate"),
        ({"flip": "x"}, "Expected one of h, v, hv for flip but received 'x'"),
        ({"blur": "0.2"}, "Expected a number 0.3..100 for blur but received '0.2'"),
        ({"blur": "101"}, "for blur"),
        ({"blur": "nan"}, "for blur"),
        ({"blur": "inf"}, "for blur"),
        ({"blur": ""}, "for blur"),
        ({"sharpen": "11"}, "Expected a number 0.3..10 for sharpen but received '11'"),
        ({"sharpen": "0"}, "for sharpen"),
        ({"preset": "card"}, "Expected a configured preset (there are none) for preset"),
    ],
)
def test_bad_values_name_option_value_and_expectation(args: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadOption, match=re.escape(fragment)):
        parse_options(args)


def test_max_edge_bounds_the_box() -> None:
    assert parse_options({"w": "2000"}, max_edge=2000).width == 2000
    with pytest.raises(BadOption, match=r"1\.\.2000 for w"):
        parse_options({"w": "2001"}, max_edge=2000)


def test_unknown_options_pass_when_not_strict() -> None:
    assert parse_options({"utm_source": "x", "w": "5"}, strict=False) == Options(width=5)


def test_ignored_keys_belong_to_the_caller() -> None:
    assert (
        parse_options({"url": "http://x/", "sig": "abc"}, ignore=frozenset({"url", "sig"}))
        == Options()
    )


def test_is_empty_only_without_options() -> None:
    assert Options().is_empty
    # An explicit format=auto asks for negotiation, so it is not the same as no option.
    assert not parse_options({"format": "auto"}).is_empty
    assert not Options(width=1).is_empty


def test_only_ascii_digits_count() -> None:
    arabic_1280 = "\u0661\u0662\u0668\u0660"
    for args in ({"screen": f"{arabic_1280}x720"}, {"w": "²"}, {"q": "①"}, {"w": "9" * 5000}):
        with pytest.raises(BadOption):
            parse_options(args)


PRESETS = {"card": {"w": "400", "h": "300", "fit": "cover"}, "thumb": {"width": "80"}}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"preset": "card"}, Options(width=400, height=300, fit=Fit.COVER)),
        # Options beside the preset override its own, whatever alias either used.
        ({"preset": "card", "w": "500"}, Options(width=500, height=300, fit=Fit.COVER)),
        ({"preset": "card", "width": "500"}, Options(width=500, height=300, fit=Fit.COVER)),
        ({"preset": "thumb", "w": "90", "q": "50"}, Options(width=90, quality=50)),
        # forcefit=1 is fit=fill, so it overrides the preset's fit rather than clashing.
        ({"preset": "card", "forcefit": "1"}, Options(width=400, height=300, fit=Fit.FILL)),
    ],
)
def test_presets_stand_for_their_options(args: dict[str, str], expected: Options) -> None:
    assert parse_options(args, presets=PRESETS) == expected


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(
        BadOption, match="Expected one of card or thumb for preset but received 'x'"
    ):
        parse_options({"preset": "x"}, presets=PRESETS)


@pytest.mark.parametrize(
    "args",
    [{}, {"w": "400"}, {"preset": "card", "w": "500"}, {"preset": "card", "utm": "1"}],
)
def test_presets_only_refuses_anything_but_a_preset_alone(args: dict[str, str]) -> None:
    with pytest.raises(BadOption, match=r"Expected only preset=NAME, NAME one of card or thumb"):
        parse_options(args, presets=PRESETS, presets_only=True)


def test_presets_only_takes_a_preset_alone() -> None:
    args = {"preset": "thumb", "sig": "abc"}
    options = parse_options(args, presets=PRESETS, presets_only=True, ignore=frozenset({"sig"}))
    assert options == Options(width=80)
    # Keys that are ignored anyway, when options are not strict, do not count.
    loose = parse_options(
        {"preset": "thumb", "utm": "1"}, presets=PRESETS, presets_only=True, strict=False
    )
    assert loose == Options(width=80)
