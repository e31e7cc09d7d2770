import pytest

from pixfit.hints import ClientHints, choose_class, vary_headers
from pixfit.options import Options
from pixfit.profiles import NetworkClass as N
from pixfit.registry import ImageFormat, OutputFormat


@pytest.mark.parametrize(
    ("accept", "avif", "webp"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", True, True),
        ("image/webp,*/*", False, True),
        ("*/*", False, False),
        ("image/*", False, False),
        ("image/avif;q=0,image/webp", False, True),
        ("IMAGE/AVIF", True, False),
        ("", False, False),
    ],
)
def test_accept_counts_only_explicit_modern_formats(accept: str, avif: bool, webp: bool) -> None:
    hints = ClientHints.from_headers({"Accept": accept})
    assert (ImageFormat.AVIF in hints.accepts, ImageFormat.WEBP in hints.accepts) == (avif, webp)
    assert hints.accepts <= {ImageFormat.AVIF, ImageFormat.WEBP}


@pytest.mark.parametrize(
    ("headers", "dpr", "width", "viewport"),
    [
        ({"Sec-CH-DPR": "2"}, 2.0, None, None),
        ({"DPR": "1.3"}, 1.5, None, None),
        ({"Sec-CH-DPR": "2.75", "DPR": "1"}, 3.0, None, None),
        ({"dpr": "9"}, 4.0, None, None),
        ({"DPR": "-1"}, None, None, None),
        ({"DPR": "nan"}, None, None, None),
        ({"Sec-CH-Width": "500"}, None, 640, None),
        ({"Width": "100"}, None, 160, None),
        ({"Width": "9999"}, None, 3840, None),
        ({"Width": "abc"}, None, None, None),
        ({"Sec-CH-Viewport-Width": "1300"}, None, None, 1536),
        ({"Viewport-Width": "320"}, None, None, 320),
    ],
)
def test_sizes_snap_to_the_ladder(
    headers: dict[str, str], dpr: float | None, width: int | None, viewport: int | None
) -> None:
    hints = ClientHints.from_headers(headers)
    assert (hints.dpr, hints.width, hints.viewport_width) == (dpr, width, viewport)


@pytest.mark.parametrize(
    ("headers", "network"),
    [
        ({}, None),
        ({"ECT": "2g"}, N.TWO_G),
        ({"ECT": "slow-2g"}, N.SLOW_2G),
        ({"ECT": "wifi"}, N.FOUR_G),  # ECT never says wifi
        ({"ECT": "bogus", "Downlink": "0.5"}, N.THREE_G),
        ({"Downlink": "0.05"}, N.SLOW_2G),
        ({"Downlink": "0.06"}, N.TWO_G),
        ({"Downlink": "0.07"}, N.TWO_G),
        ({"Downlink": "0.7"}, N.THREE_G),
        ({"Downlink": "0.71"}, N.FOUR_G),
        ({"Downlink": "10"}, N.FOUR_G),
        ({"ECT": "3g", "Downlink": "0.01"}, N.THREE_G),
        ({"RTT": "2000"}, N.SLOW_2G),
        ({"RTT": "1500"}, N.TWO_G),
        ({"RTT": "300"}, N.THREE_G),
        ({"RTT": "50"}, N.FOUR_G),
    ],
)
def test_network_hints_follow_ect_thresholds(headers: dict[str, str], network: N | None) -> None:
    assert ClientHints.from_headers(headers).network == network


@pytest.mark.parametrize(
    ("explicit", "headers", "default", "expected"),
    [
        (None, {}, N.WIFI, N.WIFI),
        (None, {}, N.THREE_G, N.THREE_G),
        (None, {"ECT": "2g"}, N.WIFI, N.TWO_G),
        (N.FOUR_G, {"ECT": "2g"}, N.WIFI, N.FOUR_G),
        (None, {"Downlink": "0.5"}, N.WIFI, N.THREE_G),
        (None, {"Save-Data": "on"}, N.WIFI, N.THREE_G),
        (None, {"Save-Data": "on", "ECT": "4g"}, N.WIFI, N.THREE_G),
        (None, {"Save-Data": "on", "ECT": "3g"}, N.WIFI, N.TWO_G),
        (None, {"Save-Data": "on", "ECT": "slow-2g"}, N.WIFI, N.SLOW_2G),
        (N.WIFI, {"Save-Data": "on"}, N.WIFI, N.THREE_G),
        (None, {"Save-Data": "off"}, N.WIFI, N.WIFI),
    ],
)
def test_class_rules(explicit: N | None, headers: dict[str, str], default: N, expected: N) -> None:
    assert choose_class(explicit, ClientHints.from_headers(headers), default) == expected


def test_hints_that_ask_for_rendering() -> None:
    assert not ClientHints.from_headers({"Accept": "image/webp", "DPR": "2"}).asks_for_rendering
    for header, value in [
        ("ECT", "3g"),
        ("Save-Data", "on"),
        ("Width", "300"),
        ("Viewport-Width", "400"),
    ]:
        assert ClientHints.from_headers({header: value}).asks_for_rendering


def test_vary_lists_only_headers_that_can_change_the_answer() -> None:
    everything = vary_headers(Options())
    assert set(everything) == {
        "Accept", "Sec-CH-DPR", "DPR", "Sec-CH-Width", "Width", "Sec-CH-Viewport-Width",
        "Viewport-Width", "ECT", "Downlink", "RTT", "Save-Data",
    }  # fmt: skip
    pinned = Options(
        width=300, dpr=2, screen=(800, 600), network=N.THREE_G, format=OutputFormat.WEBP
    )
    assert vary_headers(pinned) == ("Save-Data",)
    assert "Accept" in vary_headers(Options(format=OutputFormat.AUTO))
